package smartpay

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestExportTaskValidation(t *testing.T) {
	e := newEnv(t, Options{})
	valid := map[string]any{"type": "Payment", "status": 2, "dateFrom": 1674507600000, "dateTo": 1679678900200}
	cases := []struct {
		name   string
		body   map[string]any
		fields string
	}{
		{"an unknown type", with(valid, "type", "Chargeback"), "type"},
		{"a lower-case type", with(valid, "type", "payment"), "type"},
		{"no type", with(valid, "type", nil), "type"},
		{"no status", with(valid, "status", nil), "status"},
		{"status 0", with(valid, "status", 0), "status"},
		{"no dateFrom", with(valid, "dateFrom", nil), "dateFrom"},
		{"no dateTo", with(valid, "dateTo", nil), "dateTo"},
		{"a negative dateFrom", with(valid, "dateFrom", -1), "dateFrom"},
		{"dateFrom after dateTo", with(valid, "dateFrom", 1679678900201), "dateTo"},
		{"everything missing", map[string]any{}, "type,status,dateFrom,dateTo"},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			er := e.refuse(exportPath, c.body, http.StatusBadRequest, codeValidation)
			if strings.Join(er.Fields, ",") != c.fields {
				t.Errorf("got %v, want %s", er.Fields, c.fields)
			}
		})
	}
	t.Run("a non-numeric dateTo string is refused", func(t *testing.T) {
		e.refuse(exportPath, with(valid, "dateTo", "yesterday"), http.StatusBadRequest, codeValidation)
	})
	t.Run("dateTo as a string, as typed in the documentation, is accepted", func(t *testing.T) {
		e.post(exportPath, with(valid, "dateTo", "1679678900200"), nil)
	})
}

func TestExportProducesAnXLSXOfMatchingTransactions(t *testing.T) {
	var offset atomic.Int64 // the clock moves between requests
	e := newEnv(t, Options{Now: func() time.Time { return testNow.Add(time.Duration(offset.Load())) }})
	e.post("/initPaymentHost2Host", cardPayment("x-paid-1", panFrictionless), nil)
	e.post("/initPaymentHost2Host", cardPayment("x-failed", panDecline), nil)
	e.post("/withdrawal/init", withdrawal("x-payout", panFrictionless, 100), nil)
	offset.Store(int64(time.Hour))
	e.post("/initPaymentHost2Host", cardPayment("x-paid-late", panFrictionless), nil)
	offset.Store(0)

	from := testNow.Add(-time.Minute).UnixMilli()
	to := testNow.Add(time.Minute).UnixMilli()
	var task exportTaskResponse
	e.post(exportPath, map[string]any{"type": "Payment", "status": 2, "dateFrom": from, "dateTo": to}, &task)
	if task.Status != statusProcessing || len(task.ID) != 24 {
		t.Fatalf("got %+v, want a task in status 1", task)
	}

	t.Run("the result is refused before the task is complete", func(t *testing.T) {
		status, _ := e.do(http.MethodGet, exportPath+"/task/"+task.ID+"/result", defaultAuth, nil)
		if status != http.StatusConflict {
			t.Errorf("got %d, want 409", status)
		}
	})
	t.Run("the task is complete at its first status poll", func(t *testing.T) {
		status, b := e.do(http.MethodGet, exportPath+"/task/"+task.ID, defaultAuth, nil)
		if status != http.StatusOK || strings.TrimSpace(string(b)) != `{"id":"`+task.ID+`","status":2}` {
			t.Errorf("got %d %s, want status 2", status, b)
		}
	})
	t.Run("another merchant cannot see the task", func(t *testing.T) {
		status, _ := e.do(http.MethodGet, exportPath+"/task/"+task.ID, basic("x", "y"), nil)
		if status != http.StatusUnauthorized {
			t.Errorf("got %d, want 401", status)
		}
		status, _ = e.do(http.MethodGet, exportPath+"/task/000000000000000000000000", defaultAuth, nil)
		if status != http.StatusNotFound {
			t.Errorf("unknown task: got %d, want 404", status)
		}
	})

	resp := e.doResp(http.MethodGet, exportPath+"/task/"+task.ID+"/result", defaultAuth, "", nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != xlsxContentType {
		t.Fatalf("got %d %q, want 200 %s", resp.StatusCode, resp.Header.Get("Content-Type"), xlsxContentType)
	}
	if !strings.Contains(resp.Header.Get("Content-Disposition"), ".xlsx") {
		t.Errorf("got Content-Disposition %q, want an .xlsx attachment", resp.Header.Get("Content-Disposition"))
	}

	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("result is not a zip: %v", err)
	}
	parts := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("open %s: %v", f.Name, err)
		}
		parts[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	for _, name := range []string{"[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels", "xl/worksheets/sheet1.xml", "xl/styles.xml"} {
		b, ok := parts[name]
		if !ok {
			t.Errorf("missing part %s", name)
			continue
		}
		if err := xml.Unmarshal(b, new(struct{})); err != nil {
			t.Errorf("part %s is not well-formed XML: %v", name, err)
		}
	}
	if !bytes.Contains(parts["[Content_Types].xml"], []byte("spreadsheetml.worksheet+xml")) {
		t.Errorf("content types do not declare the worksheet")
	}

	rows := sheetRows(t, parts["xl/worksheets/sheet1.xml"])
	if len(rows) != 2 {
		t.Fatalf("got %d rows %v, want header and one payment", len(rows), rows)
	}
	if strings.Join(rows[0], "|") != strings.Join(exportHeader, "|") {
		t.Errorf("got header %v, want %v", rows[0], exportHeader)
	}
	want := []string{"x-paid-1", "", "Payment", "2", "1000", "EUR", "401200******3010", "VISA", "2026-03-15T12:00:00.000Z", "2026-03-15T12:00:00.000Z", ""}
	got := rows[1]
	got[1] = "" // transaction id is random
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got row %v, want %v", got, want)
	}
	for _, p := range testPANs {
		if bytes.Contains(parts["xl/worksheets/sheet1.xml"], []byte(p)) {
			t.Errorf("the sheet holds a full PAN")
		}
	}

	t.Run("a failed-payment export lists the declined payment with its error", func(t *testing.T) {
		var task exportTaskResponse
		e.post(exportPath, map[string]any{"type": "Payment", "status": -1, "dateFrom": 0, "dateTo": to}, &task)
		e.do(http.MethodGet, exportPath+"/task/"+task.ID, defaultAuth, nil)
		_, b := e.do(http.MethodGet, exportPath+"/task/"+task.ID+"/result", defaultAuth, nil)
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range zr.File {
			if f.Name == "xl/worksheets/sheet1.xml" {
				rc, _ := f.Open()
				x, _ := io.ReadAll(rc)
				rc.Close()
				rows := sheetRows(t, x)
				if len(rows) != 2 || rows[1][0] != "x-failed" || rows[1][10] != declineGateNotFound {
					t.Errorf("got %v, want the declined payment", rows)
				}
			}
		}
	})
}

// sheetRows reads the cell values of a worksheet (inline strings and numbers).
func sheetRows(t *testing.T, b []byte) [][]string {
	t.Helper()
	var ws struct {
		Rows []struct {
			Cells []struct {
				Ref    string `xml:"r,attr"`
				Type   string `xml:"t,attr"`
				Value  string `xml:"v"`
				Inline string `xml:"is>t"`
			} `xml:"c"`
		} `xml:"sheetData>row"`
	}
	if err := xml.Unmarshal(b, &ws); err != nil {
		t.Fatalf("sheet XML: %v", err)
	}
	var out [][]string
	for _, r := range ws.Rows {
		var row []string
		for _, c := range r.Cells {
			if c.Type == "inlineStr" {
				row = append(row, c.Inline)
			} else {
				row = append(row, c.Value)
			}
		}
		out = append(out, row)
	}
	return out
}

func TestXLSXHelpers(t *testing.T) {
	for _, c := range []struct {
		i    int
		want string
	}{{0, "A"}, {10, "K"}, {25, "Z"}, {26, "AA"}, {27, "AB"}, {701, "ZZ"}, {702, "AAA"}} {
		if got := columnName(c.i); got != c.want {
			t.Errorf("columnName(%d): got %q, want %q", c.i, got, c.want)
		}
	}
	b, err := buildXLSX("S", []string{"a"}, [][]xlsxCell{{textCell(`<&>"'` + "\x01")}}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := buildXLSX("S", []string{"a"}, [][]xlsxCell{{textCell(`<&>"'` + "\x01")}}, testNow)
	if !bytes.Equal(b, b2) {
		t.Errorf("output is not deterministic")
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Name == "xl/worksheets/sheet1.xml" {
			rc, _ := f.Open()
			x, _ := io.ReadAll(rc)
			rc.Close()
			rows := sheetRows(t, x)
			if rows[1][0] != `<&>"'`+"\uFFFD" {
				t.Errorf("got %q, want the escaped text back", rows[1][0])
			}
		}
	}
}
