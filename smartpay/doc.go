// Package smartpay holds the SmartPayments API request and response types and
// Sandbox, an in-memory upstream that behaves as the API documentation
// (shared/smartpayments-api.txt) says, serving the chd-api, api-gateway and
// service.magua-pay.com paths on one http.Handler.
//
// What the sandbox does where the documentation leaves a choice open (test
// cards, accounts, statuses, pages, callbacks, refusals) is specified in
// docs/sandbox.md, for merchant developers as much as for this code.
//
// The sandbox is the upstream, so it legitimately receives card data. It
// never logs a request body and never keeps a PAN, CVV or wallet payload in
// its transactions: only the masked card, the BIN and its verdict on the
// card. Received, for tests, does keep raw bodies (bounded, and switched off
// with Options.DisableRecording).
package smartpay
