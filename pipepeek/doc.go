// Package pipepeek reads a pipe without consuming it (Peek): what a worker
// read but did not commit stays in the pipe for the next worker. For
// loginit --tee it copies what it reads to a console (package console),
// zero-copy when that is a pipe. It also measures what a pipe holds
// (Held) for the supervisor's relief. Only Linux has the tee(2) and
// splice(2) it needs; elsewhere NewPeek fails and inputs are read plainly.
//
// It must never import a driver, the reader, a delivery mode, the
// supervisor or the worker: it deals in file descriptors only, and the
// reader knows it only through the methods it has (reader.Windowed,
// ErrStopped's Handover).
package pipepeek
