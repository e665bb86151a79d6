// Package bench holds the throughput benchmark of dockerlogger's json-file
// path (issue 2) and its baselines: cmd/throughput runs each contender as
// a child process fed through a pipe and prints the table; cmd/dockercopier
// is Docker's own path (logger.Copier into Docker's json-file driver) and
// cmd/minimal a minimal hand-written Go loop. `make bench` builds and runs
// them.
//
// Nothing here is imported by dockerlogger, and it must never import the
// drivers package: Docker's json-file driver and ours register the same
// name.
package bench
