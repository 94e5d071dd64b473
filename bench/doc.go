// Package bench holds Kiln's benchmarks: server cold start, code generation,
// GraphQL read throughput as a signed-in user against a hand-written pgx +
// encoding/json baseline, realtime fan-out, files and image renditions. It
// contains no library code; everything lives in _test.go files
// and runs only with `go test -bench`. See docs/performance.md for what each
// benchmark measures, how to reproduce the figures, and the figures.
package bench
