package vault

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"strconv"
	"strings"
)

// maxTransitAnswer bounds the bytes read from one transit answer.
const maxTransitAnswer = 64 << 20

// Wire types of answers. A response's base64 plaintext is decoded straight
// into []byte, with no immutable string copy of the card data on the way.
// Requests are written by hand (see body) into one buffer that is wiped.
type (
	batchResp[T any] struct {
		Data struct {
			BatchResults []T `json:"batch_results"`
		} `json:"data"`
	}
	encryptOut struct {
		Ciphertext string `json:"ciphertext"`
		KeyVersion int    `json:"key_version"`
		Error      string `json:"error"`
	}
	decryptOut struct {
		Plaintext []byte `json:"plaintext"`
		Error     string `json:"error"`
	}
	hmacOut struct {
		HMAC  string `json:"hmac"`
		Error string `json:"error"`
	}
)

// decodeBatch decodes the answer of a batch Vault refused as a whole (400)
// into out; true when it holds one result per item, each with its error.
func decodeBatch(r io.Reader, out any, n int) bool {
	b, err := io.ReadAll(io.LimitReader(r, maxTransitAnswer))
	defer wipe(b)
	if err != nil || json.Unmarshal(b, out) != nil {
		return false
	}
	switch o := out.(type) {
	case *batchResp[encryptOut]:
		return len(o.Data.BatchResults) == n
	case *batchResp[decryptOut]:
		return len(o.Data.BatchResults) == n
	case *batchResp[hmacOut]:
		return len(o.Data.BatchResults) == n
	}
	return false
}

// body writes a batch request as JSON by hand: every value is base64 or a
// checked ciphertext, so no escaping is needed, and the plaintexts land in
// one buffer that call wipes (encoding/json would leave copies in its pooled
// encoder buffers).
type body struct{ b []byte }

func newBody(n int, partial bool) *body {
	b := &body{b: make([]byte, 0, 64+n*160)}
	b.b = append(b.b, '{')
	if partial {
		// 200 when some items fail: the answer (with the other items'
		// plaintexts) then stays in call's wiped buffer instead of the
		// api package's error buffer.
		b.b = append(b.b, `"partial_failure_response_code":200,`...)
	}
	b.b = append(b.b, `"batch_input":[`...)
	return b
}

func (b *body) item(i int) {
	if i > 0 {
		b.b = append(b.b, ',')
	}
	b.b = append(b.b, '{')
}

func (b *body) key(k string) {
	if b.b[len(b.b)-1] != '{' {
		b.b = append(b.b, ',')
	}
	b.b = append(b.b, '"')
	b.b = append(b.b, k...)
	b.b = append(b.b, `":"`...)
}

// field writes k: base64(v); omitted when v is empty and omitEmpty.
func (b *body) field(k string, v []byte, omitEmpty bool) {
	if len(v) == 0 && omitEmpty {
		return
	}
	b.key(k)
	b.b = base64.StdEncoding.AppendEncode(b.b, v)
	b.b = append(b.b, '"')
}

// raw writes k: v for a v known to need no escaping.
func (b *body) raw(k, v string) {
	b.key(k)
	b.b = append(b.b, v...)
	b.b = append(b.b, '"')
}

func (b *body) end() { b.b = append(b.b, '}') }

func (b *body) done() []byte { return append(b.b, "]}"...) }

// vaultCiphertext reports whether s has the form "vault:v<N>:<base64>",
// which also makes it safe to write into JSON unescaped.
func vaultCiphertext(s string) bool {
	rest, ok := strings.CutPrefix(s, "vault:v")
	if !ok {
		return false
	}
	v, b64, ok := strings.Cut(rest, ":")
	if !ok || v == "" || b64 == "" || len(b64)%4 != 0 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	for i := 0; i < len(b64); i++ {
		c := b64[i]
		if !isBase62(c) && c != '+' && c != '/' && c != '=' {
			return false
		}
	}
	return true
}

// parseVaultValue splits "vault:v<N>:<base64>".
func parseVaultValue(s string) ([]byte, int, bool) {
	rest, ok := strings.CutPrefix(s, "vault:v")
	if !ok {
		return nil, 0, false
	}
	v, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, 0, false
	}
	ver, err := strconv.Atoi(v)
	if err != nil || ver < 1 {
		return nil, 0, false
	}
	sum, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sum) == 0 {
		return nil, 0, false
	}
	return sum, ver, true
}
