package smartpay

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// jsonTags lists the JSON names of t's fields, embedded structs flattened.
func jsonTags(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonTags(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func TestRequestTypesCarryExactlyTheDocumentedParameters(t *testing.T) {
	// The parameter tables of shared/smartpayments-api.txt, in order.
	payment := "account amount currency order_id merchant_site recurrent purpose customer_first_name customer_last_name customer_address customer_city customer_zip_code customer_country customer_phone customer_email customer_ip_address callback_url success_url fail_url status_url"
	cases := []struct {
		name   string
		typ    any
		params string
		extra  string // tags beyond the table, and why
	}{
		{"initPayment", initPaymentRequest{}, payment, ""},
		{"initPaymentHost2Host", hostToHostRequest{}, payment + " card_holder payment_method card_number card_exp_month card_exp_year card_cvv recur_freq recur_exp apple_pay_dpan apple_pay_payment_method_network google_pay_dpan google_pay_payment_method_network browser_accept_header browser_user_agent browser_java_enabled browser_js_enabled browser_color_depth browser_screen_height browser_screen_width browser_language browser_time_zone", ""},
		{"check", checkRequest{}, "order_id", ""},
		{"refund", refundRequest{}, "order_id amount reason callback_url", ""},
		{"recurrent", recurrentRequest{}, "order_id parent_order_id amount purpose callback_url recur_period", ""},
		{"withdrawal/tokenize-form", tokenizeFormRequest{}, "account order_id callback_url success_url fail_url", ""},
		{"withdrawal/init", withdrawalRequest{}, "account amount order_id purpose merchant_site customer_card_number tokenize_transaction_order_id customer_card_exp_month customer_card_exp_year customer_first_name customer_last_name customer_middle_name customer_phone customer_birthdate customer_country customer_zip_code callback_url account_withdrawal account_withdrawal_holder account_withdrawal_iin payment_method provider_id customer_ip_address account_withdrawal_bin account_withdrawal_kbe account_withdrawal_bank_code account_withdrawal_bank_name account_withdrawal_cnp account_withdrawal_recipient_code account_withdrawal_sender_code account_withdrawal_recipient_rnn account_withdrawal_recipient_name a2a_sender_country a2a_sender_city a2a_sender_address a2a_sender_zip_code", ""},
		{"withdrawal/balance/get", balanceRequest{}, "account", ""},
		// authorize shares the payment fields; its table omits customer_ip_address (optional, omitted when empty).
		{"authorize", authorizeRequest{}, "account amount currency order_id merchant_site recurrent purpose customer_first_name customer_last_name customer_address customer_city customer_zip_code customer_country customer_phone customer_email success_url fail_url callback_url status_url card_holder card_number card_exp_month card_exp_year card_cvv", "customer_ip_address"},
		{"capture", captureRequest{}, "order_id amount", ""},
		{"cancel", cancelRequest{}, "order_id", ""},
		{"transaction excel task", exportTaskRequest{}, "type status dateFrom dateTo", ""},
		{"task response", exportTaskResponse{}, "id status", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := strings.Fields(c.params + " " + c.extra)
			sort.Strings(want)
			got := jsonTags(reflect.TypeOf(c.typ))
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("got tags\n%v\nwant\n%v", got, want)
			}
		})
	}
}

// roundTrip decodes doc into a value of v's type, refusing unknown fields, and
// returns the re-encoded JSON as a map.
func roundTrip(t *testing.T, doc string, v any) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode: %v", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func TestDocumentationResponseExamplesRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		v    any
	}{
		{"initPayment", `{"ACSUrl":null,"MD":null,"TermUrl":null,"description":"","status":1,"form_url":"https://payment.magua-pay.com/64a7e106d46c5db10d082b13","order_id":"sandboxFormId_1015","responseType":"REDIRECT"}`, &initPaymentResponse{}},
		{"initPaymentHost2Host", `{"form_url":"https://payment.magua-pay.com/64a7eec2d46c5db10d082b3d","threeDSMethodData":null,"order_id":"64a7eec2d46c5db10d082b3d","status":1,"stage":null,"description":"","endDate":null,"responseType":"REDIRECT","err":null,"msg":null,"paReq":null,"creq":null,"md":null,"termUrl":null,"acsurl":null}`, &paymentResponse{}},
		{"check (error)", `{"order_id":"sandboxFormId_1016","status":-1,"amount":1000,"card":{"number":"401200******3010","bin":"401200","country":"Spain","iso":"ESP","type":"VISA"},"errorMessage":"PLATFORM_ERROR_GATE_NOT_FOUND","cascadeErrors":[{"gatePriority":0,"errorCategory":"PLATFORM_ERROR_ANTIFRAUD_RULES"},{"gatePriority":1,"errorCategory":"PLATFORM_ERROR_GATE_SKIPPED"},{"gatePriority":2,"errorCategory":"PLATFORM_ERROR_CARD_BRAND_UNAVAILABLE"}],"endDate":"2024-01-12T11:18:26.678Z","authorize_status":null,"type":"Payment","firstName":"John","lastName":"Doe"}`, &checkResponse{}},
		{"refund", `{"success":false,"message":"","refund_id":"0719e590-1cda-11ee-82d1-a58ec416e4a2","parentTransaction":"64a40ee3c4125fdb1d5cf635"}`, &refundResponse{}},
		{"recurrent", `{"success":true,"message":"","payment_id":"0719e590-1cda-11ee-82d1-a58ec416e4a2","err":null}`, &recurrentResponse{}},
		{"withdrawal/tokenize-form", `{"form_url":"https://payment.magua-pay.com/64a7eec2d46c5db10d082b3d","threeDSMethodData":null,"order_id":"64a7eec2d46c5db10d082b3d","status":1,"stage":null,"description":"","endDate":null,"responseType":"REDIRECT","err":null,"msg":null}`, &tokenizeFormResponse{}},
		{"withdrawal/init", `{"order_id":"testPayout_1050","status":1,"card":{"number":"401200******3010","bin":"401200","country":"Spain","iso":"ESP","type":"VISA"},"err":null,"msg":null}`, &withdrawalResponse{}},
		{"withdrawal/balance/get", `{"balance":10000,"holdBalance":0,"rollingBalance":0}`, &balanceResponse{}},
		{"capture", `{"order_id":"66f55a03b2eb068a084168c2","status":2}`, &captureResponse{}},
		{"cancel", `{"order_id":"66f40c8fb6ff9364083fc9a5","status":-1}`, &cancelResponse{}},
		{"excel task", `{"id":"641def1d70836759e8af7dd4","status":1}`, &exportTaskResponse{}},
	}
	for _, c := range cases {
		t.Run(c.name+" decodes and re-encodes to the same JSON", func(t *testing.T) {
			got := roundTrip(t, c.doc, c.v)
			var want map[string]any
			_ = json.Unmarshal([]byte(c.doc), &want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %v\nwant %v", got, want)
			}
		})
	}
}

func TestDocumentationRequestExamplesDecode(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		v    any
	}{
		{"initPaymentHost2Host with a numeric zip code", `{"payment_method":"card","account":"EUR-sandbox","amount":1000,"currency":"EUR","order_id":"sandboxId_1015","merchant_site":"https://merchant.site","recurrent":false,"purpose":"description","customer_first_name":"John","customer_last_name":"Doe","customer_address":"10 Downing Street","customer_city":"London","customer_zip_code":121165,"customer_country":"GB","customer_phone":"+442079460612","customer_email":"[email protected]","customer_ip_address":"127.0.0.1","success_url":"https://site.com/success","fail_url":"https://site.com/fail","callback_url":"https://site.com/callback","status_url":"https://site.com/redir","card_holder":"John Doe","card_number":"4012000000003010","card_exp_month":"02","card_exp_year":"25","card_cvv":"123","apple_pay_dpan":"eyJhIjoxfQ==","apple_pay_payment_method_network":"Visa"}`, &hostToHostRequest{}},
		{"withdrawal/init with a string zip code", `{"account":"EUR-sandbox-payout","order_id":"testPayout_1050","amount":10000,"payment_method":"card","customer_card_number":"4123540003981114","merchant_site":"https://merchant.site","customer_first_name":"John","customer_middle_name":"Jerom","customer_last_name":"Doe","customer_phone":"+442079460612","customer_birthdate":"06.06.1997","customer_zip_code":"121165","callback_url":"https://site.com/callback"}`, &withdrawalRequest{}},
		{"excel task", `{"type":"Payment","status":2,"dateFrom":1674507600000,"dateTo":1679678900200}`, &exportTaskRequest{}},
		{"capture with an amount", `{"order_id":"sandboxId_1016","amount":"500"}`, &captureRequest{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := roundTrip(t, c.doc, c.v)
			if z, ok := m["customer_zip_code"]; ok && z != "121165" {
				t.Errorf("got customer_zip_code %v, want \"121165\"", z)
			}
		})
	}
}

func TestFlexString(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{`121165`, "121165", true},
		{`"121165"`, "121165", true},
		{`"SW1A 2AA"`, "SW1A 2AA", true},
		{`-7`, "-7", true},
		{`null`, "kept", true},
		{`true`, "", false},
		{`{}`, "", false},
		{`[]`, "", false},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			s := flexString("kept")
			err := json.Unmarshal([]byte(c.in), &s)
			if (err == nil) != c.ok || (c.ok && string(s) != c.want) {
				t.Errorf("got %q, %v; want %q, ok=%v", s, err, c.want, c.ok)
			}
		})
	}
	b, _ := json.Marshal(flexString("121165"))
	if string(b) != `"121165"` {
		t.Errorf("got %s, want a JSON string", b)
	}
}

func TestFlexInt(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{`500`, 500, true},
		{`"500"`, 500, true},
		{`-3`, -3, true},
		{`"12.5"`, 0, false},
		{`1.5`, 0, false},
		{`1e3`, 0, false},
		{`"abc"`, 0, false},
		{`""`, 0, false},
		{`99999999999999999999`, 0, false},
		{`true`, 0, false},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			var n flexInt
			err := json.Unmarshal([]byte(c.in), &n)
			if (err == nil) != c.ok || int64(n) != c.want {
				t.Errorf("got %d, %v; want %d, ok=%v", n, err, c.want, c.ok)
			}
		})
	}
	var req captureRequest
	if err := json.Unmarshal([]byte(`{"order_id":"a","amount":null}`), &req); err != nil || req.Amount != nil {
		t.Errorf("null amount: got %v, %v; want nil", req.Amount, err)
	}
	b, _ := json.Marshal(captureRequest{OrderID: "a", Amount: int64Ptr(7)})
	if !bytes.Equal(b, []byte(`{"order_id":"a","amount":7}`)) {
		t.Errorf("got %s", b)
	}
}

func TestCardHelpers(t *testing.T) {
	t.Run("the test cards are recognised", func(t *testing.T) {
		for pan, want := range map[string]cardClass{panFrictionless: classFrictionless, panChallenge: classChallenge, panDecline: classDecline, panMastercard: classDecline} {
			if got := classify(pan); got != want {
				t.Errorf("classify(%s): got %d, want %d", maskPAN(pan), got, want)
			}
		}
	})
	t.Run("masking keeps BIN and last four", func(t *testing.T) {
		for pan, want := range map[string]string{panFrictionless: "401200******3010", "378282246310005": "378282*****0005", "6011000990139424": "601100******9424", "401200000000": "401200**0000"} {
			if got := maskPAN(pan); got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		}
	})
	t.Run("brands", func(t *testing.T) {
		for pan, want := range map[string]string{panFrictionless: "VISA", panMastercard: "MASTERCARD", "2221000000000009": "MASTERCARD", "378282246310005": "AMEX", "6011000990139424": "DISCOVER", "3530111333300000": "JCB", "2200000000000004": "MIR", "6200000000000005": "UNIONPAY", "9000000000000009": "UNKNOWN"} {
			if got := brandOf(pan); got != want {
				t.Errorf("brandOf(%s): got %q, want %q", maskPAN(pan), got, want)
			}
		}
	})
}
