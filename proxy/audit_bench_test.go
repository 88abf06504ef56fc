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

	// A queued record goes out on its own within enqueueLag, or with the next Write.
	a.Enqueue(AuditRecord{Event: "inject", RequestID: "req_lag"}, nil)
	deadline := time.Now().Add(time.Second)
	for !sink.contains(`"req_lag"`) {
		if time.Now().After(deadline) {
			t.Fatal("a queued record was not written without Flush")
		}
		time.Sleep(time.Millisecond)
	}
	before := sink.syncs.Load()
	a.Enqueue(AuditRecord{Event: "inject", RequestID: "req_outcome"}, nil)
	if err := a.Write(AuditRecord{Event: "detokenize", RequestID: "req_attempt"}); err != nil {
		t.Fatal(err)
	}
	if !sink.contains(`"req_outcome"`) || sink.syncs.Load() != before+1 {
		t.Fatalf("the queued record did not share the next Write's sync (%d syncs)", sink.syncs.Load()-before)
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
