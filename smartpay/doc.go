// Package smartpay holds the SmartPayments API request and response types and
// Sandbox, an in-memory upstream that behaves as the API documentation
// (shared/smartpayments-api.txt) says. The real hosts cannot be reached from
// tests; the sandbox stands in for all three of them on one http.Handler:
//
//	chd-api.smartcore.pro      POST /initPaymentHost2Host, /authorize, /withdrawal/init
//	api-gateway.smartcore.pro  POST /initPayment, /check, /refund, /recurrent, /capture,
//	                                /cancel, /withdrawal/tokenize-form, /withdrawal/balance/get
//	service.magua-pay.com      POST /aggregation-service/public/transaction/excel
//	                           GET  …/excel/task/{taskId}, …/excel/task/{taskId}/result
//	the sandbox's own pages    GET|POST /sandbox/pay/{id}, /sandbox/challenge/{id},
//	                                    /sandbox/tokenize/{id}
//
// The sandbox is the upstream, so it legitimately receives card data. It
// never logs a request body and never keeps a PAN, CVV or wallet payload in
// its transactions: only the masked card ("401200******3010"), the BIN and its
// verdict on the card. Received, for tests, does keep raw bodies (bounded,
// and switched off with Options.DisableRecording).
//
// # Behaviour the documentation leaves open
//
// Errors. Every refused API call answers with a 4xx status and
// ErrorResponse {"status":-1,"err":CODE,"msg":MESSAGE,"fields":[…]}: err is a
// stable code (the Code… constants), msg a fixed sentence that may name fields
// but never repeats a value, fields lists the offending request fields of a
// validation error. Statuses: 401 missing or wrong Basic credentials (with
// WWW-Authenticate), 415 a POST whose Content-Type is not application/json,
// 400 invalid JSON, missing/invalid fields, unknown account, wrong account
// type, currency not the account's, amount above what may be captured or
// refunded; 404 unknown order or task; 409 duplicate order_id, an order in the
// wrong state (capture/cancel of a non-authorized order, refund of an
// unsuccessful payment, recurrent from a non-recurrent parent, withdrawal from
// an incomplete tokenization), export result requested before the task is
// complete; 413 a body above MaxBodyBytes. A declined transaction is not an
// error: the call answers 200 with status -1.
//
// Validation follows the documentation's "Required" columns, plus: amount > 0;
// currency three upper-case letters equal to the account's; card_number 12–19
// ASCII digits passing Luhn (no separators); card_exp_month 1–12 in one or two
// digits; card_exp_year two or four digits; card_cvv three or four digits.
// card_holder is required for payment_method card only (the Google Pay example
// omits it). Wallet payloads must be base64 (standard or URL alphabet, padding
// optional) decoding to 16 B–16 KiB, and the network one of Visa, Mastercard,
// Amex, Discover, JCB, Interac, Maestro, Mir, UnionPay, Electron, Elo (any
// case). customer_zip_code (and the other string fields the examples send as
// numbers) accept a JSON string or number; capture amount and dateTo accept a
// number or a numeric string. callback_url, success_url, fail_url and
// status_url must be absolute http(s) URLs when given. Unknown fields are
// ignored. order_id is unique per merchant across every kind of transaction.
//
// Payments (initPaymentHost2Host, and the hosted form of initPayment):
//   - the frictionless test card succeeds at once: status 2, responseType
//     "SUCCESS", endDate set, no form_url;
//   - the challenge test card answers status 1, responseType "REDIRECT", with
//     form_url and acsurl pointing at /sandbox/challenge/{id}; that page has a
//     success and a fail button, and POST decision=success|fail settles the
//     order to 2, or to -1 with errorMessage PLATFORM_ERROR_3DS_AUTHENTICATION_FAILED;
//     the browser is then sent to success_url/fail_url when given;
//   - any other valid card is declined: status -1, responseType "FAIL", err
//     PLATFORM_ERROR_GATE_NOT_FOUND, and check shows the documentation's
//     cascadeErrors;
//   - a card whose expiry month has passed (by Options.Now) is declined with
//     PLATFORM_ERROR_CARD_EXPIRED, whatever the card;
//   - wallets (applePayDPan, googlePayDPan): a well-formed payload with network
//     Visa or Mastercard succeeds at once; any other known network is declined
//     with PLATFORM_ERROR_CARD_BRAND_UNAVAILABLE. check reports the network as
//     card.type and no number or BIN.
//
// initPayment answers status 1 with form_url /sandbox/pay/{id} and the
// merchant's order_id (as documented); the form takes the card and decides it
// as above. initPaymentHost2Host, authorize, tokenize-form, capture and
// cancel answer with the sandbox's 24-hex transaction id in order_id, as the
// documentation's examples do; every call that takes an order_id accepts the
// merchant's order_id, that transaction id, or a refund_id/payment_id.
//
// The sandbox has no BIN database: check reports every card as issued in
// Spain (ESP), as the examples do; card.type is the scheme from the leading
// digits ("VISA", "MASTERCARD", …).
//
// Authorize-capture: a successful authorization answers status 1, responseType
// "AUTHORIZED", and check shows authorize_status "authorized" (the challenge
// card first goes through the challenge page). capture takes the whole amount
// or a part (0 < amount ≤ authorized) → status 2, authorize_status "captured",
// and check then reports the captured amount. cancel → status -1,
// authorize_status "cancelled". Both refuse any order that is not authorized
// and uncaptured.
//
// Refund: only of a Payment in status 2, amount at most what was charged minus
// earlier refunds. Each refund is a Refund transaction in status 2 whose
// order_id is its refund_id; parentTransaction is the parent's transaction id.
//
// Recurrent: the parent must be a Payment in status 2 created with
// recurrent=true. The new payment (new order_id) succeeds at once on the
// parent's card, is itself recurrent, and payment_id is a UUID that check
// accepts.
//
// Withdrawals: tokenize-form answers status 1 with form_url
// /sandbox/tokenize/{id}; submitting a card there completes the Tokenization
// order (status 2) and keeps the masked card and the verdict on it.
// withdrawal/init settles at once (status 2, not the documentation's example
// status 1, so a test needs no polling): the frictionless test card succeeds
// and lowers the payout account's balance by amount; every other card fails
// with PLATFORM_ERROR_WITHDRAWAL_DECLINED, an expired card (when an expiry is
// given) with PLATFORM_ERROR_CARD_EXPIRED, an amount above the balance with
// PLATFORM_ERROR_INSUFFICIENT_BALANCE; a failure leaves the balance alone. The
// default payout account starts with DefaultPayoutBalance (1 000 000 cents);
// holdBalance and rollingBalance stay at their configured values (0). Payments
// never credit a payout account.
//
// Transaction-list export: type must be Payment, Withdrawal or Refund; status
// 2, 1 or -1; dateFrom and dateTo non-negative Unix milliseconds with
// dateFrom ≤ dateTo, both inclusive, compared with the transactions' creation
// times. The rows are taken when the task is created (status 1); the task is
// complete (status 2) from its first status poll on, and only then does the
// result answer: an .xlsx (one sheet "Transactions", header row then one row
// per transaction: order id, transaction id, type, status, amount in cents,
// currency, masked card, card type, created, end date, error).
//
// Callbacks (Options.Callbacks, off by default): whenever a transaction
// reaches a new status — including being created directly in status 2 or -1,
// and an authorization becoming "authorized" — and it has a callback_url, the
// sandbox POSTs its check response as JSON (masked card only) to that URL:
// once, no retry, asynchronously, bounded by Options.CallbackTimeout and
// Options.MaxCallbacksInFlight (a callback finding no free slot is dropped).
// Redirects are not followed. Close waits for deliveries in flight.
package smartpay
