package token

import "testing"

func TestPaymentMethodRoundTrips(t *testing.T) {
	for _, k := range Kinds() {
		got, ok := KindOf(k.PaymentMethod())
		if !ok || got != k {
			t.Errorf("KindOf(%q) = %q, %v; want %q", k.PaymentMethod(), got, ok, k)
		}
	}
	if _, ok := KindOf("applepaydpan"); ok {
		t.Error("payment methods must match exactly, as SmartPayments reads them")
	}
	if Kind("card ").Valid() || Kind("").PaymentMethod() != "" {
		t.Error("an unknown kind must be neither valid nor have a payment method")
	}
}

func TestWalletKinds(t *testing.T) {
	for k, want := range map[Kind]bool{Card: false, ApplePay: true, GooglePay: true} {
		if k.Wallet() != want {
			t.Errorf("%s.Wallet() = %v, want %v", k, !want, want)
		}
	}
}
