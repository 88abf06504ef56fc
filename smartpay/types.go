package smartpay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
)

// status is a transaction (or export task) status as the API reports it.
type status int

// Transaction statuses, as documented.
const (
	statusFail       status = -1
	statusProcessing status = 1
	statusSuccess    status = 2
)

// Payment methods accepted by initPaymentHost2Host and withdrawal/init.
const (
	methodCard      = "card"
	methodApplePay  = "applePayDPan"
	methodGooglePay = "googlePayDPan"
	methodToken     = "token" // withdrawal/init only
)

// Transaction types reported by check and accepted by the transaction-list export.
// Tokenization is the sandbox's name for a withdrawal tokenize-form order.
const (
	typePayment      = "Payment"
	typeWithdrawal   = "Withdrawal"
	typeRefund       = "Refund"
	typeTokenization = "Tokenization"
)

// Values of authorize_status in a check response (null for other orders).
const (
	authorizeAuthorized = "authorized"
	authorizeCaptured   = "captured"
	authorizeCancelled  = "cancelled"
)

// Values of responseType. The documentation shows only REDIRECT; the others are
// the sandbox's names for an immediate outcome.
const (
	responseRedirect   = "REDIRECT"
	responseSuccess    = "SUCCESS"
	responseAuthorized = "AUTHORIZED"
	responseFail       = "FAIL"
)

// flexString is a string field that the documentation shows both as a JSON
// string and as a JSON number (customer_zip_code: 121165 and "121165"). It
// accepts either and marshals as a string. null leaves it unchanged.
type flexString string

// UnmarshalJSON accepts a JSON string or number.
func (s *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
		return nil
	}
	var n json.Number
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) || json.Unmarshal(b, &n) != nil {
		return &json.UnmarshalTypeError{Value: "non-string", Type: reflect.TypeFor[flexString]()}
	}
	*s = flexString(n.String())
	return nil
}

// flexInt is an integer field that the documentation types as String but shows
// as a number (capture amount, dateTo). It accepts a JSON integer or a string
// holding one, and marshals as a number.
type flexInt int64

// UnmarshalJSON accepts a JSON integer or a string of decimal digits.
func (n *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		b = []byte(v)
	}
	if !isInteger(b) {
		return &json.UnmarshalTypeError{Value: "non-integer", Type: reflect.TypeFor[flexInt]()}
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "out-of-range integer", Type: reflect.TypeFor[flexInt]()}
	}
	*n = flexInt(v)
	return nil
}

func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// int64Ptr returns a *flexInt holding v, for building optional fields.
func int64Ptr(v int64) *flexInt { f := flexInt(v); return &f }

// paymentFields are the fields shared by initPayment, initPaymentHost2Host and
// authorize. Which of them are required differs per call (see the handlers).
type paymentFields struct {
	Account           string     `json:"account"`
	Amount            int64      `json:"amount"`
	Currency          string     `json:"currency"`
	OrderID           string     `json:"order_id"`
	MerchantSite      string     `json:"merchant_site,omitempty"`
	Recurrent         bool       `json:"recurrent,omitempty"`
	Purpose           string     `json:"purpose,omitempty"`
	CustomerFirstName string     `json:"customer_first_name"`
	CustomerLastName  string     `json:"customer_last_name"`
	CustomerAddress   string     `json:"customer_address"`
	CustomerCity      string     `json:"customer_city"`
	CustomerZipCode   flexString `json:"customer_zip_code"`
	CustomerCountry   string     `json:"customer_country"`
	CustomerPhone     string     `json:"customer_phone"`
	CustomerEmail     string     `json:"customer_email"`
	CustomerIPAddress string     `json:"customer_ip_address,omitempty"`
	CallbackURL       string     `json:"callback_url,omitempty"`
	SuccessURL        string     `json:"success_url,omitempty"`
	FailURL           string     `json:"fail_url,omitempty"`
	StatusURL         string     `json:"status_url,omitempty"`
}

// cardFields carry card data. They are plain strings because the sandbox is
// the upstream and legitimately receives the card; the type prints as a fixed
// placeholder in every fmt verb so a stray log line cannot leak it.
type cardFields struct {
	CardHolder   string `json:"card_holder,omitempty"`
	CardNumber   string `json:"card_number,omitempty"`
	CardExpMonth string `json:"card_exp_month,omitempty"`
	CardExpYear  string `json:"card_exp_year,omitempty"`
	CardCVV      string `json:"card_cvv,omitempty"`
}

// Format prints a placeholder, never the card.
func (cardFields) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[card fields]")) }

// walletFields carry Apple Pay / Google Pay payloads; they print as a placeholder.
type walletFields struct {
	ApplePayDPAN           string `json:"apple_pay_dpan,omitempty"`
	ApplePayMethodNetwork  string `json:"apple_pay_payment_method_network,omitempty"`
	GooglePayDPAN          string `json:"google_pay_dpan,omitempty"`
	GooglePayMethodNetwork string `json:"google_pay_payment_method_network,omitempty"`
}

// Format prints a placeholder, never the payload.
func (walletFields) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[wallet fields]")) }

// browserFields are the optional 3-D Secure browser fields of initPaymentHost2Host.
// Numeric ones are typed String in the documentation; numbers are accepted too.
type browserFields struct {
	BrowserAcceptHeader string     `json:"browser_accept_header,omitempty"`
	BrowserUserAgent    string     `json:"browser_user_agent,omitempty"`
	BrowserJavaEnabled  *bool      `json:"browser_java_enabled,omitempty"`
	BrowserJSEnabled    *bool      `json:"browser_js_enabled,omitempty"`
	BrowserColorDepth   flexString `json:"browser_color_depth,omitempty"`
	BrowserScreenHeight flexString `json:"browser_screen_height,omitempty"`
	BrowserScreenWidth  flexString `json:"browser_screen_width,omitempty"`
	BrowserLanguage     string     `json:"browser_language,omitempty"`
	BrowserTimeZone     flexString `json:"browser_time_zone,omitempty"`
}

// initPaymentRequest is the body of POST /initPayment (hosted payment form).
type initPaymentRequest struct {
	paymentFields
}

// initPaymentResponse is the answer to initPayment. Its 3-D Secure fields are
// capitalised, unlike those of paymentResponse, as the documentation shows.
type initPaymentResponse struct {
	ACSUrl       *string `json:"ACSUrl"`
	MD           *string `json:"MD"`
	TermURL      *string `json:"TermUrl"`
	Description  string  `json:"description"`
	Status       status  `json:"status"`
	FormURL      *string `json:"form_url"`
	OrderID      string  `json:"order_id"`
	ResponseType string  `json:"responseType"`
}

// hostToHostRequest is the body of POST /initPaymentHost2Host (chd-api).
type hostToHostRequest struct {
	paymentFields
	PaymentMethod string `json:"payment_method,omitempty"`
	cardFields
	RecurFreq *flexInt `json:"recur_freq,omitempty"`
	// RecurExp is typed Long but described as an ISO 8601 date; both are accepted.
	RecurExp flexString `json:"recur_exp,omitempty"`
	walletFields
	browserFields
}

// Format prints the order, never card or wallet data.
func (r hostToHostRequest) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "HostToHostRequest{order_id:%q payment_method:%q card:[redacted]}", r.OrderID, r.PaymentMethod)
}

// authorizeRequest is the body of POST /authorize (chd-api): card only.
type authorizeRequest struct {
	paymentFields
	cardFields
}

// Format prints the order, never card data.
func (r authorizeRequest) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "AuthorizeRequest{order_id:%q card:[redacted]}", r.OrderID)
}

// paymentResponse is the answer to initPaymentHost2Host and authorize. OrderID
// is the sandbox's transaction id, as in the documentation's example; check,
// capture, cancel and refund accept it as well as the merchant's order_id.
type paymentResponse struct {
	FormURL           *string `json:"form_url"`
	ThreeDSMethodData *string `json:"threeDSMethodData"`
	OrderID           string  `json:"order_id"`
	Status            status  `json:"status"`
	Stage             *string `json:"stage"`
	Description       string  `json:"description"`
	EndDate           *string `json:"endDate"`
	ResponseType      string  `json:"responseType"`
	Err               *string `json:"err"`
	Msg               *string `json:"msg"`
	PaReq             *string `json:"paReq"`
	Creq              *string `json:"creq"`
	MD                *string `json:"md"`
	TermURL           *string `json:"termUrl"`
	ACSURL            *string `json:"acsurl"`
}

// checkRequest is the body of POST /check.
type checkRequest struct {
	OrderID string `json:"order_id"`
}

// cardInfo is the masked card of a check or withdrawal response.
type cardInfo struct {
	Number  string `json:"number"`
	BIN     string `json:"bin"`
	Country string `json:"country"`
	ISO     string `json:"iso"`
	Type    string `json:"type"`
}

// cascadeError is one gate's failure in a check response.
type cascadeError struct {
	GatePriority  int    `json:"gatePriority"`
	ErrorCategory string `json:"errorCategory"`
}

// checkResponse is the answer to check, and the body of every callback.
type checkResponse struct {
	OrderID         string         `json:"order_id"`
	Status          status         `json:"status"`
	Amount          int64          `json:"amount"`
	Card            *cardInfo      `json:"card"`
	ErrorMessage    *string        `json:"errorMessage"`
	CascadeErrors   []cascadeError `json:"cascadeErrors"`
	EndDate         *string        `json:"endDate"`
	AuthorizeStatus *string        `json:"authorize_status"`
	Type            string         `json:"type"`
	FirstName       string         `json:"firstName"`
	LastName        string         `json:"lastName"`
}

// refundRequest is the body of POST /refund.
type refundRequest struct {
	OrderID     string `json:"order_id"`
	Amount      int64  `json:"amount"`
	Reason      string `json:"reason"`
	CallbackURL string `json:"callback_url,omitempty"`
}

// refundResponse is the answer to refund.
type refundResponse struct {
	Success           bool   `json:"success"`
	Message           string `json:"message"`
	RefundID          string `json:"refund_id"`
	ParentTransaction string `json:"parentTransaction"`
}

// Recurrence periods accepted in recur_period.
const (
	recurDaily     = "01"
	recurWeekly    = "03"
	recurMonthly   = "06"
	recurQuarterly = "09"
	recurAnnually  = "11"
)

// recurrentRequest is the body of POST /recurrent.
type recurrentRequest struct {
	OrderID       string `json:"order_id"`
	ParentOrderID string `json:"parent_order_id"`
	Amount        int64  `json:"amount"`
	Purpose       string `json:"purpose"`
	CallbackURL   string `json:"callback_url,omitempty"`
	RecurPeriod   string `json:"recur_period,omitempty"`
}

// recurrentResponse is the answer to recurrent.
type recurrentResponse struct {
	Success   bool    `json:"success"`
	Message   string  `json:"message"`
	PaymentID string  `json:"payment_id"`
	Err       *string `json:"err"`
}

// tokenizeFormRequest is the body of POST /withdrawal/tokenize-form.
type tokenizeFormRequest struct {
	Account     string `json:"account"`
	OrderID     string `json:"order_id"`
	CallbackURL string `json:"callback_url,omitempty"`
	SuccessURL  string `json:"success_url,omitempty"`
	FailURL     string `json:"fail_url,omitempty"`
}

// tokenizeFormResponse is the answer to withdrawal/tokenize-form.
type tokenizeFormResponse struct {
	FormURL           *string `json:"form_url"`
	ThreeDSMethodData *string `json:"threeDSMethodData"`
	OrderID           string  `json:"order_id"`
	Status            status  `json:"status"`
	Stage             *string `json:"stage"`
	Description       string  `json:"description"`
	EndDate           *string `json:"endDate"`
	ResponseType      string  `json:"responseType"`
	Err               *string `json:"err"`
	Msg               *string `json:"msg"`
}

// withdrawalRequest is the body of POST /withdrawal/init (chd-api).
type withdrawalRequest struct {
	Account                        string     `json:"account"`
	Amount                         int64      `json:"amount"`
	OrderID                        string     `json:"order_id"`
	Purpose                        string     `json:"purpose,omitempty"`
	MerchantSite                   string     `json:"merchant_site,omitempty"`
	CustomerCardNumber             string     `json:"customer_card_number,omitempty"`
	TokenizeTransactionOrderID     string     `json:"tokenize_transaction_order_id,omitempty"`
	CustomerCardExpMonth           string     `json:"customer_card_exp_month,omitempty"`
	CustomerCardExpYear            string     `json:"customer_card_exp_year,omitempty"`
	CustomerFirstName              string     `json:"customer_first_name,omitempty"`
	CustomerLastName               string     `json:"customer_last_name,omitempty"`
	CustomerMiddleName             string     `json:"customer_middle_name,omitempty"`
	CustomerPhone                  string     `json:"customer_phone,omitempty"`
	CustomerBirthdate              string     `json:"customer_birthdate,omitempty"`
	CustomerCountry                string     `json:"customer_country,omitempty"`
	CustomerZipCode                flexString `json:"customer_zip_code,omitempty"`
	CallbackURL                    string     `json:"callback_url,omitempty"`
	AccountWithdrawal              string     `json:"account_withdrawal,omitempty"`
	AccountWithdrawalHolder        string     `json:"account_withdrawal_holder,omitempty"`
	AccountWithdrawalIIN           string     `json:"account_withdrawal_iin,omitempty"`
	PaymentMethod                  string     `json:"payment_method,omitempty"`
	ProviderID                     string     `json:"provider_id,omitempty"`
	CustomerIPAddress              string     `json:"customer_ip_address,omitempty"`
	AccountWithdrawalBIN           string     `json:"account_withdrawal_bin,omitempty"`
	AccountWithdrawalKBE           string     `json:"account_withdrawal_kbe,omitempty"`
	AccountWithdrawalBankCode      string     `json:"account_withdrawal_bank_code,omitempty"`
	AccountWithdrawalBankName      string     `json:"account_withdrawal_bank_name,omitempty"`
	AccountWithdrawalCNP           string     `json:"account_withdrawal_cnp,omitempty"`
	AccountWithdrawalRecipientCode string     `json:"account_withdrawal_recipient_code,omitempty"`
	AccountWithdrawalSenderCode    string     `json:"account_withdrawal_sender_code,omitempty"`
	AccountWithdrawalRecipientRNN  string     `json:"account_withdrawal_recipient_rnn,omitempty"`
	AccountWithdrawalRecipientName string     `json:"account_withdrawal_recipient_name,omitempty"`
	A2ASenderCountry               string     `json:"a2a_sender_country,omitempty"`
	A2ASenderCity                  string     `json:"a2a_sender_city,omitempty"`
	A2ASenderAddress               string     `json:"a2a_sender_address,omitempty"`
	A2ASenderZipCode               flexString `json:"a2a_sender_zip_code,omitempty"`
}

// Format prints the order, never the card number.
func (r withdrawalRequest) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "WithdrawalRequest{order_id:%q payment_method:%q card:[redacted]}", r.OrderID, r.PaymentMethod)
}

// withdrawalResponse is the answer to withdrawal/init.
type withdrawalResponse struct {
	OrderID string    `json:"order_id"`
	Status  status    `json:"status"`
	Card    *cardInfo `json:"card"`
	Err     *string   `json:"err"`
	Msg     *string   `json:"msg"`
}

// balanceRequest is the body of POST /withdrawal/balance/get.
type balanceRequest struct {
	Account string `json:"account"`
}

// balanceResponse is the answer to withdrawal/balance/get; amounts in cents.
type balanceResponse struct {
	Balance        int64 `json:"balance"`
	HoldBalance    int64 `json:"holdBalance"`
	RollingBalance int64 `json:"rollingBalance"`
}

// captureRequest is the body of POST /capture. Amount is optional (the whole
// authorized amount when absent) and typed String in the documentation.
type captureRequest struct {
	OrderID string   `json:"order_id"`
	Amount  *flexInt `json:"amount,omitempty"`
}

// captureResponse is the answer to capture. OrderID is the transaction id.
type captureResponse struct {
	OrderID string `json:"order_id"`
	Status  status `json:"status"`
}

// cancelRequest is the body of POST /cancel.
type cancelRequest struct {
	OrderID string `json:"order_id"`
}

// cancelResponse is the answer to cancel. OrderID is the transaction id.
type cancelResponse struct {
	OrderID string `json:"order_id"`
	Status  status `json:"status"`
}

// exportTaskRequest is the body of POST
// /aggregation-service/public/transaction/excel. dateTo is typed String in the
// documentation and shown as a number; both are accepted.
type exportTaskRequest struct {
	Type     string   `json:"type"`
	Status   *status  `json:"status"`
	DateFrom *flexInt `json:"dateFrom"`
	DateTo   *flexInt `json:"dateTo"`
}

// exportTaskResponse is the answer to task creation and to task status.
type exportTaskResponse struct {
	ID     string `json:"id"`
	Status status `json:"status"`
}

// errorResponse is the body of every 4xx/5xx answer of the sandbox's API. It
// follows the documentation's err/msg fields: Status is always -1, Err a stable
// upper-case code, Msg a fixed English sentence that may name fields but never
// echoes a value, Fields the request fields at fault (validation errors only).
type errorResponse struct {
	Status status   `json:"status"`
	Err    string   `json:"err"`
	Msg    string   `json:"msg"`
	Fields []string `json:"fields,omitempty"`
}

// Error codes in errorResponse.Err.
const (
	codeUnauthorized        = "UNAUTHORIZED"
	codeUnsupportedMedia    = "UNSUPPORTED_MEDIA_TYPE"
	codeInvalidJSON         = "INVALID_JSON"
	codeBodyTooLarge        = "BODY_TOO_LARGE"
	codeValidation          = "VALIDATION_ERROR"
	codeAccountNotFound     = "ACCOUNT_NOT_FOUND"
	codeAccountType         = "ACCOUNT_TYPE_MISMATCH"
	codeCurrencyMismatch    = "CURRENCY_MISMATCH"
	codeDuplicateOrder      = "DUPLICATE_ORDER_ID"
	codeOrderNotFound       = "ORDER_NOT_FOUND"
	codeInvalidState        = "INVALID_ORDER_STATE"
	codeAmountExceeds       = "AMOUNT_EXCEEDS_AVAILABLE"
	codeTaskNotFound        = "TASK_NOT_FOUND"
	codeTaskNotReady        = "TASK_NOT_READY"
	codeNotFound            = "NOT_FOUND"
	codeMethodNotAllowed    = "METHOD_NOT_ALLOWED"
	codeInternal            = "INTERNAL_ERROR"
	codeTokenizeNotComplete = "TOKENIZATION_NOT_COMPLETE"
)

// Decline reasons reported in errorMessage (check) and err (init responses).
const (
	declineGateNotFound      = "PLATFORM_ERROR_GATE_NOT_FOUND"
	declineCardExpired       = "PLATFORM_ERROR_CARD_EXPIRED"
	declineBrandUnavailable  = "PLATFORM_ERROR_CARD_BRAND_UNAVAILABLE"
	decline3DSFailed         = "PLATFORM_ERROR_3DS_AUTHENTICATION_FAILED"
	declineWithdrawal        = "PLATFORM_ERROR_WITHDRAWAL_DECLINED"
	declineInsufficientFunds = "PLATFORM_ERROR_INSUFFICIENT_BALANCE"
	declineAntifraudRules    = "PLATFORM_ERROR_ANTIFRAUD_RULES"
	declineGateSkipped       = "PLATFORM_ERROR_GATE_SKIPPED"
)
