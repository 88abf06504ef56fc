package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// decoderParseObject is parseObject as first written on encoding/json's Decoder: the
// slow, obviously-right reading the hand-written walk must agree with.
func decoderParseObject(body []byte) ([]jsonField, bool) {
	if !utf8.Valid(body) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var fields []jsonField
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key := kt.(string)
		if slices.ContainsFunc(fields, func(f jsonField) bool { return strings.EqualFold(f.key, key) }) {
			return nil, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false
		}
		end := int(dec.InputOffset())
		f := jsonField{key: key, start: end - len(raw), end: end}
		if len(raw) > 0 && raw[0] == '"' {
			if err := json.Unmarshal(raw, &f.str); err != nil {
				return nil, false
			}
			f.isString = true
		}
		fields = append(fields, f)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return fields, true
}

var parseObjectSeeds = []string{
	`{}`, ` { } `, `{"a":"b"}`, `{"a":1,"b":-2.5e+3,"c":true,"d":false,"e":null}`,
	`{"a":{"b":["}",{"c":"]"}]},"d":"\"}"}`, `{"a\u0062":"\ud83d\ude00\n","B":[]}`,
	`{"a":"x","A":"y"}`, `{"K":1,"\u212a":2}`, `{"a":1}{}`, `{"a":1,}`, `{"a" 1}`, `[]`, `"s"`,
	`{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"a":01}`, "{\r\n\t\"a\" :\t\"b\" ,\n\"c\": [ 1 , 2 ] }\n",
	`{"card_number":"tok_4fH8sK2pLq9ZxT7vWm3Rb1","amount":1000}`, ``, `{`, `{"a":"b`,
	`{"σ":1,"ς":2}`, `{"ς":1,"Σ":2}`, `{"ſ":1,"S":2}`, `{"Card_CVV":1,"card_cvv":2}`, `{"é":1,"É":2,"e":3}`,
}

func TestParseObjectAgreesWithDecoder(t *testing.T) {
	for _, s := range parseObjectSeeds {
		checkParseObject(t, []byte(s))
	}
}

func TestParseObjectSpans(t *testing.T) {
	body := []byte(` {"a" : "x\"y" , "b":[1,{"c":2}] ,"n": -0.5}`)
	fields, err := parseObject(body)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fields {
		got = append(got, f.key+"="+string(body[f.start:f.end]))
	}
	want := []string{`a="x\"y"`, `b=[1,{"c":2}]`, `n=-0.5`}
	if !slices.Equal(got, want) || fields[0].str != `x"y` || !fields[0].isString || fields[1].isString {
		t.Fatalf("got %q (%+v), want %q", got, fields, want)
	}
	for _, bad := range []string{`{"a":1,"A":2}`, `{"a":1} x`, `{"a":1`, "{\"a\":\"\xc3\"}"} {
		if _, err := parseObject([]byte(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func FuzzParseObject(f *testing.F) {
	for _, s := range parseObjectSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkParseObject)
}

func checkParseObject(t *testing.T, body []byte) {
	got, err := parseObject(body)
	want, ok := decoderParseObject(body)
	if (err == nil) != ok {
		t.Fatalf("%q: hand-written walk err=%v, decoder ok=%v", body, err, ok)
	}
	if len(got) != len(want) {
		t.Fatalf("%q: %d fields, decoder %d", body, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%q: field %d = %+v, decoder %+v", body, i, got[i], want[i])
		}
	}
}

// manyFieldsBody is a body of 4,500 short distinct fields (about 33 KiB, within the
// forward limit): the shape that made a quadratic duplicate-key check cost ~100 ms.
func manyFieldsBody() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := range 4500 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"%s":0`, strconv.FormatInt(int64(i), 36))
	}
	b.WriteByte('}')
	return b.Bytes()
}

func TestWalkObjectFoldsEachKeyOnce(t *testing.T) {
	body := manyFieldsBody()
	calls := 0
	fields, err := walkObject(body, func(k string) string { calls++; return foldKey(k) })
	if err != nil || calls != len(fields) || len(fields) != 4500 {
		t.Fatalf("got %d fields (err %v) and %d key calls, want 4500 and one call per key", len(fields), err, calls)
	}
}

func BenchmarkParseObjectManyFields(b *testing.B) {
	body := manyFieldsBody()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseObject(body); err != nil {
			b.Fatal(err)
		}
	}
}
