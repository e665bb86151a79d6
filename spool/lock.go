package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/joyent/dockerlogger/safedir"
)

// ErrLocked is returned by Open when another logger holds the spool.
var ErrLocked = errors.New("spool is in use by another logger")

// lockDir takes the spool's lock file, without waiting: two loggers never
// share one spool. The lock goes with the process, even on SIGKILL.
func lockDir(d *safedir.Dir) (*os.File, error) {
	f, err := d.OpenFile("lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fileError(d.Path(), "lock", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) || errors.Is(err, unix.EAGAIN) {
			return nil, fmt.Errorf("spool-dir %s: %w", d.Path(), ErrLocked)
		}
		return nil, fmt.Errorf("spool-dir %s: lock: %w", d.Path(), err)
	}
	return f, nil
}

// ErrNotOwner is returned for a spool directory of another user, or one
// that group or others may write.
var ErrNotOwner = safedir.ErrNotPrivate

// ErrTooLong is returned for a spool-dir whose path, or one of whose
// names, is longer than the system allows.
var ErrTooLong = errors.New("path too long")

// Limits of Linux and illumos (NAME_MAX, PATH_MAX).
const (
	nameMax = 255
	pathMax = 4096
)

// checkLength refuses a spool-dir that could not hold the spool's files:
// a name longer than NAME_MAX, or a path that, with a segment's name,
// reaches PATH_MAX.
func checkLength(dir string) error {
	if dir == "" {
		return fmt.Errorf("spool-dir: empty path")
	}
	for _, name := range strings.Split(dir, "/") {
		if len(name) > nameMax {
			return fmt.Errorf("spool-dir %s: name %.16q... is %d bytes, longer than %d: %w", dir, name, len(name), nameMax, ErrTooLong)
		}
	}
	if n := len(dir) + 1 + len(segName(0)); n >= pathMax {
		return fmt.Errorf("spool-dir %s: path of %d bytes with its file names, the limit is %d: %w", dir, n, pathMax-1, ErrTooLong)
	}
	return nil
}

// spoolFile reports whether name is one of the files the spool opens.
func spoolFile(name string) bool {
	return name == "state" || name == "lock" || isSegName(name) || strings.HasPrefix(name, probePrefix)
}

// CheckDir says whether dir can be the spool-dir, without creating or
// changing anything, for --validate and the start: an error means the
// spool would be refused. An existing dir must not be a symbolic link,
// must be owned by this process's effective uid and not be writable by
// group or others, and the spool's files in it (state, lock, *.seg) must
// be regular files, not links. A dir that does not exist is fine when the
// nearest existing parent is a directory: Open creates it (0700). Every
// name must fit NAME_MAX and the path PATH_MAX. The error is one line that
// names dir.
func CheckDir(dir string) error {
	if err := checkLength(dir); err != nil {
		return err
	}
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("spool-dir %s: must be an absolute path", dir)
	}
	d, err := safedir.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Created at start: the nearest existing parent must be a
		// directory (links above the last name are the system's).
		p := filepath.Dir(filepath.Clean(dir))
		for {
			fi, err := os.Stat(p)
			if err == nil {
				if !fi.IsDir() {
					return fmt.Errorf("spool-dir %s: %s is not a directory", dir, p)
				}
				return nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("spool-dir %s: %w", dir, err)
			}
			p = filepath.Dir(p)
		}
	}
	if err != nil {
		return dirError(dir, err)
	}
	defer d.Close()
	if err := d.CheckPrivate(); err != nil {
		return fmt.Errorf("spool-dir %w", err)
	}
	names, err := d.Names()
	if err != nil {
		return fmt.Errorf("spool-dir %w", err)
	}
	for _, name := range names {
		if !spoolFile(name) {
			continue
		}
		st, err := d.Lstat(name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // gone meanwhile
			}
			return fileError(dir, name, err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
		case unix.S_IFLNK:
			return fmt.Errorf("spool-dir %s: %s %w", dir, name, safedir.ErrLink)
		default:
			return fmt.Errorf("spool-dir %s: %s %w", dir, name, safedir.ErrNotRegular)
		}
	}
	return nil
}

// dirError says why the spool-dir could not be opened, in one line that
// names it once.
func dirError(dir string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == dir {
		return fmt.Errorf("spool-dir %s: %w", dir, pe.Err)
	}
	return fmt.Errorf("spool-dir %s: %w", dir, err)
}

func fileError(dir, name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("spool-dir %s: %s %w", dir, name, err)
}
