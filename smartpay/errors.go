package smartpay

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// apiError is a refusal with an HTTP status, a stable code and a fixed message.
// Its text never carries request data.
type apiError struct {
	status int
	code   string
	msg    string
	fields []string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func notFound(what string) *apiError {
	return &apiError{status: http.StatusNotFound, code: codeOrderNotFound, msg: what + " not found"}
}

func invalidState(msg string) *apiError {
	return &apiError{status: http.StatusConflict, code: codeInvalidState, msg: msg}
}

var errDuplicateOrder = &apiError{status: http.StatusConflict, code: codeDuplicateOrder, msg: "order_id already used by this merchant"}

// writeError writes err as an errorResponse and returns the status and code.
// Errors other than *apiError become a 500 without their text.
func writeError(w http.ResponseWriter, err error) (int, string) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, code: codeInternal, msg: "internal error"}
	}
	writeJSON(w, ae.status, errorResponse{Status: statusFail, Err: ae.code, Msg: ae.msg, Fields: ae.fields})
	return ae.status, ae.code
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"status":-1,"err":"INTERNAL_ERROR","msg":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// isJSON accepts application/json with optional parameters (charset).
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// decode reads one JSON object into v. Unknown fields are ignored (the real
// API is assumed tolerant); a wrongly typed field is named, its value never echoed.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			// Field is a path through embedded structs ("paymentFields.amount"):
			// its last element is the JSON name.
			f := te.Field[strings.LastIndexByte(te.Field, '.')+1:]
			return &apiError{status: http.StatusBadRequest, code: codeValidation, msg: "field has the wrong type: " + f, fields: []string{f}}
		}
		return &apiError{status: http.StatusBadRequest, code: codeInvalidJSON, msg: "request body is not a valid JSON object"}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &apiError{status: http.StatusBadRequest, code: codeInvalidJSON, msg: "request body has data after the JSON object"}
	}
	return nil
}

// problems collects the names of missing or invalid fields.
type problems []string

func (p *problems) add(field string) {
	for _, f := range *p {
		if f == field {
			return
		}
	}
	*p = append(*p, field)
}

// require adds field when v is blank.
func (p *problems) require(field, v string) {
	if strings.TrimSpace(v) == "" {
		p.add(field)
	}
}

// check adds field when ok is false.
func (p *problems) check(field string, ok bool) {
	if !ok {
		p.add(field)
	}
}

// url adds field when v is set but not an absolute http(s) URL.
func (p *problems) url(field, v string) {
	if v != "" && !validHTTPURL(v) {
		p.add(field)
	}
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &apiError{
		status: http.StatusBadRequest,
		code:   codeValidation,
		msg:    "missing or invalid fields: " + strings.Join(p, ", "),
		fields: append([]string(nil), p...),
	}
}

// validHTTPURL: absolute http or https URL with a host and no user info.
func validHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil
}

// validCurrency: ISO 4217 alpha-3 shape (three upper-case ASCII letters).
func validCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}
