// Package ssg is Dialtone's Genesys Supplementary Services Gateway
// compatibility endpoint: POST /SSG?TenantName=... with an SSGRequest body of
// CreateRequest, QueryRequest and CancelRequest elements, GET /SSG to query
// and DELETE /SSG to cancel one request, answered with SSGResponse
// documents, so that existing trigger applications can use Dialtone
// unchanged.
//
// It is a front end only: CreateRequests are mapped to the native
// api/dialtonev1 RequestSpec, validated by server.ValidateSpec and stored
// through the same service as the gRPC and REST API (Service, implemented
// by *server.Requests), so records are identical whichever protocol created
// them. As in the SSG, a POST that fails parsing or validation stores
// nothing and answers one FAILURE element; a valid POST answers one element
// per request element, in document order, mixing SUCCESS and FAILURE when
// storing or a lookup fails for some of them. docs/ssg.md is the reference:
// the schema, the reason code table and every decision the seed left open.
package ssg
