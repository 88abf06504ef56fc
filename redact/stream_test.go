package redact

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestStreamScrubsEveryLine(t *testing.T) {
	in := strings.Join([]string{
		`{"level":"info","msg":"charge ` + visa16 + `","card_cvv":"737","time":"2024-05-01T12:34:56Z"}`,
		`time="2024-05-01T12:34:56Z" level=info msg="card 4111 1111 1111 1111" card_cvv=737`,
		"POST /authorize HTTP/1.1\r",
		"Authorization: Basic bWVyY2hhbnQ6c2VjcmV0\r",
		"Proxy-Authorization: Bearer sk_Z3kq9XbW7TmP2vLr8NcY4h\r",
		"\r",
		`card_number=4111-1111-1111-1111&card_cvv=737&amount=10.00`,
		`/pay?pan=` + percentEncoded(visa16),
		`{"pan":"` + jsonEscaped(visa16) + `"}`,
		`カード番号 ` + toScript(visa16, '０'),
		`order ORD-2024-0501-77812 paid 1250.00 EUR at 1714566896123`,
		`no newline at the end ` + amex15,
	}, "\n")
	var out bytes.Buffer
	if err := New(Rules{}).Stream(&out, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	assertNoCardData(t, out.Bytes())
	if strings.Contains(out.String(), "bWVyY2hhbnQ6c2VjcmV0") || strings.Contains(out.String(), "sk_Z3kq") {
		t.Errorf("credentials survived:\n%s", out.String())
	}
	gotLines, wantLines := strings.Split(out.String(), "\n"), strings.Split(in, "\n")
	if len(gotLines) != len(wantLines) {
		t.Fatalf("got %d lines, want %d", len(gotLines), len(wantLines))
	}
	if got, want := gotLines[10], wantLines[10]; got != want {
		t.Errorf("clean line changed: got %q, want %q", got, want)
	}
	if got, want := gotLines[len(gotLines)-1], "no newline at the end ***********0005"; got != want {
		t.Errorf("last line: got %q, want %q", got, want)
	}
	if !strings.HasSuffix(gotLines[3], "\r") {
		t.Errorf("CRLF line lost its CR: %q", gotLines[3])
	}
}

func TestStreamHandlesLongLines(t *testing.T) {
	filler := strings.Repeat(`{"k":"v","n":12345} `, 150_000) // 3 MB
	in := visa16 + " " + filler + visa16 + filler + `"cvv":"737"` + "\nnext " + visa16 + "\n"
	var out bytes.Buffer
	if err := New(Rules{}).Stream(&out, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	assertNoCardData(t, out.Bytes())
	if got, want := out.Len(), len(in)-len("737")+len(redacted); got != want {
		t.Errorf("got %d bytes, want %d", got, want)
	}
	if !strings.HasSuffix(out.String(), "\nnext ************1111\n") {
		t.Errorf("the line after the long one is wrong: %q", out.String()[out.Len()-30:])
	}
}

func TestStreamRefusesLinesLongerThanMaxLine(t *testing.T) {
	in := "first " + visa16 + "\n" + strings.Repeat("a", maxLine+1) + visa16 + "\n"
	var out bytes.Buffer
	err := New(Rules{}).Stream(&out, strings.NewReader(in))
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("got error %v, want ErrLineTooLong", err)
	}
	if got, want := out.String(), "first ************1111\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

type failingWriter struct{}

var errWrite = errors.New("disk full")

func (failingWriter) Write(p []byte) (int, error) { return 0, errWrite }

func TestStreamReturnsWriteErrors(t *testing.T) {
	err := New(Rules{}).Stream(failingWriter{}, strings.NewReader("a\n"))
	if !errors.Is(err, errWrite) {
		t.Errorf("got %v, want %v", err, errWrite)
	}
}

type failingReader struct{}

var errRead = errors.New("read failed")

func (failingReader) Read(p []byte) (int, error) { return 0, errRead }

func TestStreamReturnsReadErrors(t *testing.T) {
	var out bytes.Buffer
	if err := New(Rules{}).Stream(&out, failingReader{}); !errors.Is(err, errRead) {
		t.Errorf("got %v, want %v", err, errRead)
	}
}
