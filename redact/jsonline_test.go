package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

type marshalsItself struct{}

func (marshalsItself) MarshalJSON() ([]byte, error) { return []byte(`{"own":true}`), nil }

type textKind string

// logrusLine is what logrus.JSONFormatter{} writes for e with extra merged in.
func logrusLine(t testing.TB, e *logrus.Entry, extra logrus.Fields) []byte {
	c := *e
	c.Data = maps.Clone(e.Data)
	maps.Copy(c.Data, extra)
	want, err := (&logrus.JSONFormatter{}).Format(&c)
	if err != nil {
		t.Fatal(err)
	}
	return want
}

func TestJSONLineMatchesLogrus(t *testing.T) {
	at := time.Date(2026, 12, 2, 1, 2, 3, 456, time.FixedZone("x", 3600))
	cases := map[string]logrus.Fields{
		"access log": {"listener": "forward", "route": "authorize", "status": 200, "duration_ms": 1.234,
			"request_id": "r_7Hq", "merchant": "m_1", "key_id": "sk_ab12", "code": ""},
		"escaping": {"html": "<a href='x'>&</a>", "quote": `say "hi" \ there`, "ctl": "a\nb\tc\x00",
			"utf8": "Zürich – ü", "bad utf8": "a\xffb", "line sep": "a\u2028b", "<key>": 1},
		"numbers": {"zero": 0.0, "negzero": math.Copysign(0, -1), "tiny": 1e-7, "edge": 1e-6, "big": 1e21,
			"almost big": 9.99e20, "neg": -12.5, "int": -3, "int64": int64(1) << 62, "uint": uint(7), "f32": float32(0.1)},
		"other types": {"nil": nil, "bool": true, "err": errors.New("boom <x>"), "dur": 1500 * time.Millisecond,
			"bytes": []byte("hi"), "map": map[string]int{"b": 2, "a": 1}, "own": marshalsItself{}, "kind": textKind("k"),
			"time": at},
		"clashes": {"time": "t", "msg": "m", "level": "l", "logrus_error": "e", "fields.time": "old", "fields.msg": "kept?"},
	}
	for name, data := range cases {
		for _, extra := range []logrus.Fields{nil, {"policy_hash": "3b1f", "status": "extra wins"}} {
			e := logrus.NewEntry(logrus.New()).WithFields(data)
			e.Time, e.Message, e.Level = at, "request <done> & \"ok\"", logrus.WarnLevel
			got, err := appendJSONLine(nil, e, extra)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if want := logrusLine(t, e, extra); !bytes.Equal(got, want) {
				t.Errorf("%s (extra %v):\n got %s\nwant %s", name, extra, got, want)
			}
		}
	}
}

func TestJSONLineRefusesWhatEncodingJSONRefuses(t *testing.T) {
	for _, v := range []any{math.NaN(), math.Inf(1), make(chan int)} {
		e := logrus.NewEntry(logrus.New()).WithField("x", v)
		if _, err := appendJSONLine(nil, e, nil); err == nil {
			t.Errorf("%T %v: got no error, want one", v, v)
		}
	}
}

func FuzzJSONLineMatchesLogrus(f *testing.F) {
	f.Add("route", "authorize", 1.5, int64(3))
	f.Add("msg", "<\u2028\xff>", 1e-9, int64(-1))
	f.Fuzz(func(t *testing.T, k, s string, x float64, n int64) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return
		}
		e := logrus.NewEntry(logrus.New()).WithFields(logrus.Fields{k: s, k + "f": x, k + "n": n, "s": s})
		e.Message = s
		got, err := appendJSONLine(nil, e, logrus.Fields{"policy_hash": k})
		if err != nil {
			t.Fatal(err)
		}
		if want := logrusLine(t, e, logrus.Fields{"policy_hash": k}); !bytes.Equal(got, want) {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
		if !json.Valid(got) {
			t.Errorf("not JSON: %s", got)
		}
	})
}

// BenchmarkAccessLogLine is one access log line through the redacting
// formatter: appendJSONLine against logrus' JSONFormatter as the inner one.
func BenchmarkAccessLogLine(b *testing.B) {
	e := logrus.NewEntry(logrus.New()).WithFields(logrus.Fields{"listener": "forward", "route": "authorize",
		"status": 200, "duration_ms": 1.234, "request_id": "r_7HqkX2", "merchant": "m_1", "key_id": "sk_ab12",
		"token": "tok_4fH8sK2pLq9ZxT7vWm3Rb1"})
	e.Time, e.Message, e.Level = time.Now(), "request", logrus.InfoLevel
	for name, f := range map[string]*formatter{
		"chdproxy": {Fields: logrus.Fields{"policy_hash": "9f86d081884c7d65"}},
		"logrus":   {Inner: &logrus.JSONFormatter{}, Fields: logrus.Fields{"policy_hash": "9f86d081884c7d65"}},
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			e.Buffer = new(bytes.Buffer) // logrus lends a pooled buffer
			for b.Loop() {
				e.Buffer.Reset()
				if _, err := f.Format(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
