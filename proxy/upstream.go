package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/chdproxy/chdproxy/policy"
)

// UpstreamOptions configures the one HTTP client that talks to SmartPayments.
type UpstreamOptions struct {
	RootCAs         *x509.CertPool // nil: the system roots; tests pass their own CA, never skip-verify
	ConnectTimeout  time.Duration  // TCP + TLS handshake
	ResponseTimeout time.Duration  // from request sent to response headers
	MaxConnsPerHost int
}

// withDefaults fills the unset timeouts: 3 s to connect, 30 s for the answer's headers.
func (o UpstreamOptions) withDefaults() UpstreamOptions {
	o.ConnectTimeout = orDefault(o.ConnectTimeout, 3*time.Second)
	o.ResponseTimeout = orDefault(o.ResponseTimeout, 30*time.Second)
	return o
}

// errEgressDenied is returned by the dialer for any address the policy does not name.
var errEgressDenied = errors.New("egress to this address is not allowed by the policy")

// newUpstreamClient returns the client for forwarded calls. It dials only the policy's
// upstream hosts (checked at connect time), verifies TLS (1.2+), follows no redirect
// and never retries a request that may have been sent.
func newUpstreamClient(pol *policy.Policy, o UpstreamOptions) (*http.Client, error) {
	o = o.withDefaults()
	if o.MaxConnsPerHost == 0 {
		o.MaxConnsPerHost = 256
	}
	allowed := map[string]bool{}
	for _, u := range pol.Upstreams {
		hp, err := hostPort(u.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", u.Name, err)
		}
		allowed[hp] = true
	}
	dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if !allowed[addr] {
				return nil, errEgressDenied
			}
			host, _, _ := net.SplitHostPort(addr)
			d := *dialer
			d.Control = func(_, address string, _ syscall.RawConn) error {
				return checkDialled(host, address)
			}
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:       &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: o.ResponseTimeout,
		MaxIdleConns:          o.MaxConnsPerHost,
		MaxIdleConnsPerHost:   o.MaxConnsPerHost,
		MaxConnsPerHost:       o.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		Proxy:                 nil, // never via HTTP(S)_PROXY: egress is exactly the policy's hosts
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// checkDialled runs at connect time on the address actually dialled, after DNS: a
// named upstream may not resolve to a loopback, private, link-local or otherwise
// internal address (DNS rebinding, SSRF into the network chdproxy sits in); an upstream
// given as an IP literal must be dialled at exactly that address.
func checkDialled(host, address string) error {
	ipStr, _, err := net.SplitHostPort(address)
	if err != nil {
		return errEgressDenied
	}
	ip, err := netip.ParseAddr(ipStr)
	if err != nil {
		return errEgressDenied
	}
	ip = ip.Unmap()
	if lit, err := netip.ParseAddr(host); err == nil {
		if lit.Unmap() != ip {
			return errEgressDenied
		}
		return nil
	}
	if host == "localhost" && ip.IsLoopback() {
		return nil
	}
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		return errEgressDenied
	}
	return nil
}

// hostPort returns the host:port a base URL dials.
func hostPort(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return "", errors.New("invalid base URL")
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// upstreamHeaders are the only request headers that go upstream: what the SmartPayments
// documentation asks for (Authorization: Basic, Content-Type) and Accept, which the
// transaction-list download may negotiate on. Everything else stays here: chdproxy's own
// credentials (Proxy-Authorization), Idempotency-Key (which would also make net/http treat
// a POST as safe to replay), cookies, Forwarded and X-Forwarded-* (client addresses the
// upstream has no use for), X-Request-Id and trace headers, and anything a backend adds.
// An allowlist, so a header nobody thought of is dropped rather than forwarded.
var upstreamHeaders = []string{"Authorization", "Content-Type", "Accept"}

// copyRequestHeaders sets on dst the allowed headers of src that have exactly one value.
// Authorization goes only with the Basic scheme: that is the merchant's SmartPayments
// credential, and any other scheme is a credential of something else.
func copyRequestHeaders(dst, src http.Header) {
	for _, k := range upstreamHeaders {
		vs := src.Values(k)
		if len(vs) != 1 {
			continue // absent, or ambiguous (Content-Type is refused before this; see mediaType)
		}
		if k == "Authorization" && !hasScheme(vs[0], "Basic") {
			continue
		}
		dst.Set(k, vs[0])
	}
}

// hasScheme reports whether an Authorization value uses scheme (case-insensitive).
func hasScheme(v, scheme string) bool {
	s, _, ok := strings.Cut(v, " ")
	return ok && strings.EqualFold(s, scheme)
}

// hopHeaders are never copied from the upstream's answer back to the client.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length",
	"Idempotency-Key", "X-Idempotency-Key", "Accept-Encoding",
}

// hopSet is hopHeaders as a set, built once: copyHeaders runs on every answer.
var hopSet = func() map[string]bool {
	m := make(map[string]bool, len(hopHeaders))
	for _, h := range hopHeaders {
		m[h] = true
	}
	return m
}()

// copyHeaders copies an upstream answer's headers src to dst minus hop-by-hop
// headers, including those that the Connection header itself names.
func copyHeaders(dst, src http.Header) {
	var named map[string]bool // of the Connection header; nil when it names none
	for _, v := range src.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if named == nil {
				named = map[string]bool{}
			}
			named[http.CanonicalHeaderKey(strings.TrimSpace(name))] = true
		}
	}
	for k, vs := range src {
		if ck := http.CanonicalHeaderKey(k); !hopSet[ck] && !named[ck] {
			dst[k] = append([]string(nil), vs...)
		}
	}
}
