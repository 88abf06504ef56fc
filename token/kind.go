// Package token names the kinds of token chdproxy issues, the SmartPayments payment
// method each stands for, and the lifetime cap of the one-time secrets a token holds.
// It imports nothing of ours, so policy, vault and proxy share one definition.
package token

import "time"

// Kind is what a token stands for.
type Kind string

// The token kinds, in canonical order (see Kinds).
const (
	Card      Kind = "card"
	ApplePay  Kind = "apple_pay"
	GooglePay Kind = "google_pay"
)

// MaxOneTimeTTL caps the lifetime of a CVV and of a wallet token: sensitive
// authentication data and one-time cryptograms are kept minutes, not hours.
const MaxOneTimeTTL = 60 * time.Minute

// Kinds returns every kind in canonical order.
func Kinds() []Kind { return []Kind{Card, ApplePay, GooglePay} }

// Valid reports whether k is one of the kinds.
func (k Kind) Valid() bool { return k == Card || k == ApplePay || k == GooglePay }

// Wallet reports whether k is an Apple Pay or Google Pay token.
func (k Kind) Wallet() bool { return k == ApplePay || k == GooglePay }

// PaymentMethod is the SmartPayments payment_method value of k ("card",
// "applePayDPan", "googlePayDPan"), or "" for an unknown kind. SmartPayments reads
// an absent payment_method as "card".
func (k Kind) PaymentMethod() string {
	switch k {
	case Card:
		return "card"
	case ApplePay:
		return "applePayDPan"
	case GooglePay:
		return "googlePayDPan"
	}
	return ""
}

// KindOf returns the kind whose payment method is method.
func KindOf(method string) (Kind, bool) {
	for _, k := range Kinds() {
		if k.PaymentMethod() == method {
			return k, true
		}
	}
	return "", false
}
