package proxy

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/chdproxy/chdproxy/card"
	"github.com/chdproxy/chdproxy/vault"
)

// apiError is an error with a stable code, an HTTP status and a fixed message.
// Its text never carries request data.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func newError(status int, code, msg string) *apiError { return &apiError{status, code, msg} }

// The proxy's own errors. Card validation errors come from package card, token and
// dependency errors from package vault; errorResponse maps all of them.
var (
	errUnauthorized      = newError(http.StatusUnauthorized, "unauthorized", "missing or invalid API key")
	errOriginNotAllowed  = newError(http.StatusForbidden, "origin_not_allowed", "origin is not allowed for this merchant")
	errClientCertificate = newError(http.StatusForbidden, "client_certificate_mismatch", "the client certificate is not one registered for this key's merchant")
	errBodyTooLarge      = newError(http.StatusRequestEntityTooLarge, "body_too_large", "request body is too large")
	errBodyUnreadable    = newError(http.StatusBadRequest, "body_unreadable", "the request body could not be read completely")
	errUnsupportedMedia  = newError(http.StatusUnsupportedMediaType, "unsupported_media_type", "content type must be application/json or application/x-www-form-urlencoded")
	errInvalidJSON       = newError(http.StatusBadRequest, "invalid_json", "request body is not a valid JSON object")
	errInvalidForm       = newError(http.StatusBadRequest, "invalid_form", "request body is not a valid form")
	errDuplicateField    = newError(http.StatusBadRequest, "duplicate_field", "a field appears more than once")
	errUnknownField      = newError(http.StatusBadRequest, "unknown_field", "request contains an unknown field")
	errFieldType         = newError(http.StatusBadRequest, "invalid_field_type", "card fields must be JSON strings")
	errInvalidText       = newError(http.StatusBadRequest, "invalid_text", "request contains invalid UTF-8 or control characters")
	errMissingField      = newError(http.StatusBadRequest, "missing_field", "a required field is missing")
	errPaymentMethod     = newError(http.StatusBadRequest, "invalid_payment_method", "payment_method is not supported")
	errNotFound          = newError(http.StatusNotFound, "not_found", "no such route")
	errMethodNotAllowed  = newError(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
	errInvalidRequest    = newError(http.StatusBadRequest, "invalid_request", "request could not be tokenized")
	errInternal          = newError(http.StatusInternalServerError, "internal_error", "internal error")
	errVaultUnavailable  = newError(http.StatusServiceUnavailable, "vault_unavailable", "token vault is unavailable")
	errDependencyTimeout = newError(http.StatusGatewayTimeout, "vault_timeout", "token vault did not answer in time")
	errTokenNotFound     = newError(http.StatusNotFound, "token_not_found", "token not found")
	errCVVUnavailable    = newError(http.StatusConflict, "cvv_unavailable", "the security code of this token was already used or has expired")
	errWalletConsumed    = newError(http.StatusConflict, "wallet_token_consumed", "this wallet token was already used")
)

// classify maps any error to the apiError the client sees. Unknown errors are internal:
// their text stays in our (redacted) logs, never in the response.
func classify(err error) *apiError {
	var ae *apiError
	var ce *card.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &ce):
		return newError(http.StatusBadRequest, ce.Code(), ce.Error())
	case errors.As(err, &mbe):
		return errBodyTooLarge
	case errors.Is(err, vault.ErrTokenNotFound):
		return errTokenNotFound
	case errors.Is(err, vault.ErrCVVUnavailable):
		return errCVVUnavailable
	case errors.Is(err, vault.ErrWalletConsumed):
		return errWalletConsumed
	case errors.Is(err, vault.ErrCVVSessionNotFound):
		return errCVVSessionNotFound
	case errors.Is(err, vault.ErrNotCard):
		return errNotCardToken
	case errors.Is(err, vault.ErrInvalidInput):
		return errInvalidRequest
	case errors.Is(err, vault.ErrTimeout): // before ErrUnavailable, which it also matches
		return errDependencyTimeout
	case errors.Is(err, vault.ErrUnavailable):
		return errVaultUnavailable
	}
	return errInternal
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeErr writes the response for any error and returns what the client was told.
func writeErr(w http.ResponseWriter, err error) *apiError {
	ae := classify(err)
	var rl *rateLimited
	if errors.As(err, &rl) {
		w.Header().Set("Retry-After", retryAfterSeconds(rl.retryAfter))
	}
	writeError(w, ae)
	return ae
}

func writeError(w http.ResponseWriter, e *apiError) {
	var b errorBody
	b.Error.Code, b.Error.Message = e.code, e.msg
	if e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
