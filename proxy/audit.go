package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// AuditRecord is one line of the audit trail (PCI DSS 10.2): who touched which token,
// when, through which route, with what outcome. It holds ids and codes only — never card
// data, never a key, never a request body.
type AuditRecord struct {
	Time  time.Time `json:"time"` // UTC
	Event string    `json:"event"`
	// Outcome: success | attempt | denied (chdproxy refused) | upstream_declined (the
	// upstream answered 4xx) | failure | restored (a detokenize whose request was never
	// written upstream: the CVV or wallet token it consumed is back).
	Outcome        string `json:"outcome"`
	Code           string `json:"code,omitempty"`
	Status         int    `json:"status,omitempty"`
	Merchant       string `json:"merchant,omitempty"`
	KeyID          string `json:"key_id,omitempty"`
	Token          string `json:"token,omitempty"`
	Route          string `json:"route,omitempty"`
	Listener       string `json:"listener"`
	UpstreamHost   string `json:"upstream_host,omitempty"`
	UpstreamStatus int    `json:"upstream_status,omitempty"`
	// CardDataSent: an injected request (PAN, CVV or DPAN) was written to the upstream.
	CardDataSent bool   `json:"card_data_sent,omitempty"`
	SourceIP     string `json:"source_ip,omitempty"`
	RequestID    string `json:"request_id"`
	PolicyHash   string `json:"policy_hash"`
	// Count and Since make a summary record: Count refusals of requests without a
	// known key between Since and Time (see refusals).
	Count int        `json:"count,omitempty"`
	Since *time.Time `json:"since,omitempty"`
	// Operator and Detail are of admin records (AdminEvent).
	Operator string         `json:"operator,omitempty"`
	Detail   map[string]any `json:"detail,omitempty"`
}

// AdminEvent is a lifecycle event of the process or an operator's action (PCI DSS
// 10.2.1.6: start and stop of the audit trail; 10.2.2: who did what).
type AdminEvent struct {
	Event    string // start | stop | reload | purge | rewrap | …
	Outcome  string // success | attempt | failure; "" is success
	Source   string // "process" (serve, dev) or "cli" (a command an operator ran)
	Merchant string // of a per-merchant action (purge)
	Operator string // who ran a command ($USER or --operator)
	Code     string // a stable failure code, never an error text (it may name a key or a file)
	// Detail holds counts, versions and settings names only: never a key, a digest or card data.
	Detail map[string]any
}

// WriteAdminEvent writes ev durably (Auditor.Write): an action that must be on record
// refuses to go on when this fails.
func WriteAdminEvent(a Auditor, ev AdminEvent) error {
	if ev.Outcome == "" {
		ev.Outcome = "success"
	}
	return a.Write(AuditRecord{
		Event: ev.Event, Outcome: ev.Outcome, Listener: ev.Source, Merchant: ev.Merchant,
		Operator: ev.Operator, Code: ev.Code, Detail: ev.Detail, RequestID: "adm_" + randomBase62(16),
	})
}

// Auditor writes audit records.
type Auditor interface {
	// Write returns only when the record is durable (as far as the sink allows); an
	// error means the access it describes must not happen.
	Write(AuditRecord) error
	// Enqueue queues a record that describes what has already happened (an outcome)
	// and returns at once; failed, when not nil, hears if its write fails.
	Enqueue(rec AuditRecord, failed func(error))
	// Health reports whether records can be written now (nil: yes).
	Health() error
}

// errAuditUnavailable fails a request closed when its audit record cannot be written.
var errAuditUnavailable = newError(http.StatusServiceUnavailable, "audit_unavailable", "the audit trail cannot be written; nothing was done")

// JSONLAudit writes one JSON object per line to w and calls Sync when w has it (an
// *os.File: fsync). Write returns once its own record is written and synced. Enqueue
// adds its record to the next batch without waiting. Flush writes and waits for every
// batch.
//
// Group commit without a fixed wait (leader/follower): a record that finds nobody
// writing is written and synced at once, by its own Write (or, for Enqueue, by a
// goroutine started there and then: nobody waits for company, no timer runs). Records
// that arrive while a batch is being written wait together for the next one; when a
// batch is done, its writer hands the next batch to one of that batch's own Write
// callers, who writes it (a goroutine only when the next batch has no Write caller:
// outcome records alone). So under load one fsync covers many records, and a lone
// request pays exactly one write and one fsync.
type JSONLAudit struct {
	mu         sync.Mutex
	w          io.Writer
	policyHash string
	busy       bool        // a batch is being written; its writer drains what follows
	pending    []byte      // records of the next batch
	next       *auditBatch // what the writers of the pending records wait for
	inflight   *auditBatch // the batch being written
	spare      []byte      // the previous batch's buffer, reused

	path     string    // of the file sink (OpenAuditFile); "" for any other writer
	file     *os.File  // the open file at path
	reopened *os.File  // opened by Reopen, taken in between two batches
	lastErr  error     // of the last batch: nil once a batch is written again
	started  time.Time // when the in-flight batch began
	probed   time.Time // when Health last probed a failing sink

	synced func(records int, took time.Duration, err error) // ObserveSync's; nil: none
}

// Health thresholds: a batch still writing after auditStuck means a hung disk; a
// failing sink is probed at most once per auditProbeEvery.
const (
	auditStuck      = 2 * time.Second
	auditProbeEvery = time.Second
)

var errAuditStuck = errors.New("audit: a write or fsync has not returned")

// auditBatch is one write+sync of several records; err is set before done closes.
type auditBatch struct {
	done    chan struct{}
	lead    chan struct{} // one Write caller of this batch is told to write it (cap 1)
	err     error
	failed  []func(error) // of the enqueued records that asked
	n       int           // records in the batch
	writers int           // Write callers waiting for it
}

// ObserveSync implements SyncObservable: synced hears every group commit (metrics).
func (a *JSONLAudit) ObserveSync(synced func(records int, took time.Duration, err error)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.synced = synced
}

// NewJSONLAudit returns an auditor writing to w; every record carries policyHash.
func NewJSONLAudit(w io.Writer, policyHash string) *JSONLAudit {
	return &JSONLAudit{w: w, policyHash: policyHash}
}

// OpenAuditFile opens (appending, 0600) the audit file at path. Closing the returned
// Closer flushes the auditor, then closes the file. Reopen opens path again.
func OpenAuditFile(path string, policyHash string) (*JSONLAudit, io.Closer, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, nil, err
	}
	a := NewJSONLAudit(f, policyHash)
	a.path, a.file = path, f
	return a, closerFunc(a.closeFile), nil
}

func openAppend(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
}

// Reopen opens the file sink's path again (logrotate moved the file, then sent
// SIGHUP). The next batch goes to the new file; the batch being written, if any,
// finishes in the old one, so no record is lost or split. A sink that is not a
// file has nothing to reopen.
func (a *JSONLAudit) Reopen() error {
	if a.path == "" {
		return nil
	}
	f, err := openAppend(a.path)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reopened != nil {
		a.reopened.Close() // two HUPs between batches: the newer open wins
	}
	a.reopened = f
	if !a.busy {
		a.takeReopened()
	}
	return nil
}

// takeReopened switches to the reopened file between batches; a.mu is held and
// no batch is being written.
func (a *JSONLAudit) takeReopened() {
	if a.reopened == nil {
		return
	}
	old := a.file
	a.file, a.w, a.reopened = a.reopened, a.reopened, nil
	old.Close() // every batch was synced: nothing is pending in it
}

func (a *JSONLAudit) closeFile() error {
	a.Flush()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reopened != nil {
		a.reopened.Close()
		a.reopened = nil
	}
	return a.file.Close()
}

// Health implements Auditor: the last batch's error, or errAuditStuck while a batch
// hangs. A failing sink is probed with a record of its own (at most once per
// auditProbeEvery): an unready replica gets no traffic to find out it is well again.
func (a *JSONLAudit) Health() error {
	a.mu.Lock()
	if a.inflight != nil && time.Since(a.started) > auditStuck {
		a.mu.Unlock()
		return errAuditStuck
	}
	err := a.lastErr
	if err == nil || time.Since(a.probed) < auditProbeEvery {
		a.mu.Unlock()
		return err
	}
	a.probed = time.Now()
	a.mu.Unlock()
	return a.Write(AuditRecord{Event: "audit_probe", Outcome: "success", Listener: "admin"})
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
	batch := a.queue(b.Bytes())
	putLine(b)
	batch.writers++
	if !a.busy {
		a.busy = true // nobody is writing: this caller leads, at once
		a.lead()
		a.mu.Unlock()
		return batch.err
	}
	a.mu.Unlock()
	select {
	case <-batch.done:
	case <-batch.lead: // the previous batch is done: write ours, and lead
		a.mu.Lock()
		a.lead()
		a.mu.Unlock()
	}
	return batch.err
}

// lead writes the pending batch, then passes the writing on: to a Write caller of
// the batch that queued meanwhile, or to a goroutine when that batch has none. a.mu
// is held and a.busy set; the caller's own batch is written on return.
func (a *JSONLAudit) lead() {
	a.flushOne()
	switch {
	case len(a.pending) == 0:
		a.busy = false
	case a.next.writers > 0:
		a.next.lead <- struct{}{} // cap 1, sent once per batch: never blocks
	default:
		go a.drain()
	}
}

// Enqueue implements Auditor: the record goes out with the next batch, written by
// another goroutine, so the caller's connection is free for its next request. When
// nobody is writing, that goroutine starts now: a queued record waits for no timer.
func (a *JSONLAudit) Enqueue(rec AuditRecord, failed func(error)) {
	b, err := a.line(rec)
	if err != nil {
		if failed != nil {
			failed(err)
		}
		return
	}
	a.mu.Lock()
	batch := a.queue(b.Bytes())
	putLine(b)
	if failed != nil {
		batch.failed = append(batch.failed, failed)
	}
	if !a.busy {
		a.busy = true
		go a.drain()
	}
	a.mu.Unlock()
}

// EnqueueAll is Enqueue for several records at once: they go out in one batch
// (a flush of refusal summaries is one write and one fsync, not one each).
// failed, when not nil, hears which record's write failed.
func (a *JSONLAudit) EnqueueAll(recs []AuditRecord, failed func(i int, err error)) {
	lines := make([]*bytes.Buffer, len(recs))
	for i, rec := range recs {
		b, err := a.line(rec)
		if err != nil {
			if failed != nil {
				failed(i, err)
			}
			continue
		}
		lines[i] = b
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, b := range lines {
		if b == nil {
			continue
		}
		batch := a.queue(b.Bytes())
		putLine(b)
		if failed != nil {
			batch.failed = append(batch.failed, func(err error) { failed(i, err) })
		}
	}
	if a.next != nil && !a.busy {
		a.busy = true
		go a.drain()
	}
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

// lineBufs holds the buffers records are encoded into before queue copies them
// into the batch: two records per forward need no new buffer each.
var lineBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// line encodes rec as one JSON line (as json.Marshal, plus '\n') into a pooled
// buffer; the caller puts it back with putLine once queued.
func (a *JSONLAudit) line(rec AuditRecord) (*bytes.Buffer, error) {
	rec.PolicyHash = a.policyHash
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	rec.Time = rec.Time.UTC()
	buf := lineBufs.Get().(*bytes.Buffer)
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(rec); err != nil {
		putLine(buf)
		return nil, err
	}
	return buf, nil
}

// putLine returns a line's buffer to the pool, unless a huge record grew it.
func putLine(buf *bytes.Buffer) {
	if buf.Cap() <= 64<<10 {
		lineBufs.Put(buf)
	}
}

// queue adds one line to the pending batch and returns that batch; a.mu is held.
func (a *JSONLAudit) queue(line []byte) *auditBatch {
	if a.next == nil {
		a.next = &auditBatch{done: make(chan struct{}), lead: make(chan struct{}, 1)}
	}
	a.pending = append(a.pending, line...)
	a.next.n++
	return a.next
}

// flushOne writes and syncs the pending batch. a.mu is held on entry and on return,
// and released while writing; a.busy keeps other writers from writing meanwhile.
func (a *JSONLAudit) flushOne() {
	a.takeReopened()
	buf, batch := a.pending, a.next
	a.pending, a.next, a.inflight, a.started = a.spare[:0], nil, batch, time.Now()
	w, synced := a.w, a.synced
	a.mu.Unlock()
	start := time.Now()
	batch.err = writeSync(w, buf)
	if synced != nil {
		synced(batch.n, time.Since(start), batch.err)
	}
	if batch.err != nil {
		for _, f := range batch.failed {
			f(batch.err)
		}
	}
	close(batch.done)
	a.mu.Lock()
	a.spare, a.inflight, a.lastErr = buf, nil, batch.err
}

// drain writes the pending batch for records no Write caller waits on (Enqueue,
// Flush) and passes the writing on like any leader.
func (a *JSONLAudit) drain() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lead()
}

func writeSync(w io.Writer, b []byte) error {
	if _, err := w.Write(b); err != nil {
		return err
	}
	if s, ok := w.(interface{ Sync() error }); ok {
		if err := s.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) { // pipes and terminals cannot fsync
			return err
		}
	}
	return nil
}

// outcome names what happened to a request by its status and whether the upstream
// answered it: "denied" means chdproxy refused, never the upstream.
func outcome(status int, upstreamAnswered bool) string {
	switch {
	case status < 400:
		return "success"
	case status >= 500:
		return "failure"
	case upstreamAnswered:
		return "upstream_declined" // relayed 4xx: the request left chdproxy
	}
	return "denied" // refused by authentication, limits, validation or policy
}

// attempt makes the request's attempt record durable before the operation it
// announces (on card data or tokens) runs: no record, no operation.
func (d *deps) attempt(r *http.Request) error {
	ri := info(r)
	rec := auditRecord(r, ri.listener, ri.event)
	rec.Outcome = "attempt"
	if err := d.Audit.Write(rec); err != nil {
		d.Log.WithFields(logrus.Fields{"request_id": ri.id, "event": ri.event}).WithError(err).Error("audit write failed; request refused")
		return errAuditUnavailable
	}
	return nil
}

// refusals aggregates the audit trail of requests refused before any key was known
// (401s, unknown routes, malformed framing): anyone can send those, so one fsynced
// record each would let anyone fill the disk. They are counted per listener, event,
// route, code and source, and written as one summary record per group every
// interval and at Close. The access log still has a line per request.
type refusals struct {
	audit Auditor
	log   *logrus.Logger
	every time.Duration

	mu     sync.Mutex
	counts map[refusalKey]int
	since  time.Time
	timer  *time.Timer
}

type refusalKey struct {
	listener, event, route, code, source string
	status                               int
}

// maxRefusalGroups bounds a summary: sources past it are counted without their address.
const maxRefusalGroups = 1024

// defaultRefusalInterval is how often refusal summaries are written.
const defaultRefusalInterval = 10 * time.Second

func (s *refusals) add(k refusalKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts == nil {
		s.counts, s.since = map[refusalKey]int{}, time.Now()
		s.timer = time.AfterFunc(s.every, s.flush)
	}
	if _, ok := s.counts[k]; !ok && len(s.counts) >= maxRefusalGroups {
		k.source = ""
	}
	s.counts[k]++
}

// flush writes one summary record per group counted since the last flush.
func (s *refusals) flush() {
	s.mu.Lock()
	counts, since := s.counts, s.since.UTC()
	s.counts = nil
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	recs := make([]AuditRecord, 0, len(counts))
	for k, n := range counts {
		recs = append(recs, AuditRecord{
			Event: k.event, Outcome: "denied", Code: k.code, Status: k.status, Listener: k.listener,
			Route: k.route, SourceIP: k.source, Count: n, Since: &since,
		})
	}
	failed := func(i int, err error) {
		s.log.WithField("event", recs[i].Event).WithError(err).Error("audit write failed (refusal summary)")
	}
	if all, ok := s.audit.(interface {
		EnqueueAll([]AuditRecord, func(int, error))
	}); ok {
		all.EnqueueAll(recs, failed) // one batch: one fsync for the whole flush
		return
	}
	for i, rec := range recs {
		s.audit.Enqueue(rec, func(err error) { failed(i, err) })
	}
}
