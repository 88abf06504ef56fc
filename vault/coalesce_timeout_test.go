package vault

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A queued caller is bounded by the Coalescer's timeout, not by the calls ahead of
// it: the configured transit timeout is the real bound, queueing included.
func TestCoalescerTimeoutBoundsAQueuedCaller(t *testing.T) {
	f := &countingTransit{gate: make(chan struct{}), enter: make(chan int, 16)}
	const timeout = 300 * time.Millisecond
	c := Coalesce(f, CoalesceOptions{MaxInFlight: 1, Timeout: timeout})
	release, wait := fillLane(t, c, f, 1)
	defer wait()
	defer release()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := c.Encrypt(bg, KeyCard, encItem("m_alpha", "tok_a", "queued"))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
		if took := time.Since(start); took > timeout+time.Second {
			t.Errorf("the queued caller returned after %s, want about %s", took, timeout)
		}
	case <-time.After(timeout + 3*time.Second):
		t.Fatal("a queued caller waited past the Coalescer's timeout for the call ahead of it")
	}
}

func TestCoalescerTakesTheVaultTransitTimeout(t *testing.T) {
	vt, err := NewVaultTransit(VaultTransitConfig{Address: "http://127.0.0.1:1", Token: "coalesce-test", Timeout: 700 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if got := Coalesce(vt, CoalesceOptions{}).timeout; got != 700*time.Millisecond {
		t.Errorf("got timeout %s, want the transit's 700ms", got)
	}
	if got := Coalesce(vt, CoalesceOptions{Timeout: time.Second}).timeout; got != time.Second {
		t.Errorf("got timeout %s, want the option's 1s", got)
	}
}

// callerCtxTransit records, for each call, whether it ran with the caller's
// context (a value the caller put there) and whether the lane had anyone queued.
type callerCtxTransit struct {
	nopTransit
	c      *Coalescer
	direct []bool
	queued []int
}

type callerMark struct{}

func (f *callerCtxTransit) Decrypt(ctx context.Context, k Key, items []DecryptItem) ([]DecryptResult, error) {
	f.direct = append(f.direct, ctx.Value(callerMark{}) != nil)
	f.c.decC.mu.Lock()
	f.queued = append(f.queued, len(f.c.decC.queue))
	f.c.decC.mu.Unlock()
	return f.nopTransit.Decrypt(ctx, k, items)
}

// A lone call never takes the queued path (the only one that batches): it is
// issued by its caller, on the caller's context, before Decrypt returns. No
// clock is involved: the queued path would show as a call without the caller's
// context value, made by the lane's own goroutine.
func TestCoalescerIssuesALoneCallAtOnceOnTheCallersContext(t *testing.T) {
	f := &callerCtxTransit{}
	c := Coalesce(f, CoalesceOptions{Timeout: time.Hour})
	f.c = c
	ctx := context.WithValue(bg, callerMark{}, true)
	for i := range 5 {
		_, err := c.Decrypt(ctx, KeyCard, []DecryptItem{{Ciphertext: "vault:v1:x", Context: []byte("m_alpha"), AAD: []byte("tok_a")}})
		noErr(t, err, "Decrypt")
		if len(f.direct) != i+1 {
			t.Fatalf("got %d calls after %d lone callers returned, want %d", len(f.direct), i+1, i+1)
		}
		if !f.direct[i] || f.queued[i] != 0 {
			t.Fatalf("call %d: caller's context %v, %d queued; want the caller's own call with nobody queued", i, f.direct[i], f.queued[i])
		}
	}
}

// BenchmarkCoalescerLone is one caller at a time: the wrapper's cost on the
// path of a lone request (no queue, no goroutine, no timer beyond the
// timeout's).
func BenchmarkCoalescerLone(b *testing.B) {
	c := Coalesce(nopTransit{}, CoalesceOptions{Timeout: time.Second})
	items := encItem("m_alpha", "tok_a", "payload")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Encrypt(bg, KeyCard, items); err != nil {
			b.Fatal(err)
		}
	}
}
