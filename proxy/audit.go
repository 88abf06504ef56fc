package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// AuditRecord is one line of the audit trail (PCI DSS 10.2): who touched which token,
// when, through which route, with what outcome. It holds ids and codes only — never card
// data, never a key, never a request body.
type AuditRecord struct {
	Time           time.Time `json:"time"` // UTC
	Event          string    `json:"event"`
	Outcome        string    `json:"outcome"` // success | denied | failure | attempt
	Code           string    `json:"code,omitempty"`
	Status         int       `json:"status,omitempty"`
	Merchant       string    `json:"merchant,omitempty"`
	KeyID          string    `json:"key_id,omitempty"`
	Token          string    `json:"token,omitempty"`
	Route          string    `json:"route,omitempty"`
	Listener       string    `json:"listener"`
	UpstreamHost   string    `json:"upstream_host,omitempty"`
	UpstreamStatus int       `json:"upstream_status,omitempty"`
	SourceIP       string    `json:"source_ip,omitempty"`
	RequestID      string    `json:"request_id"`
	PolicyHash     string    `json:"policy_hash"`
}

// Auditor writes audit records. Write returns only when the record is durable (as far
// as the sink allows); an error means the access it describes must not happen.
type Auditor interface {
	Write(AuditRecord) error
}

// errAuditUnavailable fails a request closed when its audit record cannot be written.
var errAuditUnavailable = newError(http.StatusServiceUnavailable, "audit_unavailable", "the audit trail cannot be written; nothing was done")

// JSONLAudit writes one JSON object per line to w and calls Sync when w has it (an
// *os.File: fsync). Write returns once its own record is written and synced.
// Concurrent writers share the writes and syncs (group commit): while one batch is
// being written and synced, the records that arrive wait together for the next one, so
// under load one fsync covers many records instead of each waiting for all before it.
type JSONLAudit struct {
	mu         sync.Mutex
	w          io.Writer
	policyHash string
	busy       bool        // a batch is being written; its writer drains what follows
	pending    []byte      // records of the next batch
	next       *auditBatch // what the writers of the pending records wait for
	spare      []byte      // the previous batch's buffer, reused
}

// auditBatch is one write+sync of several records; err is set before done closes.
type auditBatch struct {
	done chan struct{}
	err  error
}

// NewJSONLAudit returns an auditor writing to w; every record carries policyHash.
func NewJSONLAudit(w io.Writer, policyHash string) *JSONLAudit {
	return &JSONLAudit{w: w, policyHash: policyHash}
}

// OpenAuditFile opens (appending, 0600) the audit file at path.
func OpenAuditFile(path string, policyHash string) (*JSONLAudit, io.Closer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	return NewJSONLAudit(f, policyHash), f, nil
}

// Write implements Auditor.
func (a *JSONLAudit) Write(rec AuditRecord) error {
	rec.PolicyHash = a.policyHash
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	rec.Time = rec.Time.UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	a.mu.Lock()
	if a.next == nil {
		a.next = &auditBatch{done: make(chan struct{})}
	}
	a.pending = append(a.pending, b...)
	batch := a.next
	if !a.busy {
		// Nobody is writing: write this batch now, and leave later ones to a
		// goroutine so this request does not wait for other requests' records.
		a.busy = true
		a.flushOne()
		if len(a.pending) > 0 {
			go a.drain()
		} else {
			a.busy = false
		}
	}
	a.mu.Unlock()
	<-batch.done
	return batch.err
}

// flushOne writes and syncs the pending batch. a.mu is held on entry and on return,
// and released while writing; a.busy keeps other writers from writing meanwhile.
func (a *JSONLAudit) flushOne() {
	buf, batch := a.pending, a.next
	a.pending, a.next = a.spare[:0], nil
	a.mu.Unlock()
	batch.err = a.writeSync(buf)
	close(batch.done)
	a.mu.Lock()
	a.spare = buf
}

// drain writes batches until none is pending, then lets the next writer write.
func (a *JSONLAudit) drain() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(a.pending) > 0 {
		a.flushOne()
	}
	a.busy = false
}

func (a *JSONLAudit) writeSync(b []byte) error {
	if _, err := a.w.Write(b); err != nil {
		return err
	}
	if s, ok := a.w.(interface{ Sync() error }); ok {
		if err := s.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) { // pipes and terminals cannot fsync
			return err
		}
	}
	return nil
}

// sourceIP is the TCP peer. X-Forwarded-For is not trusted: chdproxy terminates TLS itself.
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// outcome names what happened to a request by its status.
func outcome(status int) string {
	switch {
	case status < 400:
		return "success"
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusTooManyRequests:
		return "denied"
	case status < 500:
		return "denied" // refused by validation or policy
	}
	return "failure"
}
