package mode

import (
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/diag"
)

// TestBlockingStopCounts: a message still refused when Stop closes is
// dropped and counted (close-timeout), unless the worker hands over and
// its reader leaves the message in its pipe (HandOver, LogOrLeave: the
// next worker delivers it, and counting it would count it twice). A
// reader that cannot leave it (Log) has it counted, handover or not: it
// is consumed.
func TestBlockingStopCounts(t *testing.T) {
	for _, tc := range []struct {
		handOver, canLeave bool
		want               int64
	}{{false, false, 1}, {false, true, 1}, {true, false, 1}, {true, true, 0}} {
		count := &diag.Counters{}
		stop := make(chan struct{})
		d := &testDriver{down: true, entered: make(chan struct{}, 100), gate: make(chan struct{})}
		b := &Blocking{Driver: d, Count: count, Errors: diag.NewErrors(io.Discard), Stop: stop}
		done := make(chan error, 1)
		msg := logger.Message{Source: "stdout", Line: []byte("in flight")}
		go func() {
			if tc.canLeave {
				done <- b.LogOrLeave(&msg)
			} else {
				done <- b.Log(b.own(&msg))
			}
		}()
		<-d.entered // in the driver call, which does not return yet
		if tc.handOver {
			b.HandOver()
		}
		close(stop)
		b.Abandon() // the worker's last count: the call still has not returned
		close(d.gate)
		if err := <-done; err == nil {
			t.Fatal("Log accepted a message the driver refused")
		}
		if got := count.Dropped.Load(); got != tc.want || count.Reason(diag.CloseTimeout) != tc.want {
			t.Fatalf("%+v: %d dropped (%d close-timeout), want %d", tc, got, count.Reason(diag.CloseTimeout), tc.want)
		}
	}
}

// TestBlockingTwoStreams: both readers log at once (stdout and stderr):
// every message the driver takes is counted delivered, once.
func TestBlockingTwoStreams(t *testing.T) {
	count := &diag.Counters{}
	d := &testDriver{}
	b := &Blocking{Driver: d, Count: count, Errors: diag.NewErrors(io.Discard), Stop: make(chan struct{})}
	const each = 20000
	var wg sync.WaitGroup
	for _, source := range []string{"stdout", "stderr"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				msg := logger.NewMessage()
				msg.Source = source
				msg.Line = append(msg.Line, 'x')
				b.Log(msg)
			}
		}()
	}
	wg.Wait()
	if got := count.Delivered.Load(); got != 2*each || len(d.got) != 2*each {
		t.Fatalf("%d counted delivered, %d at the driver, want %d", got, len(d.got), 2*each)
	}
}

// TestBlockingPastStop: once Stop has closed, a message is counted dropped
// at once, without a try of the driver: a reader with lines left ends
// quickly, before its worker's last count, instead of spending a driver's
// retries on each.
func TestBlockingPastStop(t *testing.T) {
	count := &diag.Counters{}
	stop := make(chan struct{})
	close(stop)
	d := &testDriver{entered: make(chan struct{}, 100)}
	b := &Blocking{Driver: d, Count: count, Errors: diag.NewErrors(io.Discard), Stop: stop}
	for i := 0; i < 3; i++ {
		msg := logger.NewMessage()
		msg.Line = append(msg.Line, "late"...)
		if err := b.Log(msg); err == nil {
			t.Fatal("Log past close-timeout said delivered")
		}
	}
	if len(d.entered) != 0 || len(d.got) != 0 {
		t.Fatalf("the driver was tried %d times past close-timeout", len(d.entered))
	}
	if got := count.Reason(diag.CloseTimeout); got != 3 || count.Dropped.Load() != 3 {
		t.Fatalf("%d dropped (%d close-timeout), want 3", count.Dropped.Load(), got)
	}
}

// TestBlockingHandOverLeaves: at a handover a message the driver refuses
// goes back to a reader that can leave it in its pipe (LogOrLeave) with an
// error that says so, counted neither delivered nor dropped, and a close
// after counts nothing more; Log, whose reader cannot, keeps retrying.
func TestBlockingHandOverLeaves(t *testing.T) {
	count := &diag.Counters{}
	stop := make(chan struct{})
	d := &testDriver{down: true, entered: make(chan struct{}, 100)}
	b := &Blocking{Driver: d, Count: count, Errors: diag.NewErrors(io.Discard), Stop: stop}
	msg := logger.Message{Source: "stdout", Line: []byte("in flight")}
	left, kept := make(chan error, 1), make(chan error, 1)
	go func() { left <- b.LogOrLeave(&msg) }()
	<-d.entered // refused once at least: retrying
	b.HandOver()
	err := <-left
	var h interface{ Handover() bool }
	if !errors.As(err, &h) || !h.Handover() {
		t.Fatalf("LogOrLeave after HandOver returned %v, want a handover", err)
	}
	other := logger.NewMessage()
	other.Source, other.Line = "stderr", append(other.Line, "no pipe"...)
	go func() { kept <- b.Log(other) }()
	<-d.entered
	<-d.entered // retried after HandOver
	b.Abandon()
	close(stop)
	<-kept
	if count.Delivered.Load() != 0 || count.Dropped.Load() != 1 {
		t.Fatalf("delivered %d dropped %d, want 0 and 1 (the message Log could not leave)", count.Delivered.Load(), count.Dropped.Load())
	}
}

// TestBlockingHandOverStopsReader: when the worker gives up on a failing
// driver (HandOver, then Stop), a reader that can leave its lines in
// the pipe is told so for the line being retried and for every line it
// hands over after, uncounted: a reader told only "not delivered" went on
// and consumed its round, lines then neither delivered nor counted.
func TestBlockingHandOverStopsReader(t *testing.T) {
	count := &diag.Counters{}
	stop := make(chan struct{})
	d := &testDriver{down: true, entered: make(chan struct{}, 100)}
	b := &Blocking{Driver: d, Count: count, Errors: diag.NewErrors(io.Discard), Stop: stop}
	done := make(chan error, 1)
	go func() { done <- b.LogOrLeave(&logger.Message{Source: "stdout", Line: []byte("retried")}) }()
	<-d.entered
	b.HandOver()
	close(stop)
	var h interface{ Handover() bool }
	if err := <-done; !errors.As(err, &h) {
		t.Fatalf("the line being retried: %v, want a handover", err)
	}
	if err := b.LogOrLeave(&logger.Message{Source: "stdout", Line: []byte("next")}); !errors.As(err, &h) {
		t.Fatalf("the next line: %v, want a handover", err)
	}
	if count.Dropped.Load() != 0 || count.Delivered.Load() != 0 {
		t.Fatalf("dropped %d delivered %d, want 0 and 0", count.Dropped.Load(), count.Delivered.Load())
	}
}
