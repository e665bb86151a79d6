package config

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"

	"github.com/joyent/dockerlogger/diag"
)

// Mode is the delivery mode: the reliable/unreliable knob.
type Mode string

const (
	Blocking    Mode = "blocking"
	NonBlocking Mode = "non-blocking"
	Spool       Mode = "spool"
)

// BufferFull is what a full ring or spool does (the buffer-full log-opt).
type BufferFull string

const (
	DropOldest BufferFull = "drop-oldest"
	DropNewest BufferFull = "drop-newest"
	BlockFull  BufferFull = "block"
)

// SpoolSync is when the spool is fsynced (the spool-sync log-opt).
type SpoolSync string

const (
	SyncInterval SpoolSync = "interval"
	SyncAlways   SpoolSync = "always"
	SyncNever    SpoolSync = "never"
)

// Options are the log-opts dockerlogger adds to Docker's, parsed.
type Options struct {
	Mode          Mode
	MaxBufferSize int64
	BufferFull    BufferFull
	SpoolDir      string
	SpoolMaxSize  int64
	SpoolSync     SpoolSync
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
	// Cache says whether the dual-logging cache is kept: cache-disabled
	// is false and the driver cannot be read back (see ReadBack).
	Cache         bool
	CachePath     string
	CacheMaxSize  int64 // bytes per file before rotation
	CacheMaxFiles int
	CacheCompress bool
}

// ReadBack lists the drivers whose output can be read back, which keep
// no dual-logging cache, as in Docker (its LogReader drivers, and none).
// Every other driver, present or added later, gets the cache.
var ReadBack = map[string]bool{"json-file": true, "local": true, "journald": true, "none": true}

// Opt describes one added option: its name, default and allowed values.
type Opt struct {
	Name    string   `json:"name"`
	Default string   `json:"default"`
	Values  []string `json:"values,omitempty"`
	Help    string   `json:"help"`
}

// Added lists the options dockerlogger adds to every driver's, in the order
// the README gives them. Defaults that depend on the container id show <id>.
var Added = []Opt{
	{"mode", string(Blocking), []string{string(Blocking), string(NonBlocking), string(Spool)}, "delivery mode: block the app, drop from a memory ring, or spool to disk"},
	{"max-buffer-size", "1m", nil, "bytes held in memory by non-blocking"},
	{"buffer-full", string(DropOldest), []string{string(DropOldest), string(DropNewest), string(BlockFull)}, "what a full ring or spool does"},
	{"spool-dir", "/var/spool/dockerlogger/<id>", nil, "directory of the disk spool"},
	{"spool-max-size", "256m", nil, "largest size of the disk spool"},
	{"spool-sync", string(SyncInterval), []string{string(SyncInterval), string(SyncAlways), string(SyncNever)}, "when the spool is fsynced"},
	{"line-max", "16k", nil, "longest line before it is split into partial messages"},
	{"on-failure", "restart", []string{"restart", "kill-init", "ignore"}, "what the supervisor does when the worker keeps dying"},
	{"failure-timeout", "30s", nil, "how long the driver may fail without a break before the worker counts as failed"},
	{"max-failures", "5", nil, "worker failures in a row (within 10 minutes) before on-failure applies"},
	{"kill-grace", "10s", nil, "on-failure=kill-init: time between SIGTERM and SIGKILL to init"},
	{"drop-marker", "true", []string{"true", "false"}, "after a drop, log one line saying how many lines were lost"},
	{"log-path", "/var/log/containers/<id>-json.log", nil, "file for json-file and local (local: <id>-local.log)"},
	{"close-timeout", "10s", nil, "longest time to flush and close the driver at exit (8s under containerd)"},
	{"stats-file", "", nil, "file that holds the counters in Prometheus text format"},
	// Docker's dual logging, all four honoured (Docker v28 only reads
	// cache-disabled); the defaults are Docker's local driver's.
	{"cache-disabled", "false", []string{"false", "true"}, "keep no local copy (in local format) of what a driver that cannot be read back was given"},
	{"cache-max-size", "20m", nil, "size of a cache file before it is rotated"},
	{"cache-max-file", "5", nil, "cache files kept, the current one included"},
	{"cache-compress", "true", []string{"true", "false"}, "gzip rotated cache files"},
	{"cache-path", "/var/log/containers/<id>-cached.log", nil, "the cache file, for drivers that cannot be read back"},
}

// added returns the Added entry of name: every default and value list is
// read from that table, so it is spelled once.
func added(name string) Opt {
	for _, o := range Added {
		if o.Name == name {
			return o
		}
	}
	panic("config: no added option " + name) // a typo in this package
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
	// used holds the value each option was parsed from, default or not:
	// an error shows the value that was actually used.
	used := map[string]string{}
	get = func(get func(string, string) string) func(string, string) string {
		return func(name, def string) string {
			v := get(name, def)
			used[name] = v
			return v
		}
	}(get)
	bad := func(name, why string) error {
		v, given := opts[name]
		if !given {
			return fmt.Errorf("log-opt %s=%s (default): %s", name, diag.Quote(used[name]), why)
		}
		return fmt.Errorf("log-opt %s=%s: %s", name, diag.Quote(v), why)
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
	// choice parses an option whose values the Added table lists.
	choice := func(name string) (string, error) {
		a := added(name)
		return oneOf(name, a.Default, a.Values...)
	}
	size := func(name, def string) (int64, error) {
		v := get(name, def)
		n, err := units.RAMInBytes(v)
		if err != nil || n <= 0 {
			return 0, bad(name, "not a positive size (e.g. 1m, 512k)")
		}
		return n, nil
	}
	// Every path option is absolute: the logger's working directory is
	// whatever its init gave it (containerd runs it in the task's bundle
	// directory, removed with the task). And it must be one the kernel
	// takes: a name of up to NAME_MAX bytes in each component, PATH_MAX
	// in all, checked here rather than retried until close-timeout.
	path := func(name, def, inside string) (string, error) {
		v := get(name, def)
		if v == "" {
			return v, bad(name, "must not be empty")
		}
		if !filepath.IsAbs(v) {
			return v, bad(name, "must be an absolute path (the logger's working directory is not the container's)")
		}
		if why := checkPath(filepath.Join(v, inside), 0); why != "" {
			return v, bad(name, why)
		}
		return v, nil
	}

	m, err := choice("mode")
	if err != nil {
		return o, err
	}
	o.Mode = Mode(m)
	bf, err := choice("buffer-full")
	if err != nil {
		return o, err
	}
	o.BufferFull = BufferFull(bf)
	if _, ok := opts["buffer-full"]; ok && o.Mode == Blocking {
		return o, bad("buffer-full", "only with mode=non-blocking or mode=spool")
	}
	if o.MaxBufferSize, err = size("max-buffer-size", added("max-buffer-size").Default); err != nil {
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
	o.SpoolDir = get("spool-dir", filepath.Join("/var/spool/dockerlogger", SafeName(id)))
	if _, set := opts["spool-dir"]; set || o.Mode == Spool {
		// Room for the spool's own file names inside it.
		if _, err := path("spool-dir", o.SpoolDir, spoolFileName); err != nil {
			return o, err
		}
	}
	if o.SpoolMaxSize, err = size("spool-max-size", added("spool-max-size").Default); err != nil {
		return o, err
	}
	ss, err := choice("spool-sync")
	if err != nil {
		return o, err
	}
	o.SpoolSync = SpoolSync(ss)
	lm, err := size("line-max", added("line-max").Default)
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
	if o.OnFailure, err = choice("on-failure"); err != nil {
		return o, err
	}
	if o.DropMarker, err = strconv.ParseBool(get("drop-marker", added("drop-marker").Default)); err != nil {
		return o, bad("drop-marker", "must be true or false")
	}
	if o.CloseTimeout, err = time.ParseDuration(get("close-timeout", added("close-timeout").Default)); err != nil || o.CloseTimeout <= 0 {
		return o, bad("close-timeout", "not a positive duration (e.g. 10s)")
	}
	if o.FailureTimeout, err = time.ParseDuration(get("failure-timeout", added("failure-timeout").Default)); err != nil || o.FailureTimeout <= 0 {
		return o, bad("failure-timeout", "not a positive duration (e.g. 30s)")
	}
	if o.MaxFailures, err = strconv.Atoi(get("max-failures", added("max-failures").Default)); err != nil || o.MaxFailures < 1 {
		return o, bad("max-failures", "not a whole number of at least 1")
	}
	if o.KillGrace, err = time.ParseDuration(get("kill-grace", added("kill-grace").Default)); err != nil || o.KillGrace <= 0 {
		return o, bad("kill-grace", "not a positive duration (e.g. 10s)")
	}
	if opts["stats-file"] != "" { // "" is the default: none
		if o.StatsFile, err = path("stats-file", "", ""); err != nil {
			return o, err
		}
	}
	suffix := "-json.log"
	if driver == "local" {
		suffix = "-local.log"
	}
	o.LogPath = get("log-path", filepath.Join("/var/log/containers", SafeName(id)+suffix))
	if _, set := opts["log-path"]; set || driver == "json-file" || driver == "local" {
		if o.LogPath, err = path("log-path", o.LogPath, ""); err != nil {
			return o, err
		}
	}
	if err := parseCache(&o, opts, driver, id, get, bad, path); err != nil {
		return o, err
	}
	return o, nil
}

// parseCache parses the cache-* options, as Docker's local driver parses
// max-size, max-file and compress.
func parseCache(o *Options, opts map[string]string, driver, id string, get func(string, string) string,
	bad func(string, string) error, path func(string, string, string) (string, error)) error {
	off, err := strconv.ParseBool(get("cache-disabled", added("cache-disabled").Default))
	if err != nil {
		return bad("cache-disabled", "must be true or false")
	}
	if o.CacheMaxSize, err = units.FromHumanSize(get("cache-max-size", added("cache-max-size").Default)); err != nil || o.CacheMaxSize <= 0 {
		return bad("cache-max-size", "not a positive size (e.g. 20m)")
	}
	if o.CacheMaxFiles, err = strconv.Atoi(get("cache-max-file", added("cache-max-file").Default)); err != nil || o.CacheMaxFiles < 1 {
		return bad("cache-max-file", "not a whole number of at least 1")
	}
	if o.CacheCompress, err = strconv.ParseBool(get("cache-compress", added("cache-compress").Default)); err != nil {
		return bad("cache-compress", "must be true or false")
	}
	if _, set := opts["cache-compress"]; set && o.CacheCompress && o.CacheMaxFiles == 1 {
		return bad("cache-compress", "compression needs cache-max-file of 2 or more")
	}
	if o.CacheMaxFiles == 1 {
		o.CacheCompress = false // the default, with nothing to compress
	}
	o.Cache = !off && !ReadBack[driver]
	o.CachePath = get("cache-path", filepath.Join("/var/log/containers", SafeName(id)+"-cached.log"))
	// Checked only when given: a default the kernel would refuse (a
	// very long id) costs the cache, said at the start, not the
	// container (see package logcache).
	if _, set := opts["cache-path"]; set {
		// Room for the rotated names (.N.gz) and compression's temporaries.
		if o.CachePath, err = path("cache-path", o.CachePath, ""); err != nil {
			return err
		}
		if why := checkPath(o.CachePath, len(".gz.tmp-0123456789abcdef")+4); why != "" {
			return bad("cache-path", why)
		}
	}
	return nil
}

// Limits of Linux (and illumos: MAXNAMELEN 256 and MAXPATHLEN 1024 there
// count the NUL; Linux's PATH_MAX 4096 too).
const (
	NameMax = 255
	PathMax = 4095
	// spoolFileName is as long as the longest name the spool gives a file
	// of its directory (a segment).
	spoolFileName = "0000000000000000.seg"
)

// checkPath says why the kernel would refuse p, or "": a component
// longer than NameMax bytes (extra bytes more for the last, for names
// derived from it), or more than PathMax bytes in all.
func checkPath(p string, extra int) string {
	parts := strings.Split(p, "/")
	for i, c := range parts {
		n := len(c)
		if i == len(parts)-1 {
			n += extra
		}
		if n > NameMax {
			return fmt.Sprintf("component %s is %d bytes long, more than NAME_MAX %d", diag.Quote(c), n, NameMax)
		}
	}
	if len(p)+extra > PathMax {
		return fmt.Sprintf("%d bytes long, more than PATH_MAX %d", len(p)+extra, PathMax)
	}
	return ""
}

// CheckPathLen says why the kernel would refuse p with up to extra more
// bytes added to its last component, or "" (see checkPath).
func CheckPathLen(p string, extra int) string { return checkPath(p, extra) }

// SafeName makes a container id one file name, whatever the platform put
// in it: "/", "%" and the control characters (bytes 0x00-0x1f and 0x7f)
// are written %XX (two upper-case hex digits, as in a URL), so that no id
// puts a newline or an escape sequence in a file name and two ids never
// share one; "" "." and ".." get a "_" in front. Every other byte is kept.
func SafeName(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c < 0x20 || c == 0x7f || c == '/' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	id = b.String()
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
