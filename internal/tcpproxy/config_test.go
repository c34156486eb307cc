package tcpproxy

import (
	"reflect"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

func TestFromMachineService(t *testing.T) {
	i := func(n int) *int { return &n }
	got := FromMachineService(types.MachineService{InternalPort: 5432, Ports: []types.MachinePort{
		{Port: i(5432), Handlers: []string{"proxy_proto"}, ProxyProtoOptions: &types.ProxyProtoOptions{Version: "v2"},
			HTTPOptions: &types.HTTPOptions{IdleTimeout: i(30)}},
		{StartPort: i(7000), EndPort: i(7010), Handlers: []string{"tls"}},
	}})
	want := Service{Key: "/5432/5432", InternalPort: 5432, IdleTimeout: 30 * time.Second, Ports: []Port{
		{Port: 5432, Handlers: []string{"proxy_proto"}, ProxyProtoVersion: "v2"},
		{StartPort: 7000, EndPort: 7010, Handlers: []string{"tls"}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	ps, err := got.ports()
	if err != nil || len(ps) != 12 || ps[7005].Handlers[0] != "tls" {
		t.Fatalf("ports: %v %v", len(ps), err)
	}
}
