package mode

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestAsyncRecordsDriverHeld: after each delivery the ring's consumer
// records what the driver holds unsent (for the next worker to count if
// this one is killed), and RefreshDriverHeld records it again once the
// driver has sent it on its own.
func TestAsyncRecordsDriverHeld(t *testing.T) {
	count, errs := newCounters()
	d := &testDriver{}
	var held, heldBytes, pending atomic.Int64
	a, err := NewAsync(AsyncConfig{Mode: "non-blocking", MaxBufferSize: 1 << 20, Driver: d, Count: count, Errors: errs,
		DriverHeldLines: &held, DriverHeldBytes: &heldBytes,
		DriverPending: func() (int64, int64) { n := pending.Load(); return n, 10 * n }})
	if err != nil {
		t.Fatal(err)
	}
	pending.Store(3) // a driver that batches: it holds what it took
	for _, l := range []string{"a", "b", "c"} {
		a.Log(msg("stdout", l))
	}
	deadline := time.Now().Add(10 * time.Second)
	for count.Delivered.Load() < 3 || held.Load() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d delivered, driver-held recorded %d lines, want 3 and 3", count.Delivered.Load(), held.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if heldBytes.Load() != 30 {
		t.Fatalf("driver-held bytes %d, want 30", heldBytes.Load())
	}
	pending.Store(0) // the batch went out
	a.RefreshDriverHeld()
	if held.Load() != 0 || heldBytes.Load() != 0 {
		t.Fatalf("after the driver sent its batch: held %d lines, %d bytes recorded", held.Load(), heldBytes.Load())
	}
	if err := a.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestAsyncRefusingSince: the queue says since when its driver refuses
// every message, and pokes its waker once when that starts; one success
// clears it.
func TestAsyncRefusingSince(t *testing.T) {
	count, errs := newCounters()
	d := &testDriver{down: true, entered: make(chan struct{}, 100)}
	a, err := NewAsync(AsyncConfig{Mode: "non-blocking", MaxBufferSize: 1 << 20, Driver: d, Count: count, Errors: errs})
	if err != nil {
		t.Fatal(err)
	}
	wake := make(chan struct{}, 1)
	a.Refusing.Arm(&wake)
	if !a.RefusingSince().IsZero() {
		t.Fatal("refusing before any delivery")
	}
	a.Log(msg("stdout", "refused"))
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Fatal("no poke when the driver began refusing")
	}
	if a.RefusingSince().IsZero() {
		t.Fatal("RefusingSince is zero while the driver refuses")
	}
	d.mu.Lock()
	d.down = false
	d.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for count.Delivered.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("never delivered once the driver was back")
		}
		time.Sleep(time.Millisecond)
	}
	if !a.RefusingSince().IsZero() {
		t.Fatal("RefusingSince not cleared by a success")
	}
	a.Drain(context.Background())
}
