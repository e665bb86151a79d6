// Command dockerlogger ships a container's stdout and stderr to one of
// Docker's log drivers from inside the container. See docs/architecture.md and the README for the
// interface: argv, DOCKERLOG_* environment, log-opts and exit codes.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"

	"github.com/joyent/dockerlogger/config"
	"github.com/joyent/dockerlogger/console"
	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/drivers"
	"github.com/joyent/dockerlogger/earlysignal"
	"github.com/joyent/dockerlogger/protocol"
	"github.com/joyent/dockerlogger/supervisor"
	"github.com/joyent/dockerlogger/worker"
	"github.com/joyent/dockerlogger/zfd"
)

// Set by the Makefile with -ldflags -X.
var (
	version = "dev"
	commit  = "unknown"
)

// Exit codes (see package protocol).
const (
	exitOK      = protocol.ExitOK
	exitFailure = protocol.ExitFailure
	exitConfig  = protocol.ExitConfig
)

const usage = `usage:
  dockerlogger DRIVER                 run: read fd 3 (stdout) and fd 4 (stderr)
  dockerlogger driver NAME [KEY VALUE]...   the same, as containerd's binary:// logger
  dockerlogger --list-drivers [--json]
  dockerlogger --validate DRIVER
  dockerlogger ctxdump
  dockerlogger logs [-f] [--tail N|all] [--since T] [--until T] [-t] [--details] [PATH | DRIVER]
  dockerlogger version | --version
configuration: DOCKERLOG_CONFIG (JSON log-opts), DOCKERLOG_CONTAINERID, ...`

func main() {
	stderr := os.Stderr
	if config.IsContainerdArgs(os.Args[1:], os.Getenv) {
		stderr = containerdStderr()
	}
	os.Exit(run(os.Args[1:], os.Stdout, stderr))
}

// containerdStderr returns where our own errors can be seen under
// containerd: its shim starts logging binaries with stderr on /dev/null,
// but runs them in the task's bundle directory, whose "log" FIFO
// containerd copies into its own log.
func containerdStderr() *os.File {
	if !zfd.IsDevNull(os.Stderr) {
		return os.Stderr
	}
	if f := zfd.OpenFIFOWriter("log"); f != nil {
		// On fd 2 too, so that whatever prints to stderr reaches it.
		if err := dup2(int(f.Fd()), 2); err == nil {
			f.Close()
			return os.Stderr
		}
		return f
	}
	return os.Stderr
}

func run(args []string, stdout, stderr io.Writer) int {
	fail := func(code int, err error) int {
		msg := strings.ReplaceAll(err.Error(), "\n", " ")
		if c, cerr := config.FromArgs(args); cerr == nil {
			msg = config.RedactString(msg, c.Secrets())
		}
		fmt.Fprintf(stderr, "dockerlogger: %s\n", msg)
		return code
	}
	if len(args) == 0 || !runsLogger(args) {
		// Only a running logger handles signals: the commands end on
		// SIGINT and SIGTERM as any command does.
		signal.Reset(earlysignal.Handled...)
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return exitConfig
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return exitOK
	case "version", "--version":
		fmt.Fprintf(stdout, "dockerlogger %s commit %s %s %s/%s\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "--list-drivers":
		switch {
		case len(args) == 1:
			for _, d := range drivers.List() {
				fmt.Fprintln(stdout, d)
			}
			return exitOK
		case len(args) == 2 && args[1] == "--json":
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(drivers.Describe()); err != nil {
				return fail(exitFailure, err)
			}
			return exitOK
		}
		return fail(exitConfig, errors.New("usage: dockerlogger --list-drivers [--json]"))
	case "--validate":
		if len(args) != 2 {
			return fail(exitConfig, errors.New("usage: dockerlogger --validate DRIVER"))
		}
		if _, err := load(args[1:]); err != nil {
			return fail(exitConfig, err)
		}
		fmt.Fprintf(stdout, "%s: configuration ok\n", args[1])
		return exitOK
	case "ctxdump":
		return ctxdump(args[1:], stderr, fail)
	case "logs":
		return logs(args[1:], stdout, stderr, fail)
	}
	if strings.HasPrefix(args[0], "-") && !config.IsContainerdArgs(args, os.Getenv) {
		return fail(exitConfig, fmt.Errorf("unknown flag %s (see dockerlogger --help)", args[0]))
	}
	return runLogger(args, stderr, fail)
}

// runsLogger says whether args run the logger rather than a command.
func runsLogger(args []string) bool {
	switch args[0] {
	case "-h", "--help", "help", "version", "--version", "--list-drivers", "--validate", "ctxdump", "logs":
		return false
	}
	return !strings.HasPrefix(args[0], "-") || config.IsContainerdArgs(args, os.Getenv)
}

// load parses and validates the configuration for args.
func load(args []string) (*config.Config, error) {
	c, err := config.FromArgs(args)
	if err != nil {
		return nil, err
	}
	if err := drivers.Validate(c); err != nil {
		return nil, err
	}
	return c, nil
}

func ctxdump(args []string, stderr io.Writer, fail func(int, error) int) int {
	driver := "none"
	if len(args) > 0 {
		driver = args[0]
	}
	if config.IsContainerdArgs(args, os.Getenv) {
		driver = ""
	} else {
		args = []string{driver}
	}
	c, err := config.FromArgs(args)
	if err != nil {
		return fail(exitConfig, err)
	}
	info := drivers.Info(c)
	info.Config = config.Redacted(info.Config)
	info.ContainerEnv = config.RedactedEnv(info.ContainerEnv)
	b, err := json.Marshal(struct {
		Driver    string            `json:"driver"`
		Info      any               `json:"info"`
		Namespace string            `json:"namespace,omitempty"`
		Options   map[string]string `json:"log_opts"`
	}{c.Driver, info, c.Container.Namespace, config.Redacted(c.Opts)})
	if err != nil {
		return fail(exitFailure, err)
	}
	fmt.Fprintf(stderr, "%s\n", b)
	return exitOK
}

func runLogger(args []string, stderr io.Writer, fail func(int, error) int) int {
	isWorker := protocol.IsWorker(os.Getenv)
	privErr := dropPrivileges() // before any driver code runs
	// Take fd 5 before anything can start a child: containerd waits for
	// EOF on it, and so does every process that inherits it.
	ready := zfd.OpenReady()
	if isWorker {
		// Handlers are in place (package earlysignal): the supervisor
		// may pass signals on from now.
		ready.KeepOpen()
		ready.Say(protocol.HelloByte)
		if !protocol.WaitForGo() {
			return exitOK // started ahead of an upgrade that did not happen
		}
	}
	c, err := load(args)
	if err != nil {
		return fail(exitConfig, err)
	}
	if err := zfd.CheckInputs(zfd.Spec{Stdout: c.Stdout, Stderr: c.Stderr, TTY: c.TTY}); err != nil {
		return fail(exitConfig, err)
	}
	releaseStartupPages()
	sigs := earlysignal.C() // taken since the first package initialisers

	count := new(diag.Counters)
	count.Set("version", version)
	count.Set("driver", c.Driver)
	count.Set("mode", string(c.Options.Mode))
	errs := diag.NewErrors(stderr)
	errs.Redact(c.Secrets()...)
	// Docker's drivers log through logrus: one rate-limited line each.
	// A driver that gives up on lines it had accepted says so through
	// capability.GivingUpLogger or DroppingLogger, not there.
	drivers.RouteDriverLogs(errs.Printf)
	printStats := func(line string) { fmt.Fprintf(stderr, "dockerlogger: stats %s\n", line) }
	if privErr != nil {
		errs.Printf("no_new_privs: %v", privErr)
	}

	if protocol.Supervised(os.Getenv) {
		return supervise(args, c, ready, count, errs, printStats, sigs, stderr, fail)
	}
	// Once, before the readers start: their cut and the memory limit
	// are planned on the same longest message.
	longest := longestMessage(c)
	limitMemory(longest)
	if stderr == io.Writer(os.Stderr) {
		defer routeStderr()()
	}
	w := &worker.Worker{Config: c, Count: count, Errors: errs, Ready: ready, Signals: sigs, Stats: printStats, Longest: longest}
	supervisor := os.Getppid()
	if isWorker {
		files := c.Driver == "json-file" || c.Driver == "local" || c.Options.Mode == config.Spool || c.Options.Cache
		if err := dropCapabilities(files); err != nil {
			errs.Printf("drop capabilities: %v", err)
		}
		h := protocol.Take()
		count.Restarts.Store(h.Restarts)
		count.Upgrades.Store(h.Upgrades)
		w.Peek, w.Ledger, w.Finish = true, h.Ledger, h.Finish
		w.Supervised = func() bool { return os.Getppid() == supervisor }
		count.CarryDrops(h.Ledger.CarriedDrops())
	}
	err = w.Run()
	for isWorker && errors.Is(err, worker.ErrHandover) && os.Getppid() != supervisor {
		// The supervisor died while this worker handed over: no next
		// worker comes, and if this one ended, the container's output
		// would have no reader. Read on without a supervisor, from
		// the inputs the handover left open.
		ins := w.KeptInputs()
		if len(ins) == 0 {
			break
		}
		errs.Printf("the supervisor is gone: reading on without one")
		// As the next worker would: peeking, with the ledger (the line
		// being cut goes on under its partial id). Nobody relieves the
		// pipes any more; what the supervisor dropped is counted.
		if f := w.Ledger.Relieving(); f != nil && f.Swap(0) != 0 {
			count.CatchUp()
		}
		w = &worker.Worker{Config: c, Count: count, Errors: errs, Ready: ready, Signals: sigs, Stats: printStats,
			Inputs: ins, Peek: true, Ledger: w.Ledger, Longest: longest}
		err = w.Run()
	}
	if n := count.Reason(diag.DriverGaveUp) + count.Reason(diag.CloseTimeout); err == nil && n > 0 {
		err = fmt.Errorf("%d lines could not be delivered", n)
	}
	printStats(count.Line())
	switch {
	case errors.Is(err, worker.ErrHandover):
		return protocol.ExitHandover
	case errors.Is(err, worker.ErrDriverFailed):
		return fail(protocol.ExitDriverFailed, err)
	case err != nil:
		return fail(exitFailure, err)
	}
	return exitOK
}

// supervise runs this binary again as the worker, under a supervisor that
// holds the inputs (see package supervisor).
func supervise(args []string, c *config.Config, ready *zfd.ReadyPipe, count *diag.Counters, errs *diag.Errors,
	printStats func(string), sigs <-chan os.Signal, stderr io.Writer, fail func(int, error) int) int {
	exe, err := os.Executable()
	if err != nil {
		return fail(exitFailure, fmt.Errorf("find own binary: %w", err))
	}
	ins, err := heldInputs(c)
	if err != nil {
		return fail(exitConfig, err)
	}
	var consoles []*os.File
	if c.Tee {
		if consoles, err = console.Consoles(); err != nil {
			return fail(exitConfig, err)
		}
	}
	s := supervisor.New(supervisor.Config{
		Exe: exe, Args: args, Env: os.Environ(), Inputs: ins, Consoles: consoles, Ready: ready,
		Policy: supervisor.Policy(c.Options.OnFailure), InitPID: c.InitPID,
		Failures: c.Options.MaxFailures, Grace: c.Options.KillGrace,
		// buffer-full=block asked that nothing be dropped to make room.
		NeverBlock: c.Options.Mode != config.Blocking && c.Options.BufferFull != config.BlockFull,
		// The ring drops at a handover anyway; the spool loses nothing.
		RelieveUpgrades: c.Options.Mode == config.NonBlocking && c.Options.BufferFull != config.BlockFull,
		Errors:          errs, Count: count, Stats: printStats, Signals: sigs, Stderr: stderr,
	})
	code := s.Run()
	if count.Dropped.Load() > 0 {
		printStats(count.Line()) // the supervisor drained: its own counters
	}
	return code
}

// heldInputs returns the inherited input descriptors the supervisor holds
// for the container's life (nil where the input is a path the worker opens).
func heldInputs(c *config.Config) ([]*os.File, error) {
	specs := []struct {
		name, path string
		fd         int
	}{{"stdout", c.Stdout, zfd.StdoutFD}, {"stderr", c.Stderr, zfd.StderrFD}}
	if c.TTY {
		specs = specs[:1]
	}
	var fs []*os.File
	for _, sp := range specs {
		if sp.path != "" {
			fs = append(fs, nil)
			continue
		}
		if err := zfd.CheckInput(sp.name, sp.fd); err != nil {
			return nil, err
		}
		fs = append(fs, os.NewFile(uintptr(sp.fd), sp.name))
	}
	return fs, nil
}
