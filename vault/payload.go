package vault

import (
	"encoding/binary"
	"time"
)

// The plaintexts encrypted under the card key. A compact binary form (not
// JSON, not strings) so every copy is a []byte the vault can wipe:
//
//	card:   'C' 1 uvarint(len) PAN digits, month (1 byte), year (uint16 BE), uvarint(len) holder
//	wallet: 'W' 1 uvarint(len) network, uvarint(len) DPAN text
//
// The CVV is encrypted alone, as its digits, under the CVV key.
const (
	payloadCard    = 'C'
	payloadWallet  = 'W'
	payloadVersion = 1
)

type cardPayload struct {
	pan, holder []byte // views into the decrypted buffer
	month, year int
}

type walletPayload struct {
	network, dpan []byte // views into the decrypted buffer
}

func encodeCard(pan []byte, month, year int, holder []byte) []byte {
	b := make([]byte, 0, 2+2*binary.MaxVarintLen16+len(pan)+3+len(holder))
	b = append(b, payloadCard, payloadVersion)
	b = binary.AppendUvarint(b, uint64(len(pan)))
	b = append(b, pan...)
	b = append(b, byte(month))
	b = binary.BigEndian.AppendUint16(b, uint16(year))
	b = binary.AppendUvarint(b, uint64(len(holder)))
	return append(b, holder...)
}

func encodeWallet(network string, dpan []byte) []byte {
	b := make([]byte, 0, 2+2*binary.MaxVarintLen32+len(network)+len(dpan))
	b = append(b, payloadWallet, payloadVersion)
	b = binary.AppendUvarint(b, uint64(len(network)))
	b = append(b, network...)
	b = binary.AppendUvarint(b, uint64(len(dpan)))
	return append(b, dpan...)
}

// field reads one uvarint-length-prefixed field.
func field(b []byte) (f, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

func decodeCard(b []byte) (cardPayload, bool) {
	var p cardPayload
	if len(b) < 2 || b[0] != payloadCard || b[1] != payloadVersion {
		return p, false
	}
	var ok bool
	if p.pan, b, ok = field(b[2:]); !ok || len(b) < 3 {
		return p, false
	}
	p.month = int(b[0])
	p.year = int(binary.BigEndian.Uint16(b[1:3]))
	if p.holder, b, ok = field(b[3:]); !ok || len(b) != 0 {
		return p, false
	}
	return p, true
}

func decodeWallet(b []byte) (walletPayload, bool) {
	var p walletPayload
	if len(b) < 2 || b[0] != payloadWallet || b[1] != payloadVersion {
		return p, false
	}
	var ok bool
	if p.network, b, ok = field(b[2:]); !ok {
		return p, false
	}
	if p.dpan, b, ok = field(b); !ok || len(b) != 0 {
		return p, false
	}
	return p, true
}

// The associated data transit authenticates with each ciphertext (record v2).
// A reader trusts a record's metadata as stored, so everything it acts on is
// bound here: a record whose kind, times or card metadata were changed in
// Redis no longer decrypts (ErrIntegrity), and nothing is revealed.
//
//	card: "chd-card\x00" fields(token, merchant, kind, created ms, expires ms,
//	      cvv_expires ms or 0, bin, last4, brand, exp month, exp year, network)
//	cvv:  "chd-cvv\x00"  fields(token, merchant, cvv_expires ms, cvv nonce)
//
// Each field is uvarint(len) bytes, times are uint64 BE milliseconds. The
// fingerprints are not bound: transit computes them concurrently with the
// encryption (binding them would cost a round trip), and they reveal nothing.
// The CVV nonce is bound only to the CVV: consuming the CVV clears it in the
// record, which must leave the card decryptable.
const (
	aadCard = "chd-card\x00"
	aadCVV  = "chd-cvv\x00"
)

func appendAADField(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendAADTime(b []byte, t *time.Time) []byte {
	var ms int64
	if t != nil {
		ms = t.UnixMilli()
	}
	return binary.BigEndian.AppendUint64(b, uint64(ms))
}

// cardAAD is the associated data of the record's card or wallet ciphertext.
func (r *storedRecord) cardAAD(token string) []byte {
	b := []byte(aadCard)
	for _, s := range []string{token, r.Merchant, string(r.Kind)} {
		b = appendAADField(b, s)
	}
	b = appendAADTime(appendAADTime(appendAADTime(b, &r.CreatedAt), &r.ExpiresAt), r.CVVExpiresAt)
	var c CardMeta
	if r.Card != nil {
		c = *r.Card
	}
	for _, s := range []string{c.BIN, c.Last4, string(c.Brand), c.ExpMonth, c.ExpYear, string(r.Network)} {
		b = appendAADField(b, s)
	}
	return b
}

// cvvAAD is the associated data of the record's CVV ciphertext: it decrypts
// only while the record still holds the nonce it was sealed with.
func (r *storedRecord) cvvAAD(token string) []byte {
	b := []byte(aadCVV)
	for _, s := range []string{token, r.Merchant} {
		b = appendAADField(b, s)
	}
	return appendAADField(appendAADTime(b, r.CVVExpiresAt), r.CVVNonce)
}
