package readback

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// rotated returns the rotated files of path, oldest first: name.N for
// each N found, or name.N.gz where name.N is gone (Docker's reader takes
// the plain file first: a compression that did not finish leaves both).
func rotated(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	plain, gz := map[int]bool{}, map[int]bool{}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok {
			continue
		}
		m := plain
		if r, ok := strings.CutSuffix(rest, ".gz"); ok {
			rest, m = r, gz
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 || strconv.Itoa(n) != rest {
			continue
		}
		m[n] = true
	}
	var ns []int
	for n := range plain {
		ns = append(ns, n)
	}
	for n := range gz {
		if !plain[n] {
			ns = append(ns, n)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(ns)))
	var out []string
	for _, n := range ns {
		name := path + "." + strconv.Itoa(n)
		if !plain[n] {
			name += ".gz"
		}
		out = append(out, name)
	}
	return out, nil
}

// openRotated opens one rotated file for reading, decompressing a .gz.
func openRotated(name string) (io.ReadCloser, *os.File, error) {
	f, err := openRegular(name)
	if err != nil {
		return nil, nil, err
	}
	if !strings.HasSuffix(name, ".gz") {
		return f, f, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, f, nil
}

// openRegular opens name for reading, refusing what is not a regular
// file (a FIFO would block, a directory is a mistake).
func openRegular(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("not a regular file")}
	}
	return f, nil
}

// sameFile reports whether a and b are one file.
func sameFile(a, b os.FileInfo) bool { return a != nil && b != nil && os.SameFile(a, b) }

// newer returns, oldest first, the rotated files written after f, which
// has rotated away from path with size bytes: f is found among them as
// the same file, or, once compressed, as the .gz of its size (gzip's
// trailer) that starts with its bytes. Nil when f is not found (it
// rotated out of max-file, or was the only one).
func newer(path string, f *os.File, info os.FileInfo, size int64) ([]string, error) {
	names, err := rotated(path) // oldest first
	if err != nil {
		return nil, err
	}
	head := make([]byte, min(size, 512))
	if _, err := f.ReadAt(head, 0); err != nil && err != io.EOF {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	for i := len(names) - 1; i >= 0; i-- {
		if isSelf(names[i], info, size, head) {
			return names[i+1:], nil
		}
	}
	return nil, nil
}

func isSelf(name string, info os.FileInfo, size int64, head []byte) bool {
	if !strings.HasSuffix(name, ".gz") {
		st, err := os.Stat(name)
		return err == nil && sameFile(st, info)
	}
	g, err := openRegular(name)
	if err != nil {
		return false
	}
	defer g.Close()
	st, err := g.Stat()
	if err != nil || st.Size() < 18 {
		return false
	}
	var trailer [4]byte
	if _, err := g.ReadAt(trailer[:], st.Size()-4); err != nil {
		return false
	}
	if binary.LittleEndian.Uint32(trailer[:]) != uint32(size) {
		return false
	}
	zr, err := gzip.NewReader(g)
	if err != nil {
		return false
	}
	got := make([]byte, len(head))
	if _, err := io.ReadFull(zr, got); err != nil {
		return false
	}
	return bytes.Equal(got, head)
}
