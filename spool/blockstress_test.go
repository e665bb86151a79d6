package spool

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"
	"time"
)

// TestBlockTinySpoolNeverStalls: buffer-full=block with a spool a few
// records large (records up to half of it): the producer and the consumer
// never wait on each other for good.
func TestBlockTinySpoolNeverStalls(t *testing.T) {
	for _, noPunch := range []bool{false, true} {
		t.Run(fmt.Sprintf("nopunch=%v", noPunch), func(t *testing.T) {
			e := &events{}
			o := e.opts(filepath.Join(t.TempDir(), "spool"))
			o.MaxSize, o.Policy, o.NoPunch, o.LineMax = 34864, Block, noPunch, 14003
			s := open(t, o)
			const n = 3000
			rnd := rand.New(rand.NewSource(1))
			done := make(chan error, 1)
			go func() {
				ctx := context.Background()
				for got := 0; got < n; {
					b, err := s.Next(ctx, 256<<10)
					if err != nil {
						done <- err
						return
					}
					got += len(b.Records)
					s.Ack()
				}
				done <- nil
			}()
			for i := 0; i < n; i++ {
				size := 1 + rnd.Intn(14003)
				if rnd.Intn(4) > 0 {
					size = 1 + rnd.Intn(300)
				}
				appended := make(chan error, 1)
				go func() { appended <- s.Append(&Record{Line: bytes.Repeat([]byte{'x'}, size)}) }()
				select {
				case err := <-appended:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("append %d (%d bytes) stalled: held %d: %s", i, size, s.Len(), s.debugState())
				}
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("consumer stalled: %s", s.debugState())
			}
		})
	}
}

// debugState says where the spool's cursors are, for a failure message.
func (s *Spool) debugState() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := fmt.Sprintf("pending=%d dead=%d rseg=%d roff=%d outstanding=%v acked=%d handed=%d next=%d punch=%v segSize=%d", len(s.pending), s.dead, s.rseg, s.roff, s.outstanding, s.acked, s.handed, s.nextSeq, s.punch, s.segSize)
	for _, g := range s.segs {
		out += fmt.Sprintf(" [%s start=%d end=%d freed=%d]", g.name, g.start, g.end, g.freed)
	}
	return out
}
