package pg

import (
	"errors"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/types"
)

// Rows as PostgreSQL 15's pg_settings has them.
var (
	sharedBuffers = Setting{Name: "shared_buffers", Setting: "16384", Unit: "8kB", VarType: "integer", Context: "postmaster", MinVal: "16", MaxVal: "1073741823"}
	workMem       = Setting{Name: "work_mem", Setting: "4096", Unit: "kB", VarType: "integer", Context: "user", MinVal: "64", MaxVal: "2147483647"}
	maxConns      = Setting{Name: "max_connections", Setting: "100", VarType: "integer", Context: "postmaster", MinVal: "1", MaxVal: "262143"}
	logMinDur     = Setting{Name: "log_min_duration_statement", Setting: "-1", Unit: "ms", VarType: "integer", Context: "superuser", MinVal: "-1", MaxVal: "2147483647"}
	logStatement  = Setting{Name: "log_statement", Setting: "none", VarType: "enum", Context: "superuser", EnumVals: []string{"none", "ddl", "mod", "all"}}
	jit           = Setting{Name: "jit", Setting: "on", VarType: "bool", Context: "user"}
	randomCost    = Setting{Name: "random_page_cost", Setting: "4", VarType: "real", Context: "user", MinVal: "0", MaxVal: "1.79769e+308"}
)

func TestNormalize(t *testing.T) {
	for _, c := range []struct {
		s           Setting
		value, want string
	}{
		{sharedBuffers, "256MB", "32768"},
		{sharedBuffers, "1GB", "131072"},
		{sharedBuffers, "32768", "32768"}, // in its unit, 8kB pages
		{workMem, "8MB", "8192"},
		{workMem, " 64kB ", "64"},
		{maxConns, "200", "200"},
		{logMinDur, "500ms", "500"},
		{logMinDur, "2s", "2000"},
		{logMinDur, "1min", "60000"},
		{logMinDur, "-1", "-1"},
		{logStatement, "DDL", "ddl"},
		{jit, "false", "off"},
		{jit, "ON", "on"},
		{randomCost, "1.1", "1.1"},
	} {
		got, err := Normalize(c.s, c.value)
		if err != nil || got != c.want {
			t.Errorf("%s = %q: got %q, %v; want %q", c.s.Name, c.value, got, err, c.want)
		}
	}
}

func TestNormalizeRefuses(t *testing.T) {
	for _, c := range []struct {
		s            Setting
		value, about string
	}{
		{sharedBuffers, "64kB", "below the minimum"},
		{sharedBuffers, "256mb", "unknown unit"},
		{sharedBuffers, "lots", "not a number"},
		{workMem, "10s", "unknown unit"},
		{maxConns, "100MB", "without a unit"},
		{maxConns, "0", "below the minimum"},
		{maxConns, "300000", "above the maximum"},
		{logStatement, "some", "one of none, ddl, mod, all"},
		{jit, "maybe", "on or off"},
		{Setting{Name: "application_name", VarType: "string"}, "a\nb", "line break"},
	} {
		_, err := Normalize(c.s, c.value)
		if err == nil || !strings.Contains(err.Error(), c.about) || !errors.Is(err, types.ErrInvalid) {
			t.Errorf("%s = %q: %v; want an invalid-input error about %q", c.s.Name, c.value, err, c.about)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"work_mem", "max_connections", "auto_explain.log_min_duration"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"listen_addresses", "ssl", "wal_level", "Work_Mem", "work mem", "", "a;b", "x.y.z"} {
		if err := CheckName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if !sharedBuffers.NeedsRestart() || workMem.NeedsRestart() {
		t.Error("shared_buffers needs a restart, work_mem does not")
	}
}

func FuzzNormalize(f *testing.F) {
	for _, v := range []string{"256MB", "8kB", "-1", "1e3", "1.5GB", "500ms", "on", "ddl", " 7 min", "9999999999999999999TB", "NaN", "Inf"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, s := range []Setting{sharedBuffers, workMem, maxConns, logMinDur, logStatement, jit, randomCost} {
			out, err := Normalize(s, v)
			if err != nil {
				continue
			}
			// What it accepts it accepts again, unchanged.
			again, err := Normalize(s, out)
			if err != nil || again != out {
				t.Fatalf("%s: %q -> %q -> %q, %v", s.Name, v, out, again, err)
			}
		}
	})
}
