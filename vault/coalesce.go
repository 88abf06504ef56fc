package vault

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of CoalesceOptions. Two calls in flight per lane: on the 2-core
// benchmark (docs/bench.md) one and two give the same throughput, four clearly
// less (smaller batches, more Vault requests); two keeps a lane moving while
// one call is slow.
const (
	defaultCoalesceBatch    = 128
	defaultCoalesceInFlight = 2
)

// CoalesceOptions configures Coalesce. Zero fields take the defaults.
type CoalesceOptions struct {
	// MaxBatch bounds the items of one call made for queued callers
	// (default 128). One caller's own batch is never split, even when it is
	// larger.
	MaxBatch int
	// MaxInFlight bounds the calls in flight per operation and key (default
	// 2): a slow call does not hold up everything, and callers beyond it
	// queue for the next call instead of adding load.
	MaxInFlight int
	// Timeout bounds each caller's call, its time queued included, so a
	// configured transit timeout is the real bound of a Vault call (default:
	// the wrapped VaultTransit's Timeout; none for any other Transit).
	Timeout time.Duration
}

// Coalescer is a Transit that merges concurrent callers' items into shared
// batch calls of the Transit it wraps, one lane per operation and key
// (encrypt/card, encrypt/cvv, decrypt/card, decrypt/cvv, hmac).
//
// It never waits for company: a caller finding fewer than MaxInFlight calls
// in flight on its lane calls at once, with its own context. Only while the
// lane is full do callers queue; each call that returns sends what queued
// meanwhile as one batch (up to MaxBatch items). At low load that is exactly
// one call per caller; under load, one call per batch, which is what Vault's
// transit engine handles best (batch_input carries each item's own context
// and associated data, and answers per item).
//
// A queued caller whose context ends returns at once (ErrTimeout or
// context.Canceled, wrapped in a *TransitError); the batch it was part of
// carries on for the others. Queued items are copied into buffers the
// Coalescer owns and wipes after the call, so a caller may wipe its own
// plaintexts as soon as it returns, as the Transit contract allows; a
// decrypted plaintext nobody is waiting for any more is wiped too.
type Coalescer struct {
	t    Transit
	maxB int
	maxF int
	encC lane[EncryptItem, EncryptResult]
	encV lane[EncryptItem, EncryptResult]
	decC lane[DecryptItem, DecryptResult]
	decV lane[DecryptItem, DecryptResult]
	hmac lane[HMACItem, HMACResult]
	obs  observer // hears each batch sent for queued callers (observer.go)

	timeout time.Duration // bounds a caller's wait, queueing included; 0: none of its own
}

// Coalesce wraps t. It declares itself development-only exactly when t does.
func Coalesce(t Transit, o CoalesceOptions) *Coalescer {
	if o.MaxBatch <= 0 {
		o.MaxBatch = defaultCoalesceBatch
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = defaultCoalesceInFlight
	}
	if vt, ok := t.(*VaultTransit); ok && o.Timeout <= 0 {
		o.Timeout = vt.timeout
	}
	c := &Coalescer{t: t, maxB: o.MaxBatch, maxF: o.MaxInFlight, timeout: o.Timeout}
	encrypt := func(k Key) func(context.Context, []EncryptItem) ([]EncryptResult, error) {
		return func(ctx context.Context, items []EncryptItem) ([]EncryptResult, error) {
			return t.Encrypt(ctx, k, items)
		}
	}
	decrypt := func(k Key) func(context.Context, []DecryptItem) ([]DecryptResult, error) {
		return func(ctx context.Context, items []DecryptItem) ([]DecryptResult, error) {
			return t.Decrypt(ctx, k, items)
		}
	}
	c.encC.init(c, "encrypt", KeyCard.String(), encrypt(KeyCard), cloneEncrypt, nil)
	c.encV.init(c, "encrypt", KeyCVV.String(), encrypt(KeyCVV), cloneEncrypt, nil)
	c.decC.init(c, "decrypt", KeyCard.String(), decrypt(KeyCard), cloneDecrypt, wipeDecrypted)
	c.decV.init(c, "decrypt", KeyCVV.String(), decrypt(KeyCVV), cloneDecrypt, wipeDecrypted)
	c.hmac.init(c, "hmac", "fingerprint", t.HMAC, cloneHMAC, nil)
	return c
}

// Encrypt implements Transit.
func (c *Coalescer) Encrypt(ctx context.Context, key Key, items []EncryptItem) ([]EncryptResult, error) {
	switch key {
	case KeyCard:
		return c.encC.do(ctx, items)
	case KeyCVV:
		return c.encV.do(ctx, items)
	}
	return c.t.Encrypt(ctx, key, items)
}

// Decrypt implements Transit.
func (c *Coalescer) Decrypt(ctx context.Context, key Key, items []DecryptItem) ([]DecryptResult, error) {
	switch key {
	case KeyCard:
		return c.decC.do(ctx, items)
	case KeyCVV:
		return c.decV.do(ctx, items)
	}
	return c.t.Decrypt(ctx, key, items)
}

// HMAC implements Transit.
func (c *Coalescer) HMAC(ctx context.Context, items []HMACItem) ([]HMACResult, error) {
	return c.hmac.do(ctx, items)
}

// Ping implements Transit; it is never coalesced.
func (c *Coalescer) Ping(ctx context.Context) error { return c.t.Ping(ctx) }

// DevOnly reports whether the wrapped Transit is development-only.
func (c *Coalescer) DevOnly() bool { return isDevOnly(c.t) }

// String describes the wrapper and what it wraps (which prints no secret).
func (c *Coalescer) String() string {
	inner := "transit"
	if s, ok := c.t.(interface{ String() string }); ok {
		inner = s.String()
	}
	return "Coalesced(" + inner + ", batch=" + strconv.Itoa(c.maxB) + ", in_flight=" + strconv.Itoa(c.maxF) + ")"
}

// GoString is String (%#v).
func (c *Coalescer) GoString() string { return c.String() }

// States of a result someone may stop waiting for: a queued request here, a
// Decryption in detokenize.go.
const (
	waiting int32 = iota
	delivered
	abandoned
)

// request is one queued caller: its items (copies owned by the lane), the
// latest time anyone will wait for them, and where its results go.
type request[I, R any] struct {
	items    []I
	buf      []byte // backs the copies in items; wiped after the call
	deadline time.Time
	state    atomic.Int32
	done     chan outcome[R] // buffered: the lane never blocks on a caller
}

type outcome[R any] struct {
	res []R
	err error
}

// lane coalesces the calls of one operation and key.
type lane[I, R any] struct {
	c     *Coalescer
	op    string
	key   string // the metrics label of the lane's key
	call  func(context.Context, []I) ([]R, error)
	clone func([]I) ([]I, []byte)
	drop  func([]R) // wipes results nobody takes; nil when they hold no secret

	mu       sync.Mutex
	inFlight int
	queue    []*request[I, R]
}

func (l *lane[I, R]) init(c *Coalescer, op, key string, call func(context.Context, []I) ([]R, error), clone func([]I) ([]I, []byte), drop func([]R)) {
	l.c, l.op, l.key, l.call, l.clone, l.drop = c, op, key, call, clone, drop
}

func (l *lane[I, R]) do(ctx context.Context, items []I) ([]R, error) {
	if len(items) == 0 {
		return l.call(ctx, items)
	}
	if l.c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.c.timeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return nil, l.ctxErr(err)
	}
	l.mu.Lock()
	if l.inFlight < l.c.maxF && len(l.queue) == 0 {
		// Idle enough: call now, as the caller, with the caller's context.
		l.inFlight++
		l.mu.Unlock()
		defer l.done()
		l.c.obs.get().Batch(l.op, l.key, len(items), 1)
		return l.call(ctx, items)
	}
	r := &request[I, R]{done: make(chan outcome[R], 1)}
	r.items, r.buf = l.clone(items)
	r.deadline, _ = ctx.Deadline() // zero: no deadline
	l.queue = append(l.queue, r)
	l.mu.Unlock()

	select {
	case o := <-r.done:
		return o.res, o.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(waiting, abandoned) {
			return nil, l.ctxErr(ctx.Err())
		}
		o := <-r.done // delivered meanwhile: it is on its way
		return o.res, o.err
	}
}

func (l *lane[I, R]) ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &TransitError{Op: l.op, Reason: "timeout", err: ErrTimeout}
	}
	return &TransitError{Op: l.op, Reason: "canceled", err: context.Canceled}
}

// done ends one call and sends what queued meanwhile while slots are free.
func (l *lane[I, R]) done() {
	l.mu.Lock()
	l.inFlight--
	for l.inFlight < l.c.maxF && len(l.queue) > 0 {
		batch := l.take()
		if len(batch) == 0 {
			continue
		}
		l.inFlight++
		go l.run(batch)
	}
	l.mu.Unlock()
}

// take removes from the queue's head the requests of the next batch: at
// least one, at most MaxBatch items. Abandoned requests are dropped on the
// way. l.mu held.
func (l *lane[I, R]) take() []*request[I, R] {
	var batch []*request[I, R]
	n, k := 0, 0
	for ; k < len(l.queue); k++ {
		r := l.queue[k]
		if r.state.Load() == abandoned {
			wipe(r.buf)
			continue
		}
		if len(batch) > 0 && n+len(r.items) > l.c.maxB {
			break
		}
		batch = append(batch, r)
		n += len(r.items)
	}
	rest := copy(l.queue, l.queue[k:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	return batch
}

// run makes one call for batch and hands every request its share.
func (l *lane[I, R]) run(batch []*request[I, R]) {
	defer l.done()
	var items []I
	if len(batch) == 1 {
		items = batch[0].items
	} else {
		n := 0
		for _, r := range batch {
			n += len(r.items)
		}
		items = make([]I, 0, n)
		for _, r := range batch {
			items = append(items, r.items...)
		}
	}
	// Nobody's cancellation stops the call; it ends when the last caller
	// stops waiting (the wrapped Transit applies its own timeout too).
	ctx := context.Background()
	var last time.Time
	for _, r := range batch {
		if r.deadline.IsZero() {
			last = time.Time{}
			break
		}
		if r.deadline.After(last) {
			last = r.deadline
		}
	}
	if !last.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, last)
		defer cancel()
	}
	l.c.obs.get().Batch(l.op, l.key, len(items), len(batch))
	res, err := l.call(ctx, items)
	for _, r := range batch {
		wipe(r.buf)
	}
	if err == nil && len(res) != len(items) {
		if l.drop != nil {
			l.drop(res)
		}
		res, err = nil, countErr(l.op, len(res), len(items))
	}
	off := 0
	for _, r := range batch {
		o := outcome[R]{err: err}
		if err == nil {
			n := len(r.items)
			o.res = res[off : off+n : off+n]
			off += n
		}
		if r.state.CompareAndSwap(waiting, delivered) {
			r.done <- o
		} else if l.drop != nil && o.res != nil {
			l.drop(o.res)
		}
	}
}

// The clone functions copy every byte slice of the items into one buffer
// (returned for wiping); strings are immutable and stay shared.

func cloneEncrypt(items []EncryptItem) ([]EncryptItem, []byte) {
	n := 0
	for _, it := range items {
		n += len(it.Plaintext) + len(it.Context) + len(it.AAD)
	}
	buf := make([]byte, 0, n)
	out := make([]EncryptItem, len(items))
	for i, it := range items {
		buf, out[i].Plaintext = appendCopy(buf, it.Plaintext)
		buf, out[i].Context = appendCopy(buf, it.Context)
		buf, out[i].AAD = appendCopy(buf, it.AAD)
	}
	return out, buf
}

func cloneDecrypt(items []DecryptItem) ([]DecryptItem, []byte) {
	n := 0
	for _, it := range items {
		n += len(it.Context) + len(it.AAD)
	}
	buf := make([]byte, 0, n)
	out := make([]DecryptItem, len(items))
	for i, it := range items {
		out[i].Ciphertext = it.Ciphertext
		buf, out[i].Context = appendCopy(buf, it.Context)
		buf, out[i].AAD = appendCopy(buf, it.AAD)
	}
	return out, buf
}

func cloneHMAC(items []HMACItem) ([]HMACItem, []byte) {
	n := 0
	for _, it := range items {
		n += len(it.Context) + len(it.Input)
	}
	buf := make([]byte, 0, n)
	out := make([]HMACItem, len(items))
	for i, it := range items {
		buf, out[i].Context = appendCopy(buf, it.Context)
		buf, out[i].Input = appendCopy(buf, it.Input)
	}
	return out, buf
}

// appendCopy appends b to buf (which has room: no reallocation, so earlier
// views stay valid) and returns the view of the copy; nil stays nil.
func appendCopy(buf, b []byte) ([]byte, []byte) {
	if b == nil {
		return buf, nil
	}
	start := len(buf)
	buf = append(buf, b...)
	return buf, buf[start:len(buf):len(buf)]
}

func wipeDecrypted(rs []DecryptResult) {
	for _, r := range rs {
		wipe(r.Plaintext)
	}
}
