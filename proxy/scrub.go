package proxy

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/unicode"

	"github.com/chdproxy/chdproxy/redact"
)

// errUpstreamUnreadable refuses an answer the proxy cannot scan: relaying bytes it
// could not read for card data would be relaying card data unchecked.
var errUpstreamUnreadable = newError(http.StatusBadGateway, "upstream_response_unreadable",
	"the upstream answer uses an encoding the proxy cannot check for card data; it was not relayed")

// scrubAnswer returns an upstream answer body as the merchant may see it, and fixes
// h (the answer's headers) to match. The proxy asks upstream for identity encoding;
// what comes anyway is handled so that no byte is relayed unscanned:
//
//   - Content-Encoding gzip, x-gzip, deflate: decoded (bounded by maxUpstreamBody),
//     scanned and relayed decoded, without Content-Encoding; any other coding
//     (br, zstd, compress, stacked codings) is refused with 502 upstream_response_unreadable;
//   - a charset other than UTF-8 or ASCII (UTF-16 with or without BOM, Latin-1, …,
//     any WHATWG label): decoded to UTF-8, scanned, and re-encoded only when something
//     was redacted, so clean answers pass byte-identical; an unknown charset, or NUL
//     bytes with no charset (undeclared UTF-16/32), is refused the same way;
//   - no charset and bytes that are not UTF-8: read as windows-1252 (Latin-1).
func scrubAnswer(rd *redact.Redactor, h http.Header, body []byte) ([]byte, error) {
	body, err := decodeContent(h, body)
	if err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt == xlsxType {
		return body, checkArchive(rd, body)
	}
	enc, err := answerCharset(h, body)
	if err != nil {
		return nil, err
	}
	if enc == nil {
		return rd.Scrub(body), nil
	}
	text, err := enc.NewDecoder().Bytes(body)
	if err != nil {
		return nil, errUpstreamUnreadable
	}
	clean := rd.Scrub(text)
	if bytes.Equal(clean, text) {
		return body, nil
	}
	out, err := enc.NewEncoder().Bytes(clean)
	if err != nil {
		return nil, errUpstreamUnreadable
	}
	return out, nil
}

// xlsxType is the transaction-list export's result: a zip archive of XML parts.
const xlsxType = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

// errUpstreamCardData refuses a document that holds card data: masking a value inside
// an archive would mean rewriting it, which is not worth its risk for a report.
var errUpstreamCardData = newError(http.StatusBadGateway, "upstream_response_card_data",
	"the upstream answer is a document holding card data; it was not relayed")

// checkArchive reads every part of a zip-based document with the same rules as any
// answer: a clean document is relayed byte for byte, one that the rules would change
// is refused, and one that cannot be read (not UTF-8 text, too large) too.
func checkArchive(rd *redact.Redactor, body []byte) error {
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil || len(zr.File) > 1000 {
		return errUpstreamUnreadable
	}
	budget := int64(4 * maxUpstreamBody) // decompressed, over all parts: a zip bomb ends here
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return errUpstreamUnreadable
		}
		part, err := io.ReadAll(io.LimitReader(rc, budget+1))
		rc.Close()
		if budget -= int64(len(part)); err != nil || budget < 0 || !utf8.Valid(part) {
			return errUpstreamUnreadable
		}
		if !bytes.Equal(rd.Scrub(part), part) {
			return errUpstreamCardData
		}
	}
	return nil
}

// decodeContent undoes gzip or deflate content coding.
func decodeContent(h http.Header, body []byte) ([]byte, error) {
	ce := strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding")))
	if len(h.Values("Content-Encoding")) > 1 {
		return nil, errUpstreamUnreadable
	}
	var r io.Reader
	switch ce {
	case "", "identity":
		return body, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, errUpstreamUnreadable
		}
		r = zr
	case "deflate": // zlib-wrapped as HTTP says; some servers send it raw
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			r = flate.NewReader(bytes.NewReader(body))
		} else {
			r = zr
		}
	default:
		return nil, errUpstreamUnreadable
	}
	out, err := io.ReadAll(io.LimitReader(r, maxUpstreamBody+1))
	if err != nil {
		return nil, errUpstreamUnreadable
	}
	if len(out) > maxUpstreamBody {
		return nil, errUpstreamBody // a compression bomb ends here too
	}
	h.Del("Content-Encoding")
	return out, nil
}

// answerCharset returns the encoding to read body in, nil for UTF-8.
func answerCharset(h http.Header, body []byte) (encoding.Encoding, error) {
	cs := ""
	if _, params, err := mime.ParseMediaType(h.Get("Content-Type")); err == nil {
		cs = strings.ToLower(strings.TrimSpace(params["charset"]))
	}
	switch {
	case cs == "utf-16le":
		return unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM), nil
	case cs == "utf-16be":
		return unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM), nil
	case cs == "utf-16" || cs == "" && (bytes.HasPrefix(body, []byte{0xfe, 0xff}) || bytes.HasPrefix(body, []byte{0xff, 0xfe})):
		return unicode.UTF16(unicode.BigEndian, unicode.UseBOM), nil // RFC 2781: big endian unless a BOM says otherwise
	case cs == "" && bytes.IndexByte(body, 0) >= 0:
		return nil, errUpstreamUnreadable
	case cs == "" && !utf8.Valid(body):
		return charmap.Windows1252, nil
	case cs == "" || cs == "utf-8" || cs == "utf8" || cs == "us-ascii":
		return nil, nil
	}
	enc, err := htmlindex.Get(cs)
	if err != nil || enc == encoding.Replacement {
		return nil, errUpstreamUnreadable
	}
	if name, _ := htmlindex.Name(enc); name == "utf-8" {
		return nil, nil
	}
	return enc, nil
}
