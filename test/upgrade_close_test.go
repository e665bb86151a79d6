package test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hangingOTLP is an OTLP/HTTP endpoint (http/json) that takes every
// request and answers none until it is released; then it answers 200
// and keeps the bodies of the requests it answered (a request that was
// hanging when the logger's worker went away is not one of them).
type hangingOTLP struct {
	srv      *http.Server
	addr     string
	release  chan struct{}
	mu       sync.Mutex
	hung     int
	answered []string // bodies
}

func startHangingOTLP(t *testing.T) *hangingOTLP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangingOTLP{addr: ln.Addr().String(), release: make(chan struct{})}
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case <-h.release:
		default:
			h.mu.Lock()
			h.hung++
			h.mu.Unlock()
			select {
			case <-h.release:
			case <-r.Context().Done():
			}
			// No answer at all, as from a server that went away: its
			// logger may be gone, and a live one must post it again.
			panic(http.ErrAbortHandler)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
		h.mu.Lock()
		h.answered = append(h.answered, string(body))
		h.mu.Unlock()
	})}
	go h.srv.Serve(ln)
	t.Cleanup(func() { h.srv.Close() })
	return h
}

func (h *hangingOTLP) hanging() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hung
}

// lines returns the log bodies the endpoint answered for, in order.
func (h *hangingOTLP) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	re := regexp.MustCompile(`"body":\{"stringValue":"([^"]*)"\}`)
	var out []string
	for _, b := range h.answered {
		for _, m := range re.FindAllStringSubmatch(b, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// upgradeOTLP starts a logger with the otlp driver and opts, posting to h,
// writes 10 lines, calls ready (which waits for what the case needs),
// sends SIGHUP and waits for the upgrade, calls upgraded, writes 10 more
// lines and waits for the exit. It returns the lines written and the
// exit's counters, having checked that the upgrade was no failure.
func upgradeOTLP(t *testing.T, h *hangingOTLP, opts map[string]string, ready func(*Logger), upgraded func(*Logger)) (before, after []string, st map[string]string) {
	t.Helper()
	opts["otlp-endpoint"], opts["otlp-protocol"], opts["close-timeout"] = "http://"+h.addr, "http/json", "20s"
	l := StartLogger(t, Env("upgradeotlp01234", opts), "otlp")
	before = Lines("before the upgrade", 10)
	WriteLines(t, l.Stdout, before)
	ready(l)
	if err := l.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitStat(t, l, "upgrades", "1")
	upgraded(l)
	after = Lines("after the upgrade", 10)
	WriteLines(t, l.Stdout, after)
	l.Close()
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, l.Errors())
	}
	st = l.Stats(t)
	t.Logf("stats: %v; stderr: %s", st, l.Errors())
	if st["restarts"] != "0" || st["upgrades"] != "1" {
		t.Errorf("restarts=%s upgrades=%s, want 0 and 1", st["restarts"], st["upgrades"])
	}
	return before, after, st
}

// TestUpgradeDriverCloseStuck: a live upgrade while the driver holds
// lines in a post the server never answers. The worker does not wait for
// the driver beyond a second: it hands over without it, and what the
// driver held is the next worker's to deliver (spool: still in the spool)
// or counted dropped once (non-blocking), never counted delivered. The
// upgrade is no failure (no restart). Both ways of going on without the
// driver: its consumer still in a call (the flush waiting for the post),
// and a consumer at rest (the flush gave up) with a Close that does not
// return. Before, the next worker counted those lines dropped a second
// time, as lost with a killed worker.
func TestUpgradeDriverCloseStuck(t *testing.T) {
	for _, tc := range []struct {
		mode string
		// atRest: SIGHUP once the consumer's flush gave up (2 s), so
		// that the handover closes the driver and Close does not return
		atRest bool
		says   string
	}{
		{"non-blocking", false, "still busy"},
		{"non-blocking", true, "not closed within"},
		{"spool", false, "still busy"},
	} {
		t.Run(fmt.Sprintf("%s/at-rest=%v", tc.mode, tc.atRest), func(t *testing.T) {
			h := startHangingOTLP(t)
			opts := map[string]string{"mode": tc.mode, "otlp-timeout": "60s", "otlp-batch-wait": "10ms"}
			if tc.mode == "spool" {
				opts["spool-dir"] = filepath.Join(t.TempDir(), "spool")
			}
			before, after, st := upgradeOTLP(t, h, opts, func(l *Logger) {
				Eventually(t, 10*time.Second, "a post hanging at the endpoint", func() bool { return h.hanging() > 0 })
				waitStat(t, l, "lines_read", "10")
				if tc.atRest {
					Eventually(t, 10*time.Second, "the consumer's flush giving up", func() bool {
						return strings.Contains(l.Errors(), "not yet accepted by the server")
					})
				}
			}, func(l *Logger) {
				if !strings.Contains(l.Errors(), tc.says) {
					t.Errorf("the handover did not say %q; stderr: %s", tc.says, l.Errors())
				}
				close(h.release)
			})
			got := h.lines()
			if tc.mode == "spool" {
				// The held lines are still in the spool: the next
				// worker sends them, once each, before the later ones.
				sinkSameLines(t, "answered", got, append(append([]string{}, before...), after...))
				if st["lines_dropped"] != "0" || st["lines_delivered"] != "20" {
					t.Errorf("lines_delivered=%s lines_dropped=%s, want 20 and 0", st["lines_delivered"], st["lines_dropped"])
				}
				return
			}
			// non-blocking: the held lines went with the old worker,
			// counted dropped by it (carried: earlier-workers); the rest
			// arrived. Read and delivered are the last worker's.
			sinkSameLines(t, "answered", got, after)
			if st["lines_read"] != "10" || st["lines_delivered"] != "10" || st["lines_dropped"] != "10" || st["lines_dropped_earlier_workers"] != "10" {
				t.Errorf("lines_read=%s lines_delivered=%s lines_dropped=%s (earlier workers %s), want 10, 10, 10 (10)",
					st["lines_read"], st["lines_delivered"], st["lines_dropped"], st["lines_dropped_earlier_workers"])
			}
		})
	}
}

// TestUpgradeDriverHeldSent: a live upgrade of a worker whose driver
// batches (a long otlp-batch-wait): every line arrives once, in order,
// and none is counted dropped, by the worker that sent it or by the next
// one.
func TestUpgradeDriverHeldSent(t *testing.T) {
	h := startHangingOTLP(t)
	close(h.release) // it answers at once
	before, after, st := upgradeOTLP(t, h, map[string]string{"mode": "non-blocking", "otlp-batch-wait": "60s"},
		func(l *Logger) { waitStat(t, l, "lines_delivered", "10") }, // taken by the driver, which waits to post
		func(*Logger) {})
	sinkSameLines(t, "answered", h.lines(), append(append([]string{}, before...), after...))
	if st["lines_dropped"] != "0" {
		t.Errorf("lines_dropped=%s, want 0", st["lines_dropped"])
	}
}
