// Package measure holds what the benchmarks under bench/cmd share: reading
// a process's peak RSS and children from /proc, the disk a directory
// really uses, the logger's exit counters, percentiles and the PASS/MISS
// verdict.
//
// It must never import dockerlogger's own packages: the benchmarks look at
// the logger from outside, as a user does, through /proc, files and its
// stderr.
package measure

import (
	"bytes"
	"cmp"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Memory is what /proc/PID/status says of a process's memory, in bytes.
type Memory struct {
	HWM  int64 // VmHWM: peak resident set size
	Anon int64 // RssAnon now: resident memory of its own (heap, stacks)
	File int64 // RssFile now: resident pages of files, the binary's shared with every process running it
}

// Mem reads the memory of pid from /proc/PID/status. A process that has
// exited (or is a zombie) has none.
func Mem(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("memory of %d: %w", pid, err)
	}
	var m Memory
	found := 0
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		var dst *int64
		switch k {
		case "VmHWM":
			dst = &m.HWM
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		}
		if !ok || dst == nil {
			continue
		}
		f := strings.Fields(v) // "1234 kB"
		if len(f) != 2 || f[1] != "kB" {
			return Memory{}, fmt.Errorf("memory of %d: odd line %q", pid, l)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("memory of %d: %w", pid, err)
		}
		*dst = kb * 1024
		found++
	}
	if found != 3 {
		return Memory{}, fmt.Errorf("memory of %d: no VmHWM/RssAnon/RssFile (exited?)", pid)
	}
	return m, nil
}

// Peak keeps the largest of each figure of m in p.
func (p *Memory) Peak(m Memory) {
	p.HWM, p.Anon, p.File = max(p.HWM, m.HWM), max(p.Anon, m.Anon), max(p.File, m.File)
}

// Children returns the pids whose parent is pid, by scanning /proc (which
// works whether or not the kernel has /proc/PID/task/TID/children).
func Children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var kids []int
	started := map[int]uint64{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := stat(p); ok && st.ppid == pid {
			kids = append(kids, p)
			started[p] = st.start
		}
	}
	// Oldest first: during a live upgrade the worker that reads is older
	// than the one started ahead, which waits.
	slices.SortStableFunc(kids, func(a, b int) int { return cmp.Compare(started[a], started[b]) })
	return kids
}

// Parent returns the parent pid of pid, or 0 if it is gone.
func Parent(pid int) int {
	st, _ := stat(pid)
	return st.ppid
}

// Alive says whether pid is a running process: not gone, not a zombie.
func Alive(pid int) bool {
	st, ok := stat(pid)
	return ok && st.state != 'Z' && st.state != 'X'
}

// procStat is what this package reads of /proc/PID/stat.
type procStat struct {
	state byte
	ppid  int
	start uint64 // clock ticks since boot (field 22)
}

// stat reads pid's /proc/PID/stat.
func stat(pid int) (st procStat, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, false
	}
	// "pid (comm) S ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return st, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return st, false
	}
	st.state = f[0][0]
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return st, false
	}
	st.start, err = strconv.ParseUint(f[19], 10, 64)
	return st, err == nil
}

// DiskUsage returns the bytes allocated on disk to the files under dir
// (st_blocks, so holes punched in a spool file do not count). A missing
// dir uses nothing.
func DiskUsage(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // files come and go while the logger runs
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			}
		}
		return nil
	})
	return total
}

// Stats returns the counters of the last "dockerlogger: stats" line in the
// logger's stderr (under the supervisor, the worker's).
func Stats(stderr []byte) (map[string]int64, error) {
	var last string
	for _, l := range strings.Split(string(stderr), "\n") {
		if s, ok := strings.CutPrefix(l, "dockerlogger: stats "); ok {
			last = s
		}
	}
	if last == "" {
		return nil, fmt.Errorf("no stats line in the logger's stderr")
	}
	m := map[string]int64{}
	for _, kv := range strings.Fields(last) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			m[k] = n
		}
	}
	return m, nil
}

// Percentile returns the p-th percentile (0..100) of sorted durations, by
// the nearest-rank method; 0 for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// Sorted returns a sorted copy of ds.
func Sorted(ds []time.Duration) []time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

// Verdict is PASS or MISS: a benchmark reports, it does not gate.
func Verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// Load is the machine's load average line, to report beside the numbers.
func Load() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

// MB renders bytes as megabytes (10^6).
func MB(b int64) string { return fmt.Sprintf("%.1f", float64(b)/1e6) }

// Pss reads the proportional set size of pid from /proc/PID/smaps_rollup:
// its resident pages, each shared page divided by the number of processes
// mapping it. Summed over a supervisor and its worker, which map the same
// binary, it counts each physical page once (as long as nothing else maps
// the binary meanwhile), where VmHWM summed counts the binary twice.
func Pss(pid int) (int64, error) {
	m, err := rollup(pid, "Pss")
	return m["Pss"], err
}

// Private reads the memory pid alone holds from /proc/PID/smaps_rollup:
// Private_Clean plus Private_Dirty, its resident pages no other process
// maps (the heap, the ring; not the binary's pages shared with another
// process running it).
func Private(pid int) (int64, error) {
	m, err := rollup(pid, "Private_Clean", "Private_Dirty")
	return m["Private_Clean"] + m["Private_Dirty"], err
}

// Dirty reads the memory pid alone wrote, Private_Dirty of
// /proc/PID/smaps_rollup: its heap, stacks and ring, what it adds to the
// host. Clean pages of the binary, which Private counts when no other
// process maps them yet, are the page cache's and shared by every logger
// on a host (the footprint benchmark measures them, as Pss).
func Dirty(pid int) (int64, error) {
	m, err := rollup(pid, "Private_Dirty")
	return m["Private_Dirty"], err
}

// rollup reads the figures keys of /proc/PID/smaps_rollup, in bytes.
func rollup(pid int, keys ...string) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return nil, fmt.Errorf("smaps_rollup of %d: %w", pid, err)
	}
	m := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !slices.Contains(keys, k) {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return nil, fmt.Errorf("smaps_rollup of %d: odd line %q", pid, l)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("smaps_rollup of %d: %w", pid, err)
		}
		m[k] = kb * 1024
	}
	if len(m) != len(keys) {
		return nil, fmt.Errorf("smaps_rollup of %d: not all of %v (exited?)", pid, keys)
	}
	return m, nil
}

// GroupPss is the sum of Pss over pids at one moment: the memory a group
// of processes holds, each page counted once. Processes that have gone
// count nothing.
func GroupPss(pids []int) int64 {
	var sum int64
	for _, p := range pids {
		if n, err := Pss(p); err == nil {
			sum += n
		}
	}
	return sum
}

// Sampler follows the memory of a process and its children (and the disk
// used under a directory) until Stop.
type Sampler struct {
	root int
	dir  string

	mu       sync.Mutex
	procs    map[int]Memory // pid → its largest figures seen
	pss      int64          // largest Pss sum over the processes at one sample
	rootAnon int64          // root's largest RssAnon while it had children
	disk     int64

	stop, done chan struct{}
}

// Peaks is what a Sampler saw.
type Peaks struct {
	// Group is the peak memory of the processes with each physical page
	// counted once: the largest Pss sum sampled, or, as a sample can miss
	// a child's short start-up peak, a child's VmHWM plus the root's own
	// memory (RssAnon) while it had children, if that is larger.
	Group int64
	Procs map[int]Memory // each process's own peaks
	Disk  int64          // blocks allocated under the directory
}

// Sample starts a Sampler of root and its children (and of dir, if not
// empty) every period.
func Sample(root int, dir string, period time.Duration) *Sampler {
	s := &Sampler{root: root, dir: dir, procs: map[int]Memory{}, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run(period)
	return s
}

func (s *Sampler) run(period time.Duration) {
	defer close(s.done)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		pids := append([]int{s.root}, Children(s.root)...)
		pss := GroupPss(pids)
		var disk int64
		if s.dir != "" {
			disk = DiskUsage(s.dir)
		}
		s.mu.Lock()
		s.pss, s.disk = max(s.pss, pss), max(s.disk, disk)
		for _, p := range pids {
			m, err := Mem(p)
			if err != nil {
				continue
			}
			if p == s.root && len(pids) > 1 {
				s.rootAnon = max(s.rootAnon, m.Anon)
			}
			pk := s.procs[p]
			pk.Peak(m)
			s.procs[p] = pk
		}
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
	}
}

// Stop ends the sampling and returns what it saw.
func (s *Sampler) Stop() Peaks {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	group := s.procs[s.root].HWM
	for pid, m := range s.procs {
		if pid != s.root {
			group = max(group, m.HWM+s.rootAnon)
		}
	}
	return Peaks{Group: max(group, s.pss), Procs: s.procs, Disk: s.disk}
}

// MemAvailable reads the host's MemAvailable from /proc/meminfo, in bytes:
// what the kernel reckons can still be given to new work without swapping.
func MemAvailable() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemAvailable:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no MemAvailable in /proc/meminfo")
}

// CtxSwitches is the number of context switches, voluntary and not, of
// every thread of pid now (/proc/PID/task/*/status: the process's own
// status counts its main thread only). Threads that ended are not
// counted; a process that has gone counts 0.
func CtxSwitches(pid int) int64 {
	dirs, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var n int64
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}
