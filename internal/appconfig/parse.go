package appconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
)

// parser carries the state of one Parse: where keys are and what was found.
type parser struct {
	file  string
	ix    *posIndex
	diags []Diagnostic
	lint  []Diagnostic // findings only Lint reports
}

func (p *parser) mk(sev, rule string, pth path, hint, format string, args ...any) Diagnostic {
	at := p.ix.lookup(pth)
	return Diagnostic{
		File: p.file, Line: at.Line, Col: at.Col, Key: pth.String(),
		Message: fmt.Sprintf(format, args...), Hint: hint, Severity: sev, Rule: rule,
	}
}

func (p *parser) diag(sev, rule string, pth path, hint, format string, args ...any) {
	p.diags = append(p.diags, p.mk(sev, rule, pth, hint, format, args...))
}

func (p *parser) errorf(pth path, rule, hint, format string, args ...any) {
	p.diag(SeverityError, rule, pth, hint, format, args...)
}

func (p *parser) warnf(pth path, rule, hint, format string, args ...any) {
	p.diag(SeverityWarning, rule, pth, hint, format, args...)
}

// Load reads the config file at path; the format follows the extension
// (.toml, .json, .yaml or .yml; anything else is read as TOML).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, &Error{Diagnostics: []Diagnostic{{
				File: path, Message: "config file not found", Severity: SeverityError, Rule: "io",
				Hint: "run the command in the directory that holds fly.toml, or pass its path with -c",
			}}}
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	cfg, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	// [[files]] local_path is relative to the config file.
	for _, f := range cfg.Files {
		if f.LocalPath == "" {
			continue
		}
		p := f.LocalPath
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		if content, err := os.ReadFile(p); err == nil {
			cfg.SetLocalFile(f.LocalPath, content)
		}
	}
	return cfg, nil
}

// Parse reads a config from data. filename picks the format and is the
// name diagnostics carry. Syntax errors and values of the wrong type are
// returned as an *Error listing each with its line and column; unknown keys
// and old forms become warnings that Validate reports.
func Parse(data []byte, filename string) (*Config, error) {
	display := filename
	if display == "" {
		display = DefaultConfigFileName
	}
	display = filepath.ToSlash(display)
	doc, ix, err := decodeDocument(data, display, FormatOf(filename))
	if err != nil {
		if e, ok := err.(*Error); ok {
			for i := range e.Diagnostics {
				e.Diagnostics[i].File = display
			}
		}
		return nil, err
	}
	p := &parser{file: display, ix: ix}
	p.normalize(doc)

	cfg := &Config{}
	d := &decoder{p: p}
	d.decode(path{}, doc, reflect.ValueOf(cfg).Elem(), 0)
	cfg.file = display
	cfg.index = ix

	var errs []Diagnostic
	var rest []Diagnostic
	for _, dg := range p.diags {
		if dg.Severity == SeverityError {
			errs = append(errs, dg)
		} else {
			rest = append(rest, dg)
		}
	}
	if len(errs) > 0 {
		sortDiagnostics(errs)
		return nil, &Error{Diagnostics: errs}
	}
	cfg.parseDiags = rest
	cfg.parseLint = p.lint
	return cfg, nil
}

// diag builds a diagnostic at the position of a key path of the config.
func (c *Config) diag(sev, rule string, pth path, hint, format string, args ...any) Diagnostic {
	at := c.index.lookup(pth)
	return Diagnostic{
		File: c.file, Line: at.Line, Col: at.Col, Key: pth.String(),
		Message: fmt.Sprintf(format, args...), Hint: hint, Severity: sev, Rule: rule,
	}
}
