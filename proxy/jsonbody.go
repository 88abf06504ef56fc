package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
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
func parseObject(body []byte) ([]jsonField, error) {
	if !utf8.Valid(body) {
		return nil, errInvalidText
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errInvalidJSON
	}
	var fields []jsonField
	seen := map[string]bool{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, errInvalidJSON
		}
		key := kt.(string)
		lk := strings.ToLower(key)
		if seen[lk] {
			return nil, errDuplicateField
		}
		seen[lk] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, errInvalidJSON
		}
		end := int(dec.InputOffset())
		f := jsonField{key: key, start: end - len(raw), end: end}
		if len(raw) > 0 && raw[0] == '"' {
			if err := json.Unmarshal(raw, &f.str); err != nil {
				return nil, errInvalidJSON
			}
			f.isString = true
		}
		fields = append(fields, f)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, errInvalidJSON
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errInvalidJSON
	}
	return fields, nil
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
