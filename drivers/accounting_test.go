package drivers

import (
	"testing"

	"github.com/joyent/dockerlogger/diag"
)

// TestFileAccountingSpool: a line a file driver could not write at close
// is dropped, but in spool mode it is still in the spool (never
// acknowledged): left for the next logger, not dropped, or it would be
// counted twice when that one delivers it.
func TestFileAccountingSpool(t *testing.T) {
	for _, spool := range []bool{false, true} {
		c := &diag.Counters{}
		c.SetSpooled(3) // what Drain left before the driver closed
		a := fileAccounting{c: c, spool: spool}
		a.Written(5, 50)
		a.Lost(2, 20, diag.DiskFull)
		wantDropped, wantSpooled := int64(2), "3"
		if spool {
			wantDropped, wantSpooled = 0, "5"
		}
		if c.Delivered.Load() != 5 || c.Dropped.Load() != wantDropped || c.Reason(diag.DiskFull) != wantDropped || c.Get("lines_spooled") != wantSpooled {
			t.Errorf("spool=%v: delivered %d, dropped %d (disk-full %d), lines_spooled %q; want 5, %d, %s",
				spool, c.Delivered.Load(), c.Dropped.Load(), c.Reason(diag.DiskFull), c.Get("lines_spooled"), wantDropped, wantSpooled)
		}
	}
}
