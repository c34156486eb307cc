package types

import "testing"

func TestHTTPServiceByHandler(t *testing.T) {
	tcp := MachineService{InternalPort: 5432, Ports: []MachinePort{{Port: Ptr(5432)}}}
	web := MachineService{InternalPort: 8080, Ports: []MachinePort{{Port: Ptr(80), Handlers: []string{"http"}}}}
	for _, tc := range []struct {
		name string
		svcs []MachineService
		want int // internal port, 0 = nil
	}{
		{"none", nil, 0},
		{"http first", []MachineService{web, tcp}, 8080},
		{"http second", []MachineService{tcp, web}, 8080},
		{"raw TCP only", []MachineService{tcp}, 5432},
	} {
		got := (&MachineConfig{Services: tc.svcs}).HTTPService()
		switch {
		case got == nil && tc.want != 0, got != nil && got.InternalPort != tc.want:
			t.Errorf("%s: HTTPService = %+v, want internal port %d", tc.name, got, tc.want)
		}
	}
}

func TestServiceLimits(t *testing.T) {
	var none *MachineService
	if s, h := none.Limits(); s != DefaultSoftLimit || h != 0 {
		t.Fatalf("nil service limits %d/%d", s, h)
	}
	svc := &MachineService{Concurrency: &MachineServiceConcurrency{HardLimit: 5}}
	if s, h := svc.Limits(); s != 5 || h != 5 {
		t.Fatalf("hard 5 limits %d/%d, want 5/5", s, h)
	}
}
