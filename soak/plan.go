package main

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// errBase numbers stderr's lines apart from stdout's, as faults/ does.
const errBase = 100_000_000

// pipeCap is the capacity the logger asks its pipes to grow to.
const pipeCap = 1 << 20

// kind is what a line's payload is made of.
type kind byte

const (
	text  kind = iota // printable ASCII
	ctrl              // any byte below 0x80 but '\n': control characters, quotes, backslashes, <>&
	bin               // any byte but '\n' (fluentd only: json-file would turn invalid UTF-8 into U+FFFD)
	utf8              // ASCII and multi-byte runes (only in lines no split can cut)
	empty             // an empty line: no number, counted per stream
)

func (k kind) String() string { return [...]string{"text", "ctrl", "bin", "utf8", "empty"}[k] }

// item is one line of input.
type item struct {
	seq  int // its number (empty lines: -1)
	n    int // its length, newline excluded
	kind kind
	nonl bool // the final line of its stream, written without a newline
}

// faultKind is a fault injected while the application writes.
type faultKind int

const (
	sinkDown       faultKind = iota // Forward sink closed, reopened on the same port after d
	sinkStall                       // Forward sink stops reading for d
	diskFull                        // json-file's directory (a tmpfs) full for d (root only)
	workerKill                      // SIGKILL to the supervisor's worker
	hup                             // SIGHUP to the supervisor: live upgrade
	usr1Storm                       // n SIGUSR1 to the supervisor, every_ apart
	supervisorKill                  // SIGKILL to the supervisor (the last process fault)
)

func (f faultKind) String() string {
	return [...]string{"sink-down", "sink-stall", "disk-full", "worker-kill", "sighup", "sigusr1-storm", "supervisor-kill"}[f]
}

type fault struct {
	at    time.Duration // since the application's first write
	kind  faultKind
	d     time.Duration // outage length
	n     int           // signals in a storm
	every time.Duration // between them
}

func (f fault) String() string {
	switch f.kind {
	case sinkDown, sinkStall, diskFull:
		return fmt.Sprintf("%s@%v/%v", f.kind, f.at.Round(time.Millisecond), f.d.Round(time.Millisecond))
	case usr1Storm:
		return fmt.Sprintf("%s@%v/%dx%v", f.kind, f.at.Round(time.Millisecond), f.n, f.every)
	}
	return fmt.Sprintf("%s@%v", f.kind, f.at.Round(time.Millisecond))
}

// plan is one case, all of it derived from its seed.
type plan struct {
	seed   uint64
	driver string // json-file or fluentd
	mode   string
	opts   map[string]string // log-opts but the addresses and paths, set at run time
	// The numbers behind opts (0: not set, the default).
	lineMax, maxBuffer, spoolMax int64
	closeTimeout                 time.Duration
	maxSize                      int64 // json-file max-size (0: none)

	out, errs []item // each stream's lines, in order
	bytes     int64  // total input bytes
	rate      int64  // bytes per second the application aims at
	burstP    float64
	faults    []fault
	downStart bool // the Forward sink is not listening at start
	downEnd   bool // the Forward sink is down when the inputs close
	root      bool // diskFull faults allowed
}

// logUniform is a size between lo and hi, uniform in its logarithm.
func logUniform(r *rand.Rand, lo, hi int64) int64 {
	return int64(math.Exp(math.Log(float64(lo)) + r.Float64()*(math.Log(float64(hi))-math.Log(float64(lo)))))
}

// pick is one of vs.
func pick[T any](r *rand.Rand, vs ...T) T { return vs[r.IntN(len(vs))] }

// newPlan derives the whole case from seed. short makes it fit a
// 60-second run.
func newPlan(seed uint64, short, root bool) *plan {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := &plan{seed: seed, root: root, opts: map[string]string{}}
	p.driver = pick(r, "json-file", "fluentd")
	p.mode = pick(r, "blocking", "non-blocking", "spool")
	p.opts["mode"] = p.mode
	p.lineMax = logUniform(r, 1<<10, 8<<20)
	p.opts["line-max"] = strconv.FormatInt(p.lineMax, 10)
	switch p.mode {
	case "non-blocking":
		p.maxBuffer = logUniform(r, 4<<10, 64<<20)
		p.opts["max-buffer-size"] = strconv.FormatInt(p.maxBuffer, 10)
	case "spool":
		p.spoolMax = logUniform(r, 16<<10, 512<<20)
		p.opts["spool-max-size"] = strconv.FormatInt(p.spoolMax, 10)
		p.opts["spool-sync"] = pick(r, "interval", "always", "never")
	}
	if p.mode != "blocking" {
		p.opts["buffer-full"] = pick(r, "drop-oldest", "drop-newest", "block")
	}
	p.opts["drop-marker"] = pick(r, "true", "false")
	p.closeTimeout = time.Duration(2+r.IntN(4)) * time.Second
	p.opts["close-timeout"] = p.closeTimeout.String()
	if p.driver == "fluentd" {
		// The reliable fluentd setup faults/ uses: acknowledgements, few
		// driver retries; sends synchronous or, in a third of the cases,
		// queued (fluentd-async). Drawn from a stream of its own, so that
		// the rest of a seed's case stays what it was.
		async := rand.New(rand.NewPCG(seed, 0x6173796e63)).IntN(3) == 0
		p.opts["fluentd-async"] = strconv.FormatBool(async)
		p.opts["fluentd-request-ack"] = "true"
		p.opts["fluentd-retry-wait"] = "100ms"
		p.opts["fluentd-max-retries"] = "3"
	}

	// Inputs: lines per stream, then the rate that spreads them over the
	// case's writing time.
	writeFor := time.Duration(2+r.IntN(10)) * time.Second
	budget := logUniform(r, 64<<10, 48<<20)
	maxLines := 4000 + r.IntN(16000)
	if short {
		writeFor = time.Duration(1+r.IntN(3)) * time.Second
		budget = logUniform(r, 64<<10, 12<<20)
		maxLines = 1000 + r.IntN(4000)
	}
	fluent := p.driver == "fluentd"
	both := r.IntN(4) > 0 // sometimes stdout only
	next := map[bool]int{false: 0, true: errBase}
	for p.bytes < budget && len(p.out)+len(p.errs) < maxLines {
		stderr := both && r.IntN(3) == 0
		it := item{seq: next[stderr]}
		switch x := r.IntN(100); {
		case x < 5:
			it.kind, it.seq, it.n = empty, -1, 0
		case x < 75:
			it.n = 30 + r.IntN(300)
		case x < 88:
			it.n = int(logUniform(r, 300, max(p.lineMax, 400)))
		case x < 94:
			it.n = int(logUniform(r, p.lineMax+1, max(3*p.lineMax, p.lineMax+2))) // longer than line-max
		case x < 97 && p.maxBuffer > 0:
			it.n = int(p.maxBuffer + logUniform(r, 1, max(p.maxBuffer, 2))) // longer than the ring
		default:
			it.n = int(logUniform(r, pipeCap+1, 9<<20)) // longer than the pipe
		}
		it.n = min(it.n, 10<<20)
		if it.n > 400 && p.bytes+int64(it.n) > budget {
			it.n = 30 + r.IntN(300) // a long line only while the budget lasts
		}
		if it.kind != empty {
			it.n = max(it.n, headerLen)
			switch y := r.IntN(10); {
			case y < 5:
				it.kind = text
			case y < 7:
				it.kind = ctrl
			case y < 8 && fluent:
				it.kind = bin
			case int64(it.n) <= min(p.lineMax, 16<<10):
				it.kind = utf8
			default:
				it.kind = ctrl
			}
			next[stderr]++
		}
		if stderr {
			p.errs = append(p.errs, it)
		} else {
			p.out = append(p.out, it)
		}
		p.bytes += int64(it.n) + 1
	}
	// A final line without newline, on one stream.
	if r.IntN(3) == 0 {
		s := &p.out
		if len(p.errs) > 0 && r.IntN(2) == 0 {
			s = &p.errs
		}
		if n := len(*s); n > 0 && (*s)[n-1].kind != empty {
			(*s)[n-1].nonl = true
		}
	}
	p.rate = min(max(int64(float64(p.bytes)/writeFor.Seconds()), 64<<10), 8<<20)
	p.burstP = pick(r, 0.0, 0.01, 0.05)

	if p.driver == "json-file" {
		// Rotation that never deletes: max-file covers the most the
		// input can become as JSON (6 bytes a byte, 120 a message).
		msgs := int64(len(p.out)+len(p.errs)) + p.bytes/p.lineMax + 1
		est := 6*p.bytes + 120*msgs
		if r.IntN(3) > 0 {
			p.maxSize = max(logUniform(r, 64<<10, 16<<20), est/40+1)
			p.opts["max-size"] = strconv.FormatInt(p.maxSize, 10)
			p.opts["max-file"] = strconv.FormatInt(est/p.maxSize+2, 10)
			p.opts["compress"] = pick(r, "true", "false")
		}
	}

	// Faults, at random times while the application writes, sometimes in
	// quick succession (a SIGHUP right after a SIGHUP).
	nf := r.IntN(6)
	if short {
		nf = r.IntN(4)
	}
	var at time.Duration
	supKilled := false
	for i := 0; i < nf; i++ {
		if r.IntN(3) == 0 && i > 0 {
			// Right after the fault before: within 10 ms half the time
			// (a SIGHUP or SIGUSR1 while the new worker starts).
			at += time.Duration(pick(r, r.IntN(10_000), r.IntN(200_000))) * time.Microsecond
		} else {
			at = time.Duration(r.Int64N(int64(writeFor)))
		}
		f := fault{at: at}
		ks := []faultKind{workerKill, hup, hup, usr1Storm, supervisorKill}
		if fluent {
			ks = append(ks, sinkDown, sinkDown, sinkDown, sinkStall)
		} else if root {
			ks = append(ks, diskFull)
		}
		f.kind = pick(r, ks...)
		switch f.kind {
		case sinkDown, sinkStall, diskFull:
			f.d = time.Duration(100+r.IntN(4000)) * time.Millisecond
		case usr1Storm:
			f.n, f.every = 5+r.IntN(100), time.Duration(r.IntN(3))*time.Millisecond
		case supervisorKill:
			if supKilled {
				f.kind = workerKill
			}
			supKilled = true
		}
		p.faults = append(p.faults, f)
	}
	slices.SortStableFunc(p.faults, func(a, b fault) int { return cmp.Compare(a.at, b.at) })
	// The supervisor's kill ends the process faults: whatever comes after
	// it is dropped (nobody would restart a killed worker).
	for i, f := range p.faults {
		if f.kind == supervisorKill {
			var keep []fault
			for _, g := range p.faults[i+1:] {
				if g.kind == sinkDown || g.kind == sinkStall || g.kind == diskFull {
					keep = append(keep, g)
				}
			}
			p.faults = append(p.faults[:i+1], keep...)
			break
		}
	}
	if fluent {
		p.downStart = r.IntN(10) == 0
		p.downEnd = r.IntN(10) == 0
	}
	return p
}

// lines is the number of numbered lines and of empty ones.
func (p *plan) lines() (numbered, empties int) {
	for _, s := range [][]item{p.out, p.errs} {
		for _, it := range s {
			if it.kind == empty {
				empties++
			} else {
				numbered++
			}
		}
	}
	return
}

// String says in one line what the case is.
func (p *plan) String() string {
	var o []string
	for _, k := range slices.Sorted(maps.Keys(p.opts)) {
		o = append(o, k+"="+p.opts[k])
	}
	var fs []string
	for _, f := range p.faults {
		fs = append(fs, f.String())
	}
	n, e := p.lines()
	longest := 0
	for _, s := range [][]item{p.out, p.errs} {
		for _, it := range s {
			longest = max(longest, it.n)
		}
	}
	extra := ""
	if p.downStart {
		extra += " sink-down-at-start"
	}
	if p.downEnd {
		extra += " sink-down-at-end"
	}
	return fmt.Sprintf("%s %s; input: %d lines + %d empty, %.1f MB, longest %d, %.1f MB/s; faults: [%s]%s",
		p.driver, strings.Join(o, " "), n, e, float64(p.bytes)/1e6, longest, float64(p.rate)/1e6, strings.Join(fs, " "), extra)
}
