package types

// ProxyUpgrade is the Upgrade token of GET /v1/apps/{app}/proxy (`hangar
// proxy`): after the 101 answer the connection carries the forwarded TCP
// stream's bytes as they are, both ways; a half-close on either side is
// passed on.
const ProxyUpgrade = "hangar-tcp"

// ProxyTarget is GET /v1/apps/{app}/proxy without an upgrade: the machine
// a forwarded connection would reach, and the address the daemon dials.
type ProxyTarget struct {
	MachineID string `json:"machine_id"`
	Address   string `json:"address"`
}
