package smartpay

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
)

// callback is one pending delivery: the order's check response at the moment
// its status changed.
type callback struct {
	url   string
	route string // transaction type, for the log
	body  []byte
}

// notify queues a callback for t if it has a callback_url. The body is the
// check response, so it carries the masked card only. s.mu held.
func (s *Sandbox) notify(t *txn) {
	if t.callbackURL == "" || !s.opts.Callbacks {
		return
	}
	b, err := json.Marshal(t.view())
	if err != nil {
		return
	}
	s.outbox = append(s.outbox, callback{url: t.callbackURL, route: t.typ, body: b})
}

// flush hands queued callbacks to delivery goroutines. It is called after
// every request, outside s.mu.
func (s *Sandbox) flush() {
	s.mu.Lock()
	out := s.outbox
	s.outbox = nil
	s.mu.Unlock()
	for _, cb := range out {
		s.dispatch(cb)
	}
}

// dispatch starts one delivery if a slot is free; otherwise the callback is
// dropped, so a slow receiver can never pile up goroutines.
func (s *Sandbox) dispatch(cb callback) {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	if s.cbClosed {
		return
	}
	select {
	case s.cbSem <- struct{}{}:
	default:
		s.log.WithField("type", cb.route).Warn("sandbox callback dropped: too many in flight")
		return
	}
	s.cbWG.Add(1)
	go func() {
		defer s.cbWG.Done()
		defer func() { <-s.cbSem }()
		s.deliver(cb)
	}()
}

// deliver POSTs the callback once (no retry). Only the outcome is logged:
// never the URL, the body or the transport error's text (which embeds the URL).
func (s *Sandbox) deliver(cb callback) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CallbackTimeout)
	defer cancel()
	entry := s.log.WithField("type", cb.route)
	if u, err := url.Parse(cb.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		entry.Warn("sandbox callback skipped: not an http(s) URL")
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cb.url, bytes.NewReader(cb.body))
	if err != nil {
		entry.Warn("sandbox callback skipped: bad request")
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "smartpay-sandbox")
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		entry.Warn("sandbox callback failed: transport error")
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	entry.WithField("status", resp.StatusCode).Info("sandbox callback delivered")
}
