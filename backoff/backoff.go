// Package backoff is the one way the logger spaces its attempts: a wait
// that starts at a first value and doubles up to a limit, and a sleep that
// a stop channel cuts short. Every retry loop (driver creation, delivery,
// reconnection, worker restarts) takes its bounds from its own caller and
// its shape from here.
//
// It must never import another package of this module.
package backoff

import "time"

// Backoff is a doubling wait. The zero value waits nothing: use New.
type Backoff struct {
	first, max, next time.Duration
}

// New returns a Backoff that starts at first and doubles up to max.
func New(first, max time.Duration) *Backoff {
	return &Backoff{first: first, max: max, next: first}
}

// Next returns the wait to make now and doubles the next one, up to max.
func (b *Backoff) Next() time.Duration {
	d := b.next
	b.next = min(2*b.next, b.max)
	return d
}

// Reset starts again from the first wait: the attempts succeeded.
func (b *Backoff) Reset() { b.next = b.first }

// Wait sleeps the next wait, or until stop is closed; it reports whether
// the whole wait passed.
func (b *Backoff) Wait(stop <-chan struct{}) bool { return Sleep(b.Next(), stop) }

// Sleep sleeps d, or until stop is closed (a nil stop never is); it
// reports whether the whole of d passed.
func Sleep(d time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}
