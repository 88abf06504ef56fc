package smartpay

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

type arrival struct {
	contentType string
	body        []byte
	check       checkResponse
}

// receiver is a merchant callback endpoint that reports what arrived.
func receiver(t *testing.T) (*httptest.Server, chan arrival) {
	t.Helper()
	ch := make(chan arrival, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		a := arrival{contentType: r.Header.Get("Content-Type"), body: b}
		_ = json.Unmarshal(b, &a.check)
		if r.Method != http.MethodPost {
			a.contentType = "wrong method " + r.Method
		}
		ch <- a
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func await(t *testing.T, ch chan arrival) arrival {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("no callback arrived")
	}
	return arrival{}
}

func expectNone(t *testing.T, ch chan arrival) {
	t.Helper()
	select {
	case a := <-ch:
		t.Errorf("unexpected callback: %s", a.body)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestCallbacksAreDeliveredOnStatusChanges(t *testing.T) {
	rcv, ch := receiver(t)
	cb := rcv.URL + "/callback"
	e := newEnv(t, Options{Callbacks: true})

	cases := []struct {
		name       string
		path       string
		body       map[string]any
		order      string
		status     status
		authStatus string
	}{
		{"a successful payment", "/initPaymentHost2Host", with(cardPayment("cb-1", panFrictionless), "callback_url", cb), "cb-1", statusSuccess, ""},
		{"a declined payment", "/initPaymentHost2Host", with(cardPayment("cb-2", panDecline), "callback_url", cb), "cb-2", statusFail, ""},
		{"an authorization", "/authorize", with(cardPayment("cb-3", panFrictionless), "callback_url", cb), "cb-3", statusProcessing, authorizeAuthorized},
		{"a capture", "/capture", map[string]any{"order_id": "cb-3", "amount": 10}, "cb-3", statusSuccess, authorizeCaptured},
		{"a withdrawal", "/withdrawal/init", with(withdrawal("cb-4", panFrictionless, 100), "callback_url", cb), "cb-4", statusSuccess, ""},
	}
	for _, c := range cases {
		t.Run(c.name+" is notified", func(t *testing.T) {
			e.post(c.path, c.body, nil)
			a := await(t, ch)
			if a.contentType != "application/json" {
				t.Errorf("got Content-Type %q, want application/json", a.contentType)
			}
			if a.check.OrderID != c.order || a.check.Status != c.status || deref(a.check.AuthorizeStatus) != deref(ptrOrNil(c.authStatus)) {
				t.Errorf("got %s, want order %s status %d authorize_status %q", a.body, c.order, c.status, c.authStatus)
			}
			for _, p := range testPANs {
				if strings.Contains(string(a.body), p) {
					t.Errorf("callback carries a full PAN")
				}
			}
			if strings.Contains(string(a.body), testCVV) {
				t.Errorf("callback carries the CVV")
			}
		})
	}
	t.Run("a challenge is notified once decided, not when it starts", func(t *testing.T) {
		var resp paymentResponse
		e.post("/initPaymentHost2Host", with(cardPayment("cb-5", panChallenge), "callback_url", cb), &resp)
		expectNone(t, ch)
		u, _ := url.Parse(deref(resp.FormURL))
		e.submit(u.Path, url.Values{"decision": {challengeFail}})
		if a := await(t, ch); a.check.OrderID != "cb-5" || a.check.Status != statusFail || deref(a.check.ErrorMessage) != decline3DSFailed {
			t.Errorf("got %s, want cb-5 failed by 3-D Secure", a.body)
		}
	})
	t.Run("a refund is notified at the refund's callback_url", func(t *testing.T) {
		var resp refundResponse
		e.post("/refund", map[string]any{"order_id": "cb-1", "amount": 5, "reason": "r", "callback_url": cb}, &resp)
		if a := await(t, ch); a.check.OrderID != resp.RefundID || a.check.Type != typeRefund {
			t.Errorf("got %s, want the refund", a.body)
		}
	})
	t.Run("an order without callback_url is not notified", func(t *testing.T) {
		e.post("/initPaymentHost2Host", cardPayment("cb-6", panFrictionless), nil)
		expectNone(t, ch)
	})
}

func TestCallbacksAreOffUnlessEnabled(t *testing.T) {
	rcv, ch := receiver(t)
	e := newEnv(t, Options{})
	e.post("/initPaymentHost2Host", with(cardPayment("off-1", panFrictionless), "callback_url", rcv.URL), nil)
	expectNone(t, ch)
}

func TestASlowCallbackReceiverDoesNotHoldUpTheAPI(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	e := newEnv(t, Options{Callbacks: true, CallbackTimeout: 200 * time.Millisecond, MaxCallbacksInFlight: 1})
	start := time.Now()
	for _, order := range []string{"slow-1", "slow-2", "slow-3"} {
		e.post("/initPaymentHost2Host", with(cardPayment(order, panFrictionless), "callback_url", slow.URL), nil)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("three payments took %v with a stalled callback receiver", d)
	}
	done := make(chan struct{})
	go func() { _ = e.sb.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the callback timeout")
	}
	if !strings.Contains(e.logs.String(), "too many in flight") || !strings.Contains(e.logs.String(), "transport error") {
		t.Errorf("got log %s, want a dropped and a timed-out callback", e.logs.String())
	}
}
