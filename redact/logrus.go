package redact

import (
	"errors"
	"io"
	"log"
	"maps"
	"strings"

	"github.com/sirupsen/logrus"
)

// formatter is the logrus formatter of every logger in chdproxy. It adds
// Fields to the entry, formats it as a JSON line (or with Inner), then scrubs
// the formatted bytes: the message, every field and every error are covered,
// whatever their type, because nothing is looked at before it is text. Hooks
// run before formatters and see raw entries: do not add hooks that ship
// entries elsewhere.
type formatter struct {
	Inner  logrus.Formatter // nil: logrus.JSONFormatter's lines, written by appendJSONLine
	R      *Redactor        // nil: New(Rules{})
	Fields logrus.Fields    // added to every entry (e.g. policy_hash); they win over the entry's own
}

var (
	callerFormatter logrus.Formatter = &logrus.JSONFormatter{}
	defaultRedactor                  = New(Rules{})
)

// Format implements logrus.Formatter.
func (f *formatter) Format(e *logrus.Entry) ([]byte, error) {
	r := f.R
	if r == nil {
		r = defaultRedactor
	}
	b, err := f.format(e)
	if err != nil {
		// logrus prints this error on stderr: scrub its text as well.
		return nil, errors.New("redact: formatting log entry: " + r.String(err.Error()))
	}
	return r.Scrub(b), nil
}

func (f *formatter) format(e *logrus.Entry) ([]byte, error) {
	if f.Inner == nil && e.Caller == nil {
		if e.Buffer == nil {
			return appendJSONLine(nil, e, f.Fields)
		}
		b, err := appendJSONLine(e.Buffer.AvailableBuffer(), e, f.Fields)
		if err != nil {
			return nil, err
		}
		e.Buffer.Write(b) // keeps what append grew for the pooled buffer
		return e.Buffer.Bytes(), nil
	}
	inner := f.Inner
	if inner == nil { // a caller's func and file: logrus' own formatter has them
		inner = callerFormatter
	}
	if len(f.Fields) > 0 {
		// Work on a copy: Entry.String and Entry.Bytes format the caller's entry.
		c := *e
		c.Data = make(logrus.Fields, len(e.Data)+len(f.Fields))
		maps.Copy(c.Data, e.Data)
		maps.Copy(c.Data, f.Fields)
		e = &c
	}
	return inner.Format(e)
}

// NewLogger returns a logger writing JSON lines to w, each scrubbed by r
// (New(Rules{}) when nil) and carrying "policy_hash".
func NewLogger(w io.Writer, r *Redactor, policyHash string) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(w)
	l.SetFormatter(&formatter{
		R:      r,
		Fields: logrus.Fields{"policy_hash": policyHash},
	})
	l.SetLevel(logrus.InfoLevel)
	return l
}

// StdLogger returns a standard library logger writing into l at error
// level, for http.Server.ErrorLog and httputil.ReverseProxy.ErrorLog: their
// messages then pass through l's formatter like any other entry. Writes are
// synchronous.
func StdLogger(l *logrus.Logger) *log.Logger {
	return log.New(stdWriter{l}, "", 0)
}

type stdWriter struct{ l *logrus.Logger }

func (w stdWriter) Write(p []byte) (int, error) {
	w.l.WithField("logger", "stdlib").Error(strings.TrimRight(string(p), "\r\n"))
	return len(p), nil
}
