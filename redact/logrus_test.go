package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// assertNoCardData fails when out holds a test PAN in any form Scrub knows
// or its CVV.
func assertNoCardData(t *testing.T, out []byte) {
	t.Helper()
	for _, s := range []string{visa16, "4111 1111 1111 1111", toScript(visa16, '０'), "737"} {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("log output holds %q:\n%s", s, out)
		}
	}
	if w := surviving(out); w != nil {
		t.Errorf("a Luhn-valid window %v reached the writer:\n%s", w, out)
	}
}

type cardStruct struct {
	Number string
	CVV    string
}

func TestLoggerNeverWritesAPAN(t *testing.T) {
	tests := []struct {
		name string
		log  func(l *logrus.Logger)
	}{
		{"in the message", func(l *logrus.Logger) { l.Infof("charging card %s", visa16) }},
		{"in a grouped message", func(l *logrus.Logger) { l.Warn("card 4111 1111 1111 1111 declined") }},
		{"in a field", func(l *logrus.Logger) { l.WithField("pan", visa16).Info("tokenized") }},
		{"in a numeric field", func(l *logrus.Logger) { l.WithField("n", int64(4111111111111111)).Info("x") }},
		{"in a struct field", func(l *logrus.Logger) {
			l.WithField("card", cardStruct{Number: visa16, CVV: "737"}).Info("x")
		}},
		{"in a map field", func(l *logrus.Logger) {
			l.WithField("body", map[string]string{"card_number": visa16, "card_cvv": "737"}).Info("x")
		}},
		{"in a JSON body logged as a string", func(l *logrus.Logger) {
			l.WithField("body", `{"card_number":"`+visa16+`","card_cvv":"737"}`).Info("upstream response")
		}},
		{"in an error", func(l *logrus.Logger) {
			l.WithError(fmt.Errorf("parse %q: %w", visa16, errors.New("bad"))).Error("failed")
		}},
		{"in a fullwidth message", func(l *logrus.Logger) { l.Info("card " + toScript(visa16, '０')) }},
		{"in a URL", func(l *logrus.Logger) {
			u := &url.URL{Path: "/pay", RawQuery: url.Values{"pan": {visa16}, "cvv": {"737"}}.Encode()}
			l.WithField("url", u.String()).Info("request")
		}},
		{"through the standard library logger", func(l *logrus.Logger) {
			StdLogger(l).Printf("http: panic serving 10.0.0.1:1234: card %s", visa16)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := NewLogger(&buf, New(Rules{}), "3b1f")
			tt.log(l)
			if buf.Len() == 0 {
				t.Fatal("nothing was logged")
			}
			assertNoCardData(t, buf.Bytes())
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("log line is not JSON: %v\n%s", err, buf.Bytes())
			}
			if line["policy_hash"] != "3b1f" {
				t.Errorf("policy_hash = %v, want %q", line["policy_hash"], "3b1f")
			}
		})
	}
}

func TestServerErrorLogGoesThroughTheRedactor(t *testing.T) {
	var buf bytes.Buffer
	l := NewLogger(&buf, New(Rules{}), "3b1f")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("card " + visa16) // an http.Server logs the panic value on ErrorLog
	}))
	upstream.Config.ErrorLog = StdLogger(l)
	defer upstream.Close()

	target, _ := url.Parse(upstream.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = StdLogger(l)
	front := httptest.NewServer(rp)
	defer front.Close()

	resp, err := http.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(buf.String(), "panic serving") {
		t.Fatalf("the server's panic was not logged:\n%s", buf.String())
	}
	assertNoCardData(t, buf.Bytes())
}

func TestFormatterDefaultsAreSafe(t *testing.T) {
	l := logrus.New()
	var buf bytes.Buffer
	l.SetOutput(&buf)
	l.SetFormatter(&formatter{})
	l.WithField("cvv", "737").Info("card " + visa16)
	assertNoCardData(t, buf.Bytes())
	if !json.Valid(bytes.TrimSpace(buf.Bytes())) {
		t.Errorf("default inner formatter is not JSON: %s", buf.Bytes())
	}
}

func TestFormatterScrubsTextFormat(t *testing.T) {
	l := logrus.New()
	var buf bytes.Buffer
	l.SetOutput(&buf)
	l.SetFormatter(&formatter{Inner: &logrus.TextFormatter{DisableColors: true}, R: New(Rules{})})
	l.WithField("card_cvv", "737").WithField("auth", "Bearer x").Info("card " + visa16)
	assertNoCardData(t, buf.Bytes())
	if !strings.Contains(buf.String(), "card_cvv=[REDACTED]") {
		t.Errorf("got %q, want card_cvv=[REDACTED] in it", buf.String())
	}
}

func TestFormatterLeavesTheCallersEntryAlone(t *testing.T) {
	l := logrus.New()
	f := &formatter{Fields: logrus.Fields{"policy_hash": "3b1f"}}
	e := logrus.NewEntry(l).WithField("a", 1)
	if _, err := f.Format(e); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Data["policy_hash"]; ok {
		t.Error("Format added policy_hash to the caller's entry")
	}
}

type badJSON struct{}

func (badJSON) MarshalJSON() ([]byte, error) {
	return nil, errors.New("cannot marshal card " + visa16)
}

func TestFormatterErrorsCarryNoCardData(t *testing.T) {
	f := &formatter{}
	e := logrus.NewEntry(logrus.New()).WithField("x", badJSON{})
	_, err := f.Format(e)
	if err == nil {
		t.Fatal("got no error, want one")
	}
	assertNoCardData(t, []byte(err.Error()))
}
