package vault

import (
	"context"
	"errors"
	"net/http"
	"strconv"
)

// Errors of this package. Their text carries no data: no card data, no token
// id, no merchant, no URL, no Vault or Redis message. Match them with
// errors.Is.
var (
	// ErrTokenNotFound: the token does not exist, expired, was deleted, or
	// belongs to another merchant. The four cases take the same code path
	// (the merchant is part of the Redis key) and return this same value.
	ErrTokenNotFound = errors.New("vault: token not found")

	// ErrCVVUnavailable: the card token has no CVV (never captured,
	// expired, or already consumed by an earlier detokenization).
	ErrCVVUnavailable = errors.New("vault: cvv unavailable")

	// ErrWalletConsumed: the wallet token was already detokenized once.
	// After the consumption marker expires (at the token's own expiry) the
	// token is simply ErrTokenNotFound.
	ErrWalletConsumed = errors.New("vault: wallet token already used")

	// ErrUnavailable: Vault or Redis is down, sealed, overloaded or
	// unreachable (HTTP 503). ErrTimeout matches it too.
	ErrUnavailable = errors.New("vault: dependency unavailable")

	// ErrConflict: a token id collided on SET NX. Tokenize retries with a
	// new id itself; callers only see it after repeated collisions.
	ErrConflict = errors.New("vault: token id collision")

	// ErrIntegrity: a stored ciphertext does not decrypt under this
	// merchant and token id (copied into another record or merchant,
	// tampered with, or its key version is no longer allowed), or a
	// decrypted payload is malformed. Nothing is returned but this value.
	ErrIntegrity = errors.New("vault: stored ciphertext failed verification")

	// ErrInvalidInput: the caller passed something Tokenize cannot store
	// (zero PAN or expiry, zero DPAN, unknown wallet kind) or a merchant id
	// that is not 1–64 characters of A–Z, a–z, 0–9, '_', '-', '.'.
	ErrInvalidInput = errors.New("vault: invalid tokenization input")
)

// ErrTimeout: a dependency did not answer in time (HTTP 504).
// errors.Is(ErrTimeout, ErrUnavailable) also holds, so test ErrTimeout first
// when the two must be told apart.
var ErrTimeout error = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string        { return "vault: dependency timed out" }
func (timeoutError) Is(target error) bool { return target == ErrUnavailable }

// Timeout reports true, as net.Error does for timeouts.
func (timeoutError) Timeout() bool { return true }

// TransitError is a failed transit call (or one failed item of a batch). It
// keeps the operation and, for HTTP answers, the status code; never the
// server's message, the URL or the body, which may carry request data.
// Unwrap gives the sentinel that classifies it (ErrUnavailable, ErrTimeout,
// ErrIntegrity) or nil for a request the server refused (configuration:
// permission denied, missing key, bad input).
type TransitError struct {
	Op     string // "encrypt", "decrypt", "hmac", "keys", "ping"
	Status int    // HTTP status, 0 when there was no HTTP answer
	Reason string // fixed text chosen by this package
	err    error
}

func (e *TransitError) Error() string {
	s := "vault: transit " + e.Op
	if e.Status != 0 {
		s += ": status " + strconv.Itoa(e.Status)
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Unwrap returns the classifying sentinel, or nil.
func (e *TransitError) Unwrap() error { return e.err }

// StoreError is a failed Redis call. Its text names the operation and a fixed
// class ("timeout", "unavailable"); Unwrap gives ErrUnavailable or ErrTimeout.
// The driver's own error is kept for errors.Is/As (for example
// context.Canceled) but never put in the text.
type StoreError struct {
	Op    string
	err   error
	cause error
}

func (e *StoreError) Error() string {
	if errors.Is(e.err, ErrTimeout) {
		return "vault: redis " + e.Op + ": timeout"
	}
	return "vault: redis " + e.Op + ": unavailable"
}

// Unwrap returns the classifying sentinel and the driver's error.
func (e *StoreError) Unwrap() []error { return []error{e.err, e.cause} }

// storeErr classifies a go-redis error. A cancelled caller context stays
// context.Canceled (through Unwrap) but is still ErrUnavailable.
func storeErr(op string, ctx context.Context, err error) error {
	class := ErrUnavailable
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) || isNetTimeout(err) {
		class = ErrTimeout
	}
	return &StoreError{Op: op, err: class, cause: err}
}

// isNetTimeout reports a net.Error style timeout (read/write deadlines).
func isNetTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// transitStatusErr classifies an HTTP answer from Vault.
func transitStatusErr(op string, status int) *TransitError {
	e := &TransitError{Op: op, Status: status, Reason: http.StatusText(status)}
	switch {
	case status == http.StatusTooManyRequests, status >= 500:
		// 503 is also what a sealed or standby-without-active Vault says.
		e.err = ErrUnavailable
	case status == http.StatusRequestTimeout:
		e.err = ErrTimeout
	}
	return e
}

// itemErr is one batch item's failure: ErrIntegrity for a ciphertext that
// does not authenticate, else a refusal of that item.
func itemErr(op string, integrity bool) error {
	if integrity {
		return &TransitError{Op: op, Status: http.StatusBadRequest, Reason: "ciphertext does not authenticate", err: ErrIntegrity}
	}
	return &TransitError{Op: op, Status: http.StatusBadRequest, Reason: "item refused"}
}

// countErr is an answer whose results do not match the items sent one to one.
func countErr(op string, got, want int) error {
	return &TransitError{Op: op, Reason: "answer has " + strconv.Itoa(got) + " results for " + strconv.Itoa(want) + " items", err: ErrUnavailable}
}
