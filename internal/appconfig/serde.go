package appconfig

import (
	"bytes"
	"encoding/json"

	toml "github.com/pelletier/go-toml/v2"
	"gopkg.in/yaml.v3"
)

// toTree turns the config into a generic tree via its JSON form, so every
// output format writes the same keys.
func (c *Config) toTree() (map[string]any, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return numbers(m).(map[string]any), nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
		return x
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	default:
		return v
	}
}

// MarshalTOML writes the normalized config as fly.toml.
func (c *Config) MarshalTOML() ([]byte, error) {
	m, err := c.toTree()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := toml.NewEncoder(&buf)
	enc.SetIndentTables(true)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// MarshalJSONConfig writes the normalized config as fly.json.
func (c *Config) MarshalJSONConfig() ([]byte, error) {
	return json.MarshalIndent(c, "", "  ")
}

// MarshalYAML writes the normalized config as fly.yaml.
func (c *Config) MarshalYAMLConfig() ([]byte, error) {
	m, err := c.toTree()
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(m)
}
