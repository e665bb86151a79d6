package ring

import (
	"bytes"
	"fmt"
	"testing"
)

// FuzzRing drives a ring with an operation script and checks it against a
// plain slice model: same records, same order, same drops, bytes never
// above the size.
func FuzzRing(f *testing.F) {
	f.Add(uint16(64), uint8(0), []byte{1, 5, 1, 200, 0, 1, 30, 0, 0})
	f.Add(uint16(9), uint8(1), []byte{1, 5, 1, 5, 0, 1, 0, 0})
	f.Add(uint16(300), uint8(0), bytes.Repeat([]byte{1, 77, 1, 13, 0}, 40))
	f.Fuzz(func(t *testing.T, size uint16, pol uint8, script []byte) {
		p := Policy(pol % 2) // Block would wait forever with one goroutine
		var dropped []string
		r := New(int(size), p, func(head, tail []byte, why string) { dropped = append(dropped, string(head)+string(tail)) })
		var model []string
		used := 0
		var modelDropped []string
		seq := 0
		for i := 0; i < len(script); i++ {
			switch script[i] % 2 {
			case 1: // put a record of the next byte's length
				n := 0
				if i+1 < len(script) {
					i++
					n = int(script[i])
				}
				rec := []byte(fmt.Sprintf("%d:", seq))
				seq++
				for len(rec) < n {
					rec = append(rec, byte('a'+len(rec)%26))
				}
				need := len(rec) + Overhead
				kept := r.Put(rec)
				switch {
				case need > r.Size():
					modelDropped = append(modelDropped, string(rec))
				case p == DropNewest && used+need > r.Size():
					modelDropped = append(modelDropped, string(rec))
				default:
					for used+need > r.Size() {
						modelDropped = append(modelDropped, model[0])
						used -= len(model[0]) + Overhead
						model = model[1:]
					}
					model = append(model, string(rec))
					used += need
				}
				if kept != (len(model) > 0 && model[len(model)-1] == string(rec)) {
					t.Fatalf("Put(%q) = %v disagrees with the model", rec, kept)
				}
			default: // get
				got, ok := r.TryGet(nil)
				if ok != (len(model) > 0) {
					t.Fatalf("TryGet ok=%v with model %q", ok, model)
				}
				if ok {
					if string(got) != model[0] {
						t.Fatalf("got %q want %q", got, model[0])
					}
					used -= len(model[0]) + Overhead
					model = model[1:]
				}
			}
			n, b := r.Len()
			if n != len(model) || b != used || b > r.Size() {
				t.Fatalf("Len = %d, %d; model %d, %d; size %d", n, b, len(model), used, r.Size())
			}
		}
		if fmt.Sprint(dropped) != fmt.Sprint(modelDropped) {
			t.Fatalf("dropped %q want %q", dropped, modelDropped)
		}
	})
}
