package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A request keeps the keys and merchants it started with: a reload meanwhile changes
// what the next request sees, never the running one's.
func TestARequestKeepsTheKeysAndMerchantsItStartedWith(t *testing.T) {
	ls, err := New(devConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	request := func() *http.Request {
		r := httptest.NewRequest("POST", "/v1/tokens", nil)
		return r.WithContext(context.WithValue(r.Context(), ctxKey{}, &reqInfo{}))
	}
	running := request()
	before := ls.deps.directory(running)
	if err := ls.Reload(&Keys{}, []Merchant{{ID: "m_new"}}); err != nil {
		t.Fatal(err)
	}
	if got := ls.deps.directory(running); got != before {
		t.Error("a running request saw the reloaded keys and merchants, want the ones it started with")
	}
	if _, ok := ls.deps.directory(request()).merchants["m_new"]; !ok {
		t.Error("a new request does not see the reloaded merchants")
	}
}
