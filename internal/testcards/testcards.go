// Package testcards holds the card data the tests use: published test numbers of
// the SmartPayments sandbox and of the card networks, never real cards. They live
// in one embedded file, testdata/cards.json, so that card numbers stay out of Go
// source; a test names them by what they are (testcards.Success, testcards.CVV).
//
// The package imports nothing of this module, so any package's tests can use it,
// card's included. The values are variables only because they are read from the
// embedded file: no test may change them.
package testcards

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

//go:embed testdata/cards.json
var cardsJSON []byte

// Card numbers (PANs).
var (
	// Success is the SmartPayments sandbox's frictionless success card (Visa):
	// payments and withdrawals with it succeed.
	Success string
	// Challenge is the sandbox's 3-D Secure challenge card (Visa): a payment goes
	// through the challenge page; a withdrawal is declined.
	Challenge string
	// Decline is the networks' Mastercard test number: valid, and the sandbox
	// declines it.
	Decline string
	// Amex is the networks' American Express test number (15 digits, 4-digit CVV).
	Amex string
	// Visa is the networks' generic Visa test number; the sandbox declines it.
	Visa string
	// BadLuhn is Success with its check digit wrong: not a valid card number.
	BadLuhn string
)

// Card security codes, holder, expiry.
var (
	CVV           string // three digits, for the Visa cards
	CVVMastercard string // three digits, for Decline
	CVVAmex       string // four digits, for Amex
	Holder        string // the card holder name of every test card
	ExpMonth      string // two digits
	ExpYear       string // four digits, in the future
	ExpYearShort  string // the last two digits of ExpYear, as SmartPayments takes it
)

// Wallet payloads: the base64 of decrypted wallet token data, as in the
// SmartPayments documentation's examples.
var (
	DPANApple  string // Apple Pay (payment_method applePayDPan)
	DPANGoogle string // Google Pay (payment_method googlePayDPan)
)

// BasicAuth is the Authorization header of the SmartPayments documentation's
// example merchant (test:qwerty), which the sandbox accepts.
var BasicAuth string

// For leak finders: every test PAN (BadLuhn included), CVV and DPAN above.
var (
	PANs  []string
	CVVs  []string
	DPANs []string
)

func init() {
	var f struct {
		Comment string
		PANs    struct {
			Success, Challenge, Decline, Amex, Visa string
			BadLuhn                                 string `json:"bad_luhn"`
		}
		CVVs   struct{ Visa, Mastercard, Amex string }
		Holder string
		Expiry struct{ Month, Year string }
		DPANs  struct {
			ApplePay  string `json:"apple_pay"`
			GooglePay string `json:"google_pay"`
		} `json:"wallet_dpans"`
		BasicAuth struct{ User, Password string } `json:"basic_auth"`
	}
	d := json.NewDecoder(bytes.NewReader(cardsJSON))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		panic(fmt.Sprintf("testcards: testdata/cards.json: %v", err))
	}
	Success, Challenge, Decline, Amex, Visa, BadLuhn = f.PANs.Success, f.PANs.Challenge, f.PANs.Decline, f.PANs.Amex, f.PANs.Visa, f.PANs.BadLuhn
	CVV, CVVMastercard, CVVAmex = f.CVVs.Visa, f.CVVs.Mastercard, f.CVVs.Amex
	Holder, ExpMonth, ExpYear = f.Holder, f.Expiry.Month, f.Expiry.Year
	if len(ExpYear) == 4 {
		ExpYearShort = ExpYear[2:]
	}
	DPANApple, DPANGoogle = f.DPANs.ApplePay, f.DPANs.GooglePay
	BasicAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte(f.BasicAuth.User+":"+f.BasicAuth.Password))
	PANs = []string{Success, Challenge, Decline, Amex, Visa, BadLuhn}
	CVVs = []string{CVV, CVVMastercard, CVVAmex}
	DPANs = []string{DPANApple, DPANGoogle}
}

// Spellings returns pan as a leak might spell it, by name: "raw", "grouped
// (spaces)", "grouped (dashes)" (groups of four), "JSON \\u-escaped",
// "percent-encoded", "HTML entities", "fullwidth digits" and "Arabic-Indic
// form". pan is ASCII digits.
func Spellings(pan string) map[string]string {
	group := func(sep string) string {
		var b strings.Builder
		for i, c := range pan {
			if i > 0 && i%4 == 0 {
				b.WriteString(sep)
			}
			b.WriteRune(c)
		}
		return b.String()
	}
	each := func(f func(r rune) string) string {
		var b strings.Builder
		for _, c := range pan {
			b.WriteString(f(c))
		}
		return b.String()
	}
	return map[string]string{
		"raw":               pan,
		"grouped (spaces)":  group(" "),
		"grouped (dashes)":  group("-"),
		"JSON \\u-escaped":  each(func(r rune) string { return fmt.Sprintf(`\u%04x`, r) }),
		"percent-encoded":   each(func(r rune) string { return fmt.Sprintf("%%%02X", r) }),
		"HTML entities":     each(func(r rune) string { return fmt.Sprintf("&#%d;", r) }),
		"fullwidth digits":  each(func(r rune) string { return string(r - '0' + '０') }),
		"Arabic-Indic form": each(func(r rune) string { return string(r - '0' + '٠') }),
	}
}
