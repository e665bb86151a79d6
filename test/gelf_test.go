package test

// End-to-end tests of the gelf driver against real GELF receivers.
//
// UDP: graygelf's GELF server (npm package graygelf, pinned in
// test/package.json and package-lock.json, installed by
// `cd test && npm ci --ignore-scripts --omit=optional`), run by
// test/gelfsink/udp-receiver.js. It decodes uncompressed, gzip and zlib
// datagrams (by their magic bytes), reassembles chunked messages, and
// prints each message as a JSON line. (Its chunk reassembly keys on 6 of
// the 8 id bytes: fine for the one chunked message in flight here.)
//
// TCP: no npm package has a GELF TCP server, so startGELFTCPSink is an
// in-repo receiver written to the GELF spec: each message is an
// uncompressed JSON object terminated by a NUL byte, over any number of
// connections.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// gelfMsg is one GELF message as a receiver decoded it.
type gelfMsg struct {
	Version       string  `json:"version"`
	Host          string  `json:"host"`
	Short         string  `json:"short_message"`
	Full          *string `json:"full_message"`
	Timestamp     float64 `json:"timestamp"`
	Level         int     `json:"level"`
	ContainerID   string  `json:"_container_id"`
	ContainerName string  `json:"_container_name"`
	Command       string  `json:"_command"`
	Tag           string  `json:"_tag"`
	ImageID       string  `json:"_image_id"`
	ImageName     string  `json:"_image_name"`
	Created       string  `json:"_created"`
	Team          string  `json:"_com.example.team"`
}

// gelfSink collects the messages of one receiver.
type gelfSink struct {
	mu   sync.Mutex
	msgs []gelfMsg
	bad  []string // frames that were not a GELF JSON object
}

func (s *gelfSink) add(frame []byte) {
	var m gelfMsg
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := json.Unmarshal(frame, &m); err != nil || m.Version == "" {
		s.bad = append(s.bad, fmt.Sprintf("%q (%v)", frame, err))
		return
	}
	s.msgs = append(s.msgs, m)
}

func (s *gelfSink) snapshot() ([]gelfMsg, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]gelfMsg(nil), s.msgs...), append([]string(nil), s.bad...)
}

// wait polls until n messages have come, and fails on more or on a frame
// that was not GELF.
func (s *gelfSink) wait(t testing.TB, n int) []gelfMsg {
	t.Helper()
	var msgs []gelfMsg
	Eventually(t, 30*time.Second, fmt.Sprintf("%d GELF messages", n), func() bool {
		var bad []string
		msgs, bad = s.snapshot()
		if len(bad) > 0 {
			t.Fatalf("the receiver got frames that are not GELF: %v", bad)
		}
		return len(msgs) >= n
	})
	if len(msgs) != n {
		t.Fatalf("the receiver got %d GELF messages, want %d", len(msgs), n)
	}
	return msgs
}

// startGELFUDPSink runs graygelf's server on a free loopback UDP port and
// returns the sink and the port, once it is bound.
func startGELFUDPSink(t *testing.T) (*gelfSink, int) {
	t.Helper()
	node := needCmd(t, "node")
	_, err := os.Stat("node_modules/graygelf/server.js")
	need(t, err == nil, "npm package graygelf is not installed (cd test && npm ci --ignore-scripts --omit=optional)")

	port := sinkFreePort(t, "udp")
	cmd := exec.Command(node, "gelfsink/udp-receiver.js", fmt.Sprint(port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the GELF receiver: %v", err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	s := &gelfSink{}
	listening := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		first := true
		for sc.Scan() {
			if first {
				first = false
				if bytes.HasPrefix(sc.Bytes(), []byte(`{"gelfsink_listening"`)) {
					close(listening)
					continue
				}
			}
			s.add(append([]byte(nil), sc.Bytes()...))
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
	}()
	select {
	case <-listening:
	case <-done:
		t.Fatalf("the GELF receiver exited: %s", stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("the GELF receiver did not listen within 15s: %s", stderr.String())
	}
	return s, port
}

// startGELFTCPSink listens on a free loopback TCP port and reads
// NUL-terminated GELF frames from every connection.
func startGELFTCPSink(t *testing.T) (*gelfSink, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &gelfSink{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := bufio.NewReader(c)
				for {
					frame, err := r.ReadBytes(0)
					if len(frame) > 0 && frame[len(frame)-1] == 0 {
						s.add(frame[:len(frame)-1])
					} else if len(frame) > 0 {
						s.add(frame) // unterminated at EOF: reported as bad
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s, ln.Addr().(*net.TCPAddr).Port
}

// Container metadata every gelf test logs with.
const (
	gelfID      = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
	gelfName    = "api-7"
	gelfImage   = "registry.example/api:2.1"
	gelfImageID = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	gelfCreated = "2024-05-06T07:08:09.123456789Z"
)

// gelfEnv is the environment for a gelf logger with opts.
func gelfEnv(opts map[string]string) []string {
	return Env(gelfID, opts, "DOCKERLOG_CONTAINERNAME=/"+gelfName, "DOCKERLOG_IMAGENAME="+gelfImage,
		"DOCKERLOG_IMAGEID="+gelfImageID, "DOCKERLOG_CREATETIME="+gelfCreated,
		`DOCKERLOG_ENTRYPOINT=["/usr/bin/api","--serve"]`, `DOCKERLOG_CMD=["--port","8080"]`,
		`DOCKERLOG_LABELS={"com.example.team":"payments"}`)
}

// TestGELF sends stdout and stderr through the gelf driver over UDP with
// each compression Docker offers (gzip, its default; zlib; none), with
// messages long enough to be chunked, and over TCP, and checks what the
// receiver decoded: each non-empty line once (Docker's gelf driver drops
// empty lines) as short_message, in order per stream where the path keeps
// order; level 6 for stdout and 3 for stderr; version 1.1; host; the
// _container_id, _container_name, _image_name, _image_id, _command,
// _created and _tag fields and a label; a timestamp of the moment the line
// was read; and the logger's exit counters.
func TestGELF(t *testing.T) {
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	// A 20000-character line that gzip cannot shrink below a few UDP
	// chunks (GELF chunks are 1420 bytes).
	random := make([]byte, 15000)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	incompressible := base64.StdEncoding.EncodeToString(random)
	plainLong := strings.Repeat("chunk me please ", 1250) // 20000 bytes

	cases := []struct {
		name        string
		tcp         bool
		compression string // gelf-compression-type; "" is Docker's default, gzip
		lines       int    // numbered lines per stream
		long        string // a long line written to stdout among the others
		// ordered: the receiver hands messages on in the order they came.
		// graygelf decompresses on Node's thread pool, which can reorder
		// compressed messages, so those are checked as a multiset.
		ordered bool
	}{
		{name: "udp-gzip", lines: 50},
		{name: "udp-zlib", compression: "zlib", lines: 50},
		{name: "udp-none", compression: "none", lines: 50, ordered: true},
		{name: "udp-chunked-gzip", lines: 20, long: incompressible},
		{name: "udp-chunked-none", compression: "none", lines: 20, long: plainLong, ordered: true},
		{name: "tcp", tcp: true, lines: 2000, long: plainLong, ordered: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var sink *gelfSink
			var address string
			if c.tcp {
				s, port := startGELFTCPSink(t)
				sink, address = s, fmt.Sprintf("tcp://127.0.0.1:%d", port)
			} else {
				s, port := startGELFUDPSink(t)
				sink, address = s, fmt.Sprintf("udp://127.0.0.1:%d", port)
			}
			opts := map[string]string{"gelf-address": address, "tag": "{{.Name}}/{{.ImageName}}",
				"labels": "com.example.team", "line-max": "64k"}
			if c.compression != "" {
				opts["gelf-compression-type"] = c.compression
			}
			start := time.Now()
			l := StartLogger(t, gelfEnv(opts), "gelf")

			out := []string{"héllo wörld 日本語 ✓", "", "tab\there", `"quoted" \backslash\ {json}`}
			out = append(out, Lines("stdout line", c.lines)...)
			if c.long != "" {
				out = append(out[:2], append([]string{c.long}, out[2:]...)...)
			}
			errs := append(Lines("stderr line", c.lines), "")
			WriteLines(t, l.Stdout, out)
			WriteLines(t, l.Stderr, errs)
			wantOut, wantErr := sinkNonEmpty(out), sinkNonEmpty(errs)

			msgs := sink.wait(t, len(wantOut)+len(wantErr))
			if code := l.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("logger exit code %d; stderr: %s", code, l.Errors())
			}
			sinkExitStats(t, l, len(out)+len(errs))
			end := time.Now()

			var gotOut, gotErr []string
			for i, m := range msgs {
				want := gelfMsg{Version: "1.1", Host: hostname, Short: m.Short, Timestamp: m.Timestamp, Level: m.Level,
					ContainerID: gelfID, ContainerName: gelfName, Command: "/usr/bin/api --serve --port 8080",
					Tag: gelfName + "/" + gelfImage, ImageID: gelfImageID, ImageName: gelfImage,
					Created: gelfCreated, Team: "payments"}
				if m != want {
					t.Fatalf("message %d:\n got %+v\nwant %+v", i, m, want)
				}
				// Docker sends seconds with millisecond precision.
				ts := time.UnixMilli(int64(math.Round(m.Timestamp * 1000)))
				if ts.Before(start.Truncate(time.Millisecond)) || ts.After(end) {
					t.Fatalf("message %d: timestamp %v not between %v and %v", i, ts, start, end)
				}
				switch m.Level {
				case 6:
					gotOut = append(gotOut, m.Short)
				case 3:
					gotErr = append(gotErr, m.Short)
				default:
					t.Fatalf("message %d: level %d, want 6 (stdout) or 3 (stderr)", i, m.Level)
				}
			}
			if !c.ordered {
				gotOut, gotErr = sortedLike(gotOut, wantOut), sortedLike(gotErr, wantErr)
			}
			sinkSameLines(t, "stdout (level 6)", gotOut, wantOut)
			sinkSameLines(t, "stderr (level 3)", gotErr, wantErr)
		})
	}
}

// sortedLike puts got in want's order where it holds the same lines, so
// that a multiset comparison reports the first missing or extra line.
func sortedLike(got, want []string) []string {
	left := map[string]int{}
	for _, g := range got {
		left[g]++
	}
	var out, extra []string
	for _, w := range want {
		if left[w] > 0 {
			left[w]--
			out = append(out, w)
		} else {
			out = append(out, "<missing>")
		}
	}
	for _, g := range got {
		if left[g] > 0 {
			left[g]--
			extra = append(extra, g)
		}
	}
	return append(out, extra...)
}
