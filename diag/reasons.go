package diag

// Why lines were dropped: each reason is spelled here only, and shows in
// the counters as lines_dropped_<reason> (dashes as underscores).
const (
	BufferFull     = "buffer-full"     // the ring or spool was full (buffer-full decides which lines)
	TooLarge       = "too-large"       // a line larger than the whole ring or spool
	CloseTimeout   = "close-timeout"   // still undelivered when close-timeout ended the logger
	DriverGaveUp   = "driver-gave-up"  // the driver had accepted it, then gave up (retries spent)
	WorkerDied     = "worker-died"     // in the ring or driver of a worker that died
	EarlierWorkers = "earlier-workers" // dropped before this worker (by earlier ones or the supervisor)
	LoggerFailed   = "logger-failed"   // on-failure=ignore drained it to nowhere
	LoggerDown     = "logger-down"     // no worker ran and the pipe had to make room
	SpoolClosed    = "spool-closed"    // reached a spool that was closing
	DiskFull       = "disk-full"       // json-file/local: ENOSPC or EDQUOT
	WriteFailed    = "write-failed"    // json-file/local: any other write error
	Rejected       = "rejected"        // the sink refused it as invalid (HTTP 400 and like codes): sending again cannot help
	PartialReject  = "partial-reject"  // otlp: the collector's partial success named it among the records it refused
)
