package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// syncCounter is an audit sink whose Sync is slow and counted, like fsync.
type syncCounter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	syncs  atomic.Int64
	delay  time.Duration
	failed atomic.Bool
}

func (s *syncCounter) Write(b []byte) (int, error) {
	if s.failed.Load() {
		return 0, errors.New("disk full")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(b)
}

func (s *syncCounter) contains(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Contains(s.buf.Bytes(), []byte(sub))
}

func (s *syncCounter) Sync() error {
	s.syncs.Add(1)
	time.Sleep(s.delay)
	return nil
}

// Concurrent audit writers share fsyncs (group commit), and every record still
// lands whole, once, before its Write returns.
func TestJSONLAuditGroupsConcurrentWritesIntoFewSyncs(t *testing.T) {
	sink := &syncCounter{delay: 2 * time.Millisecond}
	a := NewJSONLAudit(sink, "hash")
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := "req_" + string(rune('A'+i%26)) + string(rune('a'+i/26))
			if err := a.Write(AuditRecord{Event: "tokenize", RequestID: id}); err != nil {
				t.Error(err)
				return
			}
			sink.mu.Lock()
			defer sink.mu.Unlock()
			if !bytes.Contains(sink.buf.Bytes(), []byte(`"request_id":"`+id+`"`)) {
				t.Errorf("Write of %s returned before its record was written", id)
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(sink.buf.Bytes()))
	for sc.Scan() {
		var rec AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("a torn audit line: %q", sc.Text())
		}
		if seen[rec.RequestID] {
			t.Fatalf("record %s written twice", rec.RequestID)
		}
		seen[rec.RequestID] = true
	}
	if len(seen) != n {
		t.Fatalf("got %d records, want %d", len(seen), n)
	}
	if s := sink.syncs.Load(); s >= n/2 {
		t.Fatalf("got %d syncs for %d concurrent records, want far fewer", s, n)
	}
	t.Logf("%d records, %d syncs", n, sink.syncs.Load())
}

// Enqueue does not wait for the sync; Flush waits for every queued record, and a
// failed write reaches the callbacks of the records it held.
func TestJSONLAuditEnqueueFlushAndFailure(t *testing.T) {
	sink := &syncCounter{delay: 20 * time.Millisecond}
	a := NewJSONLAudit(sink, "hash")
	a.Enqueue(AuditRecord{Event: "inject", RequestID: "req_1"}, nil)
	a.Enqueue(AuditRecord{Event: "inject", RequestID: "req_2"}, nil)
	a.Flush()
	sink.mu.Lock()
	got := sink.buf.String()
	sink.mu.Unlock()
	if !bytes.Contains([]byte(got), []byte(`"req_1"`)) || !bytes.Contains([]byte(got), []byte(`"req_2"`)) {
		t.Fatalf("Flush returned before the queued records were written: %q", got)
	}
	if s := sink.syncs.Load(); s < 1 {
		t.Fatal("queued records were never synced")
	}

	// A queued record goes out on its own, or with the next Write.
	a.Enqueue(AuditRecord{Event: "inject", RequestID: "req_lag"}, nil)
	deadline := time.Now().Add(time.Second)
	for !sink.contains(`"req_lag"`) {
		if time.Now().After(deadline) {
			t.Fatal("a queued record was not written without Flush")
		}
		time.Sleep(time.Millisecond)
	}
	// Records that arrive while a batch is being synced share the next sync: an
	// outcome record queued then rides with the next request's attempt record.
	before := sink.syncs.Load()
	first := make(chan error, 1)
	go func() { first <- a.Write(AuditRecord{Event: "detokenize", RequestID: "req_first"}) }()
	for sink.syncs.Load() == before { // the first batch is being synced
		if time.Now().After(deadline) {
			t.Fatal("the first Write never synced")
		}
		time.Sleep(100 * time.Microsecond)
	}
	a.Enqueue(AuditRecord{Event: "inject", RequestID: "req_outcome"}, nil)
	if err := a.Write(AuditRecord{Event: "detokenize", RequestID: "req_attempt"}); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if !sink.contains(`"req_outcome"`) || sink.syncs.Load() != before+2 {
		t.Fatalf("got %d syncs for a batch and the two records queued behind it, want 2", sink.syncs.Load()-before)
	}

	sink.failed.Store(true)
	failed := make(chan error, 2)
	a.Enqueue(AuditRecord{Event: "inject", RequestID: "req_3"}, func(err error) { failed <- err })
	a.Flush()
	select {
	case err := <-failed:
		if err == nil {
			t.Fatal("the failure callback got a nil error")
		}
	default:
		t.Fatal("a failed queued write was not reported")
	}
}

func TestJSONLAuditReportsAFailedWriteToItsWriters(t *testing.T) {
	sink := &syncCounter{}
	sink.failed.Store(true)
	a := NewJSONLAudit(sink, "hash")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := a.Write(AuditRecord{Event: "detokenize"}); err == nil {
				t.Error("got nil, want the sink's error: the access must be refused")
			}
		})
	}
	wg.Wait()
}

// BenchmarkJSONLAudit measures audit writes to a real file, fsync included, by
// many concurrent requests (the forward path writes two records per request).
func BenchmarkJSONLAudit(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "audit.jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	a := NewJSONLAudit(f, "9f86d081884c7d65")
	rec := AuditRecord{Event: "detokenize", Outcome: "attempt", Listener: "forward", Route: "initPaymentHost2Host",
		Merchant: "m_bench", KeyID: "sk_1a2b3c4d", Token: benchToken, UpstreamHost: "chd-api.smartcore.pro",
		SourceIP: "10.1.2.3", RequestID: "req_0123456789abcdef"}
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := a.Write(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// gatedSink holds every Sync until the test lets it go, and counts them.
type gatedSink struct {
	syncCounter
	entered chan struct{}
	release chan struct{}
}

func (g *gatedSink) Sync() error {
	g.syncs.Add(1)
	g.entered <- struct{}{}
	<-g.release
	return nil
}

// A queued record on an idle trail is being written when Enqueue returns: no
// timer decides when it goes out.
func TestJSONLAuditEnqueueOnAnIdleTrailWritesAtOnce(t *testing.T) {
	g := &gatedSink{entered: make(chan struct{}, 4), release: make(chan struct{})}
	close(g.release)
	a := NewJSONLAudit(g, "hash")
	a.Enqueue(AuditRecord{Event: "inject", RequestID: "req_out"}, nil)
	a.mu.Lock()
	busy := a.busy
	a.mu.Unlock()
	if !busy {
		t.Fatal("Enqueue on an idle trail left its record waiting for something else to write it")
	}
	a.Flush()
	if !g.contains(`"req_out"`) {
		t.Fatal("the queued record was not written")
	}
}

// The Write callers that queue behind a batch being synced share the next sync, and
// one of them writes it (the durability model: each returns after its own sync).
func TestJSONLAuditFollowersShareTheNextSync(t *testing.T) {
	g := &gatedSink{entered: make(chan struct{}, 4), release: make(chan struct{})}
	a := NewJSONLAudit(g, "hash")
	errs := make(chan error, 9)
	go func() { errs <- a.Write(AuditRecord{Event: "detokenize", RequestID: "req_lead"}) }()
	<-g.entered // the leader's batch is being synced
	const n = 8
	for i := range n {
		go func() { errs <- a.Write(AuditRecord{Event: "detokenize", RequestID: "req_f" + string(rune('a'+i))}) }()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Microsecond) {
		a.mu.Lock()
		queued := a.next != nil && a.next.writers == n
		a.mu.Unlock()
		if queued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the followers never queued")
		}
	}
	close(g.release)
	for range n + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := g.syncs.Load(); got != 2 {
		t.Fatalf("got %d syncs, want 2 (the leader's, then one for all %d followers)", got, n)
	}
	for i := range n {
		if id := `"req_f` + string(rune('a'+i)) + `"`; !g.contains(id) {
			t.Fatalf("record %s is missing", id)
		}
	}
}

// BenchmarkJSONLAuditLone is one request at a time on a real file: one attempt
// record (Write: write + fsync) and one outcome record (Enqueue) each, as a
// forward at low load.
func BenchmarkJSONLAuditLone(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "audit.jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	a := NewJSONLAudit(f, "9f86d081884c7d65")
	rec := AuditRecord{Event: "detokenize", Outcome: "attempt", Listener: "forward", Route: "initPaymentHost2Host",
		Merchant: "m_bench", KeyID: "sk_1a2b3c4d", Token: benchToken, RequestID: "req_0123456789abcdef"}
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Write(rec); err != nil {
			b.Fatal(err)
		}
		a.Enqueue(rec, nil)
	}
	a.Flush()
}
