package proxy

import (
	"errors"
	"testing"
)

func TestCheckDialledRefusesInternalAddressesForNamedUpstreams(t *testing.T) {
	cases := []struct {
		name, host, dialled string
		ok                  bool
	}{
		{"a public address of a named host is allowed", "chd-api.smartcore.pro", "203.0.113.7:443", true},
		{"a named host resolving to loopback is refused", "chd-api.smartcore.pro", "127.0.0.1:443", false},
		{"a named host resolving to a private address is refused", "chd-api.smartcore.pro", "10.0.0.5:443", false},
		{"a named host resolving to link-local metadata is refused", "chd-api.smartcore.pro", "169.254.169.254:80", false},
		{"a named host resolving to IPv6 loopback is refused", "chd-api.smartcore.pro", "[::1]:443", false},
		{"an IP-literal upstream dialled at its address is allowed", "127.0.0.1", "127.0.0.1:8083", true},
		{"an IP-literal upstream dialled elsewhere is refused", "127.0.0.1", "127.0.0.2:8083", false},
		{"localhost on loopback is allowed", "localhost", "[::1]:8083", true},
	}
	for _, c := range cases {
		err := checkDialled(c.host, c.dialled)
		if got := err == nil; got != c.ok {
			t.Errorf("%s: got allowed=%v, want %v", c.name, got, c.ok)
		}
		if err != nil && !errors.Is(err, errEgressDenied) {
			t.Errorf("%s: got %v, want errEgressDenied", c.name, err)
		}
	}
}
