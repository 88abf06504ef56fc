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

// Auditor writes audit records.
type Auditor interface {
	// Write returns only when the record is durable (as far as the sink allows); an
	// error means the access it describes must not happen.
	Write(AuditRecord) error
	// Enqueue queues a record that describes what has already happened (an outcome)
	// and returns at once; failed, when not nil, hears if its write fails.
	Enqueue(rec AuditRecord, failed func(error))
}

// errAuditUnavailable fails a request closed when its audit record cannot be written.
var errAuditUnavailable = newError(http.StatusServiceUnavailable, "audit_unavailable", "the audit trail cannot be written; nothing was done")

// JSONLAudit writes one JSON object per line to w and calls Sync when w has it (an
// *os.File: fsync). Write returns once its own record is written and synced. Enqueue
// adds its record to the next batch without waiting; that batch is written by the next
// Write or at most enqueueLag later, so an outcome record usually shares the fsync of a
// later request's attempt record. Flush writes and waits for every batch.
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
	inflight   *auditBatch // the batch being written
	spare      []byte      // the previous batch's buffer, reused
	armed      bool        // a timer will write what Enqueue queued
}

// enqueueLag bounds how long a queued record waits for a write to ride along with:
// the most a crash can lose of the outcome records (never of an attempt record).
const enqueueLag = 5 * time.Millisecond

// auditBatch is one write+sync of several records; err is set before done closes.
type auditBatch struct {
	done   chan struct{}
	err    error
	failed []func(error) // of the enqueued records that asked
}

// NewJSONLAudit returns an auditor writing to w; every record carries policyHash.
func NewJSONLAudit(w io.Writer, policyHash string) *JSONLAudit {
	return &JSONLAudit{w: w, policyHash: policyHash}
}

// OpenAuditFile opens (appending, 0600) the audit file at path. Closing the returned
// Closer flushes the auditor, then closes the file.
func OpenAuditFile(path string, policyHash string) (*JSONLAudit, io.Closer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	a := NewJSONLAudit(f, policyHash)
	return a, closerFunc(func() error { a.Flush(); return f.Close() }), nil
}

type closerFunc func() error

func (c closerFunc) Close() error { return c() }

// Write implements Auditor.
func (a *JSONLAudit) Write(rec AuditRecord) error {
	b, err := a.line(rec)
	if err != nil {
		return err
	}
	a.mu.Lock()
	batch := a.queue(b)
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

// Enqueue implements Auditor: the record goes out with the next batch, written by
// another goroutine, so the caller's connection is free for its next request.
func (a *JSONLAudit) Enqueue(rec AuditRecord, failed func(error)) {
	b, err := a.line(rec)
	if err != nil {
		if failed != nil {
			failed(err)
		}
		return
	}
	a.mu.Lock()
	batch := a.queue(b)
	if failed != nil {
		batch.failed = append(batch.failed, failed)
	}
	if !a.busy && !a.armed {
		a.armed = true
		time.AfterFunc(enqueueLag, func() {
			a.mu.Lock()
			a.armed = false
			a.mu.Unlock()
			a.Flush()
		})
	}
	a.mu.Unlock()
}

// Flush returns once every record queued before it is written (or has failed).
func (a *JSONLAudit) Flush() {
	a.mu.Lock()
	batch := a.next
	if batch == nil {
		batch = a.inflight
	} else if !a.busy {
		a.busy = true
		go a.drain()
	}
	a.mu.Unlock()
	if batch != nil {
		<-batch.done
	}
}

func (a *JSONLAudit) line(rec AuditRecord) ([]byte, error) {
	rec.PolicyHash = a.policyHash
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	rec.Time = rec.Time.UTC()
	b, err := json.Marshal(rec)
	return append(b, '\n'), err
}

// queue adds one line to the pending batch and returns that batch; a.mu is held.
func (a *JSONLAudit) queue(line []byte) *auditBatch {
	if a.next == nil {
		a.next = &auditBatch{done: make(chan struct{})}
	}
	a.pending = append(a.pending, line...)
	return a.next
}

// flushOne writes and syncs the pending batch. a.mu is held on entry and on return,
// and released while writing; a.busy keeps other writers from writing meanwhile.
func (a *JSONLAudit) flushOne() {
	buf, batch := a.pending, a.next
	a.pending, a.next, a.inflight = a.spare[:0], nil, batch
	a.mu.Unlock()
	batch.err = a.writeSync(buf)
	if batch.err != nil {
		for _, f := range batch.failed {
			f(batch.err)
		}
	}
	close(batch.done)
	a.mu.Lock()
	a.spare, a.inflight = buf, nil
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
