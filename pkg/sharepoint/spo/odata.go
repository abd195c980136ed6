package spo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
)

// payload digs a call's result out of whichever OData shape it came in:
//
//	verbose:     {"d":{"<Method>":x}}, {"d":x}, {"d":{"results":[…]}}
//	nometadata:  x, {"value":x} (collections and scalars)
//
// next is the collection's continuation link (odata.nextLink / __next), if any.
func payload(body []byte, method string) (result json.RawMessage, next string, err error) {
	body = bytes.TrimSpace(body)
	var top map[string]json.RawMessage
	if len(body) == 0 || body[0] != '{' {
		return body, "", nil
	}
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, "", fmt.Errorf("decode %s response: %w", method, err)
	}
	if d, ok := top["d"]; ok {
		var inner map[string]json.RawMessage
		if json.Unmarshal(d, &inner) != nil {
			return d, "", nil // {"d":<scalar>}
		}
		if v, ok := inner[method]; ok {
			d, inner = v, nil
			if json.Unmarshal(v, &inner) != nil {
				return v, "", nil
			}
		}
		_ = json.Unmarshal(inner["__next"], &next)
		if res, ok := inner["results"]; ok && onlyMeta(inner, "results") {
			return res, next, nil
		}
		return d, next, nil
	}
	for _, k := range []string{"odata.nextLink", "@odata.nextLink"} {
		_ = json.Unmarshal(top[k], &next)
	}
	if v, ok := top["value"]; ok && onlyMeta(top, "value") {
		return v, next, nil
	}
	return body, next, nil
}

// onlyMeta reports whether every key of m other than keep is OData annotation.
func onlyMeta(m map[string]json.RawMessage, keep string) bool {
	for k := range m {
		if k != keep && !strings.HasPrefix(k, "__") && !strings.HasPrefix(k, "odata.") && !strings.HasPrefix(k, "@odata.") {
			return false
		}
	}
	return true
}

func decodeInto(raw json.RawMessage, method string, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		// json errors name types and offsets, never the offending value.
		return fmt.Errorf("decode %s response: %w", method, err)
	}
	return nil
}

// stringList is Collection(Edm.String): a JSON array (nometadata) or {"results":[…]} (verbose).
// An element that is an object rather than a string is kept as its raw JSON text.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var wrapped struct {
		Results []json.RawMessage `json:"results"`
	}
	var items []json.RawMessage
	switch b = bytes.TrimSpace(b); {
	case bytes.Equal(b, []byte("null")):
		*l = nil
		return nil
	case len(b) > 0 && b[0] == '{':
		if err := json.Unmarshal(b, &wrapped); err != nil {
			return err
		}
		items = wrapped.Results
	default:
		if err := json.Unmarshal(b, &items); err != nil {
			return err
		}
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		var s string
		if json.Unmarshal(it, &s) != nil {
			s = string(bytes.TrimSpace(it))
		}
		out = append(out, s)
	}
	*l = out
	return nil
}

// flexString accepts a JSON string or number (NextToken is a string cursor that one might
// serialise as a number).
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = flexString(str)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("want a string or a number")
	}
	*s = flexString(n.String())
	return nil
}

// count is an integer SharePoint may send as a number, a numeric string (Edm.Int64 in verbose),
// or a lookup object {"LookupId":n,"LookupValue":"n"} (SMTotal* fields). Anything else,
// null included, leaves it unknown rather than failing the call.
type count struct {
	N     int64
	Known bool
}

func (c *count) UnmarshalJSON(b []byte) error {
	*c = count{}
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var lookup struct {
			LookupID    json.RawMessage `json:"LookupId"`
			LookupValue json.RawMessage `json:"LookupValue"`
		}
		if json.Unmarshal(b, &lookup) != nil {
			return nil
		}
		// The value is the figure; the id is the item's own id in SharePoint's lookup, used
		// only when no value came.
		_ = c.UnmarshalJSON(lookup.LookupValue)
		if !c.Known {
			_ = c.UnmarshalJSON(lookup.LookupID)
		}
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		b = []byte(strings.TrimSpace(s))
	}
	if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		*c = count{N: n, Known: true}
		return nil
	}
	if f, err := strconv.ParseFloat(string(b), 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<62 {
		*c = count{N: int64(f), Known: true}
	}
	return nil
}

// errorBody is SharePoint's error shape under both keys, plus Entra ID's flat shape that a 401
// may carry.
type errorBody struct {
	Error            json.RawMessage `json:"error"`
	ODataError       json.RawMessage `json:"odata.error"`
	ErrorDescription string          `json:"error_description"`
}

type errorDetail struct {
	Code    json.RawMessage `json:"code"`
	Message json.RawMessage `json:"message"`
}

// parseErrorBody returns the code, exception type and message of an error body; zero values
// for a body that is not JSON (an HTML page from a gateway, for instance), whose text is
// dropped rather than risk echoing a request.
func parseErrorBody(body []byte) (code int64, typ, msg string) {
	var eb errorBody
	if json.Unmarshal(body, &eb) != nil {
		return 0, "", ""
	}
	raw := eb.ODataError
	if len(raw) == 0 {
		raw = eb.Error
	}
	var flat string
	if json.Unmarshal(raw, &flat) == nil { // {"error":"invalid_token","error_description":…}
		return 0, flat, eb.ErrorDescription
	}
	var d errorDetail
	if json.Unmarshal(raw, &d) != nil {
		return 0, "", eb.ErrorDescription
	}
	var codeStr string
	if json.Unmarshal(d.Code, &codeStr) != nil {
		codeStr = string(d.Code)
	}
	num, rest, _ := strings.Cut(codeStr, ",")
	if n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64); err == nil {
		code, typ = n, strings.TrimSpace(rest)
	} else {
		typ = strings.TrimSpace(codeStr)
	}
	var m struct {
		Value string `json:"value"`
	}
	if json.Unmarshal(d.Message, &msg) != nil && json.Unmarshal(d.Message, &m) == nil {
		msg = m.Value
	}
	if msg == "" {
		msg = eb.ErrorDescription
	}
	return code, typ, msg
}

// odataString quotes s as an OData string literal (' doubled) and percent-encodes it for a URL
// path, segment by segment, so '/' stays readable. Quotes stay literal, as in SharePoint's own
// examples, so a server that parses the raw path sees the same literal as one that decodes it.
func odataString(s string) string {
	segs := strings.Split(strings.ReplaceAll(s, "'", "''"), "/")
	for i, seg := range segs {
		segs[i] = strings.ReplaceAll(url.PathEscape(seg), "%27", "'")
	}
	return "'" + strings.Join(segs, "/") + "'"
}
