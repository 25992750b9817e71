package server

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/server/jsonbody"
)

// FuzzStrictGatewayDecode: the gateway's strict decoder never panics,
// accepts a body only when it is one JSON value (trailing data of any kind
// is refused), and then decodes exactly what protojson decodes from it.
func FuzzStrictGatewayDecode(f *testing.F) {
	for _, s := range []string{
		`{"requests":[{"token":"T","telnum":"1"}]}`,
		`{"requests":[]}garbage`,
		`{"requests":[]}{"requests":[]}`,
		`{"requests":[]}` + "      x",
		`{"tenant":"acme","bogus":1}`,
		``,
		`  `,
	} {
		f.Add([]byte(s))
	}
	m := strictJSONPb{&runtime.JSONPb{UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false}}}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got pb.CreateRequestsRequest
		err := m.NewDecoder(bytes.NewReader(body)).Decode(&got)
		single := jsonbody.Single(body)
		if errors.Is(single, io.EOF) {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("empty body: %v", err)
			}
			return
		}
		if err != nil {
			return
		}
		if single != nil {
			t.Fatalf("accepted %q, which is not one JSON value: %v", body, single)
		}
		var want pb.CreateRequestsRequest
		if perr := protojson.Unmarshal(body, &want); perr != nil {
			t.Fatalf("accepted %q, which protojson refuses: %v", body, perr)
		}
		if !proto.Equal(&got, &want) {
			t.Fatalf("decoded %v, protojson %v", &got, &want)
		}
	})
}
