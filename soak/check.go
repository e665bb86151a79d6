package main

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// msg is one message as the sink holds it.
type msg struct {
	stderr  bool
	data    []byte
	partial bool   // more parts of its line follow
	id      string // fluentd's partial_id
	ordinal int    // fluentd's partial_ordinal, 0 if none
}

// sinkMessages reads what the sink holds, in arrival order.
func (r *run) sinkMessages() ([]msg, error) {
	if r.srv != nil {
		var ms []msg
		for _, e := range r.srv.Events() {
			ms = append(ms, msg{
				stderr:  e.Str("source") == "stderr",
				data:    []byte(e.Str("log")),
				partial: e.Str("partial_message") == "true" && e.Str("partial_last") != "true",
				id:      e.Str("partial_id"),
			})
			if o, err := strconv.Atoi(e.Str("partial_ordinal")); err == nil {
				ms[len(ms)-1].ordinal = o
			}
		}
		return ms, nil
	}
	return readJSONFiles(r.logDir, "json.log")
}

// readJSONFiles reads json-file's file base in dir and its rotations
// (base.N, base.N.gz; the highest N is the oldest) with a JSON decoder. A
// record whose log has no trailing newline is a partial message (Docker's
// jsonfilelog), joined with what follows on its stream.
func readJSONFiles(dir, base string) ([]msg, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type file struct {
		name string
		n    int
	}
	var files []file
	for _, e := range ents {
		name := e.Name()
		if name == base {
			files = append(files, file{name, 0})
			continue
		}
		rest, ok := strings.CutPrefix(name, base+".")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSuffix(rest, ".gz")); err == nil {
			files = append(files, file{name, n})
		}
	}
	// Oldest first; a rotated file both compressed and not (a worker
	// killed while compressing) is read twice: duplicates, not losses.
	slices.SortFunc(files, func(a, b file) int {
		return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(b.name, a.name))
	})
	var ms []msg
	var bad, broken []string
	nbad := 0
	for _, f := range files {
		fh, err := os.Open(filepath.Join(dir, f.name))
		if err != nil {
			return nil, err
		}
		var rd io.Reader = fh
		if strings.HasSuffix(f.name, ".gz") {
			if rd, err = gzip.NewReader(fh); err != nil {
				fh.Close()
				broken = append(broken, fmt.Sprintf("%s: %v", f.name, err))
				continue
			}
		}
		br := bufio.NewReaderSize(rd, 1<<20)
		for rec := 1; ; rec++ {
			b, err := br.ReadBytes('\n')
			if len(b) > 0 {
				var v struct {
					Log    string `json:"log"`
					Stream string `json:"stream"`
					Time   string `json:"time"`
				}
				if jerr := json.Unmarshal(b, &v); jerr != nil || v.Time == "" {
					if len(bad) < 3 {
						bad = append(bad, fmt.Sprintf("%s record %d (%d bytes): %v", f.name, rec, len(b), jerr))
					}
					nbad++
					continue
				}
				line, full := strings.CutSuffix(v.Log, "\n")
				ms = append(ms, msg{stderr: v.Stream == "stderr", data: []byte(line), partial: !full})
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				broken = append(broken, fmt.Sprintf("%s after %d records: %v", f.name, rec, err))
				break
			}
		}
		fh.Close()
	}
	if len(broken) > 0 {
		return ms, fmt.Errorf("json-file: %s", strings.Join(broken, "; "))
	}
	if nbad > 0 {
		return ms, fmt.Errorf("json-file: %d lines of the files are no record: %s", nbad, strings.Join(bad, "; "))
	}
	return ms, nil
}

// tally is what one stream's messages became once joined.
type tally struct {
	complete  map[int]int // line number → complete copies
	order     int         // lines whose first copy came after a later line's
	firstBad  int
	empties   int
	markers   int
	prefixes  map[int]int // line number → copies cut short (a replay's first parts, or a drop's)
	damaged   int         // joined messages that are no line's bytes
	orphans   int         // joined messages with no header: the rest of a line whose start is gone
	tails     int         // orphans that are the end of a line that also arrived whole: a replay begun mid-line
	parts     int         // partial messages that came again (same partial_id and ordinal): replays
	splitIDs  int         // lines whose parts came under more than one partial_id
	exampleDm string
}

// join joins one stream's parts into lines, per Docker's partial
// messages, and checks each against its content.
func join(ms []msg, stderr bool, byseq map[int]item, seed uint64) *tally {
	t := &tally{complete: map[int]int{}, prefixes: map[int]int{}, firstBad: -1}
	latest := -1
	var cur []byte
	var orphaned [][]byte
	lastOrdinal := map[string]int{}
	curID, active := "", false
	// continues says whether next is the very next piece of the line cur
	// begins: together they are still the start of what its writer wrote.
	wantSeq, want := -1, []byte(nil) // continues' last content, made once per line
	continues := func(cur, next []byte) bool {
		seq, n, ok := parseHeader(cur)
		if !ok {
			return false
		}
		it, known := byseq[seq]
		if !known || it.n != n {
			return false
		}
		if seq != wantSeq {
			wantSeq, want = seq, content(seed, it)
		}
		return len(cur)+len(next) <= len(want) && bytes.HasPrefix(want, cur) && bytes.Equal(want[len(cur):len(cur)+len(next)], next)
	}
	// whole says whether cur is all of the line it begins.
	whole := func(cur []byte) bool {
		seq, n, ok := parseHeader(cur)
		if !ok || len(cur) != n {
			return false
		}
		it, known := byseq[seq]
		return known && it.n == n && bytes.Equal(content(seed, it), cur)
	}
	var starts []int // where each part of cur begins
	flush := func() {
		j := cur
		cur, curID, active, starts = nil, "", false, starts[:0]
		switch {
		case len(j) == 0:
			t.empties++
			return
		case bytes.HasPrefix(j, []byte("dockerlogger: dropped ")):
			t.markers++
			return
		}
		seq, n, ok := parseHeader(j)
		if !ok {
			orphaned = append(orphaned, j)
			return
		}
		it, known := byseq[seq]
		var want []byte
		if known && it.n == n {
			want = content(seed, it)
		}
		switch {
		case want != nil && bytes.Equal(j, want):
			if t.complete[seq] == 0 {
				if seq < latest {
					t.order++
					if t.firstBad < 0 {
						t.firstBad = seq
					}
				}
				latest = max(latest, seq)
			}
			t.complete[seq]++
		case want != nil && len(j) < len(want) && bytes.HasPrefix(want, j):
			t.prefixes[seq]++
		default:
			t.damaged++
			if t.exampleDm == "" {
				t.exampleDm = fmt.Sprintf("seq=%d: %d bytes, want %d", seq, len(j), n)
			}
		}
	}
	var dump *os.File
	if os.Getenv("SOAK_DUMP") != "" {
		dump, _ = os.Create(fmt.Sprintf("%s.%v", os.Getenv("SOAK_DUMP"), stderr))
		defer dump.Close()
	}
	for _, m := range ms {
		if m.stderr != stderr { // each stream's parts are joined apart
			continue
		}
		if dump != nil {
			h := m.data[:min(len(m.data), 16)]
			fmt.Fprintf(dump, "id=%s ord=%d partial=%v len=%d %q\n", m.id, m.ordinal, m.partial, len(m.data), h)
		}
		if m.id != "" && m.ordinal > 0 {
			// A part delivered again (a worker killed between
			// delivering it and committing it; a spool replay): a
			// reader joining by partial_id and partial_ordinal, as
			// Docker's partial metadata lets it, keeps the first.
			if m.ordinal <= lastOrdinal[m.id] {
				t.parts++
				continue
			}
			lastOrdinal[m.id] = m.ordinal
		}
		switch {
		case active && len(cur) > 0 && hasHeader(m.data):
			flush() // a new line begins: the one before lost its end
		case active && len(cur) > 0 && len(m.data) == 0 && !m.partial && m.id == "" && (curID != "" || !whole(cur)):
			// An empty line: the one before lost its end (an empty
			// message ends a line only when it is the last part of one
			// that is whole without it).
			flush()
		case active && m.id != "" && curID != "" && m.id != curID:
			if hasHeader(m.data) || !continues(cur, m.data) {
				// A new line, or a piece of another whose start was
				// dropped (the ring, or the supervisor while no worker
				// ran): the line before lost its end.
				flush()
				break
			}
			// The rest of the line under another partial_id: whole
			// when joined, broken for a reader that joins by id.
			t.splitIDs++
		}
		if active && m.id == "" && len(cur) > 0 && len(m.data) > 0 && !hasHeader(m.data) && repeatsPart(cur, starts, m.data) && !continues(cur, m.data) {
			// A part written again with no partial_id to say so
			// (json-file): a spool replay after a kill starts from
			// the last acknowledged record, within a line. A reader
			// of the file sees the line with the part twice: counted
			// as a repeat (lines_replayed), the line goes on.
			t.parts++
			continue
		}
		starts = append(starts, len(cur))
		cur = append(cur, m.data...)
		curID, active = m.id, true
		if !m.partial {
			flush()
		}
	}
	if active {
		flush() // the final line without newline, sent as an unfinished partial message
	}
	// A spool replays from the last acknowledged record, which may be a
	// middle part of a line its dead worker had delivered whole: that
	// tail is a duplicate (in lines_replayed), not a line whose start
	// was lost.
	for _, j := range orphaned {
		if replayedTail(j, t.complete, byseq, seed) {
			t.tails++
		} else {
			t.orphans++
		}
	}
	return t
}

// replayedTail says whether tail ends a line that arrived whole.
func replayedTail(tail []byte, complete map[int]int, byseq map[int]item, seed uint64) bool {
	for seq := range complete {
		if it := byseq[seq]; it.n > len(tail) && bytes.HasSuffix(content(seed, it), tail) {
			return true
		}
	}
	return false
}

// repeatsPart says whether part is one of cur's parts (they begin at
// starts) once more.
func repeatsPart(cur []byte, starts []int, part []byte) bool {
	for _, s := range starts {
		if s+len(part) <= len(cur) && bytes.Equal(cur[s:s+len(part)], part) {
			return true
		}
	}
	return false
}

func hasHeader(b []byte) bool { _, _, ok := parseHeader(b); return ok }

// check holds the case to the promises.
func (r *run) check() {
	p := r.p
	st, st2 := r.stats, r.stats2
	ms, err := r.sinkMessages()
	if err != nil {
		r.fail("reading the sink: %v", err)
	}
	byseq := map[int]item{}
	for _, s := range [][]item{p.out, p.errs} {
		for _, it := range s {
			if it.kind != empty {
				byseq[it.seq] = it
			}
		}
	}
	dropped := st["lines_dropped"] + st2["lines_dropped"]
	spooled := st["lines_spooled"] // left for the next logger
	if st2 != nil {
		spooled = st2["lines_spooled"] // left even by the next one
	}
	// Written: the lines a writer wrote whole (a write cut short by an
	// error leaves one line half written: neither owed nor counted).
	var numbered, emptiesW, missing, missingEmpty, complete, dups, markers, damaged, orphans, tails, parts, prefixes, cut int
	exact := true // every line written is one message: counts must match to the line
	var gone []string
	for i, stderr := range []bool{false, true} {
		w := r.w[i]
		t := join(ms, stderr, byseq, p.seed)
		markers += t.markers
		damaged += t.damaged
		orphans += t.orphans
		tails += t.tails
		parts += t.parts
		if t.order > 0 {
			r.fail("order: %s: %d lines arrived after a later line of their stream (first seq=%d)", streamName(stderr), t.order, t.firstBad)
		}
		if t.splitIDs > 0 {
			r.fail("partial messages: %s: %d lines' parts came under two partial_ids (a reader joining by partial_id gets two broken lines)", streamName(stderr), t.splitIDs)
		}
		if t.damaged > 0 {
			r.note("%s: damaged %s", streamName(stderr), t.exampleDm)
		}
		// A write cut short (EPIPE, or the pipe closed under a stuck
		// application) leaves one line half written: neither owed nor
		// counted, but its bytes may be delivered or dropped.
		var whole int64
		if w.written > 0 {
			whole = w.ends[w.written-1]
		}
		if w.bytes > whole {
			cut++
			if it := w.items[w.written]; int64(it.n) > p.lineMax || it.n >= pipeCap {
				exact = false // the half-written line may be many messages
			}
		}
		e := 0
		for _, it := range w.items[:w.written] {
			if it.kind == empty {
				e++
				continue
			}
			numbered++
			if int64(it.n) > p.lineMax || it.n >= pipeCap {
				exact = false
			}
			if c := t.complete[it.seq]; c == 0 {
				missing++
				if len(gone) < 8 || os.Getenv("SOAK_DEBUG") != "" {
					gone = append(gone, fmt.Sprintf("%d(%dB,%s)", it.seq, it.n, streamName(stderr)))
				}
			} else {
				complete++
				dups += c - 1
			}
		}
		for _, c := range t.prefixes {
			prefixes += c
		}
		emptiesW += e
		missingEmpty += max(0, e-t.empties)
	}
	delivered := complete + (emptiesW - missingEmpty)
	written := numbered + emptiesW
	r.summary = fmt.Sprintf("written %d, delivered %d, dup %d (+%d cut, %d tails), dropped %d, spooled %d, markers %d",
		written, delivered, dups, prefixes, tails, dropped, spooled, markers)
	if orphans > 0 {
		r.summary += fmt.Sprintf(", %d ends of lines never whole", orphans)
	}
	if parts > 0 {
		r.summary += fmt.Sprintf(", %d parts again", parts)
	}

	// A sink that stops between storing events and acknowledging them
	// leaves its sender counting them lost: counted twice, honestly.
	var unacked int64
	if r.srv != nil {
		unacked = int64(r.srv.Unacked())
	}
	// 1. Every line written is delivered or counted as dropped.
	switch {
	case exact:
		lost := int64(written-delivered) - dropped - spooled
		switch {
		case lost < 0 && p.mode == "non-blocking" && -lost <= int64(r.kills)+st["lines_dropped_maybe_delivered"]+st["lines_replayed"]:
			// A killed worker's ring is counted dropped; what it had
			// handed over is delivered again or dropped by the supervisor:
			// a line counted twice, never one lost (see faults/session.go).
			r.note("%d line(s) counted dropped and delivered (one in flight per kill, lines_replayed, lines_dropped_maybe_delivered allowed)", -lost)
		case lost < 0 && -lost <= st["lines_dropped_maybe_delivered"]:
			// What a killed worker's driver held when last looked at
			// (fluentd-async's queue, in any mode) is counted dropped,
			// and may have been sent since: the logger says how many.
			r.note("%d line(s) counted dropped and delivered (lines_dropped_maybe_delivered allowed)", -lost)
		case lost < 0 && -lost <= unacked:
			r.note("%d line(s) counted dropped though at the sink, which stopped before it could acknowledge %d", -lost, unacked)
		case lost < 0 && -lost <= int64(cut):
			r.note("%d message(s) of a line written in part (the write cut short) delivered or dropped", -lost)
		case lost < 0 && spooled > 0 && -lost <= 256<<10/20:
			r.note("%d line(s) of the unacknowledged batch both delivered and left in the spool", -lost)
		case lost > 0:
			r.fail("every line delivered or counted: %d lost uncounted (written %d, delivered %d, dropped %d, spooled %d; missing e.g. %s)",
				lost, written, delivered, dropped, spooled, strings.Join(gone, " "))
		case lost < 0:
			r.fail("every line delivered or counted: %d counted twice (written %d, delivered %d, dropped %d, spooled %d)",
				-lost, written, delivered, dropped, spooled)
		}
	case int64(missing+missingEmpty) > dropped+spooled:
		r.fail("every line delivered or counted: %d lines never arrived whole but only %d messages counted dropped or spooled (missing e.g. %s)",
			missing+missingEmpty, dropped+spooled, strings.Join(gone, " "))
	}
	if damaged > 0 && dropped == 0 {
		r.fail("content: %d messages are no line's bytes, with nothing dropped", damaged)
	}
	if orphans > 0 && dropped == 0 && prefixes == 0 {
		r.fail("content: %d line ends without their start, with nothing dropped", orphans)
	}
	// Parts come again from a replay (lines_replayed), a retry of a
	// message the sink took but did not acknowledge in time (retries,
	// lines_resent), or a worker killed with a message in flight.
	again := st["lines_replayed"] + st2["lines_replayed"] + st["retries"] + st2["retries"] + st["lines_resent"] + st2["lines_resent"] + int64(r.kills)
	if int64(tails+parts) > again {
		r.fail("content: %d ends of lines and %d partial messages delivered again, but lines_replayed + retries + lines_resent + kills is %d", tails, parts, again)
	}
	if markers > 0 && p.opts["drop-marker"] == "false" {
		r.fail("drop-marker=false, yet %d drop markers", markers)
	}
	// What the logger counts as delivered is at the sink.
	if atSink := int64(len(ms)); atSink < st["lines_delivered"]+st2["lines_delivered"] {
		r.fail("delivered means at the sink: the logger counts %d delivered, the sink holds %d messages",
			st["lines_delivered"]+st2["lines_delivered"], atSink)
	}
	// Blocking, and spool with buffer-full=block, drop only what
	// close-timeout gives up at exit.
	if p.mode == "blocking" || p.opts["buffer-full"] == "block" {
		d := dropped - st["lines_dropped_close_timeout"] - st2["lines_dropped_close_timeout"]
		if p.opts["fluentd-async"] == "true" {
			// fluentd-async queues what it took in the worker's memory
			// and gives up after fluentd-max-retries, whatever the mode:
			// lines given up, lost with a killed worker or left by a
			// handover past its sink are counted, not kept.
			d -= st["lines_dropped_driver_gave_up"] + st2["lines_dropped_driver_gave_up"] +
				st["lines_dropped_worker_died"] + st["lines_dropped_earlier_workers"]
		} else if p.mode == "non-blocking" && r.kills > 0 {
			// A killed worker's ring is lost (counted), whatever buffer-full says.
			d -= st["lines_dropped_worker_died"] + st["lines_dropped_earlier_workers"]
		} else if bytes.Contains(r.l.Stderr.Bytes(), []byte("unread in the container's output: counting them")) {
			// A worker reached close-timeout (its drops were close-timeout's)
			// and the supervisor started one more to count what was left.
			d -= st["lines_dropped_earlier_workers"]
		} else if n := earlierTimeouts(r.l.Stderr.Bytes()); n > 0 && st["upgrades"] > 0 {
			// A handover waited close-timeout for a sink that stayed
			// away (buffer-full=block delivers its ring whole, within
			// close-timeout) and counted the rest: the next worker
			// carries them as earlier workers' drops.
			d -= min(n, st["lines_dropped_earlier_workers"])
		}
		if d > 0 {
			r.fail("%s (buffer-full=%s) dropped %d lines (%s)", p.mode, p.opts["buffer-full"], d, reasons(st))
		}
	}
	// The counters add up: one worker's lines read are delivered, dropped
	// or left in the spool (counters belong to one worker, so only without
	// restarts or upgrades).
	if st["restarts"] == 0 && st["upgrades"] == 0 && !r.supKilled && len(st) > 0 {
		// Drops carried from an earlier worker (one that only counted
		// what a worker past close-timeout left) are not this one's reads.
		if rd, sum := st["lines_read"], st["lines_delivered"]+st["lines_dropped"]+st["lines_spooled"]-st["lines_dropped_earlier_workers"]; rd != sum {
			r.fail("counters: lines_read=%d but delivered+dropped+spooled=%d", rd, sum)
		}
	}
	// A worker dies only when the soak kills it: the supervisor says
	// "worker ...; restarting" for each one that crashed.
	var crashes []string
	for _, l := range strings.Split(string(r.l.Stderr.Bytes()), "\n") {
		if i := strings.Index(l, "worker "); i >= 0 && strings.HasSuffix(l, "; restarting") {
			crashes = append(crashes, l[i:])
		}
	}
	if len(crashes) > r.kills || st["restarts"] > int64(r.kills) {
		r.fail("a worker died unprovoked: %d crashes (restarts=%d), %d workers killed by the soak: %s",
			len(crashes), st["restarts"], r.kills, strings.Join(crashes, "; "))
	}

	// 3. The application never blocks in non-blocking and spool.
	var maxBlock time.Duration
	var slow []slowWrite
	for _, w := range r.w {
		maxBlock = max(maxBlock, w.maxBlock)
		r.ownDelay = max(r.ownDelay, w.ownDelay)
		// A live upgrade in spool mode is held to it too: the next
		// worker is started while the old one reads on, so nobody
		// reads the pipes only from the old one's last line to the
		// next one's first (the README's "Live upgrades").
		slow = append(slow, w.slow...)
		if w.err != nil && !r.stuck {
			r.fail("the application's write(2) failed at %.2fs: %v", w.errAt.Seconds(), w.err)
		}
	}
	r.maxBlock = maxBlock
	// buffer-full=block may block once the ring or the spool is full:
	// there the bound holds only for inputs too small to fill them.
	// So may a gap with no worker (a kill, a restart, an upgrade): with
	// buffer-full=block the supervisor drops nothing to make room.
	noWorker := r.kills > 0 || st["restarts"] > 0 || st["upgrades"] > 0
	canFill := p.opts["buffer-full"] == "block" && (p.bytes >= max(p.maxBuffer, p.spoolMax) || noWorker)
	if p.mode != "blocking" && !canFill && len(slow) > 0 {
		slices.SortFunc(slow, func(a, b slowWrite) int { return cmp.Compare(a.at, b.at) })
		r.fail("never blocks: %d write(2)s over %v, longest %v, first at %.2fs (%v, %d bytes)",
			len(slow), blockBound, maxBlock.Round(time.Millisecond), slow[0].at.Seconds(), slow[0].d.Round(time.Millisecond), slow[0].n)
	}

	// 4. The exit: on time (checked as it ran), and its status.
	// Exit 1 says the logger stopped before it knew everything was
	// delivered: lines dropped, left in the spool, or close-timeout
	// passed (json-file may still write all it held as it closes, once a
	// full disk has room again; the lines are checked above either way).
	stoppedAtDeadline := bytes.Contains(r.l.Stderr.Bytes(), []byte("dockerlogger: close-timeout reached"))
	if r.exitCode != 0 && !r.supKilled && !(r.exitCode == 1 && (st["lines_dropped"] > 0 || st["lines_spooled"] > 0 || stoppedAtDeadline)) {
		r.fail("exit %d with nothing dropped: %s", r.exitCode, lastStderr(r))
	}

	// 5. The spool's disk stays within spool-max-size and one segment.
	if p.mode == "spool" {
		seg := min(max(p.spoolMax/8, 64<<10), 64<<20)
		if r.peakDisk > p.spoolMax+seg {
			r.fail("spool disk: %s used, spool-max-size %s + segment %s", mb(r.peakDisk), mb(p.spoolMax), mb(seg))
			if r.diskAtPeak != "" {
				r.note("spool-dir %s", r.diskAtPeak)
			}
		}
	}
	// 6. Non-blocking memory grows by at most max-buffer-size and 8 MB
	// over the idle logger (what the idle logger costs is the footprint
	// benchmark's: 9 to 12 MB for supervisor and worker today).
	if p.mode == "non-blocking" && r.peakMem-r.startMem > p.maxBuffer+8<<20 {
		r.fail("memory: %s dirty private (supervisor and worker), %s before any input: more than max-buffer-size %s + 8 MB over it", mb(r.peakMem), mb(r.startMem), mb(p.maxBuffer))
	}
}

func streamName(stderr bool) string {
	if stderr {
		return "stderr"
	}
	return "stdout"
}

// reasons are the per-reason drop counters that are not 0.
func reasons(st map[string]int64) string {
	var rs []string
	for k, v := range st {
		if strings.HasPrefix(k, "lines_dropped_") && v > 0 {
			rs = append(rs, fmt.Sprintf("%s=%d", k, v))
		}
	}
	slices.Sort(rs)
	return strings.Join(rs, " ")
}

func lastStderr(r *run) string {
	var keep []string
	for _, l := range strings.Split(string(r.l.Stderr.Bytes()), "\n") {
		if l != "" && !strings.Contains(l, "dockerlogger: stats ") {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		return ""
	}
	return keep[len(keep)-1]
}

func mb(b int64) string {
	if b < 100_000 {
		return fmt.Sprintf("%.1f kB", float64(b)/1e3)
	}
	return fmt.Sprintf("%.1f MB", float64(b)/1e6)
}

// earlierTimeouts is what workers that reached close-timeout counted
// dropped for it: each says "did not finish within close-timeout", then
// prints its last stats line. The logger's last stats line (the last
// worker's, whose drops are its own) is left out.
func earlierTimeouts(stderr []byte) int64 {
	var n, last int64
	after, lastCounted := false, false
	for _, l := range strings.Split(string(stderr), "\n") {
		if strings.Contains(l, "did not finish within close-timeout") {
			after = true
			continue
		}
		i := strings.Index(l, "dockerlogger: stats ")
		if i < 0 {
			continue
		}
		lastCounted = false
		if !after {
			continue
		}
		after = false
		for _, kv := range strings.Fields(l[i:]) {
			if v, ok := strings.CutPrefix(kv, "lines_dropped_close_timeout="); ok {
				last, _ = strconv.ParseInt(v, 10, 64)
				n += last
				lastCounted = true
			}
		}
	}
	if lastCounted {
		n -= last
	}
	return n
}
