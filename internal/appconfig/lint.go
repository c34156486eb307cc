package appconfig

// Lint reports settings that Fly accepts but that break real deploys.
func (c *Config) Lint() []Diagnostic {
	var out []Diagnostic
	for _, rule := range lintRules {
		out = append(out, rule(c)...)
	}
	sortDiagnostics(out)
	return out
}

var lintRules []func(*Config) []Diagnostic
