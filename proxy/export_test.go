package proxy

import (
	"net/http"
	"time"
)

// UpstreamClient is the listeners' upstream client, for the external tests of
// its egress rules (harness_test.go).
func (l *Listeners) UpstreamClient() *http.Client { return l.client }

// SetIdempotencyTiming shortens the lease of in_flight claims and how long a
// duplicate waits for one, so the tests of the state machine run in seconds.
func (l *Listeners) SetIdempotencyTiming(lease, wait time.Duration) {
	l.deps.Idempotency.lease, l.deps.Idempotency.wait = lease, wait
}
