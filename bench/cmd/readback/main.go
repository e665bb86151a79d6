// Command readback is the benchmark of reading logs back: 1,000,000
// lines of 100 bytes in json-file and in local files (rotated at 50 MB,
// uncompressed) written by package filelog, read by `dockerlogger logs`
// with stdout to /dev/null, and by Docker's own reader (the driver's
// ReadLogs, in process, each message written out as the daemon's
// WriteLogStream writes it) on the same files in the same run. The best of
// three runs each; the target is dockerlogger at least as fast. It prints
// a table with PASS or MISS and never gates on the target.
//
// It must never import dockerlogger's drivers package, which registers
// its own json-file and local drivers under Docker's names.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/daemon/logger/jsonfilelog"
	"github.com/docker/docker/daemon/logger/local"

	"github.com/joyent/dockerlogger/filelog"
)

func main() {
	binDir := flag.String("bin", "bin", "directory holding dockerlogger")
	lines := flag.Int("lines", 1_000_000, "lines to write and read back")
	flag.Parse()
	dir, err := os.MkdirTemp("", "readback-bench-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := map[string]string{"max-size": "50m", "max-file": "10", "compress": "false"}
	fmt.Printf("reading back %d lines of 100 B, best of 3 runs\n", *lines)
	fmt.Printf("%10s  %16s  %16s  %s\n", "format", "dockerlogger", "Docker's reader", "target: at least as fast")
	for _, format := range []string{"json-file", "local"} {
		path := filepath.Join(dir, format+".log")
		if err := write(format, path, cfg, *lines); err != nil {
			fatal(err)
		}
		ours := best(func() (int, error) { return runLogs(filepath.Join(*binDir, "dockerlogger"), path) })
		theirs := best(func() (int, error) { return dockerRead(format, path, cfg) })
		verdict := "PASS"
		if ours.d > theirs.d {
			verdict = "MISS"
		}
		fmt.Printf("%10s  %10.0f ms %s  %10.0f ms %s  %s (%.2fx)\n", format,
			ms(ours.d), lps(*lines, ours.d), ms(theirs.d), lps(*lines, theirs.d), verdict, float64(theirs.d)/float64(ours.d))
		if theirs.n < *lines {
			fmt.Printf("%10s  Docker's reader gave %d messages of %d\n", "", theirs.n, *lines)
		}
	}
}

type result struct {
	d time.Duration
	n int
}

func best(f func() (int, error)) result {
	r := result{d: 1 << 62}
	for i := 0; i < 3; i++ {
		start := time.Now()
		n, err := f()
		if err != nil {
			fatal(err)
		}
		if d := time.Since(start); d < r.d {
			r = result{d, n}
		}
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func lps(n int, d time.Duration) string {
	return fmt.Sprintf("(%4.1f M lines/s)", float64(n)/d.Seconds()/1e6)
}

// write writes n lines with the logger's own encoders and rotation.
func write(format, path string, cfg map[string]string, n int) error {
	info := logger.Info{LogPath: path, Config: cfg, ContainerID: "bench"}
	var l interface {
		Log(*logger.Message) error
		Close() error
	}
	var err error
	if format == "local" {
		l, err = filelog.NewLocalDriver(info, nil)
	} else {
		l, err = filelog.NewJSONDriver(info, nil)
	}
	if err != nil {
		return err
	}
	line := []byte(strings.Repeat("x", 90))
	ts := time.Now().UTC()
	for i := 0; i < n; i++ {
		m := logger.NewMessage()
		m.Source = "stdout"
		m.Line = fmt.Appendf(m.Line[:0], "%09d %s", i, line)
		m.Timestamp = ts.Add(time.Duration(i) * time.Microsecond)
		if err := l.Log(m); err != nil {
			return err
		}
	}
	return l.Close()
}

// runLogs runs dockerlogger logs PATH with stdout to /dev/null.
func runLogs(bin, path string) (int, error) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	cmd := exec.Command(bin, "logs", path)
	cmd.Stdout, cmd.Stderr = null, os.Stderr
	return 0, cmd.Run()
}

// dockerRead reads the files with Docker's driver's ReadLogs and writes
// each message out as WriteLogStream does (stdout, no flags).
func dockerRead(format, path string, cfg map[string]string) (int, error) {
	info := logger.Info{LogPath: path, Config: cfg, ContainerID: "bench"}
	var l logger.Logger
	var err error
	if format == "local" {
		l, err = local.New(info)
	} else {
		l, err = jsonfilelog.New(info)
	}
	if err != nil {
		return 0, err
	}
	defer l.Close()
	w := l.(logger.LogReader).ReadLogs(context.Background(), logger.ReadConfig{Tail: -1})
	defer w.ConsumerGone()
	n := 0
	for {
		select {
		case m, ok := <-w.Msg:
			if !ok {
				return n, nil
			}
			io.Discard.Write(m.Line)
			n++
		case err := <-w.Err:
			return n, err
		}
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "readback: %v\n", err)
	os.Exit(1)
}
