package hosts

import (
	"math"
	"sort"
)

// regionCoords are the places of the region codes Fly uses (an airport
// code names the city), as latitude and longitude in degrees: enough to
// tell which region is nearest when a machine must move out of its own.
var regionCoords = map[string][2]float64{
	"ams": {52.31, 4.76}, "arn": {59.65, 17.92}, "atl": {33.64, -84.43}, "bog": {4.70, -74.15},
	"bom": {19.09, 72.87}, "bos": {42.36, -71.01}, "cdg": {49.01, 2.55}, "den": {39.86, -104.67},
	"dfw": {32.90, -97.04}, "ewr": {40.69, -74.17}, "eze": {-34.82, -58.54}, "fra": {50.03, 8.57},
	"gdl": {20.52, -103.31}, "gig": {-22.81, -43.25}, "gru": {-23.43, -46.47}, "hkg": {22.31, 113.91},
	"iad": {38.95, -77.46}, "jnb": {-26.14, 28.25}, "lax": {33.94, -118.41}, "lhr": {51.47, -0.45},
	"mad": {40.47, -3.57}, "mia": {25.80, -80.29}, "nrt": {35.77, 140.39}, "ord": {41.98, -87.90},
	"otp": {44.57, 26.10}, "phx": {33.43, -112.01}, "qro": {20.62, -100.19}, "scl": {-33.39, -70.79},
	"sea": {47.45, -122.31}, "sin": {1.36, 103.99}, "sjc": {37.36, -121.93}, "syd": {-33.95, 151.18},
	"waw": {52.17, 20.97}, "yul": {45.47, -73.74}, "yyz": {43.68, -79.63},
}

// NearestRegions orders regions by their distance from the region from:
// the known codes by great-circle distance, then the others by name (a
// region of an installation's own naming has no place to measure).
func NearestRegions(from string, regions []string) []string {
	out := append([]string(nil), regions...)
	origin, known := regionCoords[from]
	dist := func(r string) float64 {
		c, ok := regionCoords[r]
		if !known || !ok {
			return math.Inf(1)
		}
		return greatCircleKm(origin, c)
	}
	sort.SliceStable(out, func(i, j int) bool {
		di, dj := dist(out[i]), dist(out[j])
		if di != dj {
			return di < dj
		}
		return out[i] < out[j]
	})
	return out
}

func greatCircleKm(a, b [2]float64) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	la1, la2 := a[0]*rad, b[0]*rad
	dla, dlo := (b[0]-a[0])*rad, (b[1]-a[1])*rad
	h := math.Sin(dla/2)*math.Sin(dla/2) + math.Cos(la1)*math.Cos(la2)*math.Sin(dlo/2)*math.Sin(dlo/2)
	return 2 * r * math.Asin(math.Sqrt(h))
}
