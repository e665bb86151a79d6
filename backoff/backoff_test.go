package backoff

import (
	"testing"
	"time"
)

func TestDoublesToMaxAndResets(t *testing.T) {
	b := New(100*time.Millisecond, 500*time.Millisecond)
	var got []time.Duration
	for range 5 {
		got = append(got, b.Next())
	}
	want := []time.Duration{100, 200, 400, 500, 500}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("waits %v, want %v ms", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); d != 100*time.Millisecond {
		t.Fatalf("after Reset: %v", d)
	}
}

func TestSleepStops(t *testing.T) {
	stop := make(chan struct{})
	close(stop)
	if Sleep(time.Hour, stop) {
		t.Fatal("Sleep ran its whole hour past a closed stop")
	}
	if !Sleep(time.Millisecond, nil) {
		t.Fatal("Sleep with a nil stop said it was stopped")
	}
}
