package main

import (
	"net/netip"
	"testing"
)

func TestTheExampleConfigNamesTrustedProxiesAndPerClientLimits(t *testing.T) {
	cfg, err := loadServeConfig("../../deploy/chdproxy.example.yaml")
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	l := limits(cfg)
	if l.PerClientRate != 1 || l.PerClientBurst != 20 {
		t.Errorf("per-client limits: got %v/s burst %d, want 1/s burst 20", l.PerClientRate, l.PerClientBurst)
	}
	if len(cfg.TrustedProxies) != 1 {
		t.Fatalf("trusted_proxies: got %v, want one prefix", cfg.TrustedProxies)
	}
	if p, err := parsePrefix(cfg.TrustedProxies[0]); err != nil || !p.Contains(netip.MustParseAddr("10.1.2.3")) {
		t.Errorf("trusted_proxies: got %v, %v, want a prefix holding 10.1.2.3", p, err)
	}
}

func TestTrustedProxiesAreAddressesOrPrefixes(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8": "10.0.0.0/8", "10.1.2.3/8": "10.0.0.0/8", "192.0.2.7": "192.0.2.7/32",
		"2001:db8::/32": "2001:db8::/32", "2001:db8::1": "2001:db8::1/128",
	} {
		if got, err := parsePrefix(in); err != nil || got != netip.MustParsePrefix(want) {
			t.Errorf("parsePrefix(%q): got %v, %v, want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lb.internal", "10.0.0.0/33", "10.0.0.0/8 "} {
		if _, err := parsePrefix(bad); err == nil {
			t.Errorf("parsePrefix(%q): got no error", bad)
		}
	}
}
