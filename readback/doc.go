// Package readback reads back what the json-file and local drivers and the
// dual-logging cache wrote (`dockerlogger logs`): it finds the current
// file and its rotations (name.N, or name.N.gz when the plain one is gone,
// oldest first, as Docker's reader does), tells the format from the
// content, decodes with Docker's own types (jsonlog.JSONLog,
// logdriver.LogEntry), applies docker logs' --tail, --since and --until
// with the meaning of Docker's reader (loggerutils: the tail is counted in
// entries over the files, then since and until filter), joins partial
// messages, and with --follow goes on across rotations until the writer
// has closed the file for good (package filelog holds a lock on its
// current file while it writes).
//
// It must never import a driver, the reader, a delivery mode, the worker
// or the supervisor: it only reads files.
package readback
