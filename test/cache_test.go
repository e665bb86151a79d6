package test

// The dual-logging cache (package logcache): a copy in local format of
// every line read, for drivers that cannot be read back, whatever the
// sink does; read back with dockerlogger logs and Docker's local reader.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger"
)

// promStats reads the counters of a stats-file.
func promStats(t *testing.T, path string) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("stats-file: %v", err)
	}
	m := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, " ")
		if n, err := strconv.ParseInt(v, 10, 64); ok && err == nil {
			m[strings.TrimPrefix(k, "dockerlogger_")] = n
		}
	}
	return m
}

// cacheScript writes n numbered lines on each stream, and a last stdout
// line without a newline.
func cacheScript(n int) string {
	return fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; printf 'out last'`, n)
}

// cacheWant is what cacheScript wrote, per stream.
func cacheWant(n int) (string, string) {
	var out, errb strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&out, "out %d\n", i)
		fmt.Fprintf(&errb, "err %d\n", i)
	}
	out.WriteString("out last")
	return out.String(), errb.String()
}

// checkCache: dockerlogger logs on the cache gives every line written, per
// stream, byte for byte; Docker's local reader reads the same file.
func checkCache(t *testing.T, path string, n int) {
	t.Helper()
	wantOut, wantErr := cacheWant(n)
	out, errs, code := logsRun(t, path)
	if code != 0 || out != wantOut || errs != wantErr {
		t.Errorf("logs %s: exit %d, %d bytes on stdout (want %d), %d on stderr (want %d); stderr ends %q",
			path, code, len(out), len(wantOut), len(errs), len(wantErr), errs[max(0, len(errs)-200):])
	}
	msgs := dockerLogs(t, "local", path, map[string]string{}, logger.ReadConfig{Tail: -1})
	if got := len(msgs); got != 2*n+1 {
		t.Errorf("Docker's local reader reads %d messages from the cache, want %d", got, 2*n+1)
	}
}

// TestContainerdCache: a real containerd container logging through
// binary:// with the syslog driver to rsyslog and the cache on. With
// rsyslog up, every line is in rsyslog and in the cache; with nothing
// listening for the whole run, nothing is delivered, every line is in the
// cache, and the loss is counted.
func TestContainerdCache(t *testing.T) {
	c := ctrdStart(t)
	rootfs := ctrdRootfs(t, c.dir)
	const n = 500
	run := func(t *testing.T, query string) {
		t.Helper()
		id := ctrdRandomID(t, "dl-cache-")
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ctr", "--address", c.sock, "-n", ctrdNamespace, "run", "--rm", "--runc-root", c.runcRoot(),
			"--log-uri", ctrdLoggerURI(query), "--rootfs", rootfs, id, "/bin/sh", "-c", cacheScript(n))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ctr run: %v: %s\ncontainerd: %s", err, out, c.log())
		}
		Eventually(t, 15*time.Second, "the logger to exit", func() bool { return len(ctrdLoggerPIDs(t, id)) == 0 })
	}

	t.Run("rsyslog-up", func(t *testing.T) {
		r := startRsyslog(t, false)
		cache, stats := filepath.Join(c.dir, "up-cached.log"), filepath.Join(c.dir, "up.prom")
		run(t, fmt.Sprintf("driver=syslog&syslog-address=tcp://127.0.0.1:%d&syslog-format=rfc5424&cache-path=%s&stats-file=%s", r.tcpPort, cache, stats))
		recs := r.waitRecords(t, 2*n+1)
		var got []string
		for _, rec := range recs {
			got = append(got, rec.Msg)
		}
		wantOut, wantErr := cacheWant(n)
		want := strings.Split(strings.TrimSuffix(wantOut, "\n")+"\n"+strings.TrimSuffix(wantErr, "\n"), "\n")
		if sortedJoin(got) != sortedJoin(want) {
			t.Errorf("rsyslog got %d messages, not the %d lines written", len(got), len(want))
		}
		checkCache(t, cache, n)
		st := promStats(t, stats)
		if st["lines_read"] != 2*n+1 || st["lines_delivered"] != 2*n+1 || st["lines_cached"] != 2*n+1 || st["lines_dropped_cache"] != 0 {
			t.Errorf("stats %v", st)
		}
	})

	t.Run("rsyslog-down", func(t *testing.T) {
		port := sinkFreePort(t, "tcp") // nothing listens there
		cache, stats := filepath.Join(c.dir, "down-cached.log"), filepath.Join(c.dir, "down.prom")
		run(t, fmt.Sprintf("driver=syslog&syslog-address=tcp://127.0.0.1:%d&cache-path=%s&stats-file=%s&close-timeout=2s", port, cache, stats))
		checkCache(t, cache, n)
		st := promStats(t, stats)
		if st["lines_read"] != 2*n+1 || st["lines_delivered"] != 0 || st["lines_dropped"] != 2*n+1 ||
			st["lines_cached"] != 2*n+1 || st["lines_dropped_cache"] != 0 {
			t.Errorf("stats %v", st)
		}
	})
}

func sortedJoin(ss []string) string {
	c := append([]string(nil), ss...)
	sort.Strings(c)
	return strings.Join(c, "\n")
}

// TestCacheSupervised is TestContainerdCache's check without containerd:
// the supervised logger on fds 3/4, syslog to rsyslog, then rsyslog
// never there, in non-blocking mode: a line the ring dropped is in the
// cache all the same.
func TestCacheSupervised(t *testing.T) {
	const n = 300
	write := func(t *testing.T, l *Logger) {
		wantOut, wantErr := cacheWant(n)
		done := make(chan error)
		go func() { _, err := l.Stderr.Write([]byte(wantErr)); done <- err }()
		_, err := l.Stdout.Write([]byte(wantOut))
		if err2 := <-done; err == nil {
			err = err2
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Run("rsyslog-up", func(t *testing.T) {
		r := startRsyslog(t, false)
		cache := filepath.Join(t.TempDir(), "c-cached.log")
		l := StartLogger(t, Env("cache01", map[string]string{"syslog-address": fmt.Sprintf("tcp://127.0.0.1:%d", r.tcpPort),
			"cache-path": cache}), "syslog")
		write(t, l)
		if code := l.Wait(t, 30*time.Second); code != 0 {
			t.Fatalf("exit %d: %s", code, l.Errors())
		}
		r.waitRecords(t, 2*n+1)
		checkCache(t, cache, n)
		st := l.Stats(t)
		if st["lines_cached"] != fmt.Sprint(2*n+1) || st["lines_dropped_cache"] != "0" || st["lines_dropped"] != "0" {
			t.Errorf("stats %v", st)
		}
	})
	t.Run("rsyslog-down-non-blocking", func(t *testing.T) {
		port := sinkFreePort(t, "tcp")
		cache := filepath.Join(t.TempDir(), "c-cached.log")
		l := StartLogger(t, Env("cache02", map[string]string{"syslog-address": fmt.Sprintf("tcp://127.0.0.1:%d", port),
			"cache-path": cache, "mode": "non-blocking", "max-buffer-size": "4k", "line-max": "1k", "close-timeout": "1s"}), "syslog")
		write(t, l)
		l.Wait(t, 30*time.Second)
		checkCache(t, cache, n)
		st := l.Stats(t)
		if st["lines_cached"] != fmt.Sprint(2*n+1) || st["lines_dropped"] != fmt.Sprint(2*n+1) || st["lines_dropped_buffer_full"] == "0" {
			t.Errorf("stats %v", st)
		}
	})
}

// TestCacheFullDisk: the cache on a tmpfs far too small for it. Delivery
// to rsyslog goes on untouched: every line delivered, none dropped; the
// cache keeps what fits, and every line it could not keep is counted in
// lines_dropped_cache, which lines_dropped does not include.
func TestCacheFullDisk(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		need(t, false, "mount tmpfs: "+err.Error())
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	r := startRsyslog(t, false)
	const n = 5000
	cache := filepath.Join(dir, "c-cached.log")
	l := StartLogger(t, Env("cachefull", map[string]string{"syslog-address": fmt.Sprintf("tcp://127.0.0.1:%d", r.tcpPort),
		"cache-path": cache, "cache-max-file": "1"}), "syslog")
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "line %05d %s\n", i, strings.Repeat("y", 60))
	}
	start := time.Now()
	if _, err := l.Stdout.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, l.Errors())
	}
	t.Logf("%d lines delivered in %v with the cache's disk full", n, time.Since(start))
	r.waitRecords(t, n)
	st := l.Stats(t)
	cached, _ := strconv.Atoi(st["lines_cached"])
	lost, _ := strconv.Atoi(st["lines_dropped_cache"])
	if st["lines_delivered"] != fmt.Sprint(n) || st["lines_dropped"] != "0" || lost == 0 || cached+lost != n {
		t.Errorf("stats: delivered %s dropped %s cached %d dropped_cache %d (want %d, 0, and cached+dropped_cache = %d with some dropped)",
			st["lines_delivered"], st["lines_dropped"], cached, lost, n, n)
	}
	if !strings.Contains(l.Errors(), "lines_dropped_cache") {
		t.Errorf("the logger did not say the cache drops lines: %s", l.Errors())
	}
	// What the cache kept is whole records, the first lines in order.
	out, _, code := logsRun(t, cache)
	if code != 0 || !strings.HasPrefix(b.String(), out) || strings.Count(out, "\n") != cached {
		t.Errorf("logs on the full cache: exit %d, %d lines, want the first %d", code, strings.Count(out, "\n"), cached)
	}
}
