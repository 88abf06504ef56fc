package proxy_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

func TestLogsAndAuditNameRoutesAndTokensNeverURLsOrBodies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	order := h.orderID()
	wantStatus(t, h.post(t, "/initPaymentHost2Host?trace=querysecretvalue", cardPayment(order, tok)), http.StatusOK)
	wantStatus(t, h.post(t, "/check", map[string]any{"order_id": order}), http.StatusOK)

	logs := h.logs.Bytes()
	for _, s := range []string{"querysecretvalue", "trace=", order, "10 Downing Street", "/initPaymentHost2Host"} {
		if bytes.Contains(logs, []byte(s)) {
			t.Errorf("the logs contain %q", s)
		}
	}
	for _, s := range []string{`"route":"initPaymentHost2Host"`, `"route":"check"`, `"route":"tokenize"`, `"token":"` + tok + `"`} {
		if !bytes.Contains(logs, []byte(s)) {
			t.Errorf("the logs lack %s", s)
		}
	}

	events := map[string]int{}
	for _, line := range bytes.Split(bytes.TrimSpace(h.audit.Bytes()), []byte("\n")) {
		var rec struct {
			Event      string `json:"event"`
			Token      string `json:"token"`
			PolicyHash string `json:"policy_hash"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("audit line is not JSON: %v", err)
		}
		events[rec.Event]++
		if rec.PolicyHash != h.pol.Hash {
			t.Errorf("audit policy_hash: got %q, want %q", rec.PolicyHash, h.pol.Hash)
		}
		if rec.Event == "detokenize" && rec.Token != tok {
			t.Errorf("detokenize record token: got %q, want %q", rec.Token, tok)
		}
	}
	if events["detokenize"] != 1 {
		t.Errorf("detokenize audit records: got %d, want 1", events["detokenize"])
	}
	for _, s := range []string{"querysecretvalue", order} {
		if bytes.Contains(h.audit.Bytes(), []byte(s)) {
			t.Errorf("the audit trail contains %q", s)
		}
	}
}
