package proxy

import "net/http"

// UpstreamClient is the listeners' upstream client, for the external tests of
// its egress rules (harness_test.go).
func (l *Listeners) UpstreamClient() *http.Client { return l.client }
