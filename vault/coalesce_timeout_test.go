package vault

import (
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
