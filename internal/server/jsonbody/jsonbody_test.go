package jsonbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSingle(t *testing.T) {
	cases := []struct {
		name, body string
		want       error // nil: accepted; io.EOF; ErrTrailingData; errAny
	}{
		{"object", `{"a":1}`, nil},
		{"surrounding whitespace", " \r\n\t{\"a\":1} \n", nil},
		{"array", `[1,2]`, nil},
		{"empty", ``, io.EOF},
		{"only whitespace", "  \n", io.EOF},
		{"trailing garbage", `{"a":1}garbage`, ErrTrailingData},
		{"concatenated", `{"a":1}{"a":2}`, ErrTrailingData},
		{"concatenated with newline", "{\"a\":1}\n{\"a\":2}", ErrTrailingData},
		{"huge whitespace then junk", `{"a":1}` + strings.Repeat(" ", 1<<20) + "x", ErrTrailingData},
		{"trailing NUL", "{\"a\":1}\x00", ErrTrailingData},
		{"two numbers", `1 2`, ErrTrailingData},
		{"truncated", `{"a":`, errAny},
		{"syntax", `{"a" 1}`, errAny},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Single([]byte(c.body))
			switch {
			case c.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want == errAny && err == nil:
				t.Fatal("accepted")
			case c.want != nil && c.want != errAny && !errors.Is(err, c.want):
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	err := Single([]byte(`{"a":1}` + strings.Repeat(" ", 100) + "xyz"))
	if err == nil || !strings.Contains(err.Error(), "at byte 107") || !strings.Contains(err.Error(), `"xyz"`) {
		t.Fatalf("error does not name the offset and data: %v", err)
	}
}

var errAny = errors.New("any error")

func TestDecode(t *testing.T) {
	type body struct {
		A *int `json:"a"`
	}
	var b body
	if err := Decode(strings.NewReader(`{"a":3}`), 100, &b); err != nil || b.A == nil || *b.A != 3 {
		t.Fatalf("decode = %v, %+v", err, b)
	}
	if err := Decode(strings.NewReader(`{"b":3}`), 100, &body{}); err == nil || !strings.Contains(err.Error(), `unknown field "b"`) {
		t.Fatalf("unknown field: %v", err)
	}
	if err := Decode(strings.NewReader(`{"a":3}x`), 100, &body{}); !errors.Is(err, ErrTrailingData) {
		t.Fatalf("trailing: %v", err)
	}
	if err := Decode(strings.NewReader(`{"a":3}`+strings.Repeat(" ", 100)), 100, &body{}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if err := Decode(strings.NewReader(""), 100, &body{}); !errors.Is(err, io.EOF) {
		t.Fatalf("empty: %v", err)
	}
	// An http.MaxBytesReader that trips is ErrTooLarge too.
	rec := httptest.NewRecorder()
	r := http.MaxBytesReader(rec, io.NopCloser(strings.NewReader(`{"a":1}`+strings.Repeat(" ", 50))), 10)
	if err := Decode(r, 0, &body{}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("max bytes reader: %v", err)
	}
}

func TestCheckContentType(t *testing.T) {
	for ct, ok := range map[string]bool{
		"":                                  true,
		"application/json":                  true,
		"Application/JSON; charset=UTF-8":   true,
		"application/json; charset=latin1":  false,
		"text/plain":                        false,
		"application/x-www-form-urlencoded": false,
		"text/xml":                          false,
		"application/json+junk":             false,
		"application/json;;;":               false,
	} {
		err := CheckContentType(ct)
		if (err == nil) != ok || (err != nil && !errors.Is(err, ErrContentType)) {
			t.Errorf("%q: %v", ct, err)
		}
	}
}

// FuzzSingle: Single never panics and accepts exactly the inputs that hold
// one JSON value and whitespace: what encoding/json's Valid accepts. (Not
// Unmarshal into any: it also refuses a number beyond float64, which is
// valid JSON; the fuzzer found one.)
func FuzzSingle(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1}x`, `{}{}`, ` [1, {"b": null}] `, `"s"`, `1 2`, "{\"a\":1}\n\n\x00", `{"a":`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Single(data)
		if len(bytes.Trim(data, " \t\r\n")) == 0 { // JSON whitespace only
			if !errors.Is(err, io.EOF) {
				t.Fatalf("empty body: %v", err)
			}
			return
		}
		if valid := json.Valid(data); (err == nil) != valid {
			t.Fatalf("Single = %v, json.Valid = %v for %q", err, valid, data)
		}
	})
}

// FuzzDecode: Decode never panics and never accepts trailing data.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"tenant":"acme","n":9}`), []byte("garbage"))
	f.Add([]byte(`{"tenant":"acme"}`), []byte(`{"tenant":"x"}`))
	f.Fuzz(func(t *testing.T, body, tail []byte) {
		var v struct {
			Tenant string  `json:"tenant"`
			N      *uint32 `json:"n"`
		}
		if Decode(bytes.NewReader(body), 1<<16, &v) != nil {
			return
		}
		if len(bytes.Trim(tail, " \t\r\n")) > 0 && Decode(bytes.NewReader(append(append([]byte{}, body...), tail...)), 1<<16, &v) == nil {
			var w any
			if json.Unmarshal(append(append([]byte{}, body...), tail...), &w) == nil {
				return // body+tail may itself be one value (e.g. "1" + "2" = "12")
			}
			t.Fatalf("accepted %q followed by %q", body, tail)
		}
	})
}
