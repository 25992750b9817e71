package main

import "github.com/seed-7bfc04c2/dialtone/client"

// rest is a client of a node's REST API over the environment's connection
// pool; the load's call timeout (its context) bounds each call.
func (e *environment) rest(node string) (*client.Client, error) {
	return client.New(e.c.HTTPAddr(node), client.WithHTTPClient(e.http), client.WithTimeout(0))
}
