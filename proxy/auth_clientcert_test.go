package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net/http/httptest"
	"strings"
	"testing"
)

// Which connections may use a merchant's secret key: the certificate check fails
// closed whenever the merchant lists certificates or the connection carries one.
func TestClientCertificateMatchesOnlyAListedVerifiedCertificate(t *testing.T) {
	cert := &x509.Certificate{RawSubjectPublicKeyInfo: []byte("spki of backend 1")}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	verified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}
	presentedOnly := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	tests := []struct {
		name  string
		tls   *tls.ConnectionState
		certs []string
		want  bool
	}{
		{"no list and no certificate (client_auth off) is allowed", nil, nil, true},
		{"no list and TLS without a certificate is allowed", &tls.ConnectionState{}, nil, true},
		{"a listed verified certificate is allowed", verified, []string{"sha256:" + strings.Repeat("0", 64), digest}, true},
		{"a listed certificate in capitals is allowed", verified, []string{strings.ToUpper(digest[:7]) + strings.ToUpper(digest[7:])}, true},
		{"an unlisted verified certificate is refused", verified, []string{"sha256:" + strings.Repeat("0", 64)}, false},
		{"a certificate on the connection of a merchant without a list is refused", verified, nil, false},
		{"a presented but unverified certificate is refused", presentedOnly, []string{digest}, false},
		{"a merchant with a list over plain HTTP (a terminating proxy) is refused", nil, []string{digest}, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "/authorize", nil)
		r.TLS = tt.tls
		if got := clientCertificateMatches(r, Merchant{ID: "m1", ClientCerts: tt.certs}); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
