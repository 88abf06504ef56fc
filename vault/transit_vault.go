package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// keyLabel names the key a call to path uses, as metrics label it: the
// purpose, never the configured key name.
func (t *VaultTransit) keyLabel(path string) string {
	switch {
	case strings.HasSuffix(path, "/"+t.keys[0]):
		return KeyCard.String()
	case strings.HasSuffix(path, "/"+t.keys[1]):
		return KeyCVV.String()
	}
	return "fingerprint"
}

// keyName is the Vault key serving purpose k.
func (t *VaultTransit) keyName(k Key) (string, bool) {
	switch k {
	case KeyCard:
		return t.keys[0], true
	case KeyCVV:
		return t.keys[1], true
	}
	return "", false
}

// call PUTs body to path and decodes the answer into out. The request body
// and the response bytes are wiped before returning. When Vault answers 400
// with a batch_results list of n items (every item failed), call decodes it
// into out and returns nil so items can carry their own errors.
//
// A call refused for its token is retried once with a new one (see auth.do),
// within the same deadline.
func (t *VaultTransit) call(ctx context.Context, op, path string, body []byte, out any, n int) (err error) {
	defer wipe(body)
	defer func(start time.Time) { t.obs.get().TransitCall(op, t.keyLabel(path), n, time.Since(start), err) }(time.Now())
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.auth.do(ctx, op, func() error { return t.send(ctx, op, path, body, out, n) })
}

// send is one attempt of call.
func (t *VaultTransit) send(ctx context.Context, op, path string, body []byte, out any, n int) error {
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	resp, err := t.c.Logical().WriteRawWithContext(cctx, path, body)
	if resp != nil && resp.Body != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) {
			if re.StatusCode == http.StatusBadRequest && n > 0 && resp != nil && resp.Body != nil {
				// Every item failed (no plaintext inside): per-item errors.
				if decodeBatch(resp.Body, out, n) {
					return nil
				}
			}
			return transitStatusErr(op, re.StatusCode)
		}
		return t.transportErr(ctx, cctx, op, err)
	}
	if resp == nil || resp.Body == nil {
		return &TransitError{Op: op, Reason: "empty answer", err: ErrUnavailable}
	}
	var buf bytes.Buffer
	if n := resp.ContentLength; n > 0 && n < maxTransitAnswer {
		buf.Grow(int(n) + bytes.MinRead) // one allocation: no unwiped copies left by growth
	}
	_, rerr := buf.ReadFrom(io.LimitReader(resp.Body, maxTransitAnswer))
	b := buf.Bytes()
	defer wipe(b[:cap(b)])
	if rerr != nil {
		return t.transportErr(ctx, cctx, op, rerr)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return &TransitError{Op: op, Status: resp.StatusCode, Reason: "malformed answer", err: ErrUnavailable}
	}
	return nil
}

// transportErr classifies an error without an HTTP answer.
func (t *VaultTransit) transportErr(ctx, cctx context.Context, op string, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		// The caller went away; keep that visible (not an outage).
		return &TransitError{Op: op, Reason: "canceled", err: context.Canceled}
	case errors.Is(cctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded), isNetTimeout(err):
		return &TransitError{Op: op, Reason: "timeout", err: ErrTimeout}
	}
	return &TransitError{Op: op, Reason: "no answer", err: ErrUnavailable}
}

// Encrypt implements Transit (POST {mount}/encrypt/{key} with batch_input).
func (t *VaultTransit) Encrypt(ctx context.Context, key Key, items []EncryptItem) ([]EncryptResult, error) {
	name, ok := t.keyName(key)
	if !ok {
		return nil, &TransitError{Op: "encrypt", Reason: "unknown key"}
	}
	if len(items) == 0 {
		return nil, nil
	}
	b := newBody(len(items), true)
	for i, it := range items {
		b.item(i)
		b.field("plaintext", it.Plaintext, false)
		b.field("context", it.Context, true)
		b.field("associated_data", it.AAD, true)
		b.end()
	}
	body := b.done()
	var out batchResp[encryptOut]
	if err := t.call(ctx, "encrypt", t.mount+"/encrypt/"+name, body, &out, len(items)); err != nil {
		return nil, err
	}
	if len(out.Data.BatchResults) != len(items) {
		return nil, countErr("encrypt", len(out.Data.BatchResults), len(items))
	}
	res := make([]EncryptResult, len(items))
	for i, r := range out.Data.BatchResults {
		if r.Error != "" || r.Ciphertext == "" {
			res[i].Err = itemErr("encrypt", false)
			continue
		}
		res[i] = EncryptResult{Ciphertext: r.Ciphertext, KeyVersion: r.KeyVersion}
	}
	return res, nil
}

// Decrypt implements Transit (POST {mount}/decrypt/{key} with batch_input).
func (t *VaultTransit) Decrypt(ctx context.Context, key Key, items []DecryptItem) ([]DecryptResult, error) {
	name, ok := t.keyName(key)
	if !ok {
		return nil, &TransitError{Op: "decrypt", Reason: "unknown key"}
	}
	if len(items) == 0 {
		return nil, nil
	}
	res := make([]DecryptResult, len(items))
	b := newBody(len(items), true)
	var sent []int // indexes of the items sent
	for i, it := range items {
		if !vaultCiphertext(it.Ciphertext) {
			res[i].Err = itemErr("decrypt", true) // not even shaped like one
			continue
		}
		b.item(len(sent))
		b.raw("ciphertext", it.Ciphertext)
		b.field("context", it.Context, true)
		b.field("associated_data", it.AAD, true)
		b.end()
		sent = append(sent, i)
	}
	if len(sent) == 0 {
		return res, nil
	}
	body := b.done()
	var out batchResp[decryptOut]
	if err := t.call(ctx, "decrypt", t.mount+"/decrypt/"+name, body, &out, len(sent)); err != nil {
		return nil, err
	}
	if len(out.Data.BatchResults) != len(sent) {
		for _, r := range out.Data.BatchResults {
			wipe(r.Plaintext)
		}
		return nil, countErr("decrypt", len(out.Data.BatchResults), len(sent))
	}
	for k, r := range out.Data.BatchResults {
		i := sent[k]
		if r.Error != "" {
			wipe(r.Plaintext)
			res[i].Err = itemErr("decrypt", true)
			continue
		}
		res[i].Plaintext = r.Plaintext
	}
	return res, nil
}

// HMAC implements Transit (POST {mount}/hmac/{key}/sha2-256 with
// batch_input of context || 0x00 || input).
func (t *VaultTransit) HMAC(ctx context.Context, items []HMACItem) ([]HMACResult, error) {
	if len(items) == 0 {
		return nil, nil
	}
	b := newBody(len(items), false)
	for i, it := range items {
		m := hmacMessage(it.Context, it.Input)
		b.item(i)
		b.field("input", m, false)
		b.end()
		wipe(m)
	}
	body := b.done()
	var out batchResp[hmacOut]
	if err := t.call(ctx, "hmac", t.mount+"/hmac/"+t.keys[2]+"/sha2-256", body, &out, len(items)); err != nil {
		return nil, err
	}
	if len(out.Data.BatchResults) != len(items) {
		return nil, countErr("hmac", len(out.Data.BatchResults), len(items))
	}
	res := make([]HMACResult, len(items))
	for i, r := range out.Data.BatchResults {
		sum, ver, ok := parseVaultValue(r.HMAC)
		if r.Error != "" || !ok {
			res[i].Err = itemErr("hmac", false)
			continue
		}
		res[i] = HMACResult{Sum: sum, KeyVersion: ver}
	}
	return res, nil
}

// Ping implements Transit: one HMAC through the fingerprint key, which
// checks reachability, unsealing, the token and the key in one call.
func (t *VaultTransit) Ping(ctx context.Context) error {
	res, err := t.HMAC(ctx, []HMACItem{{Context: []byte("chdproxy"), Input: []byte("readiness")}})
	if err != nil {
		return t.explain(ctx, err) // names a sealed or standby Vault (TransitFault)
	}
	return res[0].Err
}
