package main

import (
	"encoding/binary"
	"fmt"
	"github.com/joyent/dockerlogger/internal/logproc"
	"github.com/joyent/dockerlogger/internal/measure"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const rate = 5000 // lines per second of the application, where it paces

// bg runs the stdout writer in the background: n lines at r per second.
func bg(w *writer, n, r int) chan error {
	ch := make(chan error, 1)
	go func() { ch <- w.lines(n, r) }()
	return ch
}

// waitFor polls cond every 20 ms for up to d (an external sink or /proc:
// nothing to be notified by).
func waitFor(d time.Duration, what string, cond func() bool) error {
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			return fmt.Errorf("%s: not after %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func faults() []fault {
	return []fault{
		{
			name: "sink down at start", rsyslog: true, rsyslogShort: []string{"spool"}, short: true,
			setup: func(e *env, dir string) (setup, func(), error) {
				return setup{reserve: true}, func() {}, nil
			},
			run: func(e *env, s *session) error {
				down := e.dur(2*time.Second, 5*time.Second)
				done := bg(s.out, rate*int(down/time.Second+2), rate)
				time.Sleep(down)
				if err := s.net.Start(); err != nil {
					return err
				}
				return <-done
			},
		},
		{
			name: "sink down mid-stream", rsyslog: true, short: true,
			run: func(e *env, s *session) error {
				down := e.dur(3*time.Second, 30*time.Second)
				s.note("down %v", down)
				done := bg(s.out, rate*int(down/time.Second+3), rate)
				time.Sleep(time.Second)
				s.net.Stop()
				time.Sleep(down)
				if err := s.net.Start(); err != nil {
					return err
				}
				return <-done
			},
		},
		{
			name: "sink slow (1 line/ms)", rsyslog: true,
			notes: "proxy at 250 kB/s, about 1000 events/s",
			setup: func(e *env, dir string) (setup, func(), error) {
				return setup{proxy: true}, func() {}, nil
			},
			run: func(e *env, s *session) error {
				s.px.setRate(250_000)
				return <-bg(s.out, rate*4, rate)
			},
		},
		{
			name: "sink restarted", rsyslog: true, rsyslogShort: []string{"blocking", "spool"}, short: true,
			run: func(e *env, s *session) error {
				done := bg(s.out, rate*4, rate)
				for i := 0; i < 2; i++ {
					time.Sleep(time.Second)
					s.net.Stop()
					if err := s.net.Start(); err != nil {
						return err
					}
				}
				return <-done
			},
		},
		{
			name: "TCP connection reset", rsyslog: true, rsyslogShort: []string{"blocking", "spool"}, short: true,
			setup: func(e *env, dir string) (setup, func(), error) {
				return setup{proxy: true}, func() {}, nil
			},
			run: func(e *env, s *session) error {
				done := bg(s.out, rate*4, rate)
				resets := 0
				for i := 0; i < 3; i++ {
					time.Sleep(time.Second)
					resets += s.px.reset()
				}
				s.note("%d connections reset", resets)
				return <-done
			},
		},
		{
			name: "DNS name unresolvable", rsyslog: true, rsyslogShort: []string{"spool"}, short: true, dropsOK: true, exitOK: true,
			notes: "sink never reachable: close-timeout=2s gives up; blocking and non-blocking count every line as dropped (by design); spool keeps them on disk and a second logger on the same spool-dir delivers them",
			setup: func(e *env, dir string) (setup, func(), error) {
				return setup{address: "no-such-host.invalid:24224", opts: map[string]string{"close-timeout": "2s"}}, func() {}, nil
			},
			run: func(e *env, s *session) error {
				if s.mode == "spool" {
					s.after = func(s *session) (int64, error) { return s.relaunch() }
				}
				// Fits in the pipe: the application is not blocked.
				return s.out.lines(2000, 0)
			},
		},
		{
			name: "worker SIGKILL", rsyslog: true, rsyslogShort: []string{"blocking"}, short: true,
			run: func(e *env, s *session) error {
				done := bg(s.out, rate*4, rate)
				for i := 0; i < 2; i++ {
					time.Sleep(time.Second)
					pid, err := s.l.Worker(5 * time.Second)
					if err != nil {
						return err
					}
					syscall.Kill(pid, syscall.SIGKILL)
					s.kills++
					if err := waitFor(10*time.Second, "a new worker", func() bool {
						p, err := s.l.Worker(0)
						return err == nil && p != pid
					}); err != nil {
						return err
					}
				}
				return <-done
			},
		},
		{
			name: "supervisor SIGKILL", short: true, exitOK: true,
			notes: "the worker carries on to EOF unsupervised; exit -1 is the killed supervisor's",
			run: func(e *env, s *session) error {
				done := bg(s.out, rate*3, rate)
				time.Sleep(time.Second)
				pid, err := s.l.Worker(5 * time.Second)
				if err != nil {
					return err
				}
				s.l.Cmd.Process.Kill()
				werr := <-done
				if werr != nil {
					return werr
				}
				s.out.close()
				s.errw.close()
				return waitFor(30*time.Second, "the orphaned worker to exit at EOF", func() bool {
					return !measure.Alive(pid)
				})
			},
		},
		{
			name: "disk full (json-file)", sink: "json-file", short: true, root: true,
			notes: "8 MB tmpfs filled, freed after 2 s",
			setup: func(e *env, dir string) (setup, func(), error) {
				un, err := logproc.Tmpfs(dir, "8m")
				if err != nil {
					return setup{}, nil, err
				}
				if err := logproc.Fill(filepath.Join(dir, "filler")); err != nil {
					un()
					return setup{}, nil, err
				}
				return setup{sink: "json-file", logPath: filepath.Join(dir, "json.log"), filler: filepath.Join(dir, "filler")}, un, nil
			},
			run: func(e *env, s *session) error {
				done := bg(s.out, rate*3, rate)
				time.Sleep(2 * time.Second)
				if err := os.Remove(s.filler); err != nil {
					return err
				}
				return <-done
			},
		},
		{
			name: "disk full (spool)", short: true, root: true, modes: []string{"spool"}, dropsOK: true,
			notes: "spool-dir on a 4 MB tmpfs filled, freed after 2 s; Forward sink stalled meanwhile; buffer-full=drop-oldest (default) drops, counted",
			setup: fullSpool(nil),
			run:   freeSpoolAfter2s,
		},
		{
			name: "disk full (spool, buffer-full=block)", short: true, root: true, modes: []string{"spool"},
			notes: "as above with buffer-full=block: the application waits, nothing dropped",
			setup: fullSpool(map[string]string{"buffer-full": "block"}),
			run:   freeSpoolAfter2s,
		},
		{
			name: "spool full, sink down (disk use)", short: true, modes: []string{"spool"}, dropsOK: true,
			notes: "spool-max-size=1m, buffer-full=drop-oldest, sink down from the start while 30000 lines (3.9 MB of records) go in: the spool's blocks (du) stay within 1m + one segment (128 KiB), sampled every 5 ms; then the sink comes up",
			setup: func(e *env, dir string) (setup, func(), error) {
				return setup{reserve: true, opts: map[string]string{"spool-max-size": "1m"}}, func() {}, nil
			},
			run: func(e *env, s *session) error {
				smp := measure.Sample(s.l.Cmd.Process.Pid, s.opts["spool-dir"], 5*time.Millisecond)
				err := s.out.lines(30000, 0)
				time.Sleep(100 * time.Millisecond)
				pk := smp.Stop()
				s.note("peak %s MB on disk", measure.MB(pk.Disk))
				if err != nil {
					return err
				}
				if err := s.net.Start(); err != nil {
					return err
				}
				if limit := int64(1<<20 + 128<<10); pk.Disk > limit {
					return fmt.Errorf("the spool took %d bytes on disk, more than %d", pk.Disk, limit)
				}
				return nil
			},
		},
		{
			name: "spool record claims 1 GiB", short: true, modes: []string{"spool"},
			notes: "a record header in the spool claims a 1 GiB body, the file (sparse) is 2 GiB: counted as corruption and skipped; the worker's peak RSS stays under 64 MB",
			setup: func(e *env, dir string) (setup, func(), error) {
				sd := filepath.Join(dir, "spool")
				if err := os.Mkdir(sd, 0o700); err != nil {
					return setup{}, nil, err
				}
				seg := filepath.Join(sd, "0000000000000000.seg")
				// magic, flags, id length, body length 1 GiB, a CRC: then
				// garbage, and room for the claimed body.
				h := []byte{0xD7, 0x5A, 0, 0, 0, 0, 0, 0x40, 1, 2, 3, 4}
				if err := os.WriteFile(seg, append(h, make([]byte, 200)...), 0o600); err != nil {
					return setup{}, nil, err
				}
				if err := os.Truncate(seg, 2<<30); err != nil {
					return setup{}, nil, err
				}
				return setup{spoolDir: sd}, func() {}, nil
			},
			run: func(e *env, s *session) error {
				smp := measure.Sample(s.l.Cmd.Process.Pid, "", 5*time.Millisecond)
				err := s.out.lines(rate, rate)
				pk := smp.Stop()
				var hwm int64
				for p, m := range pk.Procs {
					if p != s.l.Cmd.Process.Pid {
						hwm = max(hwm, m.HWM)
					}
				}
				s.note("worker peak RSS %s MB", measure.MB(hwm))
				if err != nil {
					return err
				}
				if hwm > 64<<20 {
					return fmt.Errorf("worker peak RSS %d bytes: the claimed length was allocated", hwm)
				}
				if !strings.Contains(string(s.l.Stderr.Bytes()), "longer than any record") {
					return fmt.Errorf("the corrupt record was not reported: %s", logproc.LastLine(string(s.l.Stderr.Bytes())))
				}
				return nil
			},
		},
		{
			name: "spool segment sparse 100 GB", short: true, modes: []string{"spool"},
			notes: "a segment of one record made 100 GB with truncate -s: ready comes less than 200 ms later than on an empty spool (measured with a second spool-dir in setup), and the row's logger starts on such a segment (its record is the 1 other message)",
			setup: func(e *env, dir string) (setup, func(), error) {
				sparse := func(name string) (string, error) {
					sd := filepath.Join(dir, name)
					if err := os.Mkdir(sd, 0o700); err != nil {
						return "", err
					}
					f, err := os.OpenFile(filepath.Join(sd, "0000000000000000.seg"), os.O_CREATE|os.O_WRONLY, 0o600)
					if err != nil {
						return "", err
					}
					defer f.Close()
					if _, err := f.Write(spoolRecord(1, "a record before 100 GB of holes")); err != nil {
						return "", err
					}
					return sd, f.Truncate(100 << 30)
				}
				ready := func(sd string) (time.Duration, error) {
					t0 := time.Now()
					l, err := logproc.Start(e.bin, "none", map[string]string{"mode": "spool", "spool-dir": sd}, "/faults")
					d := time.Since(t0)
					if err != nil {
						return d, err
					}
					l.Kill()
					return d, nil
				}
				empty, err := ready(filepath.Join(dir, "empty"))
				if err != nil {
					return setup{}, nil, err
				}
				probe, err := sparse("probe")
				if err != nil {
					return setup{}, nil, err
				}
				late, err := ready(probe)
				if err != nil {
					return setup{}, nil, err
				}
				if late-empty > 200*time.Millisecond {
					return setup{}, nil, fmt.Errorf("ready %v on a 100 GB sparse segment, %v on an empty spool", late, empty)
				}
				sd, err := sparse("spool")
				if err != nil {
					return setup{}, nil, err
				}
				return setup{spoolDir: sd}, func() {}, nil
			},
			run: func(e *env, s *session) error {
				return s.out.lines(rate, rate)
			},
		},
		{
			name: "exit with lines buffered", rsyslog: true, rsyslogShort: []string{"non-blocking"}, short: true,
			notes: "sink stalled, 5000 lines written, inputs closed, sink released 1 s later",
			run: func(e *env, s *session) error {
				s.net.Stall(true)
				if err := s.out.lines(5000, 0); err != nil {
					return err
				}
				s.out.close()
				s.errw.close()
				time.Sleep(time.Second)
				s.net.Stall(false)
				return nil
			},
		},
		{
			name: "100 MB line, no newline", short: true,
			notes: "written = parts at line-max 16k (each part numbered at its start)",
			run: func(e *env, s *session) error {
				total := e.pick(16<<20, 100<<20)
				const part = 16 << 10
				buf := make([]byte, 64<<10)
				seq := 0
				for off := 0; off < total; off += len(buf) {
					for p := 0; p < len(buf); p += part {
						copy(buf[p:], fmt.Sprintf("seq=%09d ", seq))
						for i := p + 14; i < p+part; i++ {
							buf[i] = 'x'
						}
						seq++
					}
					if err := s.out.write(buf, len(buf)/part); err != nil {
						return err
					}
				}
				s.note("%d MiB", total>>20)
				return nil
			},
		},
		{
			name: "flood of empty lines", short: true,
			notes: "each numbered line followed by 99 empty ones",
			run: func(e *env, s *session) error {
				blocks := e.pick(2000, 10000)
				var buf []byte
				for b := 0; b < blocks; b++ {
					buf = append(buf, line(b)...)
					for i := 0; i < 99; i++ {
						buf = append(buf, '\n')
					}
					if len(buf) > 3800 || b == blocks-1 {
						n := len(buf) / 199 * 100 // messages: numbered + empties per block
						if err := s.out.write(buf, n); err != nil {
							return err
						}
						buf = buf[:0]
					}
				}
				return nil
			},
		},
		{
			name: "stdout closed, stderr goes on", rsyslog: true, rsyslogShort: []string{"non-blocking"}, short: true,
			notes: "stderr's last line must arrive while stderr is still open",
			run: func(e *env, s *session) error {
				if err := s.out.lines(2000, rate); err != nil {
					return err
				}
				s.out.close()
				if err := s.errw.lines(rate*2, rate); err != nil {
					return err
				}
				last := s.errw.last()
				if s.net == nil {
					return nil
				}
				return waitFor(15*time.Second, fmt.Sprintf("stderr line %d at the sink", last), func() bool {
					msgs, _ := s.net.Messages(0, 0)
					for i := len(msgs) - 1; i >= 0 && i >= len(msgs)-50; i-- {
						if seqOf(msgs[i]) == last {
							return true
						}
					}
					return false
				})
			},
		},
	}
}

// spoolRecord encodes a spool record as the spool writes it (see
// spool/record.go: magic, flags, id length, body length, CRC32C of the
// header's first 8 bytes and the body; body: seq, time, ordinal, line).
func spoolRecord(seq uint64, line string) []byte {
	body := binary.LittleEndian.AppendUint64(nil, seq)
	body = binary.LittleEndian.AppendUint64(body, uint64(time.Now().UnixNano()))
	body = binary.LittleEndian.AppendUint32(body, 0)
	body = append(body, line...)
	h := []byte{0xD7, 0x5A, 0, 0}
	h = binary.LittleEndian.AppendUint32(h, uint32(len(body)))
	c := crc32.MakeTable(crc32.Castagnoli)
	h = binary.LittleEndian.AppendUint32(h, crc32.Update(crc32.Checksum(h, c), c, body))
	return append(h, body...)
}

// fullSpool puts the spool-dir on a 4 MB tmpfs that a filler file has
// filled, with extra log-opts.
func fullSpool(opts map[string]string) func(e *env, dir string) (setup, func(), error) {
	return func(e *env, dir string) (setup, func(), error) {
		un, err := logproc.Tmpfs(dir, "4m")
		if err != nil {
			return setup{}, nil, err
		}
		sd := filepath.Join(dir, "spool")
		if err := os.Mkdir(sd, 0o755); err != nil {
			un()
			return setup{}, nil, err
		}
		if err := logproc.Fill(filepath.Join(dir, "filler")); err != nil {
			un()
			return setup{}, nil, err
		}
		return setup{spoolDir: sd, filler: filepath.Join(dir, "filler"), opts: opts}, un, nil
	}
}

// freeSpoolAfter2s writes with the sink stalled, frees the disk after 2 s
// and releases the sink.
func freeSpoolAfter2s(e *env, s *session) error {
	s.net.Stall(true)
	done := bg(s.out, rate*3, rate)
	time.Sleep(2 * time.Second)
	if err := os.Remove(s.filler); err != nil {
		return err
	}
	s.net.Stall(false)
	return <-done
}
