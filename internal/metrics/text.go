package metrics

import (
	"bufio"
	"math"
	"strconv"
	"strings"

	"github.com/hangar-dev/hangar/internal/proxy"
)

// TextCollector writes its series in Prometheus's text format itself. The
// per-machine families (tens of thousands of series on a busy host) take
// this path: client_golang builds, checks, sorts and encodes an object per
// series, which for 500 machines takes most of a second per scrape.
type TextCollector interface {
	// WriteText writes each of its families (HELP, TYPE, then every
	// sample), only the series of app only if only is not "".
	WriteText(w *TextWriter, only string)
}

// TextWriter writes families in the text exposition format (0.0.4), every
// series with the region and host labels appended.
type TextWriter struct {
	w      *bufio.Writer
	suffix string // ,region="…",host="…"}
	buf    []byte
}

func newTextWriter(w *bufio.Writer, region, host string) *TextWriter {
	return &TextWriter{w: w, suffix: `,` + LabelRegion + `="` + escape(region) + `",` + LabelHost + `="` + escape(host) + `"}`}
}

// Family writes a family's HELP and TYPE lines (typ: counter, gauge,
// histogram).
func (t *TextWriter) Family(name, help, typ string) {
	t.w.WriteString("# HELP ")
	t.w.WriteString(name)
	t.w.WriteByte(' ')
	t.w.WriteString(strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(help))
	t.w.WriteString("\n# TYPE ")
	t.w.WriteString(name)
	t.w.WriteByte(' ')
	t.w.WriteString(typ)
	t.w.WriteByte('\n')
}

// Sample writes one sample; labels are name, value pairs.
func (t *TextWriter) Sample(name string, v float64, labels ...string) {
	b := append(t.buf[:0], name...)
	b = t.appendLabels(b, labels)
	b = append(b, ' ')
	b = appendFloat(b, v)
	b = append(b, '\n')
	t.w.Write(b)
	t.buf = b
}

func (t *TextWriter) appendLabels(b []byte, labels []string) []byte {
	b = append(b, '{')
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, labels[i]...)
		b = append(b, `="`...)
		b = appendEscaped(b, labels[i+1])
		b = append(b, '"')
	}
	if len(labels) == 0 {
		return append(b, t.suffix[1:]...)
	}
	return append(b, t.suffix...)
}

// Histogram writes a proxy histogram's buckets (cumulative, le in
// seconds), sum and count.
func (t *TextWriter) Histogram(name string, h proxy.Histogram, labels ...string) {
	var cum uint64
	ls := append(append(make([]string, 0, len(labels)+2), labels...), "le", "")
	for i, bound := range h.Bounds {
		if i < len(h.Counts) {
			cum += h.Counts[i]
		}
		ls[len(ls)-1] = strconv.FormatFloat(bound.Seconds(), 'g', -1, 64)
		t.Sample(name+"_bucket", float64(cum), ls...)
	}
	ls[len(ls)-1] = "+Inf"
	t.Sample(name+"_bucket", float64(h.Count), ls...)
	t.Sample(name+"_sum", h.Sum.Seconds(), labels...)
	t.Sample(name+"_count", float64(h.Count), labels...)
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func escape(s string) string { return string(appendEscaped(nil, s)) }
