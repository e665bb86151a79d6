//go:build !linux

package spool

import (
	"errors"
	"os"
)

var errNoPunch = errors.New("hole punching: not supported on this platform")

// Without fallocate the spool uses segment files (see Open).
func punch(f *os.File, off, n int64) error    { return errNoPunch }
func collapse(f *os.File, off, n int64) error { return errNoPunch }
func seekData(f *os.File, off int64) (int64, error) {
	return off, nil
}
func blockSize(f *os.File) int64 { return 4096 }

// seekHole knows no holes here: the rest of the file is read.
func seekHole(f *os.File, off int64) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
