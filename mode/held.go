package mode

import (
	"sync"
	"sync/atomic"
)

// HeldRecord keeps, in memory shared with the next worker
// (protocol.Ledger), what a driver holds that a worker killed now would
// lose (Held): the next worker counts it (worker-died). Async keeps one
// for its driver; the worker keeps one for a blocking-mode driver.
type HeldRecord struct {
	Lines, Bytes *atomic.Int64 // nil: nothing is recorded
	Held         func() (lines, bytes int64)

	// mu orders the looks: a store of an older look after a newer one
	// could hide a line.
	mu sync.Mutex
	// counted: the worker counted what the driver holds itself; nothing
	// more is recorded for the next one.
	counted bool
}

// Refresh records what the driver holds now.
func (h *HeldRecord) Refresh() {
	if h == nil || h.Lines == nil || h.Held == nil {
		return
	}
	if h.Lines.Load() == 0 {
		if l, _ := h.Held(); l == 0 {
			// Nothing held, nothing recorded (a driver that sends as it
			// takes): no lock and no shared store per line.
			return
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counted {
		return
	}
	l, b := h.Held()
	h.Lines.Store(l)
	h.Bytes.Store(b)
}

// Counted says the worker has counted what the driver holds: the record
// is cleared, and nothing more is recorded.
func (h *HeldRecord) Counted() {
	if h == nil || h.Lines == nil {
		return
	}
	h.mu.Lock()
	h.counted = true
	h.Lines.Store(0)
	h.Bytes.Store(0)
	h.mu.Unlock()
}
