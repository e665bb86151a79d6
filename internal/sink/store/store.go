// Package store is what the in-repo sinks (internal/sink/...) keep of what
// they received: the records in arrival order, a signal at every change,
// and a wait for N records, so that a caller waits on the sink itself
// rather than polling it.
//
// It must never import dockerlogger's own packages: a sink sees the logger
// only through the wire.
package store

import (
	"fmt"
	"sync"
	"time"
)

// Store holds records of type T. Its zero value is empty and ready, named
// "sink"; a sink embeds it, named for its errors:
//
//	Store: store.Store[Event]{Name: "hec sink"}
//
// It must not be copied after first use.
type Store[T any] struct {
	Name string // the sink, for Wait's error: "NAME: 3 of 5 events after 1s"

	mu      sync.Mutex
	items   []T
	changed chan struct{} // closed and replaced at every change
}

// signal wakes every waiter; s.mu is held.
func (s *Store[T]) signal() {
	if s.changed != nil {
		close(s.changed)
	}
	s.changed = make(chan struct{})
}

// Add stores items, in order, and wakes every waiter.
func (s *Store[T]) Add(items ...T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items = append(s.items, items...)
	s.signal()
}

// Signal wakes every waiter without storing anything: for a sink whose
// other state (requests served, acks, refusals) changed.
func (s *Store[T]) Signal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signal()
}

// All returns a copy of every record stored, in arrival order.
func (s *Store[T]) All() []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]T(nil), s.items...)
}

// Len is how many records are stored.
func (s *Store[T]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// Notify returns a channel closed at the next change (Add or Signal):
// for a caller that streams records as they come.
func (s *Store[T]) Notify() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

// Until waits up to d until cond holds, checking it now and after every
// change, and reports whether it did. cond runs without the store's lock:
// it may call All, or read the sink's own state under the sink's lock.
func (s *Store[T]) Until(d time.Duration, cond func() bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		changed := s.Notify() // before cond: a change after cond wakes us
		if cond() {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		}
	}
}

// Wait waits until at least n records are stored or d passes, and returns
// the records stored.
func (s *Store[T]) Wait(n int, d time.Duration) ([]T, error) {
	if s.Until(d, func() bool { return s.Len() >= n }) {
		return s.All(), nil
	}
	all := s.All()
	name := s.Name
	if name == "" {
		name = "sink"
	}
	return all, fmt.Errorf("%s: %d of %d events after %v", name, len(all), n, d)
}
