package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/joyent/dockerlogger/internal/logproc"
	"github.com/joyent/dockerlogger/internal/measure"
)

const (
	gapChunk  = 40 * lineSize // bytes per write(2), whole lines, under PIPE_BUF
	gapWindow = 300 * time.Millisecond
	gapEvery  = 500 * time.Millisecond // from one mark (SIGHUP or baseline) to the next
	gapWarm   = 500 * time.Millisecond // writing before the first mark
	gapSlow   = 10 * time.Millisecond  // a write longer than this is a miss
)

var gapModes = []string{"spool", "non-blocking", "blocking"}

// gapWrite is one write(2): when it started, from the first write, and
// how long it took.
type gapWrite struct{ at, took time.Duration }

// gapMark is a SIGHUP (hup) or a baseline mark, when it was made, from the
// first write.
type gapMark struct {
	at  time.Duration
	hup bool
}

type gapResult struct {
	mode     string
	up, base []time.Duration // longest write in each window, in order
	lines    int             // lines written
	dups     int             // lines in the file more than once
	replayed int64           // lines_replayed of the last stats line
	dropped  int64           // lines_dropped of the last stats line
	lost     int             // lines written not in the file
	problems []string        // lines lost, out of order, or again uncounted
	refused  int             // pipe shrinks refused (EBUSY)
}

// gapWriter writes numbered lines to fd, blocking, gapChunk bytes a write
// at rate MB/s from t0 until stop, timing each write(2). Behind (after a
// write that blocked), it writes without pause until it is back on
// schedule, as an application with lines queued would.
func gapWriter(fd int, rate float64, t0 time.Time, stop <-chan struct{}) (ws []gapWrite, lines int, err error) {
	per := time.Duration(float64(gapChunk) / (rate * 1e6) * float64(time.Second))
	ws = make([]gapWrite, 0, 2*int(time.Second/per)*8)
	var chunk []byte // line(0) over and over: each write numbers its lines
	for i := 0; i < gapChunk/lineSize; i++ {
		chunk = append(chunk, line(0)...)
	}
	seqAt := bytes.Index(chunk, []byte(" seq=")) + len(" seq=")
	next := t0
	for {
		select {
		case <-stop:
			return ws, lines, nil
		default:
		}
		for i := 0; i < gapChunk/lineSize; i++ {
			seq := lines + i
			for d, at := 0, i*lineSize+seqAt+8; d < 9; d, at = d+1, at-1 {
				chunk[at] = byte('0' + seq%10)
				seq /= 10
			}
		}
		s := time.Now()
		for b := chunk; len(b) > 0; {
			n, err := unix.Write(fd, b)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return ws, lines, fmt.Errorf("write(2) into the logger's stdout: %w", err)
			}
			b = b[n:]
		}
		ws = append(ws, gapWrite{at: s.Sub(t0), took: time.Since(s)})
		lines += gapChunk / lineSize
		next = next.Add(per)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
	}
}

// gapRun runs one logger in mode through p.gapHups live upgrades with a
// baseline mark between each two, and checks its json-file.
func gapRun(p params, dir, mode string) (r gapResult, err error) {
	r.mode = mode
	sub := filepath.Join(dir, "gap-"+mode)
	if err := os.Mkdir(sub, 0o755); err != nil {
		return r, err
	}
	defer os.RemoveAll(sub)
	logPath := filepath.Join(sub, "json.log")
	opts := map[string]string{"log-path": logPath, "mode": mode, "max-size": "1g"}
	if mode == "spool" {
		opts["spool-dir"] = filepath.Join(sub, "spool")
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return r, err
	}
	defer pw.Close()
	// Fd puts the write end in blocking mode: each Write below is one
	// write(2) that waits in the kernel for room, as an application's.
	fd := int(pw.Fd())
	l, err := logproc.Launch(logproc.Spec{Argv: logproc.Command(p.bin, "json-file"),
		Env: append(os.Environ(), logproc.Config(opts, containerID)...), Stdout: pr})
	if err != nil {
		return r, err
	}
	l.Err.Close() // fd 4: an empty stream
	if err := l.WaitReady(10 * time.Second); err != nil {
		l.Kill()
		return r, fmt.Errorf("dockerlogger never said ready: %v: %s", err, logproc.LastLine(l.Stderr.String()))
	}

	t0 := time.Now()
	stop := make(chan struct{})
	type written struct {
		ws    []gapWrite
		lines int
		err   error
	}
	wrote := make(chan written, 1)
	go func() {
		ws, n, err := gapWriter(fd, p.gapRate, t0, stop)
		wrote <- written{ws, n, err}
	}()
	// Marks every gapEvery: SIGHUP, baseline, SIGHUP, ... baseline. Each
	// baseline is half way between two SIGHUPs (the last, as far after
	// the last one); each mark is made on a pipe shrunk the same way.
	var marks []gapMark
	var merr error
	for i := 0; i < 2*p.gapHups && merr == nil; i++ {
		time.Sleep(time.Until(t0.Add(gapWarm + time.Duration(i)*gapEvery)))
		var refused bool
		if refused, merr = shrinkPipe(fd, p.gapPipe); merr != nil {
			break
		}
		if refused {
			r.refused++
		}
		hup := i%2 == 0
		at := time.Since(t0)
		if hup {
			merr = l.Cmd.Process.Signal(syscall.SIGHUP)
		}
		marks = append(marks, gapMark{at: at, hup: hup})
	}
	time.Sleep(time.Until(t0.Add(gapWarm + time.Duration(2*p.gapHups)*gapEvery)))
	close(stop)
	var w written
	select {
	case w = <-wrote:
	case <-time.After(time.Minute): // a write that never ends: nobody reads
		l.Kill() // and the write fails (EPIPE)
		<-wrote
		return r, fmt.Errorf("the logger stopped reading: a write(2) blocked over a minute: %s", logproc.LastLine(l.Stderr.String()))
	}
	pw.Close()
	lerr := l.Exit(2 * time.Minute)
	switch {
	case merr != nil:
		return r, merr
	case w.err != nil:
		return r, fmt.Errorf("%w: %s", w.err, logproc.LastLine(l.Stderr.String()))
	case lerr != nil:
		return r, lerr
	}
	r.lines = w.lines

	for _, m := range marks {
		var longest time.Duration
		for _, x := range w.ws {
			if x.at >= m.at && x.at < m.at+gapWindow {
				longest = max(longest, x.took)
			}
		}
		if m.hup {
			r.up = append(r.up, longest)
		} else {
			r.base = append(r.base, longest)
		}
	}

	st, _, err := logproc.Stats(l.Stderr.Bytes())
	if err != nil {
		return r, err
	}
	// The last worker's stats line: lines_replayed and lines_dropped
	// count every worker's (the ledger, the carried drops).
	r.replayed, r.dropped = st["lines_replayed"], st["lines_dropped"]
	if up := st["upgrades"]; up != int64(p.gapHups) {
		return r, fmt.Errorf("%d SIGHUPs sent, the logger counts %d upgrades", p.gapHups, up)
	}
	c, err := checkInOrder(logPath, r.lines)
	if err != nil {
		return r, err
	}
	r.dups = c.dups
	if c.bad > 0 {
		r.problems = append(r.problems, fmt.Sprintf("%d entries in the json-file that are no line written (%s)", c.bad, strings.Join(c.first, "; ")))
	}
	// Non-blocking may drop across an upgrade (the supervisor keeps room
	// in the pipes), counted: only a line missing uncounted is a loss.
	if r.lost = r.lines - c.unique; r.lost > 0 && (mode != "non-blocking" || int64(r.lost) != r.dropped) {
		var why []string
		for k, v := range st {
			if strings.HasPrefix(k, "lines_dropped") && v > 0 {
				why = append(why, fmt.Sprintf("%s=%d", k, v))
			}
		}
		slices.Sort(why)
		counted := "no drop counted"
		if len(why) > 0 {
			counted = strings.Join(why, " ")
		}
		var where []string
		for _, h := range c.holes {
			where = append(where, fmt.Sprintf("%d-%d %s", h[0], h[1], when(h[0], w.ws, marks)))
		}
		r.problems = append(r.problems, fmt.Sprintf("%d of %d lines lost (%s; lines %s)", r.lost, r.lines, counted, strings.Join(where, ", ")))
	}
	if c.late > 0 {
		r.problems = append(r.problems, fmt.Sprintf("%d lines out of order", c.late))
	}
	if int64(r.dups) > r.replayed {
		r.problems = append(r.problems, fmt.Sprintf("%d lines in the file more than once, but lines_replayed=%d", r.dups, r.replayed))
	}
	return r, nil
}

// when says when line seq was written, from the mark before it.
func when(seq int, ws []gapWrite, marks []gapMark) string {
	at := ws[min(seq/(gapChunk/lineSize), len(ws)-1)].at
	k, hups, bases := -1, 0, 0
	for i, m := range marks {
		if m.at > at {
			break
		}
		if k = i; m.hup {
			hups++
		} else {
			bases++
		}
	}
	switch {
	case k < 0:
		return "(written before the first mark)"
	case marks[k].hup:
		return fmt.Sprintf("(written %s ms after SIGHUP %d)", ms(at-marks[k].at), hups)
	}
	return fmt.Sprintf("(written %s ms after baseline %d)", ms(at-marks[k].at), bases)
}

// fileCheck is what checkInOrder found in a json-file.
type fileCheck struct {
	unique int      // lines written, in it once or more
	dups   int      // lines in it again (a number already seen)
	late   int      // lines first in it after a line written later
	bad    int      // entries that are no line written
	first  []string // the first few of those, where and what
	holes  [][2]int // the first few runs of lines not in it, first and last
}

// checkInOrder reads a json-file that should hold lines 0 to n-1 of
// stdout, each as written, each first delivery in order.
func checkInOrder(path string, n int) (c fileCheck, err error) {
	f, err := os.Open(path)
	if err != nil {
		return c, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := make([]bool, n)
	top, at := -1, 0 // the highest number seen; the file's line
	bad := func(what string) {
		if c.bad++; len(c.first) < 3 {
			c.first = append(c.first, fmt.Sprintf("line %d: %s", at, what))
		}
	}
	for sc.Scan() {
		at++
		raw := sc.Bytes()
		var e struct{ Log, Stream string }
		// Most entries are the line written as json-file writes it: read
		// without decoding (a tenth of the time); any other is decoded.
		if b, ok := bytes.CutPrefix(raw, []byte(`{"log":"`)); ok && len(b) > lineSize && bytes.HasPrefix(b[lineSize-1:], []byte(`\n","stream":"stdout","time":"`)) {
			e.Log, e.Stream = string(b[:lineSize-1])+"\n", "stdout"
		} else if err := json.Unmarshal(raw, &e); err != nil {
			bad(fmt.Sprintf("%v: %q", err, raw[:min(len(raw), 160)]))
			continue
		}
		seq := -1
		if i := strings.Index(e.Log, " seq="); i >= 0 && len(e.Log) >= i+14 {
			if v, err := strconv.Atoi(e.Log[i+5 : i+14]); err == nil && v < n {
				seq = v
			}
		}
		if e.Stream != "stdout" || seq < 0 || e.Log != string(line(seq)) {
			bad(fmt.Sprintf("not a line written: %q (%s)", e.Log, e.Stream))
			continue
		}
		switch {
		case seen[seq]:
			c.dups++
		case seq < top:
			c.late++
			fallthrough
		default:
			seen[seq] = true
			c.unique++
			top = max(top, seq)
		}
	}
	for i := 0; i < n && len(c.holes) < 3; i++ {
		if !seen[i] {
			j := i
			for j+1 < n && !seen[j+1] {
				j++
			}
			c.holes = append(c.holes, [2]int{i, j})
			i = j
		}
	}
	return c, sc.Err()
}

// runGap measures each mode of -gap-modes in turn. A line lost, out of
// order or delivered again uncounted is in the result's problems, for
// gapLoss after the table.
func runGap(p params) ([]gapResult, error) {
	modes := strings.Split(p.gapModes, ",")
	for _, m := range modes {
		if !slices.Contains(gapModes, m) {
			return nil, fmt.Errorf("-gap-modes %q: a comma-separated list of %s", p.gapModes, strings.Join(gapModes, ", "))
		}
	}
	dir, err := os.MkdirTemp("", "dockerlogger-gap-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var rs []gapResult
	for _, mode := range modes {
		r, err := gapRun(p, dir, mode)
		if err != nil {
			return nil, fmt.Errorf("upgrade gap, mode %s: %w", mode, err)
		}
		fmt.Fprintf(os.Stderr, "  upgrade gap %s: longest write per upgrade ms %s; per baseline ms %s; %d lines, %d again (lines_replayed=%d), lines_dropped=%d, pipe shrinks refused %d\n",
			mode, msList(r.up), msList(r.base), r.lines, r.dups, r.replayed, r.dropped, r.refused)
		rs = append(rs, r)
	}
	return rs, nil
}

// gapLoss is the error for the lines lost, if any.
func gapLoss(rs []gapResult) error {
	var all []string
	for _, r := range rs {
		if len(r.problems) > 0 {
			all = append(all, r.mode+": "+strings.Join(r.problems, ", "))
		}
	}
	if len(all) > 0 {
		return fmt.Errorf("upgrade gap: %s", strings.Join(all, "; "))
	}
	return nil
}

func msList(ds []time.Duration) string {
	var each []string
	for _, d := range ds {
		each = append(each, ms(d))
	}
	return strings.Join(each, " ")
}

// slowOnes counts the windows whose longest write was over gapSlow.
func slowOnes(ds []time.Duration) int {
	n := 0
	for _, d := range ds {
		if d > gapSlow {
			n++
		}
	}
	return n
}

func reportGap(w io.Writer, p params, rs []gapResult) {
	fmt.Fprintf(w, "\nupgrade gap: %d B lines, %d B a write(2), at %g MB/s into a pipe shrunk to %d KiB (%.1f ms of input) before each mark;\n",
		lineSize, gapChunk, p.gapRate, p.gapPipe>>10, float64(p.gapPipe)/(p.gapRate*1e6)*1e3)
	fmt.Fprintf(w, "the longest write(2) started within %v after each of %d SIGHUPs (live upgrade), and after each baseline mark half way between two\n",
		gapWindow, p.gapHups)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tupgrade median ms\tmax ms\tbaseline median ms\tmax ms\tratio\tupgrades with a write >10 ms\tbaselines >10 ms\tlines\tagain\tlost\t")
	for _, r := range rs {
		up, base := measure.Sorted(r.up), measure.Sorted(r.base)
		um, bm := up[len(up)/2], base[len(base)/2]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f\t%d of %d\t%d of %d\t%d\t%d\t%d\t\n", r.mode, ms(um), ms(up[len(up)-1]), ms(bm), ms(base[len(base)-1]),
			float64(um)/float64(max(bm, 1)), slowOnes(r.up), len(r.up), slowOnes(r.base), len(r.base), r.lines, r.dups, r.lost)
	}
	tw.Flush()
	fmt.Fprintln(w, "(ratio: upgrade median over baseline median. again: lines in the json-file twice, allowed as far as lines_replayed counts them.)")
	for _, r := range rs {
		var notes []string
		if r.dups > 0 {
			notes = append(notes, fmt.Sprintf("%d lines again, lines_replayed=%d", r.dups, r.replayed))
		}
		if r.refused > 0 {
			notes = append(notes, fmt.Sprintf("%d of %d pipe shrinks refused (more than %d KiB in it: the logger was behind), a larger pipe in those windows",
				r.refused, 2*p.gapHups, p.gapPipe>>10))
		}
		notes = append(notes, r.problems...)
		if len(notes) > 0 {
			fmt.Fprintf(w, "(%s: %s.)\n", r.mode, strings.Join(notes, "; "))
		}
	}
	fmt.Fprintln(w, "\ntargets:")
	for _, r := range rs {
		if r.mode == "blocking" {
			fmt.Fprintln(w, "  (blocking: reported without a target)")
			continue
		}
		n := slowOnes(r.up)
		fmt.Fprintf(w, "  %s  %s: no write(2) over 10 ms across an upgrade: %d of %d upgrades had one (longest %s ms)\n",
			measure.Verdict(n == 0), r.mode, n, len(r.up), ms(measure.Sorted(r.up)[len(r.up)-1]))
	}
}
