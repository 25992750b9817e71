// Package openapi holds the OpenAPI document generated from Dialtone's
// public protos (make proto), embedded so every node serves it at
// /openapi.json.
package openapi

import _ "embed"

// JSON is the generated OpenAPI (Swagger 2.0) document.
//
//go:embed dialtone.swagger.json
var JSON []byte
