package proxy

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// readFields reads a flat request body of string fields, JSON or form-encoded, and
// refuses anything ambiguous: duplicate or case-variant keys, fields outside allowed,
// non-string JSON values (a PAN sent as a number), trailing data, invalid UTF-8 and
// control characters. Errors never carry the offending value.
func readFields(w http.ResponseWriter, r *http.Request, allowed map[string]bool) (map[string]string, error) {
	body, err := readBody(w, r, maxCollectBody)
	if err != nil {
		return nil, err
	}
	mt, err := mediaType(r)
	if err != nil {
		return nil, err
	}
	var fields map[string]string
	switch mt {
	case "application/json":
		fields, err = jsonFields(body)
	case "application/x-www-form-urlencoded":
		fields, err = formFields(body)
	default:
		return nil, errUnsupportedMedia
	}
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(fields))
	for k, v := range fields {
		if !allowed[k] {
			return nil, errUnknownField
		}
		lk := foldKey(k)
		if seen[lk] {
			return nil, errDuplicateField
		}
		seen[lk] = true
		if !cleanText(v) {
			return nil, errInvalidText
		}
	}
	return fields, nil
}

// errAmbiguousMedia refuses a body whose type two readers could see differently.
var errAmbiguousMedia = newError(http.StatusUnsupportedMediaType, "ambiguous_content_type",
	"send exactly one Content-Type header, with no parameter other than charset=utf-8")

// mediaType returns the request's media type. Two Content-Type headers are refused (we
// would check the first while the upstream might read the second), and so is any
// parameter but charset=utf-8: a body read as UTF-8 here and as UTF-16 there would
// carry card data past the checks.
func mediaType(r *http.Request) (string, error) {
	vs := r.Header.Values("Content-Type")
	if len(vs) > 1 {
		return "", errAmbiguousMedia
	}
	if len(vs) == 0 {
		return "", errUnsupportedMedia
	}
	mt, params, err := mime.ParseMediaType(vs[0])
	if err != nil {
		return "", errUnsupportedMedia
	}
	if mt != "application/json" && mt != "application/x-www-form-urlencoded" {
		return mt, nil // not a type we read: the caller refuses it as unsupported
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return "", errAmbiguousMedia
		}
	}
	return mt, nil
}

// readBody reads a request body of at most max bytes. A Content-Length above max is
// refused before any byte is read, and so before net/http sends 100 Continue: the
// client learns at once and never uploads what would be thrown away.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, errBodyTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, errBodyTooLarge
	case err != nil:
		return nil, errBodyUnreadable // a client that stopped sending, or a read timeout
	}
	return body, nil
}

func jsonFields(body []byte) (map[string]string, error) {
	// Exact duplicates only: a case variant of a known field is an unknown field here.
	members, err := walkObject(body, func(k string) string { return k })
	if err != nil {
		return nil, err
	}
	fields := make(map[string]string, len(members))
	for _, m := range members {
		if !m.isString { // number, bool, null, object or array
			return nil, errFieldType
		}
		fields[m.key] = m.str
	}
	return fields, nil
}

func formFields(body []byte) (map[string]string, error) {
	if !utf8.Valid(body) {
		return nil, errInvalidText
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errInvalidForm
	}
	fields := make(map[string]string, len(vals))
	for k, vs := range vals {
		if len(vs) != 1 {
			return nil, errDuplicateField
		}
		if !utf8.ValidString(k) || !utf8.ValidString(vs[0]) {
			return nil, errInvalidText
		}
		fields[k] = vs[0]
	}
	return fields, nil
}

// cleanText reports whether s is valid UTF-8 without control characters.
func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}
