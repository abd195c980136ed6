package tenant

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Every identity (GUID, name, size, author, timestamp) is a pure function of a 64-bit hash, and
// every hash is derived from the profile seed and an object's path and index. Nothing is stored.

// Salts keep the hashes of different attributes of one object independent.
const (
	saltSite uint64 = iota + 1
	saltWeb
	saltList
	saltRootFolder
	saltScope
	saltItem
	saltTime
	saltUser
	saltVersion
	saltName
	saltSize
	saltField
	saltMutate
	saltAdded
	saltRoles
	saltGroup
	saltContentType
)

// mix is a splitmix64-style finaliser over two words: cheap, well distributed, deterministic.
func mix(a, b uint64) uint64 {
	x := a ^ (b + 0x9e3779b97f4a7c15 + (a << 6) + (a >> 2))
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// hashString folds s (case-insensitively for ASCII, because SharePoint URLs are) into h.
func hashString(h uint64, s string) uint64 {
	f := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		f ^= uint64(c)
		f *= 1099511628211
	}
	return mix(h, f)
}

const hexDigits = "0123456789abcdef"

// guid formats a version-4-shaped lower-case GUID from h.
func guid(h uint64) string {
	a, b := mix(h, 0x51d), mix(h, 0x9e1)
	a = a&^(0xf<<12) | 0x4<<12 // version nibble
	b = b&^(0x3<<62) | 0x2<<62 // RFC 4122 variant
	groups := [5]struct {
		v       uint64
		nibbles int
	}{{a >> 32, 8}, {a >> 16, 4}, {a, 4}, {b >> 48, 4}, {b, 12}}
	var buf [36]byte
	pos := 0
	for gi, g := range groups {
		if gi > 0 {
			buf[pos] = '-'
			pos++
		}
		for i := g.nibbles - 1; i >= 0; i-- {
			buf[pos] = hexDigits[(g.v>>(uint(i)*4))&0xf]
			pos++
		}
	}
	return string(buf[:])
}

// hex32 is 32 lower-case hex digits from h, used as the list-specific part of content type ids.
func hex32(h uint64) string {
	return strings.ReplaceAll(guid(h), "-", "")
}

// isGUID reports whether s has the 8-4-4-4-12 hex shape.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// pastTimes returns a created and a modified time before epoch: created within the three years
// before epoch minus a day, modified between created and a second before epoch.
func pastTimes(h uint64, epoch time.Time) (created, modified time.Time) {
	const span = 3 * 365 * 24 * 3600
	x := mix(h, saltTime)
	back := int64(x%span) + 24*3600
	created = epoch.Add(-time.Duration(back) * time.Second)
	modified = created.Add(time.Duration(int64(mix(x, 1)%uint64(back))) * time.Second)
	return created, modified
}

// File names are "<stem>_<index>.<ext>", so a name maps back to its index without a search.
var (
	fileStems = []string{
		"Report", "Invoice", "Minutes", "Contract", "Design", "Budget", "Proposal", "Summary",
		"Notes", "Plan", "Review", "Specification", "Presentation", "Agenda", "Policy", "Timesheet",
	}
	fileExts = []string{"docx", "xlsx", "pptx", "pdf", "txt", "png", "jpg", "msg", "csv", "vsdx"}
	// oddStems exercise the export's EncodedAttributes: characters invalid in XML 1.0 (U+0001,
	// U+FFFE), XML and URL specials, leading digits, non-ASCII and an emoji.
	oddStems = []string{
		"Bericht Ü", "R&D notes", "50% budget", "#1 priority", "O'Brien's memo", "🚀 launch plan",
		"ctl\u0001char", "bad\ufffename", "2024 roadmap", "naïve café", "日本語 資料", "Q&A #3 'draft'",
	}
	firstNames = []string{
		"Adele", "Alex", "Diego", "Grady", "Henrietta", "Isaiah", "Johanna", "Joni", "Lee", "Lidia",
		"Lynne", "Megan", "Miriam", "Nestor", "Patti", "Pradeep", "Zoë", "Jürgen", "Siobhan", "Kenji",
	}
	lastNames = []string{
		"Vance", "Wilber", "Siciliani", "Archie", "Cerveny", "Langer", "Lambert", "Sherman", "Gu",
		"Holloway", "Robbins", "Bowen", "Caron", "Patel", "Müller", "O'Neil", "Tanaka", "Okafor",
	}
)

// fileName is the deterministic name of the i-th base file of a folder; odd is the 1-in-oddEvery
// rate of names with characters the export must encode.
func fileName(h uint64, i int64, oddEvery int) string {
	x := mix(h, saltName)
	stem := fileStems[x%uint64(len(fileStems))]
	if oddEvery > 0 && mix(x, 7)%uint64(oddEvery) == 0 {
		stem = oddStems[mix(x, 11)%uint64(len(oddStems))]
	}
	ext := fileExts[mix(x, 13)%uint64(len(fileExts))]
	b := make([]byte, 0, len(stem)+len(ext)+9)
	b = append(b, stem...)
	b = append(b, '_')
	b = appendPadded(b, i, 6)
	b = append(b, '.')
	b = append(b, ext...)
	return string(b)
}

// fileIndex parses the index back out of a fileName; ok is false for any other shape.
func fileIndex(name string) (int64, bool) {
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 {
		return 0, false
	}
	us := strings.LastIndexByte(name[:dot], '_')
	if us < 0 || dot-us < 2 {
		return 0, false
	}
	n, err := strconv.ParseInt(name[us+1:dot], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// itemName is a generic list item's leaf name ("12_.000"), as SharePoint names them.
func itemName(intID int64) string {
	return strconv.FormatInt(intID, 10) + "_.000"
}

// itemIntID parses an itemName.
func itemIntID(name string) (int64, bool) {
	s, ok := strings.CutSuffix(name, "_.000")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

// repeatName is the name of the r-th (0-based) sibling of a repeated folder spec.
func repeatName(name string, r int64) string {
	b := make([]byte, 0, len(name)+6)
	b = append(b, name...)
	b = append(b, '-')
	return string(appendPadded(b, r+1, 4))
}

func appendPadded(b []byte, n int64, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], n, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// sizeTable holds 64 file sizes spread log-uniformly from 1 KiB to 16 MiB (mean about 1.5 MiB). A file's size is
// table[(i*sizeStride+offset) mod 64]; the stride is odd, so any 64 consecutive files use every
// entry once and the total size of a folder is arithmetic instead of a sum over its files.
type sizeTable struct {
	v   [64]int64
	sum int64
}

const sizeStride = 37

func newSizeTable(seed uint64) sizeTable {
	var t sizeTable
	for i := range t.v {
		x := mix(seed, uint64(i)+saltSize<<32)
		exp := 10 + x%14 // 2^10 .. 2^24
		t.v[i] = 1<<exp + int64(mix(x, 3)%(1<<exp))
		t.sum += t.v[i]
	}
	return t
}

func (t *sizeTable) at(i int64, offset uint64) int64 {
	return t.v[(uint64(i)*sizeStride+offset)%64]
}

// total is the size of files 0..n-1 at offset.
func (t *sizeTable) total(n int64, offset uint64) int64 {
	s := n / 64 * t.sum
	for i := n / 64 * 64; i < n; i++ {
		s += t.at(i, offset)
	}
	return s
}

// systemID is the base64 SystemId of a claims login, in the shape SharePoint Online exports.
func systemID(login string) string {
	return base64.StdEncoding.EncodeToString([]byte(login))
}

// dotnetTicks converts t to .NET ticks (100 ns since 0001-01-01 UTC), the time part of a change token.
func dotnetTicks(t time.Time) int64 {
	const unixEpochTicks = 621355968000000000
	return unixEpochTicks + t.Unix()*10_000_000 + int64(t.Nanosecond()/100)
}

func fromDotnetTicks(ticks int64) time.Time {
	const unixEpochTicks = 621355968000000000
	d := ticks - unixEpochTicks
	return time.Unix(d/10_000_000, (d%10_000_000)*100).UTC()
}
