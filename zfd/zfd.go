// Package zfd opens the container's output streams the way the platform
// hands them to the logger — inherited descriptors, named FIFOs, or
// illumos zfd devices — and owns the ready pipe that tells containerd the
// logger is up. What reads them is elsewhere: package pipepeek peeks at
// a pipe, package console copies to loginit --tee's console.
//
// It must never import a driver, the reader or a delivery mode: it deals
// in file descriptors only.
package zfd

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/joyent/dockerlogger/protocol"
)

// Well-known descriptors: what init passes the logger.
const (
	StdoutFD = 3
	StderrFD = 4
	ReadyFD  = 5
)

// Input is one stream of the container.
type Input struct {
	Name string // "stdout" or "stderr"
	// Open returns the stream. For a FIFO it blocks until a writer
	// opens it, so call it from the goroutine that reads.
	Open func() (*os.File, error)
	// Close releases the descriptor if Open was never called.
	Close func()
}

// Spec says where the inputs are: paths, when the platform names FIFOs or
// devices, or "" for the inherited descriptor.
type Spec struct {
	Stdout, Stderr string
	TTY            bool // one stream only: stdout
}

// Inputs returns the container's streams, stdout first. It fails at once
// when an inherited descriptor is not open.
func Inputs(s Spec) ([]Input, error) {
	s = platformDefaults(s)
	ins := []Input{}
	streams := []struct {
		name string
		fd   int
		path string
	}{{"stdout", StdoutFD, s.Stdout}, {"stderr", StderrFD, s.Stderr}}
	if s.TTY {
		streams = streams[:1]
	}
	for _, st := range streams {
		in, err := input(st.name, st.fd, st.path)
		if err != nil {
			for _, i := range ins {
				i.Close()
			}
			return nil, err
		}
		ins = append(ins, in)
	}
	return ins, nil
}

func input(name string, fd int, path string) (Input, error) {
	if path != "" {
		return Input{Name: name, Close: func() {},
			Open: func() (*os.File, error) {
				f, err := os.OpenFile(path, os.O_RDONLY, 0)
				if err != nil {
					return nil, fmt.Errorf("open %s input %s: %w", name, path, err)
				}
				GrowPipe(int(f.Fd()))
				return f, nil
			}}, nil
	}
	if err := CheckInput(name, fd); err != nil {
		return Input{}, err
	}
	// No child of ours may hold the write side's reader open.
	unix.CloseOnExec(fd)
	GrowPipe(fd)
	f := os.NewFile(uintptr(fd), name)
	return Input{Name: name, Open: func() (*os.File, error) { return f, nil }, Close: func() { f.Close() }}, nil
}

// CheckInput refuses an inherited input descriptor that the logger could
// not read: not open, open for writing only, or a directory.
func CheckInput(name string, fd int) error {
	if !Valid(fd) {
		return fmt.Errorf("%s: fd %d is not open (init passes stdout on fd 3 and stderr on fd 4)", name, fd)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("%s: fd %d: %w", name, fd, err)
	}
	if fl&unix.O_ACCMODE == unix.O_WRONLY {
		return fmt.Errorf("%s: fd %d is open for writing only: the logger reads it", name, fd)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("%s: fd %d: %w", name, fd, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("%s: fd %d is a directory, not the container's output", name, fd)
	}
	return nil
}

// CheckInputs checks, as Inputs would, the inherited descriptors s names,
// without taking them.
func CheckInputs(s Spec) error {
	s = platformDefaults(s)
	if s.Stdout == "" {
		if err := CheckInput("stdout", StdoutFD); err != nil {
			return err
		}
	}
	if !s.TTY && s.Stderr == "" {
		if err := CheckInput("stderr", StderrFD); err != nil {
			return err
		}
	}
	return nil
}

// Valid reports whether fd is an open descriptor that was inherited: one
// without close-on-exec. The Go runtime itself may open files (cgroup
// limits) that land on fds 3 and 4 when init passed none; those are
// close-on-exec and are not the container's output.
func Valid(fd int) bool {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil && fl&unix.FD_CLOEXEC == 0
}

// ReadyPipe is the write end of the pipe on which the logger says it is up.
type ReadyPipe struct {
	f *os.File
	// status: a worker's private pipe to its supervisor, which stays open
	// after the ready byte for what the worker says later.
	status, signalled bool
}

// KeepOpen makes r a worker's status pipe: Signal leaves it open.
func (r *ReadyPipe) KeepOpen() {
	if r != nil {
		r.status = true
	}
}

// OpenReady takes fd 5 as the ready pipe if it is open, and marks it
// close-on-exec so no child inherits it: containerd waits for EOF on it,
// and a child holding it would hang the container's start. It returns nil
// when there is no ready pipe.
func OpenReady() *ReadyPipe {
	if !writablePipe(ReadyFD) {
		return nil
	}
	unix.CloseOnExec(ReadyFD)
	return &ReadyPipe{f: os.NewFile(ReadyFD, "ready")}
}

// Say writes b on a worker's status pipe (KeepOpen) and keeps it open for
// Signal: a worker says hello (protocol.HelloByte), and what it does next,
// to its supervisor. The platform's ready pipe takes the ready byte alone:
// on it Say writes nothing.
func (r *ReadyPipe) Say(b byte) error {
	if r == nil || r.f == nil || !r.status {
		return nil
	}
	if _, err := r.f.Write([]byte{b}); err != nil {
		return fmt.Errorf("say %q on the status pipe: %w", b, err)
	}
	return nil
}

// Signal writes one byte and closes the pipe, which satisfies both
// containerd's old handshake (EOF) and binary-v2 (a byte); a status pipe
// (KeepOpen) stays open. It is safe on a nil ReadyPipe and after the first
// call.
func (r *ReadyPipe) Signal() error {
	if r == nil || r.f == nil {
		return nil
	}
	if r.status {
		if r.signalled {
			return nil
		}
		r.signalled = true
		if _, err := r.f.Write([]byte{protocol.ReadyByte}); err != nil {
			return fmt.Errorf("signal ready: %w", err)
		}
		return nil
	}
	_, err := r.f.Write([]byte{protocol.ReadyByte})
	cerr := r.f.Close()
	r.f = nil
	if err != nil {
		return fmt.Errorf("signal ready: %w", err)
	}
	return cerr
}

// writablePipe reports whether fd is the write end of a pipe: anything else
// on fd 5 is not a ready pipe and is left alone.
func writablePipe(fd int) bool {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return false
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	return err == nil && fl&unix.O_ACCMODE != unix.O_RDONLY
}

// IsDevNull reports whether f is /dev/null.
func IsDevNull(f *os.File) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat("/dev/null", &b) != nil {
		return false
	}
	return a.Mode&unix.S_IFMT == unix.S_IFCHR && a.Rdev == b.Rdev
}

// OpenFIFOWriter opens path for writing if it is a FIFO with a reader,
// without blocking; nil otherwise.
func OpenFIFOWriter(path string) *os.File {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return nil
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), path)
}

// CanHangUp reports whether f is a pipe, FIFO or socket: an input whose
// writers can come and go. A regular file or a device read to its end is
// done for good.
func CanHangUp(f *os.File) bool {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	t := st.Mode & unix.S_IFMT
	return t == unix.S_IFIFO || t == unix.S_IFSOCK
}

// HungUp reports whether f is a pipe or FIFO whose writers are all gone
// (the container has exited), whatever data is still in it.
func HungUp(f *os.File) bool {
	fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: 0}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLHUP != 0
}
