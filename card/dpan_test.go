package card

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

// The Apple Pay and Google Pay examples of the SmartPayments documentation.
const (
	applePayDPAN  = "eyJhcHBsaWNhdGlvblByaW1hcnlBY2NvdW50TnVtYmVyIjoiKioqIiwiYXBwbGljYXRpb25FeHBpcmF0aW9uRGF0ZSI6IioqKiIsImN1cnJlbmN5Q29kZSI6Ijk3OCIsInRyYW5zYWN0aW9uQW1vdW50IjoxMDAsImRldmljZU1hbnVmYWN0dXJlcklkZW50aWZpZXIiOiIqKioiLCJwYXltZW50RGF0YVR5cGUiOiIzRFNlY3VyZSIsInBheW1lbnREYXRhIjp7Im9ubGluZVBheW1lbnRDcnlwdG9ncmFtIjoiKioqIiwiZWNpSW5kaWNhdG9yIjoiNyJ9fQ=="
	googlePayDPAN = "eyJzaWduYXR1cmUiOiIqKioiLCJpbnRlcm1lZGlhdGVTaWduaW5nS2V5Ijp7InNpZ25lZEtleSI6Insia2V5VmFsdWUiOiIqKioiLCJrZXlFeHBpcmF0aW9uIjoiMTcxMTQzNDQ1MjgzNiJ9Iiwic2lnbmF0dXJlcyI6WyIqKioiXX0sInByb3RvY29sVmVyc2lvbiI6IkVDdjIiLCJzaWduZWRNZXNzYWdlIjoieyJlbmNyeXB0ZWRNZXNzYWdlIjoiKioqIiwiZXBoZW1lcmFsUHVibGljS2V5IjoiKioqIiwidGFnIjoiKioqIn0ifQ"
)

type dpanCase struct {
	name string
	in   string
	err  error
}

// bytesOf returns n bytes that encode to both '+' and '/' in std base64.
func bytesOf(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(0xfb + i%5)
	}
	return b
}

var dpanCases = []dpanCase{
	{name: "the Apple Pay example (std, padded) is valid", in: applePayDPAN},
	{name: "the Google Pay example (std, unpadded) is valid", in: googlePayDPAN},
	{name: "URL-safe padded base64 is valid", in: base64.URLEncoding.EncodeToString(bytesOf(100))},
	{name: "URL-safe unpadded base64 is valid", in: base64.RawURLEncoding.EncodeToString(bytesOf(100))},
	{name: "std base64 with + and / is valid", in: base64.StdEncoding.EncodeToString(bytesOf(100))},
	{name: "exactly 16 bytes is valid", in: base64.StdEncoding.EncodeToString(bytesOf(16))},
	{name: "exactly 16 KiB is valid", in: base64.StdEncoding.EncodeToString(bytesOf(16 << 10))},
	{name: "exactly 16 KiB unpadded is valid", in: base64.RawStdEncoding.EncodeToString(bytesOf(16 << 10))},

	{name: "15 bytes are too short", in: base64.StdEncoding.EncodeToString(bytesOf(15)), err: ErrDPAN},
	{name: "16 KiB and 1 byte are too long", in: base64.StdEncoding.EncodeToString(bytesOf(16<<10 + 1)), err: ErrDPAN},
	{name: "16 KiB and 1 byte unpadded are too long", in: base64.RawStdEncoding.EncodeToString(bytesOf(16<<10 + 1)), err: ErrDPAN},
	{name: "an empty payload is invalid", in: "", err: ErrDPAN},
	{name: "a PAN is not a payload", in: testcards.Success, err: ErrDPAN},
	{name: "a newline inside is invalid", in: applePayDPAN[:76] + "\n" + applePayDPAN[76:], err: ErrDPAN},
	{name: "a trailing newline is invalid", in: applePayDPAN + "\n", err: ErrDPAN},
	{name: "a space is invalid", in: "eyJh cHBsaWNhdGlvblByaW1hcnlBY2NvdW50", err: ErrDPAN},
	{name: "mixed std and URL-safe alphabets are invalid", in: "ab+cd-ef/gh_ijklmnopqrstuvwxyzAB", err: ErrDPAN},
	{name: "padding in the middle is invalid", in: "AAAA=AAAAAAAAAAAAAAAAAAAAAAAA", err: ErrDPAN},
	{name: "too much padding is invalid", in: "AAAAAAAAAAAAAAAAAAAAAA===", err: ErrDPAN},
	{name: "padded text of a wrong length is invalid", in: "AAAAAAAAAAAAAAAAAAAAAA=", err: ErrDPAN},
	{name: "unpadded text of an impossible length is invalid", in: "AAAAAAAAAAAAAAAAAAAAAAAAA", err: ErrDPAN},
	{name: "JSON is not base64", in: `{"paymentData":"x"}`, err: ErrDPAN},
	{name: "non-ASCII letters are invalid", in: "ÄAAAAAAAAAAAAAAAAAAAAAAAAAAA", err: ErrDPAN},
}

func TestParseDPAN(t *testing.T) {
	for _, tc := range dpanCases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDPAN(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got error %v, want %v", err, tc.err)
			}
			if err != nil {
				if !d.IsZero() {
					t.Fatal("got a DPAN with an error, want the zero DPAN")
				}
				return
			}
			if got := string(d.Reveal()); got != tc.in {
				t.Fatalf("Reveal must return the text as received: got %d bytes %.20q…", len(got), got)
			}
		})
	}
}

func TestParseDPANRefusesHugeInputCheaply(t *testing.T) {
	huge := strings.Repeat("A", 1<<20)
	allocs := testing.AllocsPerRun(10, func() { _, _ = ParseDPAN(huge) })
	if allocs != 0 {
		t.Fatalf("got %v allocations for an oversize payload, want 0", allocs)
	}
}

func TestDPANFromBytes(t *testing.T) {
	b := []byte(applePayDPAN)
	d := DPANFromBytes(b)
	clear(b)
	if got := string(d.Reveal()); got != applePayDPAN {
		t.Fatal("DPANFromBytes must copy its input")
	}
	if !DPANFromBytes(nil).IsZero() {
		t.Fatal("empty bytes must give the zero DPAN")
	}
	p, _ := ParseDPAN(applePayDPAN)
	if !d.equal(p) || d.equal(DPAN{}) {
		t.Fatal("equal must compare the text")
	}
}
