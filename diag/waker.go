package diag

import "sync/atomic"

// Waker lets a goroutine with nothing to do sleep until something happens,
// instead of looking on a timer: a logger runs in every container, and an
// idle one must not wake up. The side where it happens calls Poke, which
// costs one atomic load while nobody waits.
type Waker struct {
	to atomic.Pointer[chan struct{}]
}

// Arm makes the next Poke send on *ch without blocking: ch needs room for
// one, and a Poke that finds it full is one wake-up already pending.
func (w *Waker) Arm(ch *chan struct{}) { w.to.Store(ch) }

// Disarm takes back Arm.
func (w *Waker) Disarm() { w.to.Store(nil) }

// Poke wakes the armed waiter, once.
func (w *Waker) Poke() {
	if w.to.Load() == nil {
		return
	}
	if ch := w.to.Swap(nil); ch != nil {
		select {
		case *ch <- struct{}{}:
		default:
		}
	}
}
