package config

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
)

// Mode is the delivery mode: the reliable/unreliable knob.
type Mode string

const (
	Blocking    Mode = "blocking"
	NonBlocking Mode = "non-blocking"
	Spool       Mode = "spool"
)

// Options are the log-opts dockerlogger adds to Docker's, parsed.
type Options struct {
	Mode          Mode
	MaxBufferSize int64
	BufferFull    string // drop-oldest, drop-newest, block
	SpoolDir      string
	SpoolMaxSize  int64
	SpoolSync     string // interval, always, never
	LineMax       int
	OnFailure     string // restart, kill-init, ignore
	DropMarker    bool
	LogPath       string
	CloseTimeout  time.Duration
	StatsFile     string
	// FailureTimeout is how long the driver may fail without a break
	// (not up, or refusing every message) before the worker gives up and
	// the supervisor counts a failure; MaxFailures failures in a row
	// (within 10 minutes) apply on-failure.
	FailureTimeout time.Duration
	MaxFailures    int
	KillGrace      time.Duration // on-failure=kill-init: SIGTERM to SIGKILL
}

// Opt describes one added option: its name, default and allowed values.
type Opt struct {
	Name    string   `json:"name"`
	Default string   `json:"default"`
	Values  []string `json:"values,omitempty"`
	Help    string   `json:"help"`
}

// Added lists the options dockerlogger adds to every driver's, in the order
// DESIGN.md gives them. Defaults that depend on the container id show <id>.
var Added = []Opt{
	{"mode", "blocking", []string{"blocking", "non-blocking", "spool"}, "delivery mode: block the app, drop from a memory ring, or spool to disk"},
	{"max-buffer-size", "1m", nil, "bytes held in memory by non-blocking"},
	{"buffer-full", "drop-oldest", []string{"drop-oldest", "drop-newest", "block"}, "what a full ring or spool does"},
	{"spool-dir", "/var/spool/dockerlogger/<id>", nil, "directory of the disk spool"},
	{"spool-max-size", "256m", nil, "largest size of the disk spool"},
	{"spool-sync", "interval", []string{"interval", "always", "never"}, "when the spool is fsynced"},
	{"line-max", "16k", nil, "longest line before it is split into partial messages"},
	{"on-failure", "restart", []string{"restart", "kill-init", "ignore"}, "what the supervisor does when the worker keeps dying"},
	{"failure-timeout", "30s", nil, "how long the driver may fail without a break before the worker counts as failed"},
	{"max-failures", "5", nil, "worker failures in a row (within 10 minutes) before on-failure applies"},
	{"kill-grace", "10s", nil, "on-failure=kill-init: time between SIGTERM and SIGKILL to init"},
	{"drop-marker", "true", []string{"true", "false"}, "after a drop, log one line saying how many lines were lost"},
	{"log-path", "/var/log/containers/<id>-json.log", nil, "file for json-file and local (local: <id>-local.log)"},
	{"close-timeout", "10s", nil, "longest time to flush and close the driver at exit (8s under containerd)"},
	{"stats-file", "", nil, "file that holds the counters in Prometheus text format"},
}

// AddedNames returns the names of the added options, for Docker's
// logger.AddBuiltinLogOpts so drivers' validators never see them.
func AddedNames() map[string]bool {
	m := make(map[string]bool, len(Added))
	for _, o := range Added {
		m[o.Name] = true
	}
	return m
}

// DriverOpts returns opts without the added options: what a Docker driver
// is created with.
func (c *Config) DriverOpts() map[string]string {
	added := AddedNames()
	m := make(map[string]string, len(c.Opts))
	for k, v := range c.Opts {
		if !added[k] {
			m[k] = v
		}
	}
	return m
}

func (c *Config) parseOptions() error {
	o, err := ParseOptions(c.Opts, c.Driver, c.Container.ID)
	if err != nil {
		return err
	}
	if _, set := c.Opts["close-timeout"]; c.Containerd && !set {
		// containerd kills its logging binary about 12 s after SIGTERM:
		// be done well before.
		o.CloseTimeout = 8 * time.Second
	}
	c.Options = o
	return nil
}

// ParseOptions validates and parses the added options in opts for a
// container with the given id. The error names the option and the value.
func ParseOptions(opts map[string]string, driver, id string) (Options, error) {
	get := func(name, def string) string {
		if v, ok := opts[name]; ok {
			return v
		}
		return def
	}
	var o Options
	var err error
	bad := func(name, why string) error {
		return fmt.Errorf("log-opt %s=%q: %s", name, opts[name], why)
	}
	oneOf := func(name, def string, values ...string) (string, error) {
		v := get(name, def)
		for _, ok := range values {
			if v == ok {
				return v, nil
			}
		}
		return "", bad(name, "must be one of "+strings.Join(values, ", "))
	}
	size := func(name, def string) (int64, error) {
		v := get(name, def)
		n, err := units.RAMInBytes(v)
		if err != nil || n <= 0 {
			return 0, bad(name, "not a positive size (e.g. 1m, 512k)")
		}
		return n, nil
	}

	m, err := oneOf("mode", "blocking", "blocking", "non-blocking", "spool")
	if err != nil {
		return o, err
	}
	o.Mode = Mode(m)
	if o.BufferFull, err = oneOf("buffer-full", "drop-oldest", "drop-oldest", "drop-newest", "block"); err != nil {
		return o, err
	}
	if _, ok := opts["buffer-full"]; ok && o.Mode == Blocking {
		return o, bad("buffer-full", "only with mode=non-blocking or mode=spool")
	}
	if o.MaxBufferSize, err = size("max-buffer-size", "1m"); err != nil {
		return o, err
	}
	if _, ok := opts["max-buffer-size"]; ok && o.Mode != NonBlocking {
		return o, bad("max-buffer-size", "only with mode=non-blocking (as in Docker)")
	}
	for _, name := range []string{"spool-dir", "spool-max-size", "spool-sync"} {
		if _, ok := opts[name]; ok && o.Mode != Spool {
			return o, bad(name, "only with mode=spool")
		}
	}
	o.SpoolDir = get("spool-dir", filepath.Join("/var/spool/dockerlogger", safeName(id)))
	if !filepath.IsAbs(o.SpoolDir) {
		return o, bad("spool-dir", "must be an absolute path")
	}
	if o.SpoolMaxSize, err = size("spool-max-size", "256m"); err != nil {
		return o, err
	}
	if o.SpoolSync, err = oneOf("spool-sync", "interval", "interval", "always", "never"); err != nil {
		return o, err
	}
	lm, err := size("line-max", "16k")
	if err != nil {
		return o, err
	}
	if lm > 1<<30 {
		return o, bad("line-max", "larger than 1g")
	}
	o.LineMax = int(lm)
	if o.Mode == NonBlocking && int64(o.LineMax) > o.MaxBufferSize {
		return o, bad("line-max", "larger than max-buffer-size: such a line could never be held")
	}
	if o.OnFailure, err = oneOf("on-failure", "restart", "restart", "kill-init", "ignore"); err != nil {
		return o, err
	}
	if o.DropMarker, err = strconv.ParseBool(get("drop-marker", "true")); err != nil {
		return o, bad("drop-marker", "must be true or false")
	}
	if o.CloseTimeout, err = time.ParseDuration(get("close-timeout", "10s")); err != nil || o.CloseTimeout <= 0 {
		return o, bad("close-timeout", "not a positive duration (e.g. 10s)")
	}
	if o.FailureTimeout, err = time.ParseDuration(get("failure-timeout", "30s")); err != nil || o.FailureTimeout <= 0 {
		return o, bad("failure-timeout", "not a positive duration (e.g. 30s)")
	}
	if o.MaxFailures, err = strconv.Atoi(get("max-failures", "5")); err != nil || o.MaxFailures < 1 {
		return o, bad("max-failures", "not a whole number of at least 1")
	}
	if o.KillGrace, err = time.ParseDuration(get("kill-grace", "10s")); err != nil || o.KillGrace <= 0 {
		return o, bad("kill-grace", "not a positive duration (e.g. 10s)")
	}
	o.StatsFile = get("stats-file", "")
	if o.StatsFile != "" && !filepath.IsAbs(o.StatsFile) {
		return o, bad("stats-file", "must be an absolute path")
	}
	suffix := "-json.log"
	if driver == "local" {
		suffix = "-local.log"
	}
	o.LogPath = get("log-path", filepath.Join("/var/log/containers", safeName(id)+suffix))
	if o.LogPath == "" {
		return o, bad("log-path", "must not be empty")
	}
	return o, nil
}

// safeName keeps a container id usable as one path element whatever the
// platform put in it.
func safeName(id string) string {
	r := strings.NewReplacer("/", "_", "\x00", "_")
	id = r.Replace(id)
	if id == "" || id == "." || id == ".." {
		return "_" + id
	}
	return id
}

// Sorted returns the keys of m, sorted.
func Sorted(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
