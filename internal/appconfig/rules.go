package appconfig

func (c *Config) validate(strict bool) []Diagnostic { return nil }
