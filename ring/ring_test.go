package ring

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

type drops struct {
	mu   sync.Mutex
	recs []string
	why  []string
}

func (d *drops) fn(head, tail []byte, why string) {
	d.mu.Lock()
	d.recs = append(d.recs, string(head)+string(tail))
	d.why = append(d.why, why)
	d.mu.Unlock()
}

func getAll(t *testing.T, r *Ring) []string {
	t.Helper()
	var out []string
	for {
		b, ok := r.TryGet(nil)
		if !ok {
			return out
		}
		out = append(out, string(b))
	}
}

func TestFIFOAndBytes(t *testing.T) {
	r := New(1000, DropOldest, nil)
	var want []string
	for i := range 50 {
		s := fmt.Sprintf("record %d %s", i, bytes.Repeat([]byte("x"), i))
		want = append(want, s)
		if !r.Put([]byte(s)) {
			t.Fatalf("put %d dropped", i)
		}
		n, b := r.Len()
		if n != 1 || b != len(s)+Overhead {
			t.Fatalf("len after put %d = %d records %d bytes, want 1, %d", i, n, b, len(s)+Overhead)
		}
		got, ok := r.TryGet(nil)
		if !ok || string(got) != s {
			t.Fatalf("get %d = %q %v", i, got, ok)
		}
	}
	// Fill and empty across the wrap point, many times.
	for round := range 20 {
		var in []string
		total := 0
		for i := 0; ; i++ {
			s := fmt.Sprintf("r%d-%d-%s", round, i, bytes.Repeat([]byte("y"), (i*7+round)%40))
			if total+len(s)+Overhead > 1000 {
				break
			}
			total += len(s) + Overhead
			in = append(in, s)
			if !r.Put([]byte(s)) {
				t.Fatalf("round %d put %d dropped with room", round, i)
			}
		}
		if _, b := r.Len(); b != total {
			t.Fatalf("round %d: %d bytes held, want %d", round, b, total)
		}
		half := len(in) / 2
		for i := 0; i < half; i++ {
			got, _ := r.TryGet(nil)
			if string(got) != in[i] {
				t.Fatalf("round %d get %d = %q want %q", round, i, got, in[i])
			}
		}
		rest := getAll(t, r)
		if fmt.Sprint(rest) != fmt.Sprint(in[half:]) {
			t.Fatalf("round %d rest = %q want %q", round, rest, in[half:])
		}
		// Leave the head somewhere odd for the next round.
		r.Put([]byte("z"))
		r.Put([]byte(fmt.Sprint(round)))
		getAll(t, r)
		r.Put(bytes.Repeat([]byte("w"), round*13%97))
		r.TryGet(nil)
	}
	if n, b := r.Len(); n != 0 || b != 0 {
		t.Fatalf("empty ring holds %d records %d bytes", n, b)
	}
}

func TestDropOldest(t *testing.T) {
	d := &drops{}
	r := New(10*(Overhead+6), DropOldest, d.fn) // room for exactly 10 six-byte records
	for i := range 25 {
		if !r.Put(fmt.Appendf(nil, "rec%03d", i)) {
			t.Fatalf("drop-oldest refused record %d", i)
		}
	}
	got := getAll(t, r)
	want := []string{}
	for i := 15; i < 25; i++ {
		want = append(want, fmt.Sprintf("rec%03d", i))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("kept %q, want newest %q", got, want)
	}
	if len(d.recs) != 15 || d.recs[0] != "rec000" || d.recs[14] != "rec014" || d.why[0] != Full {
		t.Fatalf("dropped %q (%q), want rec000..rec014 as %s", d.recs, d.why, Full)
	}
}

func TestDropNewest(t *testing.T) {
	d := &drops{}
	r := New(10*(Overhead+6), DropNewest, d.fn)
	kept := 0
	for i := range 25 {
		if r.Put(fmt.Appendf(nil, "rec%03d", i)) {
			kept++
		}
	}
	got := getAll(t, r)
	if kept != 10 || len(got) != 10 || got[0] != "rec000" || got[9] != "rec009" {
		t.Fatalf("kept %d: %q, want rec000..rec009", kept, got)
	}
	if len(d.recs) != 15 || d.recs[0] != "rec010" || d.recs[14] != "rec024" {
		t.Fatalf("dropped %q, want rec010..rec024", d.recs)
	}
}

func TestTooLarge(t *testing.T) {
	for _, p := range []Policy{DropOldest, DropNewest, Block} {
		d := &drops{}
		r := New(64, p, d.fn)
		r.Put([]byte("keep"))
		if r.Put(make([]byte, 61)) {
			t.Fatalf("policy %d: a record larger than the ring was kept", p)
		}
		if len(d.why) != 1 || d.why[0] != TooLarge || len(d.recs[0]) != 61 {
			t.Fatalf("policy %d: drops %q %q", p, d.why, d.recs)
		}
		if !r.Put(make([]byte, 60-Overhead-4)) && p != DropNewest {
			t.Fatalf("policy %d: a record that fits with room was dropped", p)
		}
		if got := getAll(t, r); got[0] != "keep" {
			t.Fatalf("policy %d: ring lost its first record: %q", p, got)
		}
	}
}

func TestBlock(t *testing.T) {
	d := &drops{}
	r := New(2*(Overhead+4), Block, d.fn)
	r.Put([]byte("aaaa"))
	r.Put([]byte("bbbb"))
	put := make(chan bool)
	go func() { put <- r.Put([]byte("cccc")) }()
	select {
	case <-put:
		t.Fatal("Put did not block on a full ring")
	case <-time.After(50 * time.Millisecond):
	}
	got, err := r.Get(context.Background(), nil)
	if err != nil || string(got) != "aaaa" {
		t.Fatalf("get = %q %v", got, err)
	}
	if !<-put {
		t.Fatal("blocked Put dropped its record after room was made")
	}
	if fmt.Sprint(getAll(t, r)) != "[bbbb cccc]" {
		t.Fatal("wrong order after block")
	}
	// Close releases a blocked Put, which drops its record.
	r.Put([]byte("dddd"))
	r.Put([]byte("eeee"))
	go func() { put <- r.Put([]byte("ffff")) }()
	time.Sleep(10 * time.Millisecond) // let it block; Close must release it either way
	r.Close()
	if <-put {
		t.Fatal("Put on a closed full ring reported kept")
	}
	if r.Put([]byte("gggg")) {
		t.Fatal("Put after Close reported kept")
	}
	if fmt.Sprint(d.recs, d.why) != "[ffff gggg] [closed closed]" {
		t.Fatalf("drops %q %q, want ffff and gggg as %s", d.recs, d.why, Closed)
	}
	// Get returns what is left, then ErrClosed.
	for _, w := range []string{"dddd", "eeee"} {
		if got, err := r.Get(context.Background(), nil); err != nil || string(got) != w {
			t.Fatalf("get after close = %q %v, want %s", got, err, w)
		}
	}
	if _, err := r.Get(context.Background(), nil); err != ErrClosed {
		t.Fatalf("get on closed empty ring: %v", err)
	}
}

func TestGetContext(t *testing.T) {
	r := New(100, DropOldest, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := r.Get(ctx, nil); err != context.DeadlineExceeded {
		t.Fatalf("Get on empty ring with deadline: %v", err)
	}
}

// TestConcurrent runs producers against one consumer (go test -race):
// every record is either got or dropped, exactly once, and each producer's
// records come out in order.
func TestConcurrent(t *testing.T) {
	for _, p := range []Policy{DropOldest, DropNewest, Block} {
		t.Run(fmt.Sprint(p), func(t *testing.T) {
			const producers, per = 4, 5000
			d := &drops{}
			r := New(512, p, d.fn)
			var wg sync.WaitGroup
			for id := range producers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rec := make([]byte, 8+id*3)
					for i := range per {
						binary.LittleEndian.PutUint32(rec[0:], uint32(id))
						binary.LittleEndian.PutUint32(rec[4:], uint32(i))
						r.Put(rec)
					}
				}()
			}
			go func() { wg.Wait(); r.Close() }()
			last := make([]int, producers)
			for i := range last {
				last[i] = -1
			}
			got := 0
			var buf []byte
			for {
				var err error
				buf, err = r.Get(context.Background(), buf[:0])
				if err == ErrClosed {
					break
				}
				id := int(binary.LittleEndian.Uint32(buf))
				i := int(binary.LittleEndian.Uint32(buf[4:]))
				if len(buf) != 8+id*3 || i <= last[id] {
					t.Fatalf("record %d/%d (len %d) after %d", id, i, len(buf), last[id])
				}
				last[id] = i
				got++
			}
			if got+len(d.recs) != producers*per {
				t.Fatalf("got %d + dropped %d != put %d", got, len(d.recs), producers*per)
			}
			if p == Block && len(d.recs) != 0 {
				t.Fatalf("block policy dropped %d", len(d.recs))
			}
		})
	}
}

// TestLargeRingOffHeap: a large ring's buffer is not Go heap (so the
// collector's pacing does not let the heap grow by its size again), and
// it works as any ring, across the wrap.
func TestLargeRingOffHeap(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("the ring is on the heap here")
	}
	const size = 64 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := New(size, DropOldest, nil)
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
		t.Fatalf("the heap grew by %d bytes for a ring of %d", grew, size)
	}
	// It works as a ring, across the wrap.
	rec := bytes.Repeat([]byte("x"), 1<<20)
	for i := range 200 {
		binary.LittleEndian.PutUint32(rec, uint32(i))
		r.Put(rec)
	}
	n, used := r.Len()
	if n != size/(len(rec)+Overhead) || used != n*(len(rec)+Overhead) {
		t.Fatalf("holds %d records, %d bytes", n, used)
	}
	b, ok := r.TryGet(nil)
	if !ok || binary.LittleEndian.Uint32(b) != uint32(200-n) {
		t.Fatalf("oldest kept is %d, want %d", binary.LittleEndian.Uint32(b), 200-n)
	}
	runtime.KeepAlive(r)
}

// TestPutParts: a record put in two parts is one record, whole when taken
// out and when dropped, where it wraps too.
func TestPutParts(t *testing.T) {
	var d drops
	r := New(40, DropOldest, d.fn)
	for i := 0; i < 20; i++ {
		head, tail := fmt.Sprintf("h%02d:", i), fmt.Sprintf("tail-%02d", i)
		if !r.PutParts([]byte(head), []byte(tail)) {
			t.Fatalf("record %d refused", i)
		}
	}
	got := getAll(t, r)
	all := append(append([]string{}, d.recs...), got...)
	if len(all) != 20 {
		t.Fatalf("%d records dropped and %d taken out, want 20 in all", len(d.recs), len(got))
	}
	for i, rec := range all {
		if want := fmt.Sprintf("h%02d:tail-%02d", i, i); rec != want {
			t.Fatalf("record %d is %q, want %q (dropped %q, taken %q)", i, rec, want, d.recs, got)
		}
	}
	if len(got) == 0 || len(d.recs) == 0 {
		t.Fatalf("dropped %d, taken %d: the test wants both", len(d.recs), len(got))
	}
	if !New(40, DropOldest, d.fn).PutParts(nil, []byte("only a tail")) {
		t.Fatal("a record with no head was refused")
	}
	r2 := New(16, DropNewest, d.fn)
	if r2.PutParts([]byte("0123456789"), []byte("0123456789")) {
		t.Fatal("a record larger than the ring was kept")
	}
	if last := d.recs[len(d.recs)-1]; last != "01234567890123456789" || d.why[len(d.why)-1] != TooLarge {
		t.Fatalf("dropped %q (%s), want the whole record as too-large", last, d.why[len(d.why)-1])
	}
}
