// Package safedir owns how the logger touches the file system where others
// can write: every file it creates, opens for writing, renames or removes
// is named relative to a directory descriptor that was opened with
// O_DIRECTORY|O_NOFOLLOW, and every such file is opened with O_NOFOLLOW
// and must turn out to be a regular file. The logger runs as root inside
// every container, often on directories the container can write (a bind
// mount, /tmp): a link or a FIFO planted there must never make it write,
// truncate or hang on something else.
//
// Only the last component of a directory's path is refused as a link:
// links higher up (/var/run -> /run) are the system's, and whoever could
// change them could change anything.
//
// It must never import another package of this module: it is a leaf that
// the spool, the log files and the counters build on.
package safedir

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is an open directory. Its methods take plain names, never paths.
type Dir struct {
	fd   int
	path string
}

// ErrLink is returned for a directory or file that is a symbolic link.
var ErrLink = errors.New("is a symbolic link: refusing to follow it")

// ErrHardLink is returned when a file opened for writing has more than
// one name: it may be another file's hard link.
var ErrHardLink = errors.New("has other hard links: refusing to write it")

// ErrNotRegular is returned for a file that is not a regular file (a FIFO,
// a device, a directory).
var ErrNotRegular = errors.New("is not a regular file")

// Open opens the directory at path, refusing a link.
func Open(path string) (*Dir, error) {
	fd, err := openDir(unix.AT_FDCWD, path)
	if err != nil {
		return nil, pathError("open directory", path, err)
	}
	return &Dir{fd: fd, path: path}, nil
}

// MkdirAll opens the directory at path, creating it and any missing parent
// with perm first. Each directory it creates is created relative to its
// parent's descriptor, so a link swapped in during the walk is refused,
// not followed.
func MkdirAll(path string, perm os.FileMode) (*Dir, error) {
	if d, err := Open(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return d, err
	}
	clean := filepath.Clean(path)
	start, rest := ".", clean
	if filepath.IsAbs(clean) {
		start, rest = "/", strings.TrimPrefix(clean, "/")
	}
	fd, err := openDir(unix.AT_FDCWD, start)
	if err != nil {
		return nil, pathError("open directory", start, err)
	}
	walked := start
	for _, name := range strings.Split(rest, "/") {
		if name == "" || name == "." {
			continue
		}
		walked = filepath.Join(walked, name)
		// Links above the last component are followed (see the package
		// comment); the last one must be a directory of its own.
		next, err := openDirFollow(fd, name)
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(fd, name, uint32(perm.Perm())); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(fd)
				return nil, pathError("create directory", walked, err)
			}
			next, err = openDir(fd, name)
		}
		unix.Close(fd)
		if err != nil {
			return nil, pathError("open directory", walked, err)
		}
		fd = next
	}
	// The last component again without following, whatever the walk saw.
	unix.Close(fd)
	return Open(path)
}

func openDir(at int, path string) (int, error) {
	for {
		fd, err := unix.Openat(at, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ELOOP || err == unix.ENOTDIR && isLink(at, path) {
			return -1, ErrLink
		}
		return fd, err
	}
}

func openDirFollow(at int, name string) (int, error) {
	for {
		fd, err := unix.Openat(at, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

func isLink(at int, path string) bool {
	var st unix.Stat_t
	return unix.Fstatat(at, path, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

// Path is the path the directory was opened by, for messages.
func (d *Dir) Path() string { return d.path }

// Close releases the descriptor.
func (d *Dir) Close() error {
	if d == nil || d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// Join names a file of the directory, for messages.
func (d *Dir) Join(name string) string { return filepath.Join(d.path, name) }

func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("%q is not a file name", name)
	}
	return nil
}

// OpenFile opens the regular file name in d with flag (os.O_* flags) and
// perm for a file it creates. It never follows a link and never blocks on
// a FIFO: either is refused with ErrLink or ErrNotRegular.
func (d *Dir) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, pathError("open", d.Join(name), err)
	}
	// O_NONBLOCK so that opening a FIFO returns at once (to be refused
	// below) instead of waiting for a reader or writer.
	// O_TRUNC only once the file is known to be a regular file of its
	// own: truncating is writing.
	trunc := flag&os.O_TRUNC != 0
	flag &^= os.O_TRUNC
	var fd int
	var err error
	for {
		fd, err = unix.Openat(d.fd, name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, uint32(perm.Perm()))
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.ELOOP {
		err = ErrLink
	}
	if err == unix.EISDIR {
		err = ErrNotRegular
	}
	if err == unix.ENXIO && isFIFO(d.fd, name) {
		err = ErrNotRegular // a FIFO with no reader, opened for writing
	}
	if err != nil {
		return nil, pathError("open", d.Join(name), err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, pathError("open", d.Join(name), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, pathError("open", d.Join(name), ErrNotRegular)
	}
	// A hard link is another name of someone else's file: writing it
	// writes theirs. Reading one is harmless.
	if flag&(os.O_WRONLY|os.O_RDWR) != 0 && st.Nlink > 1 {
		unix.Close(fd)
		return nil, pathError("open", d.Join(name), ErrHardLink)
	}
	if trunc {
		if err := unix.Ftruncate(fd, 0); err != nil {
			unix.Close(fd)
			return nil, pathError("truncate", d.Join(name), err)
		}
	}
	// Regular files never block: clear O_NONBLOCK all the same, so that
	// the descriptor is what the caller asked for.
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
		unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
	return os.NewFile(uintptr(fd), d.Join(name)), nil
}

// Create creates the regular file name in d, which must not exist, for
// writing (os.O_WRONLY or os.O_RDWR in flag, with O_APPEND if wanted). A
// name that exists (a file left over, a link someone planted) is removed
// first and the creation tried again, a few times: the logger never opens
// what it did not create itself.
func (d *Dir) Create(name string, flag int, perm os.FileMode) (*os.File, error) {
	var err error
	for try := 0; try < 3; try++ {
		var f *os.File
		f, err = d.OpenFile(name, flag|os.O_CREATE|os.O_EXCL, perm)
		if err == nil || !errors.Is(err, fs.ErrExist) {
			return f, err
		}
		if rerr := d.Remove(name); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return nil, rerr
		}
	}
	return nil, err
}

// CreateTemp creates a new file in d named prefix followed by a random
// string, for writing, as os.CreateTemp does (mode perm). It returns the
// file and its name in d.
func (d *Dir) CreateTemp(prefix string, perm os.FileMode) (*os.File, string, error) {
	var b [8]byte
	for try := 0; ; try++ {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, "", pathError("create", d.Join(prefix), err)
		}
		name := fmt.Sprintf("%s%x", prefix, b)
		f, err := d.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err == nil || !errors.Is(err, fs.ErrExist) || try == 100 {
			return f, name, err
		}
	}
}

func isFIFO(at int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(at, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// Lstat returns what name is, without following a link.
func (d *Dir) Lstat(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := checkName(name); err != nil {
		return st, pathError("stat", d.Join(name), err)
	}
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, pathError("stat", d.Join(name), err)
	}
	return st, nil
}

// Rename renames from to to, both in d. The link from names, if any, is
// renamed, never its target.
func (d *Dir) Rename(from, to string) error {
	if err := checkName(from); err != nil {
		return pathError("rename", d.Join(from), err)
	}
	if err := checkName(to); err != nil {
		return pathError("rename", d.Join(to), err)
	}
	if err := unix.Renameat(d.fd, from, d.fd, to); err != nil {
		return &os.LinkError{Op: "rename", Old: d.Join(from), New: d.Join(to), Err: err}
	}
	return nil
}

// Remove removes the file name (a link itself, never its target).
func (d *Dir) Remove(name string) error {
	if err := checkName(name); err != nil {
		return pathError("remove", d.Join(name), err)
	}
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return pathError("remove", d.Join(name), err)
	}
	return nil
}

// Names returns the names in d, in no particular order.
func (d *Dir) Names() ([]string, error) {
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathError("read directory", d.path, err)
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, pathError("read directory", d.path, err)
	}
	return names, nil
}

// Stat returns the directory's own metadata.
func (d *Dir) Stat() (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return st, pathError("stat", d.path, err)
	}
	return st, nil
}

// ErrNotPrivate is returned by CheckPrivate.
var ErrNotPrivate = errors.New("must be owned by the logger's user and not writable by group or others")

// CheckPrivate refuses a directory that another user owns or that group or
// others may write: they could swap its files for links or read them.
func (d *Dir) CheckPrivate() error {
	st, err := d.Stat()
	if err != nil {
		return err
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("%s is owned by uid %d, this logger runs as uid %d: %w", d.path, st.Uid, uid, ErrNotPrivate)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("%s has mode %04o: %w", d.path, st.Mode&0o7777, ErrNotPrivate)
	}
	return nil
}

// Fd is the directory's descriptor, for the *at calls this package does
// not wrap. It stays owned by d.
func (d *Dir) Fd() int { return d.fd }

func pathError(op, path string, err error) error {
	return &fs.PathError{Op: op, Path: path, Err: err}
}
