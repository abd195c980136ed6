package validate

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// CSVColumns are the columns a migration engine's report must have (docs/validation.md), in any
// order, named in a header row (case ignored); other columns are ignored. An empty cell is an
// unknown value (its check is skipped), except List, URL and Type.
var CSVColumns = []string{"List", "URL", "Type", "Size", "Modified", "Versions", "Author", "Editor", "UniquePermissions", "Principals"}

// maxCSVField bounds one cell: no column of the report needs more.
const maxCSVField = 64 << 10

// CSVSource reads items from a CSV report; name names it in errors (a file name).
type CSVSource struct {
	name string
	open func() (io.ReadCloser, error)
}

// NewCSVSource reads the report open returns (called once per Items).
func NewCSVSource(name string, open func() (io.ReadCloser, error)) *CSVSource {
	return &CSVSource{name: name, open: open}
}

// Name is the report's name.
func (c *CSVSource) Name() string { return c.name }

// CSVError is a bad row or cell: Row is the 1-based line (the header is row 1), Column the column's
// name ("" for the row as a whole).
type CSVError struct {
	Name   string
	Row    int
	Column string
	Err    error
}

func (e *CSVError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("%s row %d: %v", e.Name, e.Row, e.Err)
	}
	return fmt.Sprintf("%s row %d column %s: %v", e.Name, e.Row, e.Column, e.Err)
}

func (e *CSVError) Unwrap() error { return e.Err }

// Items reads every row; the first bad row or cell ends it with a *CSVError.
func (c *CSVSource) Items(ctx context.Context, fn func(*Item) error) (err error) {
	rc, err := c.open()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rc.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	r := csv.NewReader(rc)
	r.ReuseRecord = true
	head, err := r.Read()
	if err != nil {
		return &CSVError{Name: c.name, Row: 1, Err: fmt.Errorf("header: %w", err)}
	}
	if err := headerEncoding(head); err != nil {
		return &CSVError{Name: c.name, Row: 1, Err: err}
	}
	col := map[string]int{}
	for i, h := range head {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // a byte order mark, as spreadsheet programs write
		}
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	idx := make([]int, len(CSVColumns))
	var missing []string
	for i, name := range CSVColumns {
		j, ok := col[strings.ToLower(name)]
		if !ok {
			missing = append(missing, name)
		}
		idx[i] = j
	}
	if len(missing) > 0 {
		return &CSVError{Name: c.name, Row: 1, Err: fmt.Errorf("missing column(s) %s (want %s)", strings.Join(missing, ", "), strings.Join(CSVColumns, ","))}
	}
	for n := 0; ; n++ {
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			line := 0
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.Line
			}
			return &CSVError{Name: c.name, Row: max(line, 1), Err: err}
		}
		line, _ := r.FieldPos(0)
		it, cerr := parseRow(rec, idx)
		if cerr != nil {
			cerr.Name, cerr.Row = c.name, line
			return cerr
		}
		if err := fn(it); err != nil {
			return &CSVError{Name: c.name, Row: line, Err: err}
		}
	}
}

// headerEncoding refuses a header that is not UTF-8 text, saying what it looks like: a report saved
// as UTF-16 ("Unicode text" in spreadsheet programs) would otherwise read as missing every column.
func headerEncoding(head []string) error {
	h := strings.Join(head, ",")
	switch {
	case strings.HasPrefix(h, "\xff\xfe") || strings.HasPrefix(h, "\xfe\xff") || strings.ContainsRune(h, 0):
		return errors.New("header: the file is UTF-16, not UTF-8 (save the report as CSV UTF-8)")
	case !utf8.ValidString(h):
		return errors.New("header: invalid UTF-8 (the report must be CSV UTF-8)")
	}
	return nil
}

func parseRow(rec []string, idx []int) (*Item, *CSVError) {
	cell := make([]string, len(CSVColumns))
	for i, j := range idx {
		v := rec[j]
		if !utf8.ValidString(v) {
			return nil, &CSVError{Column: CSVColumns[i], Err: errors.New("invalid UTF-8")}
		}
		if len(v) > maxCSVField {
			return nil, &CSVError{Column: CSVColumns[i], Err: fmt.Errorf("cell longer than %d bytes", maxCSVField)}
		}
		cell[i] = strings.TrimSpace(v)
	}
	bad := func(i int, err error) *CSVError { return &CSVError{Column: CSVColumns[i], Err: err} }
	it := &Item{List: cell[0], URL: cell[1], Kind: Kind(cell[2]), Size: -1, Author: cell[6], Editor: cell[7]}
	for i := range 2 {
		if !strings.HasPrefix(cell[i], "/") {
			return nil, bad(i, fmt.Errorf("%q is not a server-relative URL", cell[i]))
		}
	}
	switch it.Kind {
	case KindFile, KindFolder, KindListItem:
	default:
		return nil, bad(2, fmt.Errorf("%q is not File, Folder or ListItem", cell[2]))
	}
	if cell[3] != "" {
		n, err := strconv.ParseInt(cell[3], 10, 64)
		if err != nil || n < 0 {
			return nil, bad(3, fmt.Errorf("%q is not a size in bytes", cell[3]))
		}
		it.Size = n
	}
	if cell[4] != "" {
		t, err := time.Parse(time.RFC3339, cell[4])
		if err != nil {
			return nil, bad(4, fmt.Errorf("%q is not an RFC 3339 time such as 2024-05-01T12:00:00Z", cell[4]))
		}
		it.Modified = t
	}
	if cell[5] != "" {
		n, err := strconv.Atoi(cell[5])
		if err != nil || n < 1 {
			return nil, bad(5, fmt.Errorf("%q is not a version count", cell[5]))
		}
		it.Versions = n
	}
	switch strings.ToUpper(cell[8]) {
	case "":
	case "TRUE":
		it.Permissions = PermissionsUnique
	case "FALSE":
		it.Permissions = PermissionsInherited
	default:
		return nil, bad(8, fmt.Errorf("%q is not TRUE or FALSE", cell[8]))
	}
	if cell[9] != "" {
		for _, p := range strings.Split(cell[9], ";") {
			p = strings.TrimSpace(p)
			if name, role, ok := strings.Cut(p, "="); !ok || name == "" || role == "" {
				return nil, bad(9, fmt.Errorf("%q is not principal=role", p))
			}
			it.Principals = append(it.Principals, p)
		}
	}
	return it, nil
}
