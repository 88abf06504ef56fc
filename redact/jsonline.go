package redact

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// appendJSONLine appends e, with extra's fields added (winning over the
// entry's), as the bytes logrus.JSONFormatter{} writes for them: the same
// keys, order and escaping (TestJSONLineMatchesLogrus, FuzzJSONLineMatchesLogrus).
// It exists because the access log writes one line per request, and logrus'
// formatter copies the fields into a new map and encodes it by reflection:
// here the common value types are appended directly, and anything else goes
// through encoding/json as before. Not reproduced: logrus' "logrus_error" key
// for a field logrus itself refused (a func value); chdproxy logs none.
func appendJSONLine(b []byte, e *logrus.Entry, extra logrus.Fields) ([]byte, error) {
	kv := make([]field, 0, len(e.Data)+len(extra)+3)
	for k, v := range e.Data {
		if _, over := extra[k]; !over {
			kv = append(kv, field{k, v})
		}
	}
	for k, v := range extra {
		kv = append(kv, field{k, v})
	}
	kv = prefixClashes(kv)
	kv = append(kv,
		field{logrus.FieldKeyTime, e.Time.Format(time.RFC3339)},
		field{logrus.FieldKeyMsg, e.Message},
		field{logrus.FieldKeyLevel, e.Level.String()})
	slices.SortFunc(kv, func(a, b field) int { return strings.Compare(a.k, b.k) })

	b = append(slices.Grow(b, 512), '{') // an access log line is about 300 bytes
	for i, f := range kv {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, f.k)
		b = append(b, ':')
		var err error
		if b, err = appendJSONValue(b, f.v); err != nil {
			return nil, fmt.Errorf("failed to marshal fields to JSON, %w", err)
		}
	}
	return append(b, '}', '\n'), nil
}

type field struct {
	k string
	v any
}

// prefixClashes renames the fields logrus' own keys would overwrite to
// "fields.<key>", as logrus does (its prefixFieldClashes), the renamed field
// replacing any "fields.<key>" already there.
func prefixClashes(kv []field) []field {
	for _, own := range [...]string{logrus.FieldKeyTime, logrus.FieldKeyMsg, logrus.FieldKeyLevel, logrus.FieldKeyLogrusError} {
		i := slices.IndexFunc(kv, func(f field) bool { return f.k == own })
		if i < 0 {
			continue
		}
		renamed := "fields." + own
		kv = slices.DeleteFunc(kv, func(f field) bool { return f.k == renamed })
		i = slices.IndexFunc(kv, func(f field) bool { return f.k == own })
		kv[i].k = renamed
	}
	return kv
}

// appendJSONValue appends v as encoding/json does (HTML escaped, like logrus'
// encoder); an error is written as its text, as logrus does.
func appendJSONValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return appendJSONString(b, v), nil
	case error:
		return appendJSONString(b, v.Error()), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case float64:
		// encoding/json writes %f between 1e-6 and 1e21, exponents outside.
		if a := math.Abs(v); v == 0 || a >= 1e-6 && a < 1e21 {
			return strconv.AppendFloat(b, v, 'f', -1, 64), nil
		}
	case nil:
		return append(b, "null"...), nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, j...), nil
}

// appendJSONString appends s quoted. Printable ASCII that encoding/json would
// not escape is copied as it is; anything else is left to encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			j, _ := json.Marshal(s) // a string always marshals
			return append(b, j...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
