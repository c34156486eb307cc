package pg

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hangar-dev/hangar/internal/types"
)

// PostgreSQL parameters of a cluster (`hangar pg config`): the values are
// checked here against the server's own description of each parameter (a
// row of pg_settings), then set cluster-wide through Patroni's
// configuration (PATCH /config), which reloads every member; parameters
// that only take effect at a server start need a restart, which the CLI
// does member by member.

// FlagParameters are flyctl's `fly pg config update` flags and the
// parameters they set.
var FlagParameters = []struct{ Flag, Name, Usage string }{
	{"max-connections", "max_connections", "maximum concurrent connections (restart)"},
	{"shared-buffers", "shared_buffers", "memory for shared buffers, e.g. 256MB (restart)"},
	{"work-mem", "work_mem", "memory for a sort or hash before it spills to disk, e.g. 8MB"},
	{"maintenance-work-mem", "maintenance_work_mem", "memory for VACUUM, CREATE INDEX…, e.g. 64MB"},
	{"log-min-duration-statement", "log_min_duration_statement", "log statements that run at least this long, e.g. 500ms (-1: off)"},
	{"log-statement", "log_statement", "which statements to log: none, ddl, mod, all"},
}

// Setting is what a check needs of a parameter: its row of pg_settings.
type Setting struct {
	Name     string   `json:"name"`
	Setting  string   `json:"setting"` // the current value, in Unit
	Unit     string   `json:"unit"`    // "", "8kB", "kB", "MB", "B", "ms", "s", "min"
	VarType  string   `json:"vartype"` // bool, integer, real, string, enum
	Context  string   `json:"context"` // postmaster: only at a server start
	MinVal   string   `json:"min_val"`
	MaxVal   string   `json:"max_val"`
	EnumVals []string `json:"enumvals"`
}

// NeedsRestart reports whether a change takes effect only when the server
// starts again.
func (s Setting) NeedsRestart() bool { return s.Context == "postmaster" }

// managed are the parameters Hangar and Patroni set themselves (the
// listeners, files, TLS, replication): changing them would break the
// cluster, so `pg config update` refuses them.
var managed = []string{
	"listen_addresses", "port", "data_directory", "hba_file", "ident_file", "config_file", "external_pid_file",
	"cluster_name", "unix_socket_directories", "ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file",
	"hot_standby", "wal_level", "wal_log_hints", "max_wal_senders", "max_replication_slots",
	"password_encryption", "archive_mode", "archive_command", "restore_command", "primary_conninfo", "primary_slot_name",
	"synchronous_standby_names",
}

var paramName = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$`)

// ValidName reports whether name has the form of a parameter's name
// (lowercase, digits and _, one dot for an extension's).
func ValidName(name string) bool { return paramName.MatchString(name) }

// CheckName refuses a name that is not a parameter's, or one Hangar
// manages.
func CheckName(name string) error {
	if !paramName.MatchString(name) {
		return types.NewError(types.ErrInvalid, fmt.Sprintf("%q is not a PostgreSQL parameter name", name))
	}
	if slices.Contains(managed, name) {
		return types.NewError(types.ErrInvalid, fmt.Sprintf("%s is set by Hangar and Patroni for replication and TLS, and cannot be changed", name))
	}
	return nil
}

// memory units in bytes, time units in microseconds (PostgreSQL's).
var (
	memUnits  = map[string]float64{"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
	timeUnits = map[string]float64{"us": 1, "ms": 1e3, "s": 1e6, "min": 60e6, "h": 3600e6, "d": 86400e6}
)

// unitScale is the size of one of a parameter's units ("8kB" is 8192
// bytes), and the table its values' units come from.
func unitScale(unit string) (float64, map[string]float64, error) {
	if unit == "" {
		return 1, nil, nil
	}
	n, u := 1.0, unit
	if i := strings.IndexFunc(unit, func(r rune) bool { return r < '0' || r > '9' }); i > 0 {
		v, err := strconv.Atoi(unit[:i])
		if err != nil {
			return 0, nil, err
		}
		n, u = float64(v), unit[i:]
	}
	if b, ok := memUnits[u]; ok {
		return n * b, memUnits, nil
	}
	if us, ok := timeUnits[u]; ok {
		return n * us, timeUnits, nil
	}
	return 0, nil, fmt.Errorf("unit %q", unit)
}

// Normalize checks value against s (PostgreSQL's rules: a number with an
// optional unit of the parameter's kind, within min_val and max_val; a
// boolean; one of an enum's values) and returns it as PostgreSQL would
// show it in s.Setting (a number in the parameter's unit), so a caller
// can tell whether it changes anything.
func Normalize(s Setting, value string) (string, error) {
	bad := func(format string, a ...any) error {
		return types.NewError(types.ErrInvalid, fmt.Sprintf("%s = %q: ", s.Name, value)+fmt.Sprintf(format, a...))
	}
	v := strings.TrimSpace(value)
	if strings.ContainsAny(value, "\x00\n\r") {
		return "", bad("a value cannot hold a line break")
	}
	switch s.VarType {
	case "bool":
		switch strings.ToLower(v) {
		case "on", "true", "yes", "1", "t", "y":
			return "on", nil
		case "off", "false", "no", "0", "f", "n":
			return "off", nil
		}
		return "", bad("want on or off")
	case "enum":
		for _, e := range s.EnumVals {
			if strings.EqualFold(e, v) {
				return e, nil
			}
		}
		return "", bad("want one of %s", strings.Join(s.EnumVals, ", "))
	case "string":
		return value, nil
	case "integer", "real":
	default:
		return "", bad("parameters of type %q cannot be checked (--force sets it unchecked)", s.VarType)
	}
	scale, units, err := unitScale(s.Unit)
	if err != nil {
		return "", bad("%v", err)
	}
	i := strings.IndexFunc(v, func(r rune) bool {
		return (r < '0' || r > '9') && r != '.' && r != '-' && r != '+' && r != 'e' && r != 'E'
	})
	num, unit := v, ""
	if i >= 0 {
		num, unit = strings.TrimSpace(v[:i]), strings.TrimSpace(v[i:])
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return "", bad("not a number")
	}
	if unit != "" {
		if units == nil {
			return "", bad("this parameter takes a plain number, without a unit")
		}
		u, ok := units[unit]
		if !ok {
			names := make([]string, 0, len(units))
			for k := range units {
				names = append(names, k)
			}
			slices.Sort(names)
			return "", bad("unknown unit %q (units are case-sensitive: %s)", unit, strings.Join(names, ", "))
		}
		n = n * u / scale
	}
	if s.VarType == "integer" {
		n = math.Round(n)
	}
	if lo, err := strconv.ParseFloat(s.MinVal, 64); err == nil && n < lo {
		return "", bad("below the minimum, %s%s", s.MinVal, s.Unit)
	}
	if hi, err := strconv.ParseFloat(s.MaxVal, 64); err == nil && n > hi {
		return "", bad("above the maximum, %s%s", s.MaxVal, s.Unit)
	}
	if s.VarType == "integer" {
		return strconv.FormatInt(int64(n), 10), nil
	}
	return strconv.FormatFloat(n, 'g', -1, 64), nil
}
