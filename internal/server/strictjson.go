package server

import (
	"io"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/seed-7bfc04c2/dialtone/internal/server/jsonbody"
)

// strictJSONPb is the gateway's JSON marshaler with a strict decoder: the
// whole body must be exactly one JSON value (jsonbody.Single), so trailing
// garbage or a second, concatenated object is a 400 and nothing is applied.
// The stock decoder reads the first value and ignores the rest.
type strictJSONPb struct {
	*runtime.JSONPb
}

// NewDecoder reads all of r (the body, already capped by limitBody), checks
// it, then unmarshals it like the stock decoder. An empty body is io.EOF,
// which the generated handlers treat as "no body".
func (m strictJSONPb) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		data, err := jsonbody.Read(r, 0)
		if err != nil {
			return err
		}
		if err := jsonbody.Single(data); err != nil {
			return err
		}
		return m.JSONPb.Unmarshal(data, v)
	})
}

// requireJSON answers 415 when a request carrying a body declares a
// Content-Type other than application/json (see jsonbody.CheckContentType),
// in the gateway's error shape. The suppression-list upload is exempt: its
// body is a file (newline or CSV numbers), parsed by its own handler.
func requireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if jsonbody.HasBody(r) && !isSuppressionUpload(r) {
			if err := jsonbody.CheckContentType(r.Header.Get("Content-Type")); err != nil {
				writeGatewayError(w, http.StatusUnsupportedMediaType, err.Error())
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// isSuppressionUpload reports whether r is POST suppressionUploadPath.
func isSuppressionUpload(r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/suppressions/")
	tenant, ok2 := strings.CutSuffix(rest, "/upload")
	return r.Method == http.MethodPost && ok && ok2 && tenant != "" && !strings.Contains(tenant, "/")
}
