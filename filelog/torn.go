package filelog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// A logger killed in the middle of a write(2) can leave a torn record at
// the end of its file. The next one must not append after it, or both
// records would be unreadable: on open, the file is cut back to its last
// whole record. The torn record's line was never acknowledged, so it is
// written again (the reader peeks; see pipepeek.Peek).

// completeJSON returns the length of the longest prefix of f (of size
// bytes) that ends with a whole json-file record: every record ends with
// a newline.
func completeJSON(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	end := size
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := f.ReadAt(buf[:n], end-n); err != nil && err != io.EOF {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return end - n + int64(i) + 1, nil
		}
		end -= n
	}
	return 0, nil
}

// completeLocal returns the length of the longest prefix of f that is a
// sequence of whole local-format frames: a big-endian uint32 size, the
// entry, and the size again.
func completeLocal(f *os.File, size int64) (int64, error) {
	var b [4]byte
	// The common case: the last frame's two sizes agree.
	if size >= 8 {
		if _, err := f.ReadAt(b[:], size-4); err != nil {
			return 0, err
		}
		n := int64(binary.BigEndian.Uint32(b[:]))
		if start := size - 8 - n; start >= 0 {
			if _, err := f.ReadAt(b[:], start); err != nil {
				return 0, err
			}
			if int64(binary.BigEndian.Uint32(b[:])) == n {
				return size, nil
			}
		}
	} else if size == 0 {
		return 0, nil
	}
	// Otherwise walk the frames from the start.
	var off int64
	for off+8 <= size {
		if _, err := f.ReadAt(b[:], off); err != nil {
			return 0, err
		}
		n := int64(binary.BigEndian.Uint32(b[:]))
		next := off + 8 + n
		if next > size {
			break
		}
		if _, err := f.ReadAt(b[:], next-4); err != nil {
			return 0, err
		}
		if int64(binary.BigEndian.Uint32(b[:])) != n {
			break
		}
		off = next
	}
	return off, nil
}

// trimTorn cuts f back to its last whole record.
func trimTorn(path string, f *os.File, size int64, complete func(*os.File, int64) (int64, error)) (int64, int64, error) {
	if complete == nil || size == 0 {
		return size, 0, nil
	}
	keep, err := complete(f, size) // f is open for reading too
	if err != nil {
		return 0, 0, fmt.Errorf("check log file %s: %w", path, err)
	}
	if keep == size {
		return size, 0, nil
	}
	if err := f.Truncate(keep); err != nil {
		return 0, 0, fmt.Errorf("cut torn record from %s: %w", path, err)
	}
	return keep, size - keep, nil
}
