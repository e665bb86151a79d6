//go:build !linux

package protocol

import (
	"errors"
	"os"
	"sync/atomic"
)

// Ledger needs memfd, which only Linux has; elsewhere there is none and
// its accessors return nil.
type Ledger struct{}

// NewLedger always fails here.
func NewLedger() (*Ledger, error) { return nil, errors.New("ledger: no memfd on this platform") }

// OpenLedger always fails here.
func OpenLedger(int) (*Ledger, error) { return nil, errors.New("ledger: no memfd on this platform") }

func (*Ledger) Handed(int) *atomic.Int64                   { return nil }
func (*Ledger) Replayed() *atomic.Int64                    { return nil }
func (*Ledger) RingHeld() (lines, bytes *atomic.Int64)     { return nil, nil }
func (*Ledger) CarriedDrops() (lines, bytes *atomic.Int64) { return nil, nil }
func (*Ledger) File() *os.File                             { return nil }
func (*Ledger) SavePartial(int, string, int, int64)        {}
func (*Ledger) Partial(int) (string, int, int64, bool)     { return "", 0, 0, false }
func (*Ledger) Consumed(int) *atomic.Int64                 { return nil }
func (*Ledger) MaybeDelivered() *atomic.Int64              { return nil }
func (*Ledger) DriverHeld() (lines, bytes *atomic.Int64)   { return nil, nil }
func (*Ledger) PartialID(int, int64) string                { return "" }
func (*Ledger) Relieving() *atomic.Int64                   { return nil }
