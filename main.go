// Command kiln-example serves the example app of this repository, a small
// social network for mobile (schema/app.graphql), with Kiln's server and
// the app's own code (code.go: hooks, a webhook trigger, a nightly job).
// An app made with `kiln new` has the same main.
package main

import (
	"kiln/graph"
	"kiln/server"
)

func main() { server.Main(graph.App(appCode())) }
