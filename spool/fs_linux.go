//go:build linux

package spool

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// punch frees the blocks under [off, off+n) and reads them back as zeros.
func punch(f *os.File, off, n int64) error {
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// collapse removes [off, off+n) from the file, shifting what follows down;
// both must be multiples of the filesystem block size.
func collapse(f *os.File, off, n int64) error {
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_COLLAPSE_RANGE, off, n)
}

// seekData returns the first offset at or after off that is not a hole,
// or the file's size if there is none.
func seekData(f *os.File, off int64) (int64, error) {
	n, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		st, err := f.Stat()
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	}
	return n, err
}

// blockSize is the unit collapse works in.
func blockSize(f *os.File) int64 {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil || st.Bsize <= 0 {
		return 4096
	}
	return int64(st.Bsize)
}

// seekHole returns the first offset at or after off that is in a hole
// (the file's size counts as one).
func seekHole(f *os.File, off int64) (int64, error) {
	return unix.Seek(int(f.Fd()), off, unix.SEEK_HOLE)
}
