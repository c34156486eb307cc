//go:build race

package dashboard

// raceEnabled: the race detector slows everything several times over.
const raceEnabled = true
