package main

// bench/internal/measure has these helpers, but Go's internal rule keeps
// it from faults/; these are the few this program needs.

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// children returns the pids whose parent is pid, from /proc.
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(p); ok && ppid == pid {
			kids = append(kids, p)
		}
	}
	return kids
}

// alive says whether pid is a running process: not gone, not a zombie.
func alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// "pid (comm) S ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err == nil
}

// stats returns the counters of the last "dockerlogger: stats" line of
// the logger's stderr (under the supervisor, the last worker's), and
// whether it had to be found after other text on its line:
// fluent-logger-golang writes its errors to stderr without a newline.
func stats(stderr []byte) (map[string]int64, bool, error) {
	var last string
	glued := false
	for _, l := range strings.Split(string(stderr), "\n") {
		if i := strings.Index(l, "dockerlogger: stats "); i >= 0 {
			last, glued = l[i+len("dockerlogger: stats "):], i > 0
		}
	}
	if last == "" {
		return nil, false, fmt.Errorf("no stats line in the logger's stderr")
	}
	m := map[string]int64{}
	for _, kv := range strings.Fields(last) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				m[k] = n
			}
		}
	}
	return m, glued, nil
}

func load() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}
