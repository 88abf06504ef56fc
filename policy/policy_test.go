package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/deploy"
)

func TestShippedPolicyLintsClean(t *testing.T) {
	for _, dev := range []bool{false, true} {
		_, probs := LintBytes(deploy.PolicyYAML, LintOptions{Dev: dev})
		if len(probs) > 0 {
			t.Errorf("deploy/policy.yaml (dev=%v) has problems:\n%s", dev, listProblems(probs))
		}
	}
	// The embedded copy is the file in the repository.
	b, err := os.ReadFile("../deploy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(deploy.PolicyYAML) {
		t.Error("deploy.PolicyYAML differs from deploy/policy.yaml")
	}
	if _, probs, err := LintFile("../deploy/policy.yaml", LintOptions{}); err != nil || len(probs) > 0 {
		t.Errorf("LintFile: got %v, %v; want no problem", probs, err)
	}
}

func TestDefaultPolicy(t *testing.T) {
	p := Default()
	if p == nil {
		_, err := LoadDefault()
		t.Fatalf("Default() = nil: %v", err)
	}
	sum := sha256.Sum256(deploy.PolicyYAML)
	if got, want := p.Hash, hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Hash: got %q, want %q", got, want)
	}
	if p.Tokens.Card != 24*time.Hour || p.Tokens.CVV != 10*time.Minute || p.Tokens.Wallet != 10*time.Minute {
		t.Errorf("Tokens: got %+v, want 24h/10m/10m", p.Tokens)
	}
	if p.Logging.PANMask != PANMaskLast4 {
		t.Errorf("PANMask: got %q, want %q", p.Logging.PANMask, PANMaskLast4)
	}
	if !slices.Contains(p.Redaction.Headers, "Proxy-Authorization") || !slices.Contains(p.Redaction.Fields, "card_cvv") {
		t.Errorf("Redaction: got %+v", p.Redaction)
	}

	// Exactly the three chd-api calls inject, all to the card-data host.
	var injecting []string
	for _, r := range p.Routes {
		injecting = append(injecting, r.Path)
		u, ok := p.Upstream(r.Upstream)
		if !ok || !u.CardData || u.BaseURL != "https://chd-api.smartcore.pro" {
			t.Errorf("%s: upstream %+v, want the chd-api card-data host", r.Path, u)
		}
	}
	if want := []string{"/initPaymentHost2Host", "/authorize", "/withdrawal/init"}; !slices.Equal(injecting, want) {
		t.Errorf("injection routes: got %v, want %v", injecting, want)
	}
	var passing []string
	for _, r := range p.Passthrough {
		passing = append(passing, r.Path)
		if u, _ := p.Upstream(r.Upstream); u.BaseURL != "https://api-gateway.smartcore.pro" || u.CardData {
			t.Errorf("%s: upstream %+v, want api-gateway", r.Path, u)
		}
	}
	wantPass := []string{"/initPayment", "/check", "/refund", "/recurrent", "/capture", "/cancel", "/withdrawal/tokenize-form", "/withdrawal/balance/get"}
	if !slices.Equal(passing, wantPass) {
		t.Errorf("passthrough routes: got %v, want %v", passing, wantPass)
	}

	h2h, ok := p.InjectRoute("/initPaymentHost2Host")
	if !ok || !h2h.Payment || !h2h.InjectsCVV() || h2h.PaymentMethodField != "payment_method" {
		t.Fatalf("initPaymentHost2Host: got %+v", h2h)
	}
	fields := func(ins []Injection) (out []string) {
		for _, in := range ins {
			out = append(out, in.Field+"<-"+in.Attribute)
		}
		return out
	}
	wantFields := map[string][]string{
		KindCard:      {"card_number<-pan", "card_exp_month<-exp_month", "card_exp_year<-exp_year", "card_cvv<-cvv", "card_holder<-holder"},
		KindApplePay:  {"apple_pay_dpan<-dpan", "apple_pay_payment_method_network<-network"},
		KindGooglePay: {"google_pay_dpan<-dpan", "google_pay_payment_method_network<-network"},
	}
	for kind, want := range wantFields {
		if got := fields(h2h.InjectionsFor(kind)); !slices.Equal(got, want) {
			t.Errorf("initPaymentHost2Host %s: got %v, want %v", kind, got, want)
		}
	}

	auth, _ := p.InjectRoute("/authorize")
	if !auth.Accepts(KindCard) || auth.Accepts(KindApplePay) || !auth.InjectsCVV() {
		t.Errorf("authorize: got %+v", auth)
	}
	if got, want := fields(auth.InjectionsFor(KindCard)), wantFields[KindCard]; !slices.Equal(got, want) {
		t.Errorf("authorize: got %v, want %v", got, want)
	}

	wd, _ := p.InjectRoute("/withdrawal/init")
	if wd.Payment || wd.InjectsCVV() || wd.Accepts(KindGooglePay) {
		t.Errorf("withdrawal/init must be card only, without CVV: got %+v", wd)
	}
	if got, want := fields(wd.InjectionsFor(KindCard)), []string{"customer_card_number<-pan", "customer_card_exp_month<-exp_month", "customer_card_exp_year<-exp_year"}; !slices.Equal(got, want) {
		t.Errorf("withdrawal/init: got %v, want %v", got, want)
	}
	if in, ok := wd.Field("customer_card_number"); !ok || in.Attribute != AttrPAN || in.Location != LocationBody {
		t.Errorf("withdrawal/init customer_card_number: got %+v, %v", in, ok)
	}
	if _, ok := wd.Field("card_cvv"); ok {
		t.Error("withdrawal/init names card_cvv")
	}
}

func TestLookupsMatchExactPathsOnly(t *testing.T) {
	p := Default()
	for _, path := range []string{"/authorize", "/check"} {
		_, inj := p.InjectRoute(path)
		_, pass := p.PassthroughRoute(path)
		if inj == pass {
			t.Errorf("%s: injection %v, passthrough %v; want exactly one", path, inj, pass)
		}
	}
	for _, path := range []string{"/authorize/", "/Authorize", "/authorize?x=1", "authorize", "", "/check/", "//check"} {
		if _, ok := p.InjectRoute(path); ok {
			t.Errorf("InjectRoute(%q) matched", path)
		}
		if _, ok := p.PassthroughRoute(path); ok {
			t.Errorf("PassthroughRoute(%q) matched", path)
		}
	}
	if r, ok := p.PassthroughRoute("/withdrawal/balance/get"); !ok || r.Method != "POST" || r.Upstream != "api-gateway" {
		t.Errorf("withdrawal/balance/get: got %+v, %v", r, ok)
	}
	if _, ok := p.Upstream("nope"); ok {
		t.Error("Upstream(nope) found")
	}
}

func TestDecodeFillsDefaults(t *testing.T) {
	p, probs := Decode([]byte(basePolicy))
	if len(probs) > 0 {
		t.Fatal(listProblems(probs))
	}
	if p.Routes[1].Method != "POST" || p.Passthrough[0].Method != "POST" {
		t.Errorf("method: got %q and %q, want POST", p.Routes[1].Method, p.Passthrough[0].Method)
	}
	if in := p.Routes[1].Inject[0]; !slices.Equal(in.Kinds, []string{KindCard}) || in.Location != LocationBody {
		t.Errorf("payout inject: got %+v, want kinds [card] and location body", in)
	}
	p, _ = Decode([]byte(strings.Replace(basePolicy, "field: card_number,", `field: "body:card_number",`, 1)))
	if in := p.Routes[0].Inject[0]; in.Field != "card_number" || in.Location != LocationBody {
		t.Errorf(`"body:card_number": got %+v`, in)
	}
}

func TestWithUpstreamsOverridesACopy(t *testing.T) {
	p := Default()
	dev, err := p.WithUpstreams(map[string]string{"chd-api": "http://127.0.0.1:8083", "api-gateway": "http://127.0.0.1:8083"})
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := dev.Upstream("chd-api"); u.BaseURL != "http://127.0.0.1:8083" || !u.Overridden || !u.CardData {
		t.Errorf("overridden chd-api: got %+v", u)
	}
	if u, _ := p.Upstream("chd-api"); u.BaseURL != "https://chd-api.smartcore.pro" || u.Overridden {
		t.Errorf("original chd-api changed: got %+v", u)
	}
	if dev.Hash != p.Hash {
		t.Error("Hash changed")
	}
	if err := dev.Validate(LintOptions{Dev: true}); err != nil {
		t.Errorf("dev validation: %v", err)
	}
	dev.Routes[0].Inject[0].Kinds[0] = "changed"
	if p.Routes[0].Inject[0].Kinds[0] == "changed" {
		t.Error("the copy shares route slices with the original")
	}
	dev, _ = p.WithUpstreams(map[string]string{"chd-api": "http://127.0.0.1:8083"})
	var inv *InvalidError
	if err := dev.Validate(LintOptions{}); !errors.As(err, &inv) || len(inv.Problems) != 1 {
		t.Errorf("production validation of a plain-http upstream: got %v, want one problem", err)
	}
	if _, err := p.WithUpstreams(map[string]string{"chd": "https://x"}); err == nil {
		t.Error("unknown upstream name: got no error")
	}
}

func TestLoadAndParseRefuseProblems(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(basePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	badYAML := strings.Replace(basePolicy, "cvv_ttl: 10m", "cvv_ttl: 2h", 1)
	if err := os.WriteFile(bad, []byte(badYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := Load(good, LintOptions{}); err != nil || p == nil {
		t.Fatalf("Load(good): %v", err)
	}
	p, err := Load(bad, LintOptions{})
	var inv *InvalidError
	if p != nil || !errors.As(err, &inv) || len(inv.Problems) != 1 {
		t.Fatalf("Load(bad): got %v, %v; want nil and one problem", p, err)
	}
	if want := "policy: 1 problem: line 24: tokens.cvv_ttl: 2h is above the hard cap of 1h"; err.Error() != want {
		t.Errorf("got %q, want %q", err.Error(), want)
	}
	if _, err := Parse([]byte(badYAML), LintOptions{}); !errors.As(err, &inv) {
		t.Errorf("Parse(bad): got %v", err)
	}
	if _, _, err := LintFile(filepath.Join(dir, "missing.yaml"), LintOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LintFile(missing): got %v, want not-exist", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), LintOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing): got %v, want not-exist", err)
	}
}

func TestOversizedPolicyIsRefused(t *testing.T) {
	big := []byte(basePolicy + "#" + strings.Repeat("x", MaxFileSize) + "\n")
	_, probs := LintBytes(big, LintOptions{})
	if len(probs) != 1 || !strings.Contains(probs[0].Message, "larger than") {
		t.Errorf("got %v, want one size problem", probs)
	}
}

func TestKindsAndAttributes(t *testing.T) {
	if got := PaymentMethod(KindApplePay); got != "applePayDPan" {
		t.Errorf("got %q, want applePayDPan", got)
	}
	if got := PaymentMethod("paypal"); got != "" {
		t.Errorf("got %q, want empty", got)
	}
	if got := AttributeKinds(AttrDPAN); !slices.Equal(got, []string{KindApplePay, KindGooglePay}) {
		t.Errorf("got %v", got)
	}
	if len(Attributes()) != 7 || len(Kinds()) != 3 {
		t.Errorf("got %v and %v", Attributes(), Kinds())
	}
	if got := (Upstream{BaseURL: "https://h.example/"}).URL("/check"); got != "https://h.example/check" {
		t.Errorf("got %q", got)
	}
}
