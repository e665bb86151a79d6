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
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
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

// rotatedFile is a rotated file opened for reading.
type rotatedFile struct {
	name string
	rc   io.ReadCloser
	f    *os.File
}

// openNewer opens the files newer names and the current file at path,
// as one consistent look. The writer may rotate (rename every file up by
// one, create a new current file) and compress while the directory is
// listed and the files are opened: a listing can then miss a file or name
// one twice, and a name can be another file by the time it is opened,
// which loses or repeats a file's lines. So the files are opened, then
// listed again: the look holds if the second listing gives the same
// names, each still the file opened, numbered without a gap down to the
// current file, and path is still the current file opened. Else it looks
// again, a while. current is nil when path is gone for now.
func openNewer(path string, f *os.File, info os.FileInfo, size int64) (files []rotatedFile, current *os.File, err error) {
	for try := 0; ; try++ {
		closeAll(files)
		files = nil
		if current != nil {
			current.Close()
			current = nil
		}
		names, err := newer(path, f, info, size)
		if err != nil {
			return nil, nil, err
		}
		ok := contiguous(path, names)
		for _, name := range names {
			rc, g, err := openRotated(name)
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					closeAll(files)
					return nil, nil, err
				}
				ok = false
				break
			}
			files = append(files, rotatedFile{name, rc, g})
		}
		if ok {
			if current, err = openRegular(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				closeAll(files)
				return nil, nil, err
			}
			again, err := newer(path, f, info, size)
			if err != nil {
				closeAll(files)
				if current != nil {
					current.Close()
				}
				return nil, nil, err
			}
			ok = current != nil && slices.Equal(names, again) && stillNamed(files) && stillNamed([]rotatedFile{{name: path, f: current}})
		}
		if ok || try == lookTries {
			return files, current, nil // the last look, if none held: the best there is
		}
		time.Sleep(lookAgain)
	}
}

// lookTries and lookAgain bound how long openNewer looks for a listing
// that holds: rotations are quick, and one that is under way settles in
// far less than this.
const (
	lookTries = 50
	lookAgain = 2 * time.Millisecond
)

func closeAll(files []rotatedFile) {
	for _, r := range files {
		r.rc.Close()
	}
}

// stillNamed says whether each file is still the one its name names.
func stillNamed(files []rotatedFile) bool {
	for _, r := range files {
		st, err := os.Stat(r.name)
		if err != nil {
			return false
		}
		fst, err := r.f.Stat()
		if err != nil || !os.SameFile(st, fst) {
			return false
		}
	}
	return true
}

// contiguous says whether names, oldest first, are numbered one apart
// down to 1 (path.N, ..., path.1, plain or .gz).
func contiguous(path string, names []string) bool {
	for i, name := range names {
		rest := strings.TrimSuffix(strings.TrimPrefix(name, path+"."), ".gz")
		if n, err := strconv.Atoi(rest); err != nil || n != len(names)-i {
			return false
		}
	}
	return true
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
