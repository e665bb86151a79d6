// Package bench holds the throughput benchmark of dockerlogger's json-file
// path and its baselines: cmd/throughput runs each contender as
// a child process fed through a pipe and prints the table; cmd/dockercopier
// is Docker's own path (logger.Copier into Docker's json-file driver) and
// cmd/minimal a minimal hand-written Go loop. cmd/stall is the benchmark
// of a stalled sink in each delivery mode and cmd/supervision
// that of the supervisor's cost, restart time and live-upgrade gap; cmd/readback reads
// 1,000,000 lines back with dockerlogger logs beside Docker's own reader;
// internal/measure holds what they share (/proc figures, the logger's stats line,
// percentiles). `make bench` builds and runs them all. Each prints a table
// with PASS or MISS per target and never gates on a target.
//
// Nothing here is imported by dockerlogger, and it must never import the
// drivers package: Docker's json-file driver and ours register the same
// name.
package bench
