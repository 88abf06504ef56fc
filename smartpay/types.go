package smartpay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
)

// Status is a transaction (or export task) status as the API reports it.
type Status int

// Transaction statuses, as documented.
const (
	StatusFail       Status = -1
	StatusProcessing Status = 1
	StatusSuccess    Status = 2
)

// Payment methods accepted by initPaymentHost2Host and withdrawal/init.
const (
	MethodCard      = "card"
	MethodApplePay  = "applePayDPan"
	MethodGooglePay = "googlePayDPan"
	MethodToken     = "token" // withdrawal/init only
)

// Transaction types reported by check and accepted by the transaction-list export.
// Tokenization is the sandbox's name for a withdrawal tokenize-form order.
const (
	TypePayment      = "Payment"
	TypeWithdrawal   = "Withdrawal"
	TypeRefund       = "Refund"
	TypeTokenization = "Tokenization"
)

// Values of authorize_status in a check response (null for other orders).
const (
	AuthorizeAuthorized = "authorized"
	AuthorizeCaptured   = "captured"
	AuthorizeCancelled  = "cancelled"
)

// Values of responseType. The documentation shows only REDIRECT; the others are
// the sandbox's names for an immediate outcome.
const (
	ResponseRedirect   = "REDIRECT"
	ResponseSuccess    = "SUCCESS"
	ResponseAuthorized = "AUTHORIZED"
	ResponseFail       = "FAIL"
)

// FlexString is a string field that the documentation shows both as a JSON
// string and as a JSON number (customer_zip_code: 121165 and "121165"). It
// accepts either and marshals as a string. null leaves it unchanged.
type FlexString string

// UnmarshalJSON accepts a JSON string or number.
func (s *FlexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = FlexString(v)
		return nil
	}
	var n json.Number
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) || json.Unmarshal(b, &n) != nil {
		return &json.UnmarshalTypeError{Value: "non-string", Type: reflect.TypeFor[FlexString]()}
	}
	*s = FlexString(n.String())
	return nil
}

// FlexInt is an integer field that the documentation types as String but shows
// as a number (capture amount, dateTo). It accepts a JSON integer or a string
// holding one, and marshals as a number.
type FlexInt int64

// UnmarshalJSON accepts a JSON integer or a string of decimal digits.
func (n *FlexInt) UnmarshalJSON(b []byte) error {
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
		return &json.UnmarshalTypeError{Value: "non-integer", Type: reflect.TypeFor[FlexInt]()}
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "out-of-range integer", Type: reflect.TypeFor[FlexInt]()}
	}
	*n = FlexInt(v)
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

// Int64Ptr returns a *FlexInt holding v, for building optional fields.
func Int64Ptr(v int64) *FlexInt { f := FlexInt(v); return &f }

// PaymentFields are the fields shared by initPayment, initPaymentHost2Host and
// authorize. Which of them are required differs per call (see the handlers).
type PaymentFields struct {
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
	CustomerZipCode   FlexString `json:"customer_zip_code"`
	CustomerCountry   string     `json:"customer_country"`
	CustomerPhone     string     `json:"customer_phone"`
	CustomerEmail     string     `json:"customer_email"`
	CustomerIPAddress string     `json:"customer_ip_address,omitempty"`
	CallbackURL       string     `json:"callback_url,omitempty"`
	SuccessURL        string     `json:"success_url,omitempty"`
	FailURL           string     `json:"fail_url,omitempty"`
	StatusURL         string     `json:"status_url,omitempty"`
}

// CardFields carry card data. They are plain strings because the sandbox is
// the upstream and legitimately receives the card; the type prints as a fixed
// placeholder in every fmt verb so a stray log line cannot leak it.
type CardFields struct {
	CardHolder   string `json:"card_holder,omitempty"`
	CardNumber   string `json:"card_number,omitempty"`
	CardExpMonth string `json:"card_exp_month,omitempty"`
	CardExpYear  string `json:"card_exp_year,omitempty"`
	CardCVV      string `json:"card_cvv,omitempty"`
}

// Format prints a placeholder, never the card.
func (CardFields) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[card fields]")) }

// WalletFields carry Apple Pay / Google Pay payloads; they print as a placeholder.
type WalletFields struct {
	ApplePayDPAN           string `json:"apple_pay_dpan,omitempty"`
	ApplePayMethodNetwork  string `json:"apple_pay_payment_method_network,omitempty"`
	GooglePayDPAN          string `json:"google_pay_dpan,omitempty"`
	GooglePayMethodNetwork string `json:"google_pay_payment_method_network,omitempty"`
}

// Format prints a placeholder, never the payload.
func (WalletFields) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[wallet fields]")) }

// BrowserFields are the optional 3-D Secure browser fields of initPaymentHost2Host.
// Numeric ones are typed String in the documentation; numbers are accepted too.
type BrowserFields struct {
	BrowserAcceptHeader string     `json:"browser_accept_header,omitempty"`
	BrowserUserAgent    string     `json:"browser_user_agent,omitempty"`
	BrowserJavaEnabled  *bool      `json:"browser_java_enabled,omitempty"`
	BrowserJSEnabled    *bool      `json:"browser_js_enabled,omitempty"`
	BrowserColorDepth   FlexString `json:"browser_color_depth,omitempty"`
	BrowserScreenHeight FlexString `json:"browser_screen_height,omitempty"`
	BrowserScreenWidth  FlexString `json:"browser_screen_width,omitempty"`
	BrowserLanguage     string     `json:"browser_language,omitempty"`
	BrowserTimeZone     FlexString `json:"browser_time_zone,omitempty"`
}

// InitPaymentRequest is the body of POST /initPayment (hosted payment form).
type InitPaymentRequest struct {
	PaymentFields
}

// InitPaymentResponse is the answer to initPayment. Its 3-D Secure fields are
// capitalised, unlike those of PaymentResponse, as the documentation shows.
type InitPaymentResponse struct {
	ACSUrl       *string `json:"ACSUrl"`
	MD           *string `json:"MD"`
	TermURL      *string `json:"TermUrl"`
	Description  string  `json:"description"`
	Status       Status  `json:"status"`
	FormURL      *string `json:"form_url"`
	OrderID      string  `json:"order_id"`
	ResponseType string  `json:"responseType"`
}

// HostToHostRequest is the body of POST /initPaymentHost2Host (chd-api).
type HostToHostRequest struct {
	PaymentFields
	PaymentMethod string `json:"payment_method,omitempty"`
	CardFields
	RecurFreq *FlexInt `json:"recur_freq,omitempty"`
	// RecurExp is typed Long but described as an ISO 8601 date; both are accepted.
	RecurExp FlexString `json:"recur_exp,omitempty"`
	WalletFields
	BrowserFields
}

// Format prints the order, never card or wallet data.
func (r HostToHostRequest) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "HostToHostRequest{order_id:%q payment_method:%q card:[redacted]}", r.OrderID, r.PaymentMethod)
}

// AuthorizeRequest is the body of POST /authorize (chd-api): card only.
type AuthorizeRequest struct {
	PaymentFields
	CardFields
}

// Format prints the order, never card data.
func (r AuthorizeRequest) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "AuthorizeRequest{order_id:%q card:[redacted]}", r.OrderID)
}

// PaymentResponse is the answer to initPaymentHost2Host and authorize. OrderID
// is the sandbox's transaction id, as in the documentation's example; check,
// capture, cancel and refund accept it as well as the merchant's order_id.
type PaymentResponse struct {
	FormURL           *string `json:"form_url"`
	ThreeDSMethodData *string `json:"threeDSMethodData"`
	OrderID           string  `json:"order_id"`
	Status            Status  `json:"status"`
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

// CheckRequest is the body of POST /check.
type CheckRequest struct {
	OrderID string `json:"order_id"`
}

// CardInfo is the masked card of a check or withdrawal response.
type CardInfo struct {
	Number  string `json:"number"`
	BIN     string `json:"bin"`
	Country string `json:"country"`
	ISO     string `json:"iso"`
	Type    string `json:"type"`
}

// CascadeError is one gate's failure in a check response.
type CascadeError struct {
	GatePriority  int    `json:"gatePriority"`
	ErrorCategory string `json:"errorCategory"`
}

// CheckResponse is the answer to check, and the body of every callback.
type CheckResponse struct {
	OrderID         string         `json:"order_id"`
	Status          Status         `json:"status"`
	Amount          int64          `json:"amount"`
	Card            *CardInfo      `json:"card"`
	ErrorMessage    *string        `json:"errorMessage"`
	CascadeErrors   []CascadeError `json:"cascadeErrors"`
	EndDate         *string        `json:"endDate"`
	AuthorizeStatus *string        `json:"authorize_status"`
	Type            string         `json:"type"`
	FirstName       string         `json:"firstName"`
	LastName        string         `json:"lastName"`
}

// RefundRequest is the body of POST /refund.
type RefundRequest struct {
	OrderID     string `json:"order_id"`
	Amount      int64  `json:"amount"`
	Reason      string `json:"reason"`
	CallbackURL string `json:"callback_url,omitempty"`
}

// RefundResponse is the answer to refund.
type RefundResponse struct {
	Success           bool   `json:"success"`
	Message           string `json:"message"`
	RefundID          string `json:"refund_id"`
	ParentTransaction string `json:"parentTransaction"`
}

// Recurrence periods accepted in recur_period.
const (
	RecurDaily     = "01"
	RecurWeekly    = "03"
	RecurMonthly   = "06"
	RecurQuarterly = "09"
	RecurAnnually  = "11"
)

// RecurrentRequest is the body of POST /recurrent.
type RecurrentRequest struct {
	OrderID       string `json:"order_id"`
	ParentOrderID string `json:"parent_order_id"`
	Amount        int64  `json:"amount"`
	Purpose       string `json:"purpose"`
	CallbackURL   string `json:"callback_url,omitempty"`
	RecurPeriod   string `json:"recur_period,omitempty"`
}

// RecurrentResponse is the answer to recurrent.
type RecurrentResponse struct {
	Success   bool    `json:"success"`
	Message   string  `json:"message"`
	PaymentID string  `json:"payment_id"`
	Err       *string `json:"err"`
}

// TokenizeFormRequest is the body of POST /withdrawal/tokenize-form.
type TokenizeFormRequest struct {
	Account     string `json:"account"`
	OrderID     string `json:"order_id"`
	CallbackURL string `json:"callback_url,omitempty"`
	SuccessURL  string `json:"success_url,omitempty"`
	FailURL     string `json:"fail_url,omitempty"`
}

// TokenizeFormResponse is the answer to withdrawal/tokenize-form.
type TokenizeFormResponse struct {
	FormURL           *string `json:"form_url"`
	ThreeDSMethodData *string `json:"threeDSMethodData"`
	OrderID           string  `json:"order_id"`
	Status            Status  `json:"status"`
	Stage             *string `json:"stage"`
	Description       string  `json:"description"`
	EndDate           *string `json:"endDate"`
	ResponseType      string  `json:"responseType"`
	Err               *string `json:"err"`
	Msg               *string `json:"msg"`
}

// WithdrawalRequest is the body of POST /withdrawal/init (chd-api).
type WithdrawalRequest struct {
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
	CustomerZipCode                FlexString `json:"customer_zip_code,omitempty"`
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
	A2ASenderZipCode               FlexString `json:"a2a_sender_zip_code,omitempty"`
}

// Format prints the order, never the card number.
func (r WithdrawalRequest) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "WithdrawalRequest{order_id:%q payment_method:%q card:[redacted]}", r.OrderID, r.PaymentMethod)
}

// WithdrawalResponse is the answer to withdrawal/init.
type WithdrawalResponse struct {
	OrderID string    `json:"order_id"`
	Status  Status    `json:"status"`
	Card    *CardInfo `json:"card"`
	Err     *string   `json:"err"`
	Msg     *string   `json:"msg"`
}

// BalanceRequest is the body of POST /withdrawal/balance/get.
type BalanceRequest struct {
	Account string `json:"account"`
}

// BalanceResponse is the answer to withdrawal/balance/get; amounts in cents.
type BalanceResponse struct {
	Balance        int64 `json:"balance"`
	HoldBalance    int64 `json:"holdBalance"`
	RollingBalance int64 `json:"rollingBalance"`
}

// CaptureRequest is the body of POST /capture. Amount is optional (the whole
// authorized amount when absent) and typed String in the documentation.
type CaptureRequest struct {
	OrderID string   `json:"order_id"`
	Amount  *FlexInt `json:"amount,omitempty"`
}

// CaptureResponse is the answer to capture. OrderID is the transaction id.
type CaptureResponse struct {
	OrderID string `json:"order_id"`
	Status  Status `json:"status"`
}

// CancelRequest is the body of POST /cancel.
type CancelRequest struct {
	OrderID string `json:"order_id"`
}

// CancelResponse is the answer to cancel. OrderID is the transaction id.
type CancelResponse struct {
	OrderID string `json:"order_id"`
	Status  Status `json:"status"`
}

// ExportTaskRequest is the body of POST
// /aggregation-service/public/transaction/excel. dateTo is typed String in the
// documentation and shown as a number; both are accepted.
type ExportTaskRequest struct {
	Type     string   `json:"type"`
	Status   *Status  `json:"status"`
	DateFrom *FlexInt `json:"dateFrom"`
	DateTo   *FlexInt `json:"dateTo"`
}

// ExportTaskResponse is the answer to task creation and to task status.
type ExportTaskResponse struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
}

// ErrorResponse is the body of every 4xx/5xx answer of the sandbox's API. It
// follows the documentation's err/msg fields: Status is always -1, Err a stable
// upper-case code, Msg a fixed English sentence that may name fields but never
// echoes a value, Fields the request fields at fault (validation errors only).
type ErrorResponse struct {
	Status Status   `json:"status"`
	Err    string   `json:"err"`
	Msg    string   `json:"msg"`
	Fields []string `json:"fields,omitempty"`
}

// Error codes in ErrorResponse.Err.
const (
	CodeUnauthorized        = "UNAUTHORIZED"
	CodeUnsupportedMedia    = "UNSUPPORTED_MEDIA_TYPE"
	CodeInvalidJSON         = "INVALID_JSON"
	CodeBodyTooLarge        = "BODY_TOO_LARGE"
	CodeValidation          = "VALIDATION_ERROR"
	CodeAccountNotFound     = "ACCOUNT_NOT_FOUND"
	CodeAccountType         = "ACCOUNT_TYPE_MISMATCH"
	CodeCurrencyMismatch    = "CURRENCY_MISMATCH"
	CodeDuplicateOrder      = "DUPLICATE_ORDER_ID"
	CodeOrderNotFound       = "ORDER_NOT_FOUND"
	CodeInvalidState        = "INVALID_ORDER_STATE"
	CodeAmountExceeds       = "AMOUNT_EXCEEDS_AVAILABLE"
	CodeTaskNotFound        = "TASK_NOT_FOUND"
	CodeTaskNotReady        = "TASK_NOT_READY"
	CodeNotFound            = "NOT_FOUND"
	CodeMethodNotAllowed    = "METHOD_NOT_ALLOWED"
	CodeInternal            = "INTERNAL_ERROR"
	CodeTokenizeNotComplete = "TOKENIZATION_NOT_COMPLETE"
)

// Decline reasons reported in errorMessage (check) and err (init responses).
const (
	DeclineGateNotFound      = "PLATFORM_ERROR_GATE_NOT_FOUND"
	DeclineCardExpired       = "PLATFORM_ERROR_CARD_EXPIRED"
	DeclineBrandUnavailable  = "PLATFORM_ERROR_CARD_BRAND_UNAVAILABLE"
	Decline3DSFailed         = "PLATFORM_ERROR_3DS_AUTHENTICATION_FAILED"
	DeclineWithdrawal        = "PLATFORM_ERROR_WITHDRAWAL_DECLINED"
	DeclineInsufficientFunds = "PLATFORM_ERROR_INSUFFICIENT_BALANCE"
	DeclineAntifraudRules    = "PLATFORM_ERROR_ANTIFRAUD_RULES"
	DeclineGateSkipped       = "PLATFORM_ERROR_GATE_SKIPPED"
)
