package portpub

import (
	"context"
	"crypto/tls"
	"encoding/base64"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/seed-7bfc04c2/dialtone/internal/tlsconf"
)

// WithTLS makes the connections use TLS with cfg.
func WithTLS(cfg *tls.Config) grpc.DialOption {
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg))
}

// WithCAFile makes the connections use TLS, verifying the nodes against the
// PEM CA certificates in caFile (the system roots when caFile is empty).
func WithCAFile(caFile string) (grpc.DialOption, error) {
	cfg, err := tlsconf.Client(caFile)
	if err != nil {
		return nil, err
	}
	return WithTLS(cfg), nil
}

// BasicAuth sends HTTP basic credentials (a user with the publish role) on
// every stream. Like the CLI, it does not insist on TLS: without it the
// password crosses the network in clear.
func BasicAuth(user, password string) grpc.DialOption {
	v := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	return grpc.WithPerRPCCredentials(headerCreds{v})
}

// BearerToken sends a JWT (with the publish role) on every stream.
func BearerToken(token string) grpc.DialOption {
	return grpc.WithPerRPCCredentials(headerCreds{"Bearer " + token})
}

// headerCreds sets the authorization metadata.
type headerCreds struct{ value string }

func (c headerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": c.value}, nil
}

func (c headerCreds) RequireTransportSecurity() bool { return false }
