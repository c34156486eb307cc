package appconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
	"gopkg.in/yaml.v3"
)

// A path names a value in the document: table keys and array indexes.
type path []string

func (p path) child(k string) path {
	out := make(path, len(p)+1)
	copy(out, p)
	out[len(p)] = k
	return out
}

func (p path) index(i int) path { return p.child(strconv.Itoa(i)) }

// String is the dotted form shown to people: services[0].ports[1].port.
func (p path) String() string {
	var b strings.Builder
	for i, s := range p {
		if _, err := strconv.Atoi(s); err == nil && i > 0 {
			b.WriteString("[" + s + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

func (p path) key() string { return strings.Join(p, "\x1f") }

// pos is a 1-based line and column.
type pos struct{ Line, Col int }

// posIndex maps key paths to where the key is written in the file.
type posIndex struct {
	m     map[string]pos
	lines []int // offsets of line starts
}

func newPosIndex(data []byte) *posIndex {
	ix := &posIndex{m: map[string]pos{}, lines: []int{0}}
	for i, c := range data {
		if c == '\n' {
			ix.lines = append(ix.lines, i+1)
		}
	}
	return ix
}

func (ix *posIndex) at(offset int) pos {
	line := sort.Search(len(ix.lines), func(i int) bool { return ix.lines[i] > offset }) - 1
	if line < 0 {
		line = 0
	}
	return pos{Line: line + 1, Col: offset - ix.lines[line] + 1}
}

func (ix *posIndex) set(p path, at pos) {
	k := p.key()
	if _, ok := ix.m[k]; !ok {
		ix.m[k] = at
	}
}

// alias makes lookups of to find the position of from (used when
// normalization moves a value, e.g. [mounts] becoming mounts[0]).
func (ix *posIndex) alias(to, from path) {
	if at, ok := ix.m[from.key()]; ok {
		ix.set(to, at)
	}
}

// lookup finds the position of p or of its nearest written ancestor. A
// document always has line 1, so a position is always returned.
func (ix *posIndex) lookup(p path) pos {
	if ix == nil {
		return pos{1, 1}
	}
	for n := len(p); n > 0; n-- {
		if at, ok := ix.m[p[:n].key()]; ok {
			return at
		}
		// [mounts] written as a table is looked up as mounts[0].
		if n >= 2 && p[n-1] == "0" {
			q := append(append(path{}, p[:n-1]...), p[n:]...)
			if at, ok := ix.m[q.key()]; ok {
				return at
			}
		}
	}
	return pos{1, 1}
}

// Format is a config file's syntax.
type Format int

// Formats.
const (
	FormatTOML Format = iota
	FormatJSON
	FormatYAML
)

// FormatOf picks the format from a file name's extension; TOML by default.
func FormatOf(filename string) Format {
	lower := strings.ToLower(filename)
	switch {
	case strings.HasSuffix(lower, ".json"):
		return FormatJSON
	case strings.HasSuffix(lower, ".yaml"), strings.HasSuffix(lower, ".yml"):
		return FormatYAML
	default:
		return FormatTOML
	}
}

// syntaxError is a document that could not be read at all.
func syntaxError(file string, at pos, msg, hint string) *Error {
	return &Error{Diagnostics: []Diagnostic{{
		File: file, Line: at.Line, Col: at.Col, Message: msg, Hint: hint,
		Severity: SeverityError, Rule: "syntax",
	}}}
}

// decodeDocument reads data into a generic tree (map[string]any, []any,
// string, int64, float64, bool, time values) and indexes key positions.
func decodeDocument(data []byte, file string, f Format) (map[string]any, *posIndex, error) {
	ix := newPosIndex(data)
	switch f {
	case FormatJSON:
		root, err := decodeJSON(data, ix)
		if err != nil {
			return nil, ix, err
		}
		return root, ix, nil
	case FormatYAML:
		return decodeYAML(data, file, ix)
	default:
		return decodeTOML(data, file, ix)
	}
}

func decodeTOML(data []byte, file string, ix *posIndex) (map[string]any, *posIndex, error) {
	root := map[string]any{}
	if err := toml.Unmarshal(data, &root); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, col := de.Position()
			msg := strings.TrimPrefix(de.Error(), "toml: ")
			return nil, ix, syntaxError(file, pos{line, col}, "invalid TOML: "+msg, tomlHint(msg))
		}
		return nil, ix, syntaxError(file, pos{1, 1}, "invalid TOML: "+err.Error(), "check the TOML syntax (https://toml.io)")
	}
	indexTOML(data, ix)
	return root, ix, nil
}

func tomlHint(msg string) string {
	switch {
	case strings.Contains(msg, "already") || strings.Contains(msg, "duplicate"):
		return "each key and each [table] may appear only once; use [[double brackets]] for a list of tables"
	case strings.Contains(msg, "expected character =") || strings.Contains(msg, "expected '='"):
		return "write each setting as key = value"
	case strings.Contains(msg, "string"):
		return "quote string values, e.g. key = \"value\""
	default:
		return "check the TOML syntax at this position (https://toml.io)"
	}
}

// indexTOML walks the document with go-toml's parser and records the
// position of every key, table header and array element.
func indexTOML(data []byte, ix *posIndex) {
	var p unstable.Parser
	p.Reset(data)
	current := path{}
	arrays := map[string]int{} // resolved array-table path -> last index
	resolve := func(parts []string) path {
		out := path{}
		for _, part := range parts {
			out = out.child(part)
			if n, ok := arrays[out.key()]; ok {
				out = out.index(n)
			}
		}
		return out
	}
	keyParts := func(it unstable.Iterator) ([]string, *unstable.Node) {
		var parts []string
		var first *unstable.Node
		for it.Next() {
			n := it.Node()
			if first == nil {
				first = n
			}
			parts = append(parts, string(n.Data))
		}
		return parts, first
	}
	where := func(n *unstable.Node) pos {
		if n == nil || n.Raw.Length == 0 && n.Raw.Offset == 0 {
			return pos{1, 1}
		}
		return ix.at(int(n.Raw.Offset))
	}
	var value func(pth path, n *unstable.Node, depth int)
	keyValue := func(base path, n *unstable.Node, depth int) {
		parts, first := keyParts(n.Key())
		at := where(first)
		pth := base
		for _, part := range parts {
			pth = pth.child(part)
			ix.set(pth, at)
		}
		value(pth, n.Value(), depth)
	}
	value = func(pth path, n *unstable.Node, depth int) {
		if n == nil || depth > 64 {
			return
		}
		switch n.Kind {
		case unstable.InlineTable:
			it := n.Children()
			for it.Next() {
				keyValue(pth, it.Node(), depth+1)
			}
		case unstable.Array:
			it := n.Children()
			i := 0
			for it.Next() {
				el := it.Node()
				if el.Raw.Length > 0 {
					ix.set(pth.index(i), where(el))
				}
				value(pth.index(i), el, depth+1)
				i++
			}
		}
	}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.KeyValue:
			keyValue(current, e, 0)
		case unstable.Table:
			parts, first := keyParts(e.Key())
			current = resolve(parts)
			at := where(first)
			// [a.b.c] also marks a and a.b when they are first seen here.
			for i := range current {
				ix.set(current[:i+1], at)
			}
		case unstable.ArrayTable:
			parts, first := keyParts(e.Key())
			if len(parts) == 0 {
				continue
			}
			parent := resolve(parts[:len(parts)-1])
			arr := parent.child(parts[len(parts)-1])
			n := 0
			if last, ok := arrays[arr.key()]; ok {
				n = last + 1
			}
			arrays[arr.key()] = n
			current = arr.index(n)
			at := where(first)
			for i := range current {
				ix.set(current[:i+1], at)
			}
		}
	}
}

// decodeJSON walks the JSON tokens itself so that it knows where each key is.
func decodeJSON(data []byte, ix *posIndex) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	start := func(off int64) pos {
		i := int(off)
		for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n' || data[i] == ',' || data[i] == ':') {
			i++
		}
		return ix.at(i)
	}
	fail := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return syntaxError("", ix.at(int(se.Offset)), "invalid JSON: "+err.Error(), "check for a missing comma, quote or brace just before this position")
		}
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return syntaxError("", ix.at(len(data)), "invalid JSON: unexpected end of file", "a brace or bracket is not closed")
		}
		return syntaxError("", start(dec.InputOffset()), "invalid JSON: "+err.Error(), "check the JSON syntax just before this position")
	}
	var read func(pth path, depth int) (any, error)
	read = func(pth path, depth int) (any, error) {
		if depth > 200 {
			return nil, syntaxError("", start(dec.InputOffset()), "document nested too deeply", "a fly.json nests a few levels at most; check the brackets")
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, fail(err)
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				m := map[string]any{}
				for dec.More() {
					at := start(dec.InputOffset())
					kt, err := dec.Token()
					if err != nil {
						return nil, fail(err)
					}
					k, ok := kt.(string)
					if !ok {
						return nil, syntaxError("", at, "invalid JSON: object key must be a string", "quote the key: \"key\": value")
					}
					ix.set(pth.child(k), at)
					v, err := read(pth.child(k), depth+1)
					if err != nil {
						return nil, err
					}
					m[k] = v
				}
				if _, err := dec.Token(); err != nil {
					return nil, fail(err)
				}
				return m, nil
			case '[':
				var arr []any
				for dec.More() {
					i := len(arr)
					ix.set(pth.index(i), start(dec.InputOffset()))
					v, err := read(pth.index(i), depth+1)
					if err != nil {
						return nil, err
					}
					arr = append(arr, v)
				}
				if _, err := dec.Token(); err != nil {
					return nil, fail(err)
				}
				if arr == nil {
					arr = []any{}
				}
				return arr, nil
			}
			return nil, fail(fmt.Errorf("unexpected %v", t))
		case json.Number:
			if i, err := t.Int64(); err == nil {
				return i, nil
			}
			f, err := t.Float64()
			if err != nil || math.IsInf(f, 0) {
				return nil, syntaxError("", start(dec.InputOffset()), fmt.Sprintf("invalid number %s", t), "use a smaller number")
			}
			return f, nil
		default:
			return t, nil
		}
	}
	v, err := read(path{}, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, syntaxError("", start(dec.InputOffset()), "invalid JSON: extra data after the top-level object", "the file must hold one JSON object; remove what follows it")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, syntaxError("", pos{1, 1}, "the top level of the config must be an object", "wrap the settings in { ... }")
	}
	return m, nil
}

func decodeYAML(data []byte, file string, ix *posIndex) (map[string]any, *posIndex, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		at := pos{1, 1}
		msg := err.Error()
		// yaml.v3 reports "yaml: line N: ..."
		if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
			if n, tail, ok := strings.Cut(rest, ":"); ok {
				if l, err := strconv.Atoi(n); err == nil {
					at.Line = l
					msg = "yaml:" + tail
				}
			}
		}
		return nil, ix, syntaxError(file, at, "invalid YAML: "+strings.TrimPrefix(msg, "yaml: "), "check the indentation and quoting at this line")
	}
	if doc.Kind == 0 {
		return map[string]any{}, ix, nil
	}
	budget := 200000 // nodes, guards against alias bombs
	var conv func(n *yaml.Node, pth path, depth int) (any, error)
	conv = func(n *yaml.Node, pth path, depth int) (any, error) {
		budget--
		if budget < 0 || depth > 200 {
			return nil, syntaxError(file, pos{n.Line, n.Column}, "YAML document too large or too deeply nested", "check for aliases (*name) that expand to huge documents")
		}
		switch n.Kind {
		case yaml.DocumentNode:
			if len(n.Content) == 0 {
				return map[string]any{}, nil
			}
			return conv(n.Content[0], pth, depth+1)
		case yaml.AliasNode:
			return conv(n.Alias, pth, depth+1)
		case yaml.MappingNode:
			m := map[string]any{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Tag == "!!merge" {
					merged, err := conv(v, pth, depth+1)
					if err != nil {
						return nil, err
					}
					if mm, ok := merged.(map[string]any); ok {
						for mk, mv := range mm {
							if _, exists := m[mk]; !exists {
								m[mk] = mv
							}
						}
					}
					continue
				}
				key := k.Value
				ix.set(pth.child(key), pos{k.Line, k.Column})
				val, err := conv(v, pth.child(key), depth+1)
				if err != nil {
					return nil, err
				}
				m[key] = val
			}
			return m, nil
		case yaml.SequenceNode:
			arr := make([]any, 0, len(n.Content))
			for i, c := range n.Content {
				ix.set(pth.index(i), pos{c.Line, c.Column})
				val, err := conv(c, pth.index(i), depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, val)
			}
			return arr, nil
		default:
			var v any
			if err := n.Decode(&v); err != nil {
				return n.Value, nil
			}
			switch x := v.(type) {
			case int:
				return int64(x), nil
			case uint64:
				if x > math.MaxInt64 {
					return float64(x), nil
				}
				return int64(x), nil
			case int64, float64, bool, string, nil:
				return x, nil
			default:
				return n.Value, nil
			}
		}
	}
	v, err := conv(&doc, path{}, 0)
	if err != nil {
		return nil, ix, err
	}
	switch m := v.(type) {
	case map[string]any:
		return m, ix, nil
	case nil:
		return map[string]any{}, ix, nil
	default:
		return nil, ix, syntaxError(file, pos{1, 1}, "the top level of the config must be a mapping", "write the settings as key: value lines")
	}
}
