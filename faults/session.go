package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/joyent/dockerlogger/internal/logproc"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// setup says how one fault run is wired.
type setup struct {
	sink     string // "json-file" for a fault of its own; else the row's sink
	reserve  bool   // the network sink is not listening at start
	proxy    bool   // a TCP proxy between logger and sink
	address  string // host:port: the driver's address instead of the sink's (the sink's scheme)
	logPath  string // json-file: the file (default under the run's dir)
	spoolDir string // spool: the directory (default under the run's dir)
	opts     map[string]string
	filler   string // a file filling a disk, for the fault to remove
}

// session is one fault in one mode: the sink, the logger, the
// application's two writers.
type session struct {
	mode    string
	sink    string // "forward", "rsyslog" (RELP), "rsyslog-tcp", "otlp", "loki" or "json-file"
	dir     string
	net     netSink // nil for json-file
	px      *proxy
	logPath string
	l       *logproc.Logger
	out     *writer // stdout, lines numbered from 0
	errw    *writer // stderr, lines numbered from errBase
	// extra counts messages written that carry no number (empty lines).
	extraWritten int
	notes        []string
	filler       string
	// after runs once the logger has exited, before the count (a second
	// logger on the same spool); it returns lines that one dropped.
	after   func(s *session) (int64, error)
	bin     string
	driver  string
	addrOpt string // the driver's address log-opt
	opts    map[string]string
	kills   int // workers killed with SIGKILL
}

func (s *session) note(f string, a ...any) { s.notes = append(s.notes, fmt.Sprintf(f, a...)) }

func newSession(e *env, name, sink, mode string, su setup) (*session, error) {
	dir, err := os.MkdirTemp(e.dir, strings.NewReplacer(" ", "-", "/", "-").Replace(name)+"-"+sink+"-"+mode+"-")
	if err != nil {
		return nil, err
	}
	if su.sink != "" {
		sink = su.sink
	}
	s := &session{mode: mode, sink: sink, dir: dir, filler: su.filler}
	opts := map[string]string{"mode": mode, "close-timeout": "60s"}
	switch sink {
	case "json-file":
		s.driver = "json-file"
		s.logPath = su.logPath
		if s.logPath == "" {
			s.logPath = filepath.Join(dir, "json.log")
		}
		opts["log-path"] = s.logPath
	case "forward", "rsyslog", "rsyslog-tcp", "otlp", "loki":
		if s.net, err = startSink(sink, filepath.Join(dir, "sink"), su.reserve); err != nil {
			return nil, err
		}
		url := s.net.URL()
		if su.proxy {
			if s.px, err = newProxy(s.net.Addr()); err != nil {
				s.net.Close()
				return nil, err
			}
			url = urlAt(s.net, s.px.addr())
		}
		if su.address != "" {
			url = urlAt(s.net, su.address)
		}
		switch sink {
		case "otlp":
			s.driver, s.addrOpt = "otlp", "otlp-endpoint"
			opts["otlp-endpoint"] = url
		case "loki":
			// Retries without end, as the other rows' drivers: a long
			// outage is the mode's to ride out, not the driver's to give
			// up on; backoff bounded so the row ends soon after.
			s.driver, s.addrOpt = "loki", "loki-url"
			opts["loki-url"] = url
			opts["loki-retries"] = "0"
			opts["loki-max-backoff"] = "2s"
		}
		if s.driver != "" {
			break
		}
		if sink == "rsyslog" || sink == "rsyslog-tcp" {
			// RFC 5424 with microsecond timestamps. rsyslog: over RELP,
			// which acknowledges every message (the logger resends what
			// a broken session left unacknowledged). rsyslog-tcp: over
			// plain TCP, Docker's syslog driver as a user would point it
			// at rsyslog, with no acknowledgement and no retry of its own
			// beyond one reconnect per failed write (srslog).
			s.driver, s.addrOpt = "syslog", "syslog-address"
			opts["syslog-address"] = url
			opts["syslog-format"] = "rfc5424micro"
			break
		}
		s.driver, s.addrOpt = "fluentd", "fluentd-address"
		// Synchronous sends with acks: the reliable fluentd setup (without
		// acks TCP itself loses what was in flight when a connection
		// dies, which no logger can count). Few driver retries, so that
		// failures reach the delivery mode quickly instead of waiting in
		// fluent-logger's backoff (up to a minute).
		opts["fluentd-address"] = url
		opts["fluentd-async"] = "false"
		opts["fluentd-request-ack"] = "true"
		opts["fluentd-retry-wait"] = "100ms"
		opts["fluentd-max-retries"] = "3"
	default:
		return nil, fmt.Errorf("no sink %q", sink)
	}
	if mode == "spool" {
		opts["spool-dir"] = su.spoolDir
		if su.spoolDir == "" {
			opts["spool-dir"] = filepath.Join(dir, "spool")
		}
	}
	for k, v := range su.opts {
		opts[k] = v
	}
	s.bin, s.opts = e.bin, opts
	s.l, err = logproc.Start(e.bin, s.driver, opts, "/faults")
	if err != nil {
		s.closeSink()
		return nil, err
	}
	s.out = newWriter(s.l.Out, 0)
	s.errw = newWriter(s.l.Err, errBase)
	return s, nil
}

func (s *session) closeSink() {
	if s.px != nil {
		s.px.close()
	}
	if s.net != nil {
		s.net.Close()
	}
}

// delivered returns the messages at the sink, waiting a while for at
// least atLeast of them (a network sink may still be writing them).
func (s *session) delivered(atLeast int) ([]string, error) {
	if s.net != nil {
		return s.net.Messages(atLeast, 10*time.Second)
	}
	f, err := os.Open(s.logPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var msgs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	bad := 0
	for sc.Scan() {
		var rec struct {
			Log string `json:"log"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			bad++
			continue
		}
		msgs = append(msgs, strings.TrimSuffix(rec.Log, "\n"))
	}
	if bad > 0 {
		s.note("%d json-file records not valid JSON", bad)
	}
	return msgs, sc.Err()
}

// row is one line of the table.
type row struct {
	fault, sink, mode           string
	written, delivered, dups    int
	dropped, lost               int64
	maxBlock                    time.Duration
	exit                        int
	ok, skipped                 bool
	why, notes                  string
	dropsOK, exitOK, supervised bool
}

// waitDraining waits for the logger's exit after its inputs closed. A
// logger still delivering what its pipes hold is not hung: in blocking
// mode a 1 MiB pipe of empty lines is about a million messages, minutes
// at an acknowledging sink's pace. A hang is quiet without anything new
// at the sink (or in the log file), or 15 minutes in all.
func (s *session) waitDraining(quiet time.Duration) (int, error) {
	last, deadline := s.progress(), time.Now().Add(15*time.Minute)
	for {
		select {
		case <-s.l.Exited():
			return s.l.Wait(time.Minute)
		case <-time.After(quiet):
		}
		if p := s.progress(); p > last && time.Now().Before(deadline) {
			last = p
			continue
		}
		s.l.Kill()
		s.l.Wait(10 * time.Second)
		return -1, fmt.Errorf("hang: logger still running after its inputs closed, nothing new at the sink for %v", quiet)
	}
}

// progress is how much has arrived at the sink so far.
func (s *session) progress() int64 {
	if s.net != nil {
		msgs, _ := s.net.Messages(0, 0)
		return int64(len(msgs))
	}
	if fi, err := os.Stat(s.logPath); err == nil {
		return fi.Size()
	}
	return 0
}

// finish closes whatever inputs are still open, waits for the logger,
// counts and checks.
func (s *session) finish(r *row, ferr error) {
	defer os.RemoveAll(s.dir)
	defer s.closeSink()
	s.out.close()
	s.errw.close()
	code, werr := s.waitDraining(90 * time.Second)
	r.exit = code
	var fails []string
	if ferr != nil {
		fails = append(fails, ferr.Error())
	}
	if werr != nil {
		fails = append(fails, werr.Error())
	}
	st, glued, err := logproc.Stats(s.l.Stderr.Bytes())
	if glued {
		s.note("stats line not at the start of its line")
	}
	if err != nil {
		fails = append(fails, err.Error())
		if os.Getenv("FAULTS_DEBUG") != "" {
			fmt.Fprintf(os.Stderr, "--- logger stderr:\n%s\n---\n", s.l.Stderr.Bytes())
		}
	}
	r.dropped = st["lines_dropped"]
	if s.after != nil {
		d, err := s.after(s)
		if err != nil {
			fails = append(fails, err.Error())
		}
		r.dropped += d
	}
	ow, ob, _ := s.out.result()
	ew, eb, _ := s.errw.result()
	r.written = ow + ew + s.extraWritten
	r.maxBlock = max(ob, eb)
	msgs, err := s.delivered(int(st["lines_delivered"]))
	if err != nil {
		fails = append(fails, "reading the sink: "+err.Error())
	}
	seen := map[int]bool{}
	empty, other := 0, 0
	// Per stream, each line's first arrival must come after every line
	// written before it that arrived: order per stream is what a reader
	// of the log relies on. Repeats (replays) are not counted here.
	latest := map[bool]int{false: -1, true: -1} // by "is stderr"
	unordered, firstUnordered := 0, -1
	for _, m := range msgs {
		n := seqOf(m)
		switch {
		case m == "":
			empty++
		case n < 0:
			other++
		case seen[n]:
			r.dups++
		default:
			seen[n] = true
			if n < latest[n >= errBase] {
				unordered++
				if firstUnordered < 0 {
					firstUnordered = n
				}
			}
			latest[n >= errBase] = max(latest[n >= errBase], n)
		}
	}
	if unordered > 0 {
		fails = append(fails, fmt.Sprintf("%d lines out of order in their stream (first seq=%d)", unordered, firstUnordered))
	}
	r.delivered = len(seen) + empty
	if empty > 0 {
		s.note("%d empty messages (not numbered, duplicates not detectable)", empty)
	}
	if other > 0 {
		s.note("%d other messages (drop markers)", other)
	}
	for k, v := range st {
		if strings.HasPrefix(k, "lines_dropped_") && v > 0 {
			s.note("%s=%d", k, v)
		}
	}
	if rp := st["lines_replayed"]; rp > 0 {
		s.note("lines_replayed=%d", rp)
	}
	if rs := st["restarts"]; rs > 0 {
		s.note("restarts=%d", rs)
	}
	// Lines a spool still holds at exit are not lost: the next logger on
	// the same spool-dir delivers them (lines_spooled). Where the fault
	// starts that next logger itself (after), they are in delivered.
	spooled := st["lines_spooled"]
	if spooled > 0 {
		s.note("lines_spooled=%d (left for the next start)", spooled)
	}
	if s.after != nil {
		spooled = 0
	}
	r.lost = int64(r.written) - int64(r.delivered) - r.dropped - spooled
	// A non-blocking worker killed while handing lines over: what its
	// ring held is counted dropped, and what it handed over and had not
	// consumed is delivered again (lines_replayed) or dropped by the
	// supervisor while no worker runs (lines_dropped_maybe_delivered);
	// either may count a line twice, never lose one. One line in flight
	// per kill besides.
	twice := int64(s.kills) + st["lines_dropped_maybe_delivered"] + st["lines_replayed"]
	// A sink that stops between storing events and acknowledging them
	// leaves the driver retrying them: in non-blocking mode they may be
	// counted dropped though they arrived (the logger cannot know).
	var unacked int64
	if u, ok := s.net.(interface{ Unacked() int }); ok {
		unacked = int64(u.Unacked())
	}
	if unacked > 0 {
		s.note("the sink stored %d event(s) it could not acknowledge", unacked)
	}
	switch {
	case r.lost < 0 && -r.lost <= unacked:
		s.note("%d line(s) counted dropped though at the sink, which stopped before it could acknowledge %d", -r.lost, unacked)
	case r.lost < 0 && s.mode == "non-blocking" && -r.lost <= twice:
		s.note("%d line(s) counted dropped and delivered (at most %d: one in flight per kill, lines_replayed and lines_dropped_maybe_delivered)", -r.lost, twice)
	case r.lost < 0 && spooled > 0 && -r.lost <= spoolBatchLines:
		// The batch handed to the driver when close-timeout struck stays
		// unacknowledged on disk: counted as spooled, it may also have
		// arrived, and will arrive again (at least once).
		s.note("%d line(s) of the unacknowledged batch both delivered and left in the spool", -r.lost)
	case r.lost != 0:
		fails = append(fails, fmt.Sprintf("lost uncounted %d", r.lost))
		if m := missing(seen, s.out, s.errw); m != "" {
			s.note("not at the sink: %s", m)
		}
	}
	if r.dropped > 0 && s.mode != "non-blocking" && !r.dropsOK {
		fails = append(fails, fmt.Sprintf("%s dropped %d", s.mode, r.dropped))
	}
	if code != 0 && !r.exitOK && !(code == 1 && (r.dropped > 0 || spooled > 0)) {
		fails = append(fails, fmt.Sprintf("exit %d with nothing dropped: %s", code, logproc.LastLine(string(s.l.Stderr.Bytes()))))
	}
	r.ok = len(fails) == 0
	if !r.ok && os.Getenv("FAULTS_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "--- %s/%s/%s: logger stderr:\n%s\n", r.fault, s.sink, s.mode, s.l.Stderr.Bytes())
		if d, ok := s.net.(interface{ debug() string }); ok {
			fmt.Fprintf(os.Stderr, "--- sink:\n%s\n", d.debug())
		}
		fmt.Fprintln(os.Stderr, "---")
	}
	r.why = strings.Join(fails, "; ")
	if r.notes != "" {
		s.notes = append([]string{r.notes}, s.notes...)
	}
	r.notes = strings.Join(s.notes, "; ")
}

// relaunch runs a second logger with the first one's options but the
// session's sink as its address and nothing to read: it delivers what the
// first left in the spool. It returns the lines it dropped.
func (s *session) relaunch() (int64, error) {
	opts := map[string]string{}
	for k, v := range s.opts {
		opts[k] = v
	}
	opts[s.addrOpt] = s.net.URL()
	l, err := logproc.Start(s.bin, s.driver, opts, "/faults")
	if err != nil {
		return 0, fmt.Errorf("second logger: %w", err)
	}
	l.Out.Close()
	l.Err.Close()
	code, err := l.Wait(90 * time.Second)
	if err != nil {
		return 0, fmt.Errorf("second logger: %w", err)
	}
	st, _, err := logproc.Stats(l.Stderr.Bytes())
	if err != nil {
		return 0, fmt.Errorf("second logger: %w", err)
	}
	if code != 0 {
		return st["lines_dropped"], fmt.Errorf("second logger: exit %d: %s", code, logproc.LastLine(string(l.Stderr.Bytes())))
	}
	s.note("a second logger on the same spool-dir delivered %d", st["lines_delivered"])
	return st["lines_dropped"], nil
}

// spoolBatchLines bounds the lines of one spool batch (256 KiB of records,
// at least 20 bytes each): what may be both delivered and left on disk.
const spoolBatchLines = 256 << 10 / 20

// missing lists the numbered lines the writers wrote that are not in
// seen, as ranges (at most 10): where a loss happened.
func missing(seen map[int]bool, ws ...*writer) string {
	var rs []string
	for _, w := range ws {
		for n := w.first; n < w.next && len(rs) < 10; n++ {
			if seen[n] {
				continue
			}
			m := n
			for m+1 < w.next && !seen[m+1] {
				m++
			}
			if m == n {
				rs = append(rs, strconv.Itoa(n))
			} else {
				rs = append(rs, fmt.Sprintf("%d-%d", n, m))
			}
			n = m
		}
	}
	return strings.Join(rs, ", ")
}
