// Command netput measures dockerlogger's throughput into network sinks in
// one run, driver beside driver: fluentd into the in-repo Forward sink
// (internal/sink/forward; fluentd-async=false with acks, the reliable
// setup), otlp into the OpenTelemetry Collector's own OTLP receiver
// (test/otelcol, built by internal/otelcol; http/protobuf) and loki into
// the in-repo push API (internal/sink/loki; snappy protobuf). Each runs in
// the blocking mode with its defaults otherwise.
//
// Each run starts the sink and a supervised logger on a pipe, waits for
// its ready byte, measures its idle Pss (supervisor and worker, each page
// once) after idleWait, then writes N numbered lines as fast as the pipe
// takes them, closes the pipe and times until the logger exits, which is
// once the sink accepted the last batch. CPU is the logger's (user+sys,
// supervisor and worker). Every line must be at the sink, in order: a run
// that loses one fails the program. The median of the runs is reported.
// Figures report, they never gate.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/joyent/dockerlogger/internal/logproc"
	"github.com/joyent/dockerlogger/internal/measure"
	"github.com/joyent/dockerlogger/internal/otelcol"
	"github.com/joyent/dockerlogger/internal/sink/forward"
	"github.com/joyent/dockerlogger/internal/sink/loki"
)

const (
	containerID = "5e7f00d1ce5e7f00d1ce5e7f00d1ce5e"
	idleWait    = time.Second
)

// sink is one driver's sink for one run.
type sink struct {
	opts  map[string]string
	count func() (int, []string, error) // lines received, and their bodies in order
	close func()
}

type result struct {
	wall time.Duration
	cpu  time.Duration
	idle int64 // Pss bytes
}

func main() {
	bin := flag.String("bin", "bin", "directory holding dockerlogger")
	src := flag.String("otelcol", "test/otelcol", "the collector's module")
	lines := flag.Int("lines", 200000, "lines per run")
	size := flag.Int("size", 100, "bytes per line, newline included")
	runs := flag.Int("runs", 3, "runs per driver (the median is reported)")
	flag.Parse()
	if err := run(*bin, *src, *lines, *size, *runs); err != nil {
		fmt.Fprintf(os.Stderr, "netput: %v\n", err)
		os.Exit(1)
	}
}

func run(bin, src string, n, size, runs int) error {
	col, err := otelcol.Binary(src)
	if err != nil {
		return err
	}
	input := make([]byte, 0, n*size)
	for i := range n {
		l := fmt.Sprintf("%09d ", i)
		l += strings.Repeat("x", max(size-len(l)-1, 0))
		input = append(append(input, l...), '\n')
	}
	drivers := []string{"fluentd", "otlp", "loki"}
	res := map[string][]result{}
	for r := 0; r < runs; r++ {
		for _, d := range drivers {
			dir, err := os.MkdirTemp("", "netput-")
			if err != nil {
				return err
			}
			s, err := startSink(d, col, dir)
			if err != nil {
				return err
			}
			got, err := once(bin, d, s, input, n)
			s.close()
			os.RemoveAll(dir)
			if err != nil {
				return fmt.Errorf("%s: %w", d, err)
			}
			res[d] = append(res[d], got)
		}
	}
	fmt.Printf("throughput into network sinks: %d lines of %d B, blocking mode, median of %d (load %s)\n", n, size, runs, measure.Load())
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "driver\tsink\tlines/s\tMB/s\tCPU s/M lines\tidle Pss MB\t")
	sinks := map[string]string{"fluentd": "Forward (in-repo)", "otlp": "OTel Collector OTLP receiver", "loki": "Loki push API (in-repo)"}
	for _, d := range drivers {
		m := median(res[d])
		secs := m.wall.Seconds()
		fmt.Fprintf(w, "%s\t%s\t%.3fM\t%.1f\t%.2f\t%s\t\n", d, sinks[d], float64(n)/secs/1e6, float64(n*size)/secs/1e6,
			m.cpu.Seconds()/(float64(n)/1e6), measure.MB(m.idle))
	}
	return w.Flush()
}

func median(rs []result) result {
	pick := func(f func(result) int64) int64 {
		v := make([]int64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[len(v)/2]
	}
	return result{
		wall: time.Duration(pick(func(r result) int64 { return int64(r.wall) })),
		cpu:  time.Duration(pick(func(r result) int64 { return int64(r.cpu) })),
		idle: pick(func(r result) int64 { return r.idle }),
	}
}

func startSink(driver, col, dir string) (*sink, error) {
	switch driver {
	case "fluentd":
		s, err := forward.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		return &sink{
			opts: map[string]string{"fluentd-address": s.URL(), "fluentd-async": "false", "fluentd-request-ack": "true"},
			count: func() (int, []string, error) {
				evs := s.Events()
				out := make([]string, len(evs))
				for i, e := range evs {
					out[i] = e.Str("log")
				}
				return len(out), out, nil
			},
			close: s.Close,
		}, nil
	case "loki":
		s, err := loki.Listen("127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		return &sink{
			opts: map[string]string{"loki-url": s.URL()},
			count: func() (int, []string, error) {
				es := s.All()
				out := make([]string, len(es))
				for i, e := range es {
					out[i] = e.Line
				}
				return len(out), out, nil
			},
			close: s.Close,
		}, nil
	}
	c, err := otelcol.New(col, filepath.Join(dir, "logs.jsonl"))
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, err
	}
	return &sink{
		opts:  map[string]string{"otlp-endpoint": "http://" + c.Addr},
		count: func() (int, []string, error) { return bodies(c.Out) },
		close: c.Stop,
	}, nil
}

// bodies reads the string bodies the collector wrote, in order. The
// lines are plain ASCII: the body is the text between the quotes after
// "stringValue":".
func bodies(path string) (int, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 256<<20)
	key := []byte(`"body":{"stringValue":"`)
	for sc.Scan() {
		b := sc.Bytes()
		for {
			i := bytes.Index(b, key)
			if i < 0 {
				break
			}
			b = b[i+len(key):]
			j := bytes.IndexByte(b, '"')
			out = append(out, string(b[:j]))
			b = b[j:]
		}
	}
	return len(out), out, sc.Err()
}

func once(bin, driver string, s *sink, input []byte, n int) (result, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return result{}, err
	}
	defer w.Close()
	s.opts["close-timeout"] = "120s"
	l, err := logproc.Launch(logproc.Spec{Argv: logproc.Command(bin, driver), Stdout: r,
		Env: append(os.Environ(), logproc.Config(s.opts, containerID, "DOCKERLOG_CONTAINERNAME=/netput")...)})
	if err != nil {
		return result{}, err
	}
	l.Err.Close()
	if err := l.WaitReady(10 * time.Second); err != nil {
		l.Kill()
		return result{}, fmt.Errorf("not ready: %v: %s", err, logproc.LastLine(l.Stderr.String()))
	}
	time.Sleep(idleWait)
	idle := measure.GroupPss(append([]int{l.Pid()}, measure.Children(l.Pid())...))
	start := time.Now()
	if _, err := w.Write(input); err != nil {
		return result{}, err
	}
	w.Close()
	if err := l.Exit(120 * time.Second); err != nil {
		return result{}, err
	}
	wall := time.Since(start)
	ru := l.Cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	got, bodies, err := s.count()
	if err != nil {
		return result{}, err
	}
	if got != n {
		return result{}, fmt.Errorf("%d lines at the sink, want %d", got, n)
	}
	for i, b := range bodies {
		if !strings.HasPrefix(b, fmt.Sprintf("%09d ", i)) {
			return result{}, fmt.Errorf("line %d at the sink is %q", i, b[:min(len(b), 20)])
		}
	}
	return result{wall: wall, cpu: cpu, idle: idle}, nil
}
