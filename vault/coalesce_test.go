package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testenv"
)

// countingTransit is a fake Transit whose "ciphertext" spells out context,
// AAD and plaintext, so every caller can check it got its own result. It
// counts calls and items, tracks calls in flight, can hold calls at a gate,
// and remembers the plaintexts it saw and returned.
type countingTransit struct {
	delay time.Duration
	gate  chan struct{} // when not nil, every call waits for one receive
	enter chan int      // when not nil, every call sends its item count on entry

	calls, items       atomic.Int64
	inFlight, maxSeen  atomic.Int64
	mu                 sync.Mutex
	batchSizes         []int
	seen               []string // plaintexts encrypted, in call order
	returned           [][]byte // plaintext slices handed out by Decrypt
	failNext, shortAns atomic.Bool
}

func (f *countingTransit) begin(n int) error {
	if f.enter != nil {
		f.enter <- n
	}
	if f.gate != nil {
		<-f.gate
	}
	cur := f.inFlight.Add(1)
	for {
		m := f.maxSeen.Load()
		if cur <= m || f.maxSeen.CompareAndSwap(m, cur) {
			break
		}
	}
	f.calls.Add(1)
	f.items.Add(int64(n))
	f.mu.Lock()
	f.batchSizes = append(f.batchSizes, n)
	f.mu.Unlock()
	time.Sleep(f.delay)
	if f.failNext.CompareAndSwap(true, false) {
		return &TransitError{Op: "fake", Status: 503, Reason: "injected", err: ErrUnavailable}
	}
	return nil
}

func (f *countingTransit) end() { f.inFlight.Add(-1) }

func (f *countingTransit) Encrypt(_ context.Context, k Key, items []EncryptItem) ([]EncryptResult, error) {
	defer f.end()
	if err := f.begin(len(items)); err != nil {
		return nil, err
	}
	res := make([]EncryptResult, len(items))
	f.mu.Lock()
	for i, it := range items {
		f.seen = append(f.seen, string(it.Plaintext))
		res[i] = EncryptResult{Ciphertext: k.String() + "|" + string(it.Context) + "|" + string(it.AAD) + "|" + string(it.Plaintext), KeyVersion: 1}
	}
	f.mu.Unlock()
	if f.shortAns.CompareAndSwap(true, false) {
		res = res[:len(res)-1]
	}
	return res, nil
}

func (f *countingTransit) Decrypt(_ context.Context, k Key, items []DecryptItem) ([]DecryptResult, error) {
	defer f.end()
	if err := f.begin(len(items)); err != nil {
		return nil, err
	}
	res := make([]DecryptResult, len(items))
	for i, it := range items {
		want := k.String() + "|" + string(it.Context) + "|" + string(it.AAD) + "|"
		pt, ok := strings.CutPrefix(it.Ciphertext, want)
		if !ok {
			res[i].Err = itemErr("decrypt", true)
			continue
		}
		res[i].Plaintext = []byte(pt)
		f.mu.Lock()
		f.returned = append(f.returned, res[i].Plaintext)
		f.mu.Unlock()
	}
	return res, nil
}

func (f *countingTransit) HMAC(_ context.Context, items []HMACItem) ([]HMACResult, error) {
	defer f.end()
	if err := f.begin(len(items)); err != nil {
		return nil, err
	}
	res := make([]HMACResult, len(items))
	for i, it := range items {
		s := sha256.Sum256(hmacMessage(it.Context, it.Input))
		res[i] = HMACResult{Sum: s[:], KeyVersion: 1}
	}
	return res, nil
}

func (f *countingTransit) Ping(context.Context) error { return nil }

func encItem(merchant, token, pt string) []EncryptItem {
	return []EncryptItem{{Plaintext: []byte(pt), Context: []byte(merchant), AAD: []byte(token)}}
}

// waitQueued waits until n callers are queued on l.
func waitQueued[I, R any](t *testing.T, l *lane[I, R], n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		q := len(l.queue)
		l.mu.Unlock()
		if q >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("got fewer than %d queued callers after 5s", n)
}

func TestCoalescerCallsAtOnceWhenIdle(t *testing.T) {
	f := &countingTransit{}
	c := Coalesce(f, CoalesceOptions{})
	for i := range 20 {
		start := time.Now()
		res, err := c.Encrypt(bg, KeyCard, encItem("m_alpha", fmt.Sprint("tok_", i), "pt"))
		noErr(t, err, "Encrypt")
		if want := fmt.Sprint("card|m_alpha|tok_", i, "|pt"); res[0].Ciphertext != want {
			t.Fatalf("got %q, want %q", res[0].Ciphertext, want)
		}
		// Generous bound: scheduling on a loaded CI machine must not fail this; a
		// waiting window for company would show in every one of the 20 calls.
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("an idle call took %v: the coalescer must not wait for company", d)
		}
	}
	if got := f.calls.Load(); got != 20 {
		t.Fatalf("got %d calls for 20 sequential callers, want 20", got)
	}
}

func TestCoalescerMergesConcurrentCallersIntoFewCalls(t *testing.T) {
	const n = 256
	f := &countingTransit{delay: 2 * time.Millisecond}
	c := Coalesce(f, CoalesceOptions{MaxBatch: 128, MaxInFlight: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Go(func() {
			m, tok, pt := fmt.Sprint("m_", i%7), fmt.Sprint("tok_", i), fmt.Sprint("plain-", i)
			enc, err := c.Encrypt(bg, KeyCVV, encItem(m, tok, pt))
			if err != nil || enc[0].Err != nil || enc[0].Ciphertext != "cvv|"+m+"|"+tok+"|"+pt {
				errs <- fmt.Errorf("caller %d: encrypt got %+v, %v", i, enc, err)
				return
			}
			dec, err := c.Decrypt(bg, KeyCVV, []DecryptItem{{Ciphertext: enc[0].Ciphertext, Context: []byte(m), AAD: []byte(tok)}})
			if err != nil || len(dec) != 1 || string(dec[0].Plaintext) != pt {
				errs <- fmt.Errorf("caller %d: decrypt got %d results, %v", i, len(dec), err)
				return
			}
			hm, err := c.HMAC(bg, []HMACItem{{Context: []byte(m), Input: []byte(pt)}, {Context: []byte(m), Input: []byte(pt + "x")}})
			want := sha256.Sum256(hmacMessage([]byte(m), []byte(pt+"x")))
			if err != nil || len(hm) != 2 || !bytes.Equal(hm[1].Sum, want[:]) {
				errs <- fmt.Errorf("caller %d: hmac got %d results, %v", i, len(hm), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := f.items.Load(); got != 4*n {
		t.Fatalf("got %d items sent, want %d", got, 4*n)
	}
	if got := f.calls.Load(); got > 3*n/4 {
		t.Fatalf("got %d calls for %d concurrent callers of 3 operations, want far fewer than %d", got, n, 3*n)
	}
	t.Logf("%d callers × 3 operations: %d calls", n, f.calls.Load())
}

func TestCoalescerBoundsBatchesAndCallsInFlight(t *testing.T) {
	f := &countingTransit{delay: time.Millisecond}
	c := Coalesce(f, CoalesceOptions{MaxBatch: 8, MaxInFlight: 3})
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			if _, err := c.Encrypt(bg, KeyCard, encItem("m", fmt.Sprint(i), "p")); err != nil {
				t.Error(err)
			}
		})
	}
	// One caller's own batch larger than MaxBatch goes out whole.
	big := make([]EncryptItem, 20)
	for i := range big {
		big[i] = EncryptItem{Plaintext: []byte("p"), Context: []byte("m")}
	}
	wg.Go(func() {
		res, err := c.Encrypt(bg, KeyCard, big)
		if err != nil || len(res) != 20 {
			t.Errorf("a 20-item caller got %d results, %v", len(res), err)
		}
	})
	wg.Wait()
	if m := f.maxSeen.Load(); m > 3 {
		t.Fatalf("got %d calls in flight at once, want at most 3", m)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.batchSizes {
		if n > 8 && n != 20 {
			t.Fatalf("got a batch of %d items, want at most 8 (or the 20-item caller alone)", n)
		}
	}
}

// fillLane occupies every in-flight slot of the card-encrypt lane with calls
// held at f's gate, and returns a function releasing them.
func fillLane(t *testing.T, c *Coalescer, f *countingTransit, slots int) (release func(), wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range slots {
		wg.Go(func() {
			if _, err := c.Encrypt(bg, KeyCard, encItem("m", fmt.Sprint("busy", i), "busy")); err != nil {
				t.Error(err)
			}
		})
		<-f.enter
	}
	return func() {
		for range slots {
			f.gate <- struct{}{}
		}
	}, wg.Wait
}

func TestCoalescerCancelledCallerReturnsAloneAndOthersCarryOn(t *testing.T) {
	f := &countingTransit{gate: make(chan struct{}), enter: make(chan int, 16)}
	c := Coalesce(f, CoalesceOptions{MaxInFlight: 1})
	release, wait := fillLane(t, c, f, 1)

	ctx, cancel := context.WithCancel(bg)
	aDone := make(chan error, 1)
	go func() {
		_, err := c.Encrypt(ctx, KeyCard, encItem("m_alpha", "tok_a", "secret-a"))
		aDone <- err
	}()
	waitQueued(t, &c.encC, 1)
	bDone := make(chan []EncryptResult, 1)
	go func() {
		res, err := c.Encrypt(bg, KeyCard, encItem("m_beta", "tok_b", "secret-b"))
		if err != nil {
			t.Errorf("Encrypt of the caller that stayed: %v", err)
		}
		bDone <- res
	}()
	waitQueued(t, &c.encC, 2)

	cancel()
	select {
	case err := <-aDone:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		var te *TransitError
		if !errors.As(err, &te) {
			t.Fatalf("got %T, want a *TransitError", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a cancelled queued caller did not return while the lane was busy")
	}
	release()
	<-f.enter // the batch of the queue: only B is left in it
	f.gate <- struct{}{}
	res := <-bDone
	if res[0].Ciphertext != "card|m_beta|tok_b|secret-b" {
		t.Fatalf("got %q", res[0].Ciphertext)
	}
	wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.seen {
		if s == "secret-a" {
			t.Fatal("the abandoned caller's plaintext was still sent")
		}
	}
}

func TestCoalescerCopiesQueuedItemsSoCallersMayWipeThem(t *testing.T) {
	f := &countingTransit{gate: make(chan struct{}), enter: make(chan int, 16)}
	c := Coalesce(f, CoalesceOptions{MaxInFlight: 1})
	release, wait := fillLane(t, c, f, 1)

	plain := []byte("secret-a")
	ctx, cancel := context.WithCancel(bg)
	aDone := make(chan error, 1)
	go func() {
		_, err := c.Encrypt(ctx, KeyCard, []EncryptItem{{Plaintext: plain, Context: []byte("m_alpha"), AAD: []byte("tok_a")}})
		aDone <- err
	}()
	waitQueued(t, &c.encC, 1)
	bDone := make(chan struct{})
	go func() {
		defer close(bDone)
		_, _ = c.Encrypt(bg, KeyCard, encItem("m_beta", "tok_b", "secret-b"))
	}()
	waitQueued(t, &c.encC, 2)

	release()
	if n := <-f.enter; n != 2 {
		t.Fatalf("got a batch of %d, want both queued callers in one", n)
	}
	// A's items are now in a call; A gives up and wipes its plaintext, as
	// the vault does on return. The call must still see its own copy (and
	// the race detector sees no shared memory).
	cancel()
	if err := <-aDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	wipe(plain)
	f.gate <- struct{}{}
	wait()
	<-bDone
	f.mu.Lock()
	defer f.mu.Unlock()
	found := false
	for _, s := range f.seen {
		found = found || s == "secret-a"
	}
	if !found {
		t.Fatalf("the call saw %q, want the copy of the wiped plaintext intact", f.seen)
	}
}

func TestCoalescerWipesPlaintextsNobodyTakes(t *testing.T) {
	f := &countingTransit{gate: make(chan struct{}), enter: make(chan int, 16)}
	c := Coalesce(f, CoalesceOptions{MaxInFlight: 1})
	ct := "card|m_alpha|tok_a|4111"
	// Occupy the decrypt lane.
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = c.Decrypt(bg, KeyCard, []DecryptItem{{Ciphertext: ct, Context: []byte("m_alpha"), AAD: []byte("tok_a")}})
	})
	<-f.enter
	ctx, cancel := context.WithCancel(bg)
	aDone := make(chan struct{})
	go func() {
		defer close(aDone)
		_, _ = c.Decrypt(ctx, KeyCard, []DecryptItem{{Ciphertext: ct, Context: []byte("m_alpha"), AAD: []byte("tok_a")}})
	}()
	waitQueued(t, &c.decC, 1)
	f.gate <- struct{}{} // the first call returns; A's batch starts
	<-f.enter
	cancel()
	<-aDone
	f.gate <- struct{}{}
	wg.Wait()
	waitIdle(t, &c.decC) // the lane's mutex orders the wipe before the reads below
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.returned) != 2 {
		t.Fatalf("got %d plaintexts returned, want 2", len(f.returned))
	}
	if a := f.returned[1]; len(a) == 0 || !bytes.Equal(a, make([]byte, len(a))) {
		t.Fatal("the plaintext of an abandoned decrypt was not wiped")
	}
}

// waitIdle waits until no call is in flight on l.
func waitIdle[I, R any](t *testing.T, l *lane[I, R]) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		n := l.inFlight
		l.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the lane did not become idle within 5s")
}

func TestCoalescerGivesEveryCallerOfAFailedBatchTheError(t *testing.T) {
	for _, tc := range []struct {
		name string
		arm  func(*countingTransit)
		want error
	}{
		{"a failed call", func(f *countingTransit) { f.failNext.Store(true) }, ErrUnavailable},
		{"an answer with too few results", func(f *countingTransit) { f.shortAns.Store(true) }, ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &countingTransit{gate: make(chan struct{}), enter: make(chan int, 16)}
			c := Coalesce(f, CoalesceOptions{MaxInFlight: 1})
			release, wait := fillLane(t, c, f, 1)
			var wg sync.WaitGroup
			errs := make(chan error, 3)
			for i := range 3 {
				wg.Go(func() {
					_, err := c.Encrypt(bg, KeyCard, encItem("m", fmt.Sprint(i), "p"))
					errs <- err
				})
			}
			waitQueued(t, &c.encC, 3)
			release()
			<-f.enter
			tc.arm(f)
			f.gate <- struct{}{}
			wg.Wait()
			wait()
			close(errs)
			for err := range errs {
				wantErr(t, err, tc.want, "a caller of the failed batch")
			}
		})
	}
}

func TestCoalescerQueuedDeadlineIsErrTimeout(t *testing.T) {
	f := &countingTransit{gate: make(chan struct{}), enter: make(chan int, 16)}
	c := Coalesce(f, CoalesceOptions{MaxInFlight: 1})
	release, wait := fillLane(t, c, f, 1)
	ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
	defer cancel()
	_, err := c.Encrypt(ctx, KeyCard, encItem("m", "t", "p"))
	wantErr(t, err, ErrTimeout, "a caller whose deadline passed in the queue")
	release()
	wait()
}

func TestCoalescerKeepsDevOnlyAndPrintsNoSecret(t *testing.T) {
	lc, err := NewLocalCipher()
	noErr(t, err, "NewLocalCipher")
	if !isDevOnly(Coalesce(lc, CoalesceOptions{})) {
		t.Fatal("a coalesced LocalCipher must stay dev-only")
	}
	vt, err := NewVaultTransit(VaultTransitConfig{Address: "http://127.0.0.1:1", Token: "s.secret-token"})
	noErr(t, err, "NewVaultTransit")
	c := Coalesce(vt, CoalesceOptions{})
	if isDevOnly(c) {
		t.Fatal("a coalesced VaultTransit is not dev-only")
	}
	for _, s := range []string{c.String(), fmt.Sprintf("%v %+v %#v", c, c, c)} {
		if strings.Contains(s, "s.secret-token") {
			t.Fatalf("got %q: the token was printed", s)
		}
	}
}

// The whole vault suite, with the coalescer between the vault and its
// transit (faults beneath it, so injected failures travel through it).
func coalesced(newEnv newEnvFunc) newEnvFunc {
	return func(t *testing.T, o envOptions) *env {
		e := newEnv(t, o)
		cfg := o.cfg
		cfg.Transit, cfg.Store, cfg.Now = Coalesce(e.faults, CoalesceOptions{}), e.store, e.clock.Now
		v, err := New(cfg)
		noErr(t, err, "New")
		e.v = v
		return e
	}
}

func TestSuiteMiniredisLocalCipherCoalesced(t *testing.T) {
	runSuite(t, coalesced(func(t *testing.T, o envOptions) *env { return newUnitEnv(t, o) }))
}

func TestSuiteRedisServerVaultCoalesced(t *testing.T) {
	runSuite(t, coalesced(realEnvs(t, true)))
}

// Many merchants' cards tokenized and detokenized at once through one
// coalesced real Vault: batches mix merchants and token ids, and every item
// still decrypts only under its own context and AAD.
func TestCoalescedVaultKeepsItemsApartUnderConcurrency(t *testing.T) {
	vs, rs := testenv.Vault(t), testenv.Redis(t)
	tr := newVaultTransit(t, vs)
	rdb := NewRedisClient(RedisOptions{Addrs: []string{rs.Addr}})
	defer rdb.Close()
	v, err := New(Config{Transit: Coalesce(tr, CoalesceOptions{}), Store: NewStore(rdb, StoreOptions{})})
	noErr(t, err, "New")
	const n = 96
	ins := make([]CardInput, n)
	holders := make([]string, n)
	for i := range n {
		holders[i] = "Holder " + string(rune('A'+i/26)) + string(rune('a'+i%26))
		ins[i] = mustCard(t, []string{visaPAN, mcPAN, amexPAN}[i%3], []string{visaCVV, "123", amexCVV}[i%3], holders[i])
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			merchant := fmt.Sprint("m_", i%6)
			in, holder := ins[i], holders[i]
			m, err := v.TokenizeCard(bg, merchant, in)
			if err != nil {
				t.Errorf("TokenizeCard %d: %v", i, err)
				return
			}
			s, err := detokenize(v, merchant, m.Token, true)
			if err != nil {
				t.Errorf("Detokenize %d: %v", i, err)
				return
			}
			if s.Holder.Reveal() != holder || !bytes.Equal(s.PAN.Reveal(), in.PAN.Reveal()) || !bytes.Equal(s.CVV.Reveal(), in.CVV.Reveal()) {
				t.Errorf("caller %d got another caller's card", i)
			}
			if _, err := detokenize(v, fmt.Sprint("m_", (i+1)%6), m.Token, false); !errors.Is(err, ErrTokenNotFound) {
				t.Errorf("caller %d: another merchant got %v, want ErrTokenNotFound", i, err)
			}
		})
	}
	wg.Wait()
}

// BenchmarkCoalescer measures the wrapper's own cost per call on a transit
// that answers at once (no batching gain to be had: pure overhead).
func BenchmarkCoalescer(b *testing.B) {
	for _, conc := range []int{1, 64} {
		b.Run(fmt.Sprint("parallelism=", conc), func(b *testing.B) {
			c := Coalesce(nopTransit{}, CoalesceOptions{})
			items := encItem("m_alpha", "tok_a", "payload")
			b.ReportAllocs()
			b.SetParallelism(conc)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Encrypt(bg, KeyCard, items); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// nopTransit answers at once with empty results.
type nopTransit struct{}

func (nopTransit) Encrypt(_ context.Context, _ Key, items []EncryptItem) ([]EncryptResult, error) {
	return make([]EncryptResult, len(items)), nil
}

func (nopTransit) Decrypt(_ context.Context, _ Key, items []DecryptItem) ([]DecryptResult, error) {
	return make([]DecryptResult, len(items)), nil
}

func (nopTransit) HMAC(_ context.Context, items []HMACItem) ([]HMACResult, error) {
	return make([]HMACResult, len(items)), nil
}

func (nopTransit) Ping(context.Context) error { return nil }
