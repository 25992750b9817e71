// Package jsonbody reads JSON request bodies strictly: exactly one JSON
// value, optionally surrounded by whitespace, and nothing after it. A
// decoder that stops after the first value would apply
// `{"a":1}garbage` or the first of two concatenated objects and drop the
// rest silently; every JSON body Dialtone reads goes through here (the
// REST gateway's marshaler and the hand-written Cisco handlers).
package jsonbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

var (
	// ErrTrailingData means something other than whitespace follows the
	// body's JSON value.
	ErrTrailingData = errors.New("unexpected data after the JSON value")
	// ErrTooLarge means the body exceeds the reader's limit.
	ErrTooLarge = errors.New("body too large")
	// ErrContentType means the declared Content-Type is not JSON.
	ErrContentType = errors.New("unsupported Content-Type")
)

// Single checks that data holds exactly one JSON value, with only JSON
// whitespace around it. An empty (or all-whitespace) body answers io.EOF.
// Errors name the byte offset of the problem.
func Single(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("body: truncated JSON: %w", err)
		}
		return fmt.Errorf("body: %w", err)
	}
	off := int(dec.InputOffset())
	for i := off; i < len(data); i++ {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return fmt.Errorf("body: %w at byte %d (%s): send exactly one JSON object", ErrTrailingData, i, excerpt(data[i:]))
	}
	return nil
}

// excerpt quotes the start of b for an error message.
func excerpt(b []byte) string {
	const n = 16
	if len(b) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		return fmt.Sprintf("%q...", b[:cut])
	}
	return fmt.Sprintf("%q", b)
}

// Read reads the whole body, at most limit bytes (0: no limit); a longer
// body answers ErrTooLarge (so does an http.MaxBytesReader that tripped).
func Read(r io.Reader, limit int64) ([]byte, error) {
	if limit > 0 {
		r = io.LimitReader(r, limit+1)
	}
	data, err := io.ReadAll(r)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, fmt.Errorf("body: %w: exceeds the limit of %d bytes", ErrTooLarge, mbe.Limit)
	case err != nil:
		return nil, fmt.Errorf("body: read failed: %w", err)
	case limit > 0 && int64(len(data)) > limit:
		return nil, fmt.Errorf("body: %w: exceeds the limit of %d bytes", ErrTooLarge, limit)
	}
	return data, nil
}

// Decode reads one JSON value from r (at most limit bytes) into v with
// encoding/json, refusing unknown fields and trailing data. An empty body
// answers io.EOF.
func Decode(r io.Reader, limit int64, v any) error {
	data, err := Read(r, limit)
	if err != nil {
		return err
	}
	if err := Single(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	return nil
}

// CheckContentType accepts a request's Content-Type for a JSON body:
// application/json (a charset parameter, if any, must be UTF-8) or none at
// all. Anything else, curl's default application/x-www-form-urlencoded
// and text/plain included, is refused with ErrContentType: the body would
// be read as something it was not declared to be.
func CheckContentType(ct string) error {
	if strings.TrimSpace(ct) == "" {
		return nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return fmt.Errorf("%w %q: send JSON bodies as application/json", ErrContentType, clip(ct))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		return fmt.Errorf("%w: charset %q: only UTF-8 is supported", ErrContentType, clip(cs))
	}
	return nil
}

// HasBody reports whether r may carry a body (a declared non-zero length,
// or an unknown one).
func HasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

func clip(s string) string {
	if len(s) <= 60 {
		return s
	}
	cut := 60
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
