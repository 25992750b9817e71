package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/client"
)

// A trigger application submits a request, reads it back linearizably and
// tells a missing request from other failures.
func Example() {
	// A stand-in for a node: srv.URL would be e.g. "https://node1:8080".
	srv, err := newGateway(&fake{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	c, err := client.New(srv.URL, client.WithBasicAuth("acme-app", "secret"))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	created, err := c.CreateRequests(ctx, &pb.CreateRequestsRequest{
		Tenant: "acme",
		Requests: []*pb.RequestSpec{{
			Token: "order-17", IvrProfile: "Sales", Telnum: "+4930123456",
			NotificationUrl: "https://app.example/result", MaxAttempts: 3, TimeToLive: "3600s",
			IdempotencyKey: "order-17",
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	id := created.Results[0].Id
	got, err := c.GetRequest(ctx, &pb.GetRequestRequest{Tenant: "acme", Id: id, Consistency: client.Linearizable})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.Request.Id, got.Request.State)

	_, err = c.GetRequest(ctx, &pb.GetRequestRequest{Tenant: "acme", Id: "missing"})
	var apiErr *client.Error
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound {
		fmt.Println("not found:", apiErr.Message)
	}
	// Output:
	// r0 PENDING
	// not found: request missing not found
}
