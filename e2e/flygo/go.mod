// The fly-go compatibility check (e2e.TestFlyGoClient): a program that
// drives every call of fly-go's flaps client against a Hangar daemon. Its
// own module, so the main module never depends on fly-go. fly-go is not
// served by the Go module proxy, so the test points this require at a
// checkout with a replace it adds to a copy (HANGAR_FLYGO_SRC).
module github.com/hangar-dev/hangar/e2e/flygo

go 1.26

require github.com/superfly/fly-go v0.0.0-00010101000000-000000000000
