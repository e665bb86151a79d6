//go:build linux

package pipepeek

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/joyent/dockerlogger/zfd"
)

// The cost of peeking, beside a plain read of the same pipe in the same
// run: a writer fills a 1 MiB pipe with 100-byte lines; the reader reads
// 272 KiB at a time (what reader.Copy asks for) and, peeking, commits up
// to the last newline of each read, as reader.Copy does.
func BenchmarkSource(b *testing.B) {
	b.Run("read", func(b *testing.B) { benchSource(b, false) })
	b.Run("peek", func(b *testing.B) { benchSource(b, true) })
}

func benchSource(b *testing.B, peek bool) {
	var chunk []byte
	for len(chunk) < 64<<10 {
		chunk = append(chunk, bytes.Repeat([]byte{'x'}, 99)...)
		chunk = append(chunk, '\n')
	}
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	zfd.GrowPipe(int(r.Fd())) // as zfd grows the inputs it opens
	var src io.Reader = r
	var p *Peek
	if peek {
		if p, err = NewPeek(r); err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		src = p
	}
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			w.Write(chunk)
		}
		w.Close()
	}()
	buf := make([]byte, 272<<10)
	n, total := 0, 0
	for {
		m, err := src.Read(buf[n:])
		n += m
		total += m
		if p != nil {
			if q := bytes.LastIndexByte(buf[:n], '\n'); q >= 0 {
				if err := p.Commit(q + 1); err != nil {
					b.Fatal(err)
				}
				n = copy(buf, buf[q+1:n])
			}
		} else if q := bytes.LastIndexByte(buf[:n], '\n'); q >= 0 {
			n = copy(buf, buf[q+1:n])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if total != b.N*len(chunk) {
		b.Fatalf("read %d bytes, wrote %d", total, b.N*len(chunk))
	}
}
