// Command minimal is the benchmark's floor: a minimal hand-written Go loop
// that reads stdin through a 64 KiB buffer, writes one JSON object per
// line ({"log":…,"stream":"stdout","time":…}, the json-file shape, with
// only the escaping JSON needs) and writes through a 64 KiB buffer to
// DOCKERLOG_LOGPATH.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	path := os.Getenv("DOCKERLOG_LOGPATH")
	if path == "" {
		fmt.Fprintln(os.Stderr, "minimal: DOCKERLOG_LOGPATH is not set")
		os.Exit(2)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		fmt.Fprintf(os.Stderr, "minimal: %v\n", err)
		os.Exit(1)
	}
	if err := copyLines(bufio.NewReaderSize(os.Stdin, 64<<10), f); err != nil {
		fmt.Fprintf(os.Stderr, "minimal: %v\n", err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "minimal: %v\n", err)
		os.Exit(1)
	}
}

func copyLines(r *bufio.Reader, f io.Writer) error {
	w := bufio.NewWriterSize(f, 64<<10)
	var out, long []byte
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) > 0 {
			out = append(out[:0], `{"log":"`...)
			out = escape(out, line)
			out = append(out, `","stream":"stdout","time":"`...)
			out = time.Now().UTC().AppendFormat(out, time.RFC3339Nano)
			out = append(out, "\"}\n"...)
			if _, werr := w.Write(out); werr != nil {
				return werr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return w.Flush()
			}
			return err
		}
	}
}

// escape appends s as the inside of a JSON string.
func escape(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	for _, b := range s {
		switch {
		case b == '"' || b == '\\':
			dst = append(dst, '\\', b)
		case b == '\n':
			dst = append(dst, '\\', 'n')
		case b < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
		default:
			dst = append(dst, b)
		}
	}
	return dst
}
