package vault

import (
	"encoding/binary"
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
