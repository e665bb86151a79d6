package mode

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger"
)

// holdDriver takes every message, and holds call number at in Log until
// release is closed, having closed inLog.
type holdDriver struct {
	testDriver
	at             int64
	calls          atomic.Int64
	inLog, release chan struct{}
}

func (d *holdDriver) Log(m *logger.Message) error {
	if d.calls.Add(1) == d.at {
		close(d.inLog)
		<-d.release
	}
	return d.testDriver.Log(m)
}

// TestSpoolStopAcksDelivered: a handover stops the consumer
// in the middle of a batch. What the driver took is acknowledged before
// the spool closes, so the next process delivers the rest of the batch
// and nothing twice, and counts no replay; what a process hands to a
// driver that never takes it is replayed and counted in Replayed (the
// ledger's lines_replayed).
func TestSpoolStopAcksDelivered(t *testing.T) {
	for _, took := range []int{1, 100, 999} {
		t.Run(fmt.Sprint(took), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool")
			count, errs := newCounters()
			d := &holdDriver{at: int64(took), inLog: make(chan struct{}), release: make(chan struct{})}
			var replayed atomic.Int64
			cfg := AsyncConfig{Mode: "spool", SpoolDir: dir, SpoolMaxSize: 1 << 20, Driver: d, Count: count, Errors: errs, Replayed: &replayed}
			a, err := NewAsync(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := range 1000 {
				want = append(want, fmt.Sprint("stdout line ", i))
				a.Log(msg("stdout", fmt.Sprint("line ", i)))
			}
			a.Flush()
			// Line took is in the driver's hands when the handover comes.
			<-d.inLog
			stopped := make(chan error)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			go func() { stopped <- a.Drain(ctx) }()
			time.Sleep(20 * time.Millisecond)
			close(d.release)
			<-stopped
			if n := d.calls.Load(); n != int64(took) {
				t.Errorf("the consumer went on after the stop: %d calls to Log, want %d", n, took)
			}
			first := d.lines()
			if len(first) != took {
				t.Fatalf("the driver took %d lines, want %d", len(first), took)
			}
			// The next process: the rest, once, with no replay counted.
			count2, errs2 := newCounters()
			d2 := &testDriver{}
			cfg.Driver, cfg.Count, cfg.Errors = d2, count2, errs2
			a, err = NewAsync(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := append(first, d2.lines()...)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("after the handover: %d lines, want %d (the first process delivered %d)", len(got), len(want), took)
			}
			if replayed.Load() != 0 || stat(count2, "spool_replayed") != "" {
				t.Fatalf("replayed %d, spool_replayed %q: nothing was delivered twice", replayed.Load(), stat(count2, "spool_replayed"))
			}
		})
	}
	t.Run("never-taken", func(t *testing.T) {
		// A driver that is down: the batch out is replayed, and counted.
		dir := filepath.Join(t.TempDir(), "spool")
		count, errs := newCounters()
		var replayed atomic.Int64
		cfg := AsyncConfig{Mode: "spool", SpoolDir: dir, SpoolMaxSize: 1 << 20, Driver: &testDriver{down: true}, Count: count, Errors: errs, Replayed: &replayed}
		a, err := NewAsync(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			a.Log(msg("stdout", fmt.Sprint("line ", i)))
		}
		a.Flush()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		a.Drain(ctx)
		count2, errs2 := newCounters()
		d2 := &testDriver{}
		cfg.Driver, cfg.Count, cfg.Errors = d2, count2, errs2
		if a, err = NewAsync(cfg); err != nil {
			t.Fatal(err)
		}
		a.Drain(context.Background())
		// What the first consumer had taken out (one batch: all 50, or
		// fewer when it ran before the last lines were flushed) is
		// replayed and counted; every line arrives once.
		if n := replayed.Load(); n < 1 || n > 50 || stat(count2, "spool_replayed") != fmt.Sprint(n) {
			t.Fatalf("replayed %d, spool_replayed %q; want the same, 1 to 50", n, stat(count2, "spool_replayed"))
		}
		if got := d2.lines(); len(got) != 50 {
			t.Fatalf("the next process delivered %d lines, want 50", len(got))
		}
	})
}
