package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// auditFileLines reads the audit file at path as records.
func auditFileLines(t *testing.T, path string) []AuditRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []AuditRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var rec AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("a torn audit line in %s: %q", filepath.Base(path), sc.Text())
		}
		out = append(out, rec)
	}
	return out
}

// openTestAudit opens an audit file in a folder of t's.
func openTestAudit(t *testing.T) (string, *JSONLAudit, io.Closer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, closer, err := OpenAuditFile(path, "hash")
	if err != nil {
		t.Fatal(err)
	}
	return path, a, closer
}

// logrotate moves the file, then sends SIGHUP: records written before the move are
// in the moved file, records after the reopen in the new one.
func TestJSONLAuditReopenFollowsLogrotate(t *testing.T) {
	path, a, closer := openTestAudit(t)
	if err := a.Write(AuditRecord{Event: "tokenize", RequestID: "req_before"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	if err := a.Write(AuditRecord{Event: "tokenize", RequestID: "req_after"}); err != nil {
		t.Fatal(err)
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{path + ".1": "req_before", path: "req_after"} {
		recs := auditFileLines(t, file)
		if len(recs) != 1 || recs[0].RequestID != want {
			t.Errorf("%s: got %v, want the one record %s", filepath.Base(file), recs, want)
		}
	}
}

// A reopen while writers keep writing loses no record and splits none.
func TestJSONLAuditReopenUnderLoadLosesNothing(t *testing.T) {
	path, a, closer := openTestAudit(t)
	const n = 400
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			rec := AuditRecord{Event: "inject", RequestID: fmt.Sprintf("req_%d", i)}
			if i%2 == 0 {
				a.Enqueue(rec, func(err error) { t.Errorf("enqueue: %v", err) })
				return
			}
			if err := a.Write(rec); err != nil {
				t.Errorf("write: %v", err)
			}
		})
		if i == n/2 {
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			if err := a.Reopen(); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	old, cur := auditFileLines(t, path+".1"), auditFileLines(t, path)
	for _, rec := range append(old, cur...) {
		seen[rec.RequestID]++
	}
	if len(seen) != n || len(old)+len(cur) != n {
		t.Errorf("got %d distinct of %d records (%d before the move, %d after), want %d once each", len(seen), len(old)+len(cur), len(old), len(cur), n)
	}
	if len(cur) == 0 {
		t.Error("nothing was written to the new file")
	}
}

func TestJSONLAuditHealth(t *testing.T) {
	t.Run("a failed write makes it unhealthy until a probe succeeds", func(t *testing.T) {
		sink := &syncCounter{}
		a := NewJSONLAudit(sink, "hash")
		if err := a.Health(); err != nil {
			t.Fatalf("a fresh sink: got %v, want healthy", err)
		}
		sink.failed.Store(true)
		if err := a.Write(AuditRecord{Event: "tokenize"}); err == nil {
			t.Fatal("a write to a failing sink succeeded")
		}
		if err := a.Health(); err == nil {
			t.Error("after a failed write: healthy, want the error")
		}
		sink.failed.Store(false)
		if err := a.Health(); err == nil {
			t.Error("a second probe within auditProbeEvery ran: want the failure remembered")
		}
		a.mu.Lock()
		a.probed = time.Time{}
		a.mu.Unlock()
		if err := a.Health(); err != nil {
			t.Errorf("the sink is well again: got %v, want healthy", err)
		}
		if !sink.contains(`"event":"audit_probe"`) {
			t.Error("the probe left no record")
		}
	})
	t.Run("a write that hangs makes it unhealthy", func(t *testing.T) {
		release := make(chan struct{})
		a := NewJSONLAudit(blockingWriter{release}, "hash")
		go a.Write(AuditRecord{Event: "tokenize"})
		for {
			a.mu.Lock()
			inflight := a.inflight != nil
			if inflight {
				a.started = time.Now().Add(-2 * auditStuck)
			}
			a.mu.Unlock()
			if inflight {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if err := a.Health(); err != errAuditStuck {
			t.Errorf("got %v, want %v", err, errAuditStuck)
		}
		close(release)
		a.Flush()
		if err := a.Health(); err != nil {
			t.Errorf("after the write returned: got %v, want healthy", err)
		}
	})
}

type blockingWriter struct{ release chan struct{} }

func (b blockingWriter) Write(p []byte) (int, error) { <-b.release; return len(p), nil }

func TestOutcomeSaysWhoRefused(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		upstream bool
		want     string
	}{
		{"chdproxy's answer 201 is a success", http.StatusCreated, false, "success"},
		{"the upstream's 200 is a success", http.StatusOK, true, "success"},
		{"chdproxy's 401 is denied", http.StatusUnauthorized, false, "denied"},
		{"chdproxy's 400 is denied", http.StatusBadRequest, false, "denied"},
		{"chdproxy's 429 is denied", http.StatusTooManyRequests, false, "denied"},
		{"the upstream's 400 is not denied", http.StatusBadRequest, true, "upstream_declined"},
		{"the upstream's 403 is not denied", http.StatusForbidden, true, "upstream_declined"},
		{"chdproxy's 503 is a failure", http.StatusServiceUnavailable, false, "failure"},
		{"the upstream's 500 is a failure", http.StatusInternalServerError, true, "failure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := outcome(tt.status, tt.upstream); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// A flood of refusals from many sources is written as a bounded number of
// summary records in a few fsyncs, and the summaries count every refusal.
func TestRefusalSummariesAreBounded(t *testing.T) {
	sink := &syncCounter{}
	a := NewJSONLAudit(sink, "hash")
	log := logrus.New()
	log.SetOutput(io.Discard)
	s := &refusals{audit: a, log: log, every: time.Hour}
	const sources = 3 * maxRefusalGroups
	for i := range sources {
		for range 3 {
			s.add(refusalKey{listener: "forward", event: "inject", route: "authorize", code: "unauthorized",
				status: http.StatusUnauthorized, source: fmt.Sprintf("10.0.%d.%d", i/256, i%256)})
		}
	}
	if sink.syncs.Load() != 0 {
		t.Fatalf("refusals were written before the summary: %d fsyncs", sink.syncs.Load())
	}
	s.flush()
	a.Flush()
	var recs []AuditRecord
	sc := bufio.NewScanner(bytes.NewReader(sink.buf.Bytes()))
	total := 0
	for sc.Scan() {
		var rec AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
		total += rec.Count
		if rec.Since == nil || rec.Outcome != "denied" || rec.Code != "unauthorized" {
			t.Errorf("summary %+v: want since, outcome denied and the code", rec)
		}
	}
	if len(recs) > maxRefusalGroups+1 {
		t.Errorf("got %d summary records, want at most %d", len(recs), maxRefusalGroups+1)
	}
	if total != 3*sources {
		t.Errorf("the summaries count %d refusals, want %d", total, 3*sources)
	}
	if n := sink.syncs.Load(); n > int64(total/100) {
		t.Errorf("%d refusals took %d fsyncs, want under 1%% (summaries share group commits)", total, n)
	}
	t.Logf("%d refusals: %d summary records, %d fsyncs", 3*sources, len(recs), sink.syncs.Load())
}
