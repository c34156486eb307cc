package appconfig

// Validate checks the config the way flyctl does before a deploy. It
// returns the warnings (including notes on old forms that were read) and,
// if anything would make Fly or Hangar reject the config, an *Error that
// lists every problem with its line. With strict, unknown keys and values
// that had to be coerced are errors too.
func (c *Config) Validate(strict bool) (warnings []Diagnostic, err error) {
	var errs []Diagnostic
	for _, d := range c.parseDiags {
		if strict && strictRules[d.Rule] {
			d.Severity = SeverityError
			errs = append(errs, d)
			continue
		}
		warnings = append(warnings, d)
	}
	for _, d := range c.validate(strict) {
		if d.Severity == SeverityError {
			errs = append(errs, d)
		} else {
			warnings = append(warnings, d)
		}
	}
	sortDiagnostics(warnings)
	if len(errs) > 0 {
		sortDiagnostics(errs)
		return warnings, &Error{Diagnostics: errs}
	}
	return warnings, nil
}

// strictRules are the warnings that --strict turns into errors.
var strictRules = map[string]bool{
	"unknown-key":   true,
	"wrong-section": true,
	"obsolete-key":  true,
	"coerce":        true,
}
