package proxy

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"
)

// jsonField is one top-level member of a JSON object body, with the byte span of its
// value so that injection can splice new values in and leave every other byte as sent.
type jsonField struct {
	key        string
	start, end int    // value span in the body
	str        string // the decoded value when it is a JSON string
	isString   bool
}

// parseObject splits a JSON object body into its top-level members. Ambiguous bodies are
// refused because the proxy and the upstream could read them differently: duplicate or
// case-variant keys, trailing data after the object, invalid UTF-8.
//
// It validates the whole body with json.Valid (no allocation), then walks only the top
// level by hand: encoding/json's Decoder costs ~300 allocations for a SmartPayments body.
func parseObject(body []byte) ([]jsonField, error) {
	return walkObject(body, foldKey)
}

// walkObject is parseObject with the duplicate test given as a key function: two keys
// are duplicates when keyOf maps them to the same string. A map of those keys keeps
// the check linear: a body of thousands of fields must not cost quadratic time.
func walkObject(body []byte, keyOf func(string) string) ([]jsonField, error) {
	if !utf8.Valid(body) {
		return nil, errInvalidText
	}
	if !json.Valid(body) {
		return nil, errInvalidJSON
	}
	// From here on the body is valid JSON: the walk needs no error paths of its own.
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return nil, errInvalidJSON
	}
	fields := make([]jsonField, 0, 24)
	seen := make(map[string]struct{}, 24)
	i = skipSpace(body, i+1)
	for body[i] != '}' {
		kend := stringEnd(body, i)
		key := unquote(body[i:kend])
		k := keyOf(key)
		if _, dup := seen[k]; dup {
			return nil, errDuplicateField
		}
		seen[k] = struct{}{}
		i = skipSpace(body, skipSpace(body, kend)+1) // past the colon
		end := valueEnd(body, i)
		f := jsonField{key: key, start: i, end: end}
		if body[i] == '"' {
			f.str, f.isString = unquote(body[i:end]), true
		}
		fields = append(fields, f)
		i = skipSpace(body, end)
		if body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	return fields, nil
}

// foldKey maps s to one representative of its case-folding class, so that
// strings.EqualFold(a, b) holds exactly when foldKey(a) == foldKey(b). Lower-casing
// is not enough: "σ" and "ς" fold together but lower-case apart.
func foldKey(s string) string {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf && (s[i] < 'A' || s[i] > 'Z') {
		i++
	}
	if i == len(s) {
		return s // the common case, ASCII without upper case: no allocation
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

// foldRune returns the same rune for every member of r's unicode.SimpleFold orbit:
// its ASCII lower-case letter when the orbit has one (K, k and the Kelvin sign give
// k), else the orbit's smallest rune.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		return unicode.ToLower(r)
	}
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < utf8.RuneSelf {
			return unicode.ToLower(f)
		}
		least = min(least, f)
	}
	return least
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the JSON string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++ // the escaped byte cannot end the string
		}
	}
	return i + 1
}

// valueEnd returns the index after the JSON value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[i])) {
		i++ // number, true, false, null
	}
	return i
}

// unquote decodes a valid JSON string literal; only escapes need encoding/json.
func unquote(lit []byte) string {
	inner := lit[1 : len(lit)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner)
	}
	var s string
	_ = json.Unmarshal(lit, &s) // cannot fail: the body is valid JSON
	return s
}

// splice rebuilds body with the values of the named fields replaced by JSON strings and
// the added fields appended before the closing brace. Keys keep their order and bytes.
func splice(body []byte, fields []jsonField, set map[string][]byte, add []string) []byte {
	out := make([]byte, 0, len(body)+256)
	pos := 0
	for _, f := range fields {
		v, ok := set[f.key]
		if !ok {
			continue
		}
		out = append(out, body[pos:f.start]...)
		out = appendJSONString(out, v)
		pos = f.end
	}
	closing := bytes.LastIndexByte(body, '}')
	out = append(out, body[pos:closing]...)
	for i, k := range add {
		if len(fields) > 0 || i > 0 {
			out = append(out, ',')
		}
		out = appendJSONString(out, []byte(k))
		out = append(out, ':')
		out = appendJSONString(out, set[k])
	}
	return append(out, body[closing:]...)
}

// appendJSONString appends s as a JSON string without building an intermediate string,
// so plaintext card data is only ever held in byte slices the caller can wipe.
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
