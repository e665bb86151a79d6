package test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// teeData is what the application writes on one stream: many short lines,
// lines longer than line-max, binary bytes, and a last line with no newline.
func teeData(stream string) []byte {
	var b bytes.Buffer
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "%s line %d\n", stream, i)
		if i%5000 == 0 {
			b.WriteString(strings.Repeat(stream, 40000/len(stream)) + "\n")
			b.WriteString("bin\x00\x01\xfe\xff\t\r\n")
		}
	}
	b.WriteString(stream + " has no newline at the end")
	return b.Bytes()
}

// openPTY returns a pseudo-terminal in raw mode (no \n to \r\n), as the
// console of a program run from a terminal emulator or `docker run -t`.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	need(t, err == nil, fmt.Sprintf("no pseudo-terminals here: %v", err))
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	tio, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	// cfmakeraw
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	if err := unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// TestLoginitTee runs `loginit --tee --wait json-file` with the console as
// a pipe, a regular file and a pty: the console copy of each stream is
// byte-identical to what the application wrote, and so is the json-file
// copy (partial messages joined; the unterminated last line is written
// without a newline, as Docker's copier writes it).
func TestLoginitTee(t *testing.T) {
	dir := t.TempDir()
	out, errb := teeData("out"), teeData("err")
	for name, data := range map[string][]byte{"out.bin": out, "err.bin": errb} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf("cat %s/out.bin; cat %s/err.bin >&2", dir, dir)

	for _, console := range []string{"pipe", "file", "pty"} {
		t.Run(console, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "tee-json.log")
			cmd := exec.Command(filepath.Join(bin, "loginit"), "--tee", "--wait", "json-file", "--", "sh", "-c", script)
			cmd.Env = append(os.Environ(), "DOCKERLOG_LOGPATH="+logPath)
			var gotOut, gotErr func() []byte
			switch console {
			case "pipe":
				var ob, eb bytes.Buffer
				cmd.Stdout, cmd.Stderr = &ob, &eb
				gotOut, gotErr = ob.Bytes, eb.Bytes
			case "file":
				of, _ := os.Create(filepath.Join(t.TempDir(), "out"))
				ef, _ := os.Create(filepath.Join(t.TempDir(), "err"))
				defer of.Close()
				defer ef.Close()
				cmd.Stdout, cmd.Stderr = of, ef
				gotOut = func() []byte { b, _ := os.ReadFile(of.Name()); return b }
				gotErr = func() []byte { b, _ := os.ReadFile(ef.Name()); return b }
			case "pty":
				// stdout on the terminal, stderr on a pipe (both copies of
				// a stream go to one place, so give each its own).
				m, s := openPTY(t)
				var eb bytes.Buffer
				cmd.Stdout, cmd.Stderr = s, &eb
				// A terminal has no EOF to wait for: read exactly what the
				// application wrote, then look for anything extra.
				ob := make([]byte, len(out)+1)
				n := make(chan int, 1)
				go func() { k, _ := io.ReadAtLeast(m, ob, len(out)); n <- k }()
				gotErr = eb.Bytes
				gotOut = func() []byte {
					select {
					case k := <-n:
						return ob[:k]
					case <-time.After(10 * time.Second):
						t.Fatal("the terminal never got the whole stdout")
						return nil
					}
				}
				defer s.Close()
			}
			if err := cmd.Run(); err != nil {
				t.Fatalf("loginit: %v", err)
			}
			if g := gotOut(); !bytes.Equal(g, out) {
				t.Fatalf("console stdout: %d bytes, want %d identical bytes (first difference at %d)", len(g), len(out), firstDiff(g, out))
			}
			// The console's stderr also carries the logger's own stats line.
			g := gotErr()
			if i := bytes.Index(g, []byte("dockerlogger: stats ")); i >= 0 {
				g = g[:i]
			}
			if !bytes.Equal(g, errb) {
				t.Fatalf("console stderr: %d bytes, want %d identical bytes (first difference at %d)", len(g), len(errb), firstDiff(g, errb))
			}
			logs := joinedJSONLog(t, logPath)
			for stream, want := range map[string][]byte{"stdout": out, "stderr": errb} {
				want = replaceInvalidUTF8(want)
				if !bytes.Equal(logs[stream], want) {
					t.Fatalf("json-file %s: %d bytes, want %d (first difference at %d)", stream, len(logs[stream]), len(want), firstDiff(logs[stream], want))
				}
			}
		})
	}
}

// replaceInvalidUTF8 replaces each byte that is not UTF-8 by U+FFFD, as
// Docker's json-file encoding does.
func replaceInvalidUTF8(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			out = append(out, "\ufffd"...)
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// joinedJSONLog concatenates the "log" fields of a json-file per stream.
func joinedJSONLog(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := jsonDecoder(f)
	out := map[string][]byte{}
	for {
		var e struct{ Log, Stream string }
		if err := dec.Decode(&e); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("json-file: %v", err)
		}
		out[e.Stream] = append(out[e.Stream], e.Log...)
	}
	return out
}
