package spool

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDiskBoundedBusyConsumer: a consumer that takes batches and
// acknowledges them as fast as it can, while the producer appends faster
// than that into a small spool with drop-oldest. Drops and acks
// interleave, and the blocks the spool's files take stay within
// spool-max-size plus one segment at every moment.
func TestDiskBoundedBusyConsumer(t *testing.T) {
	for _, recLen := range []int{2092, 700, 9000} {
		t.Run(fmt.Sprintf("line=%d", recLen), func(t *testing.T) {
			const maxSize = 71205
			e := &events{}
			o := e.opts(filepath.Join(t.TempDir(), "spool"))
			o.MaxSize, o.Policy = maxSize, DropOldest
			s := open(t, o)
			if !s.Punching() {
				t.Skipf("skipped: %s cannot punch holes", o.Dir)
			}
			seg := min(max(o.MaxSize/8, 64<<10), 64<<20)
			limit := maxSize + max(seg, flushAt+int64(recLen)+64) + 16<<10
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			consumed := busyConsumer(ctx, s)
			line := strings.Repeat("z", recLen)
			var peak int64
			for i := 0; i < 20000; i++ {
				s.Append(&Record{Line: []byte(line)})
				if i%50 == 0 {
					s.Flush()
					if n := du(t, o.Dir); n > peak {
						peak = n
					}
				}
			}
			cancel()
			s.Finish()
			<-consumed
			if peak > limit {
				t.Fatalf("%d bytes allocated at the peak, more than %d (spool-max-size %d + one segment); %d dropped; now %s", peak, limit, maxSize, len(e.dropped), s.dump())
			}
			t.Logf("peak %d bytes allocated (limit %d), %d dropped", peak, limit, len(e.dropped))
		})
	}
}

// TestDiskBoundedBusyHandover: as TestDiskBoundedBusyConsumer, across a
// handover: the first spool is closed with a batch out, a second opens
// the directory and goes on under the same load.
func TestDiskBoundedBusyHandover(t *testing.T) {
	const maxSize, recLen = 71205, 2092
	e := &events{}
	o := e.opts(filepath.Join(t.TempDir(), "spool"))
	o.MaxSize, o.Policy = maxSize, DropOldest
	seg := min(max(o.MaxSize/8, 64<<10), 64<<20)
	limit := maxSize + max(seg, flushAt+int64(recLen)+64) + 16<<10
	line := strings.Repeat("z", recLen)
	var peak int64
	for round := 0; round < 4; round++ {
		s, err := Open(o)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Punching() {
			s.Close()
			t.Skipf("skipped: %s cannot punch holes", o.Dir)
		}
		ctx, cancel := context.WithCancel(context.Background())
		consumed := busyConsumer(ctx, s)
		for i := 0; i < 5000; i++ {
			s.Append(&Record{Line: []byte(line)})
			if i%50 == 0 {
				s.Flush()
				if n := du(t, o.Dir); n > peak {
					peak = n
					if n > limit {
						t.Fatalf("round %d, record %d: %d bytes allocated, more than %d (spool-max-size %d + one segment); now %s", round, i, n, limit, maxSize, s.dump())
					}
				}
			}
		}
		cancel()
		<-consumed
		s.Close()
	}
	t.Logf("peak %d bytes allocated (limit %d), %d dropped", peak, limit, len(e.dropped))
}

// busyConsumer takes batches and acknowledges each as soon as a driver
// could have written it, until ctx ends; the batch out then stays out (a
// handover). The channel closes when it stops.
func busyConsumer(ctx context.Context, s *Spool) <-chan struct{} {
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for {
			b, err := s.Next(ctx, 256<<10)
			if err != nil {
				return
			}
			time.Sleep(time.Duration(len(b.Records)) * 20 * time.Microsecond) // the driver writing them
			if ctx.Err() != nil {
				return
			}
			s.Ack()
		}
	}()
	return consumed
}

// dump says where the spool's cursors and segments are, for a failure.
func (s *Spool) dump() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "roff=%d rseg=%d out=%v bseg=%d boff=%d dead=%d pending=%d live=%d held=%d;", s.roff, s.rseg, s.outstanding, s.bseg, s.boff, s.dead, len(s.pending), s.live(), s.held())
	for _, g := range s.segs {
		fmt.Fprintf(&b, " seg start=%d end=%d punched=%d freed=%d", g.start, g.end, g.punched, g.freed)
	}
	return b.String()
}
