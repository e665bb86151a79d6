package main

import (
	"fmt"
	"strconv"
	"strings"
)

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
