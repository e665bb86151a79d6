package config_test

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/config"
)

// envVars are every variable FromArgs looks at.
var envVars = []string{
	"DOCKERLOG_CONFIG", "DOCKERLOG_CONTAINERID", "DOCKERLOG_CONTAINERNAME", "DOCKERLOG_IMAGEID",
	"DOCKERLOG_IMAGENAME", "DOCKERLOG_CREATETIME", "DOCKERLOG_ENTRYPOINT", "DOCKERLOG_CMD",
	"DOCKERLOG_LABELS", "DOCKERLOG_ENV", "DOCKERLOG_LOGPATH", "DOCKERLOG_STDOUT", "DOCKERLOG_STDERR",
	"DOCKERLOG_TTY", "DOCKERLOG_INIT_PID", "CONTAINER_ID", "CONTAINER_NAMESPACE",
}

// clearEnv unsets every variable FromArgs reads for the rest of the test
// (restored afterwards), then sets kv pairs.
func clearEnv(t testing.TB, kv ...string) {
	t.Helper()
	for _, k := range envVars {
		t.Setenv(k, "") // registers the restore
		os.Unsetenv(k)
	}
	for i := 0; i < len(kv); i += 2 {
		t.Setenv(kv[i], kv[i+1])
	}
}

func TestTritonFullEnv(t *testing.T) {
	clearEnv(t,
		"DOCKERLOG_CONFIG", `{"max-size":"10m","tag":"{{.Name}}","mode":"blocking"}`,
		"DOCKERLOG_CONTAINERID", "abc",
		"DOCKERLOG_CONTAINERNAME", "/web",
		"DOCKERLOG_IMAGEID", "sha256:1234",
		"DOCKERLOG_IMAGENAME", "busybox:latest",
		"DOCKERLOG_CREATETIME", "2024-05-06T07:08:09.123456789+02:00",
		"DOCKERLOG_ENTRYPOINT", `["/bin/sh","-c"]`,
		"DOCKERLOG_CMD", `["echo hi","x"]`,
		"DOCKERLOG_LABELS", `{"com.example.team":"ops","a":"b"}`,
		"DOCKERLOG_ENV", `["A=1","B=two words"]`,
		"DOCKERLOG_LOGPATH", "/tmp/x-json.log",
		"DOCKERLOG_STDOUT", "/run/out.fifo",
		"DOCKERLOG_STDERR", "/run/err.fifo",
		"DOCKERLOG_TTY", "true",
		"DOCKERLOG_INIT_PID", "42",
	)
	c, err := config.FromArgs([]string{"json-file"})
	if err != nil {
		t.Fatal(err)
	}
	created, _ := time.Parse(time.RFC3339Nano, "2024-05-06T07:08:09.123456789+02:00")
	want := config.Container{
		ID: "abc", Name: "/web", ImageID: "sha256:1234", ImageName: "busybox:latest",
		Created: created, Entrypoint: "/bin/sh", Args: []string{"-c", "echo hi", "x"},
		Labels: map[string]string{"com.example.team": "ops", "a": "b"},
		Env:    []string{"A=1", "B=two words"}, Daemon: "docker",
	}
	if !reflect.DeepEqual(c.Container, want) {
		t.Errorf("container\n got %+v\nwant %+v", c.Container, want)
	}
	if !c.Container.Created.Equal(created) {
		t.Errorf("created %v, want %v", c.Container.Created, created)
	}
	if c.Driver != "json-file" || c.Containerd {
		t.Errorf("driver %q containerd %v", c.Driver, c.Containerd)
	}
	wantOpts := map[string]string{"max-size": "10m", "tag": "{{.Name}}", "mode": "blocking", "log-path": "/tmp/x-json.log"}
	if !reflect.DeepEqual(c.Opts, wantOpts) {
		t.Errorf("opts %v, want %v", c.Opts, wantOpts)
	}
	if c.Options.LogPath != "/tmp/x-json.log" {
		t.Errorf("log path %q", c.Options.LogPath)
	}
	if c.Stdout != "/run/out.fifo" || c.Stderr != "/run/err.fifo" || !c.TTY || c.InitPID != 42 {
		t.Errorf("inputs %q %q tty %v init %d", c.Stdout, c.Stderr, c.TTY, c.InitPID)
	}
	// DriverOpts is what Docker's driver is created with: ours removed.
	if d := c.DriverOpts(); !reflect.DeepEqual(d, map[string]string{"max-size": "10m", "tag": "{{.Name}}"}) {
		t.Errorf("driver opts %v", d)
	}
}

// TestEntrypointArgs checks Path/Args as Docker's daemon computes them
// (daemon/container.go getEntrypointAndArgs).
func TestEntrypointArgs(t *testing.T) {
	for _, c := range []struct {
		entry, cmd string
		path       string
		args       []string
	}{
		{``, ``, "", nil},
		{``, `["nginx","-g","daemon off;"]`, "nginx", []string{"-g", "daemon off;"}},
		{`["/entry"]`, ``, "/entry", []string{}},
		{`["/entry","--flag"]`, `["run"]`, "/entry", []string{"--flag", "run"}},
		{`[]`, `["only"]`, "only", []string{}},
		{`["/e"]`, `[]`, "/e", []string{}},
	} {
		clearEnv(t, "DOCKERLOG_CONFIG", "{}", "DOCKERLOG_CONTAINERID", "x",
			"DOCKERLOG_ENTRYPOINT", c.entry, "DOCKERLOG_CMD", c.cmd)
		cfg, err := config.FromArgs([]string{"none"})
		if err != nil {
			t.Fatalf("entry %s cmd %s: %v", c.entry, c.cmd, err)
		}
		ct := cfg.Container
		if ct.Entrypoint != c.path || len(ct.Args) != len(c.args) || (len(c.args) > 0 && !reflect.DeepEqual(ct.Args, c.args)) {
			t.Errorf("entry %s cmd %s: got %q %q, want %q %q", c.entry, c.cmd, ct.Entrypoint, ct.Args, c.path, c.args)
		}
	}
}

func TestTritonBadEnv(t *testing.T) {
	for _, c := range []struct {
		name, value, mention string
	}{
		{"DOCKERLOG_ENTRYPOINT", `["a"`, "DOCKERLOG_ENTRYPOINT"},
		{"DOCKERLOG_ENTRYPOINT", `"sh"`, "DOCKERLOG_ENTRYPOINT"},
		{"DOCKERLOG_CMD", `{"a":1}`, "DOCKERLOG_CMD"},
		{"DOCKERLOG_CMD", `[1,2]`, "DOCKERLOG_CMD"},
		{"DOCKERLOG_LABELS", `["a"]`, "DOCKERLOG_LABELS"},
		{"DOCKERLOG_LABELS", `{"a":1}`, "DOCKERLOG_LABELS"},
		{"DOCKERLOG_ENV", `{"A":"1"}`, "DOCKERLOG_ENV"},
		{"DOCKERLOG_ENV", `not json`, "DOCKERLOG_ENV"},
		{"DOCKERLOG_CREATETIME", `yesterday`, "DOCKERLOG_CREATETIME"},
		{"DOCKERLOG_CREATETIME", `2024-05-06 07:08:09`, "DOCKERLOG_CREATETIME"},
		{"DOCKERLOG_CONFIG", `{"max-size":`, "DOCKERLOG_CONFIG"},
		{"DOCKERLOG_CONFIG", `["a"]`, "DOCKERLOG_CONFIG"},
		{"DOCKERLOG_CONFIG", `null`, "DOCKERLOG_CONFIG"},
		{"DOCKERLOG_CONFIG", `{"max-file":3}`, `"max-file"`},
		{"DOCKERLOG_CONFIG", `{"compress":true}`, `"compress"`},
		{"DOCKERLOG_CONFIG", `{"labels":["a"]}`, `"labels"`},
		{"DOCKERLOG_CONFIG", `{"tag":null}`, `"tag"`},
		{"DOCKERLOG_CONFIG", `{"x":{"y":"z"}}`, `"x"`},
		{"DOCKERLOG_INIT_PID", `pid1`, "INIT_PID"},
		{"DOCKERLOG_TTY", `maybe`, "TTY"},
	} {
		clearEnv(t, "DOCKERLOG_CONFIG", "{}", "DOCKERLOG_CONTAINERID", "x", c.name, c.value)
		cfg, err := config.FromArgs([]string{"json-file"})
		if err == nil {
			t.Errorf("%s=%s: accepted: %+v", c.name, c.value, cfg)
			continue
		}
		if cfg != nil {
			t.Errorf("%s=%s: a config came back with the error", c.name, c.value)
		}
		if !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s=%s: error %q does not mention %s", c.name, c.value, err, c.mention)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s=%s: error has more than one line: %q", c.name, c.value, err)
		}
	}
}

func TestTritonMissing(t *testing.T) {
	clearEnv(t, "DOCKERLOG_CONTAINERID", "x")
	if _, err := config.FromArgs([]string{"json-file"}); err == nil || !strings.Contains(err.Error(), "DOCKERLOG_CONFIG") {
		t.Errorf("no CONFIG: %v", err)
	}
	clearEnv(t, "DOCKERLOG_CONFIG", "{}")
	if _, err := config.FromArgs([]string{"json-file"}); err == nil || !strings.Contains(err.Error(), "DOCKERLOG_CONTAINERID") {
		t.Errorf("no CONTAINERID: %v", err)
	}
	clearEnv(t, "DOCKERLOG_CONFIG", "{}", "DOCKERLOG_CONTAINERID", "x")
	for _, args := range [][]string{nil, {"json-file", "extra"}, {"a", "b", "c"}} {
		if _, err := config.FromArgs(args); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("args %q: %v, want a usage error", args, err)
		}
	}
}

func TestTritonLogPath(t *testing.T) {
	clearEnv(t, "DOCKERLOG_CONFIG", `{"log-path":"/from/opt"}`, "DOCKERLOG_CONTAINERID", "x",
		"DOCKERLOG_LOGPATH", "/from/env")
	c, err := config.FromArgs([]string{"json-file"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Options.LogPath != "/from/opt" {
		t.Errorf("log-path opt should win over DOCKERLOG_LOGPATH: %q", c.Options.LogPath)
	}
	clearEnv(t, "DOCKERLOG_CONFIG", `{}`, "DOCKERLOG_CONTAINERID", "a/b")
	c, err = config.FromArgs([]string{"local"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Options.LogPath != "/var/log/containers/a%2Fb-local.log" {
		t.Errorf("default local log path %q", c.Options.LogPath)
	}
}

// TestShortContainerID: the interface contract says never assume 12+ characters.
func TestShortContainerID(t *testing.T) {
	clearEnv(t, "DOCKERLOG_CONFIG", `{}`, "DOCKERLOG_CONTAINERID", "a")
	c, err := config.FromArgs([]string{"json-file"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Container.ID != "a" || c.Options.LogPath != "/var/log/containers/a-json.log" {
		t.Errorf("id %q path %q", c.Container.ID, c.Options.LogPath)
	}
}

func TestContainerdArgs(t *testing.T) {
	orders := [][]string{
		{"driver", "json-file", "max-size", "10m", "max-file", "3"},
		{"max-size", "10m", "driver", "json-file", "max-file", "3"},
		{"max-file", "3", "max-size", "10m", "driver", "json-file"},
	}
	for _, args := range orders {
		clearEnv(t, "CONTAINER_ID", "ctr1", "CONTAINER_NAMESPACE", "default")
		c, err := config.FromArgs(args)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if c.Driver != "json-file" || !c.Containerd {
			t.Errorf("%q: driver %q containerd %v", args, c.Driver, c.Containerd)
		}
		if !reflect.DeepEqual(c.Opts, map[string]string{"max-size": "10m", "max-file": "3"}) {
			t.Errorf("%q: opts %v", args, c.Opts)
		}
		want := config.Container{ID: "ctr1", Name: "/ctr1", Namespace: "default", Daemon: "containerd"}
		if !reflect.DeepEqual(c.Container, want) {
			t.Errorf("%q: container %+v", args, c.Container)
		}
		if c.Options.LogPath != "/var/log/containers/ctr1-json.log" {
			t.Errorf("log path %q", c.Options.LogPath)
		}
	}
	// CONTAINER_ID set: argv is containerd's whatever it looks like.
	if !config.IsContainerdArgs([]string{"x"}, func(k string) string {
		return map[string]string{"CONTAINER_ID": "c"}[k]
	}) {
		t.Error("CONTAINER_ID set: not taken as containerd")
	}
	// Without CONTAINER_ID, a "driver" key still says containerd, and the
	// id may come from DOCKERLOG_CONTAINERID.
	clearEnv(t, "DOCKERLOG_CONTAINERID", "fromdocker")
	c, err := config.FromArgs([]string{"driver", "none"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Container.ID != "fromdocker" || !c.Containerd {
		t.Errorf("id %q containerd %v", c.Container.ID, c.Containerd)
	}
}

func TestContainerdBadArgs(t *testing.T) {
	for _, c := range []struct {
		args    []string
		mention string
	}{
		{[]string{"driver", "json-file", "max-size"}, "odd"},
		{[]string{"driver"}, "odd"},
		{[]string{"max-size", "10m"}, "no driver"},
		{[]string{}, "no driver"},
		{[]string{"driver", "json-file", "max-size", "1m", "max-size", "2m"}, `"max-size"`},
		{[]string{"driver", "json-file", "driver", "local"}, `"driver"`},
		{[]string{"driver", "json-file", "mode", "fast"}, "mode"},
		{[]string{"driver", "json-file", "line-max", "-1"}, "line-max"},
	} {
		t.Run(strings.Join(c.args, "_"), func(t *testing.T) {
			clearEnv(t, "CONTAINER_ID", "c")
			cfg, err := config.FromArgs(c.args)
			if err == nil {
				t.Fatalf("%q: accepted: driver %q opts %v", c.args, cfg.Driver, cfg.Opts)
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Errorf("%q: error %q does not mention %s", c.args, err, c.mention)
			}
		})
	}
	clearEnv(t)
	if _, err := config.FromArgs([]string{"driver", "json-file"}); err == nil || !strings.Contains(err.Error(), "CONTAINER_ID") {
		t.Errorf("no container id: %v", err)
	}
}

func parse(t *testing.T, opts map[string]string) config.Options {
	t.Helper()
	o, err := config.ParseOptions(opts, "json-file", "cid")
	if err != nil {
		t.Fatalf("%v: %v", opts, err)
	}
	return o
}

func TestParseOptionsDefaults(t *testing.T) {
	o := parse(t, map[string]string{})
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"mode", o.Mode, config.Blocking},
		{"max-buffer-size", o.MaxBufferSize, int64(1 << 20)},
		{"buffer-full", o.BufferFull, config.DropOldest},
		{"spool-dir", o.SpoolDir, "/var/spool/dockerlogger/cid"},
		{"spool-max-size", o.SpoolMaxSize, int64(256 << 20)},
		{"spool-sync", o.SpoolSync, config.SyncInterval},
		{"line-max", o.LineMax, 16 << 10},
		{"on-failure", o.OnFailure, "restart"},
		{"drop-marker", o.DropMarker, true},
		{"log-path", o.LogPath, "/var/log/containers/cid-json.log"},
		{"close-timeout", o.CloseTimeout, 10 * time.Second},
		{"stats-file", o.StatsFile, ""},
	} {
		if c.got != c.want {
			t.Errorf("default %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	names := config.AddedNames()
	for _, n := range []string{"mode", "max-buffer-size", "buffer-full", "spool-dir", "spool-max-size", "spool-sync",
		"line-max", "on-failure", "drop-marker", "log-path", "close-timeout", "stats-file"} {
		if !names[n] {
			t.Errorf("option %s missing from config.Added", n)
		}
	}
}

// modeFor is the mode an added option needs to be allowed at all.
func modeFor(name string) map[string]string {
	switch {
	case name == "max-buffer-size":
		return map[string]string{"mode": "non-blocking"}
	case name == "buffer-full" || strings.HasPrefix(name, "spool-"):
		return map[string]string{"mode": "spool"}
	}
	return map[string]string{}
}

// TestAddedTable walks config.Added, the table --list-drivers --json
// shows: every listed default, given explicitly, means the same as giving
// nothing; every listed value is accepted; a nonsense value is refused
// with an error naming the option. New options are covered as they are
// added.
func TestAddedTable(t *testing.T) {
	for _, a := range config.Added {
		t.Run(a.Name, func(t *testing.T) {
			if len(a.Values) > 0 && a.Values[0] != a.Default {
				t.Errorf("default %q is not listed first in %v", a.Default, a.Values)
			}
			base := modeFor(a.Name)
			implicit, err := config.ParseOptions(base, "json-file", "cid")
			if err != nil {
				t.Fatal(err)
			}
			with := modeFor(a.Name)
			with[a.Name] = strings.ReplaceAll(a.Default, "<id>", "cid")
			explicit, err := config.ParseOptions(with, "json-file", "cid")
			if err != nil {
				t.Fatalf("the listed default %q is refused: %v", a.Default, err)
			}
			if explicit != implicit {
				t.Errorf("default %q given explicitly parses as\n%+v\nnot as given nothing\n%+v", a.Default, explicit, implicit)
			}
			for _, v := range a.Values {
				opts := modeFor(a.Name)
				opts[a.Name] = v
				if _, err := config.ParseOptions(opts, "json-file", "cid"); err != nil {
					t.Errorf("listed value %q refused: %v", v, err)
				}
			}
			if a.Name == "log-path" {
				return // any path is a path
			}
			opts := modeFor(a.Name)
			opts[a.Name] = "bogus!"
			_, err = config.ParseOptions(opts, "json-file", "cid")
			if err == nil || !strings.Contains(err.Error(), a.Name) || !strings.Contains(err.Error(), "bogus!") {
				t.Errorf("%s=bogus!: %v, want an error naming the option and the value", a.Name, err)
			}
		})
	}
}

func TestParseOptionsValues(t *testing.T) {
	for _, m := range []string{"blocking", "non-blocking", "spool"} {
		if o := parse(t, map[string]string{"mode": m}); string(o.Mode) != m {
			t.Errorf("mode %s parsed as %s", m, o.Mode)
		}
	}
	for _, m := range []string{"non-blocking", "spool"} {
		for _, v := range []string{"drop-oldest", "drop-newest", "block"} {
			if o := parse(t, map[string]string{"mode": m, "buffer-full": v}); string(o.BufferFull) != v {
				t.Errorf("buffer-full %s parsed as %s", v, o.BufferFull)
			}
		}
	}
	if o := parse(t, map[string]string{"mode": "non-blocking", "max-buffer-size": "4m"}); o.MaxBufferSize != 4<<20 {
		t.Errorf("max-buffer-size 4m = %d", o.MaxBufferSize)
	}
	o := parse(t, map[string]string{"mode": "spool", "spool-dir": "/s", "spool-max-size": "1g", "spool-sync": "always"})
	if o.SpoolDir != "/s" || o.SpoolMaxSize != 1<<30 || o.SpoolSync != "always" {
		t.Errorf("spool %+v", o)
	}
	for _, v := range []string{"interval", "always", "never"} {
		if o := parse(t, map[string]string{"mode": "spool", "spool-sync": v}); string(o.SpoolSync) != v {
			t.Errorf("spool-sync %s parsed as %s", v, o.SpoolSync)
		}
	}
	for v, n := range map[string]int{"1": 1, "512": 512, "16k": 16 << 10, "1m": 1 << 20, "1g": 1 << 30} {
		if o := parse(t, map[string]string{"line-max": v}); o.LineMax != n {
			t.Errorf("line-max %s = %d, want %d", v, o.LineMax, n)
		}
	}
	for _, v := range []string{"restart", "kill-init", "ignore"} {
		if o := parse(t, map[string]string{"on-failure": v}); o.OnFailure != v {
			t.Errorf("on-failure %s parsed as %s", v, o.OnFailure)
		}
	}
	for v, b := range map[string]bool{"true": true, "false": false} {
		if o := parse(t, map[string]string{"drop-marker": v}); o.DropMarker != b {
			t.Errorf("drop-marker %s parsed as %v", v, o.DropMarker)
		}
	}
	if o := parse(t, map[string]string{"log-path": "/abs/x.log"}); o.LogPath != "/abs/x.log" {
		t.Errorf("log-path %q", o.LogPath)
	}
	if o := parse(t, map[string]string{"close-timeout": "1500ms"}); o.CloseTimeout != 1500*time.Millisecond {
		t.Errorf("close-timeout %v", o.CloseTimeout)
	}
	if o := parse(t, map[string]string{"stats-file": "/run/stats.prom"}); o.StatsFile != "/run/stats.prom" {
		t.Errorf("stats-file %q", o.StatsFile)
	}
}

func TestParseOptionsBad(t *testing.T) {
	for _, c := range []struct {
		opts map[string]string
		name string
	}{
		{map[string]string{"mode": "fast"}, "mode"},
		{map[string]string{"mode": "Blocking"}, "mode"},
		{map[string]string{"mode": ""}, "mode"},
		{map[string]string{"mode": "non-blocking", "buffer-full": "drop-all"}, "buffer-full"},
		{map[string]string{"buffer-full": "drop-oldest"}, "buffer-full"}, // blocking has no buffer
		{map[string]string{"mode": "non-blocking", "max-buffer-size": "lots"}, "max-buffer-size"},
		{map[string]string{"mode": "non-blocking", "max-buffer-size": "0"}, "max-buffer-size"},
		{map[string]string{"mode": "non-blocking", "max-buffer-size": "-1m"}, "max-buffer-size"},
		{map[string]string{"max-buffer-size": "1m"}, "max-buffer-size"}, // with blocking, as Docker
		{map[string]string{"mode": "spool", "max-buffer-size": "1m"}, "max-buffer-size"},
		{map[string]string{"spool-dir": "/s"}, "spool-dir"},
		{map[string]string{"spool-max-size": "1g"}, "spool-max-size"},
		{map[string]string{"spool-sync": "always"}, "spool-sync"},
		{map[string]string{"mode": "spool", "spool-dir": "relative"}, "spool-dir"},
		{map[string]string{"mode": "spool", "spool-max-size": "big"}, "spool-max-size"},
		{map[string]string{"mode": "spool", "spool-sync": "sometimes"}, "spool-sync"},
		{map[string]string{"line-max": "0"}, "line-max"},
		{map[string]string{"line-max": "-5"}, "line-max"},
		{map[string]string{"line-max": "2g"}, "line-max"},
		{map[string]string{"line-max": "abc"}, "line-max"},
		{map[string]string{"on-failure": "panic"}, "on-failure"},
		{map[string]string{"drop-marker": "yes"}, "drop-marker"},
		{map[string]string{"close-timeout": "10"}, "close-timeout"},
		{map[string]string{"close-timeout": "0s"}, "close-timeout"},
		{map[string]string{"close-timeout": "-1s"}, "close-timeout"},
		{map[string]string{"stats-file": "stats.prom"}, "stats-file"},
		{map[string]string{"log-path": ""}, "log-path"},
		{map[string]string{"log-path": "rel/x.log"}, "log-path"},
		{map[string]string{"log-path": "x.log"}, "log-path"},
		{map[string]string{"log-path": "/var/log/" + strings.Repeat("n", 256)}, "log-path"},
		{map[string]string{"log-path": strings.Repeat("/d", 2048)}, "log-path"},
		{map[string]string{"mode": "spool", "spool-dir": "/s/" + strings.Repeat("n", 256)}, "spool-dir"},
		{map[string]string{"stats-file": "/" + strings.Repeat("s", 300)}, "stats-file"},
	} {
		_, err := config.ParseOptions(c.opts, "json-file", "cid")
		if err == nil {
			t.Errorf("%v: accepted", c.opts)
			continue
		}
		if !strings.Contains(err.Error(), c.name) {
			t.Errorf("%v: error %q does not name %s", c.opts, err, c.name)
		}
		if v, ok := c.opts[c.name]; ok && v != "" && len(v) <= 200 && !strings.Contains(err.Error(), v) {
			t.Errorf("%v: error %q does not show the value %q", c.opts, err, v)
		}
	}
}

func TestRedacted(t *testing.T) {
	in := map[string]string{
		"splunk-token":       "s3cr3t",
		"splunk-url":         "https://splunk:8088",
		"X-Password":         "hunter2",
		"aws-secret-key":     "k",
		"gcp-credential-x":   "c",
		"splunk-token-empty": "",
		"tag":                "{{.ID}}",
	}
	orig := map[string]string{}
	for k, v := range in {
		orig[k] = v
	}
	got := config.Redacted(in)
	want := map[string]string{
		"splunk-token":       "REDACTED",
		"splunk-url":         "https://splunk:8088",
		"X-Password":         "REDACTED",
		"aws-secret-key":     "REDACTED",
		"gcp-credential-x":   "REDACTED",
		"splunk-token-empty": "",
		"tag":                "{{.ID}}",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Redacted\n got %v\nwant %v", got, want)
	}
	if !reflect.DeepEqual(in, orig) {
		t.Errorf("Redacted changed its input: %v", in)
	}
}

func TestSorted(t *testing.T) {
	if g := config.Sorted(map[string]string{"b": "", "a": "", "c": ""}); !reflect.DeepEqual(g, []string{"a", "b", "c"}) {
		t.Errorf("Sorted = %v", g)
	}
}

// TestPathOptionsOneRule: every path option must be
// absolute, whichever it is; and an id that would make a default path the
// kernel refuses is an error naming the option, one line, at
// parse time, with the value quoted at most about 200 bytes long.
func TestPathOptionsOneRule(t *testing.T) {
	for _, c := range []struct {
		opts   map[string]string
		driver string
	}{
		{map[string]string{"log-path": "c.log"}, "json-file"},
		{map[string]string{"log-path": "./c.log"}, "local"},
		{map[string]string{"mode": "spool", "spool-dir": "spool"}, "syslog"},
		{map[string]string{"stats-file": "s.prom"}, "syslog"},
		{map[string]string{"log-path": "c.log"}, "syslog"}, // given, so checked
	} {
		_, err := config.ParseOptions(c.opts, c.driver, "cid")
		if err == nil || !strings.Contains(err.Error(), "must be an absolute path") {
			t.Errorf("%s %v: %v", c.driver, c.opts, err)
		}
	}
	for _, n := range []int{1, 11, 12, 64, 245} {
		id := strings.Repeat("a", n)
		if _, err := config.ParseOptions(map[string]string{}, "json-file", id); err != nil {
			t.Errorf("id of %d: %v", n, err)
		}
		if _, err := config.ParseOptions(map[string]string{"mode": "spool"}, "local", id); err != nil {
			t.Errorf("id of %d, spool: %v", n, err)
		}
	}
	for _, n := range []int{250, 300, 5000} {
		id := strings.Repeat("b", n)
		for _, c := range []struct {
			opts   map[string]string
			driver string
			name   string
		}{
			{map[string]string{}, "json-file", "log-path"},
			{map[string]string{}, "local", "log-path"},
			{map[string]string{"mode": "spool", "log-path": "/x.log"}, "json-file", "spool-dir"},
		} {
			if c.name == "spool-dir" && n <= 255 {
				continue // the spool directory is named by the id alone
			}
			_, err := config.ParseOptions(c.opts, c.driver, id)
			if err == nil {
				t.Errorf("id of %d, %s: accepted", n, c.name)
				continue
			}
			msg := err.Error()
			if !strings.Contains(msg, "log-opt "+c.name+"=") || !strings.Contains(msg, "(default)") ||
				!strings.Contains(msg, "NAME_MAX 255") || len(msg) > 700 || strings.Contains(msg, "\n") {
				t.Errorf("id of %d, %s: %d bytes: %q", n, c.name, len(msg), msg)
			}
		}
		// Drivers that write no file do not care.
		if _, err := config.ParseOptions(map[string]string{}, "syslog", id); err != nil {
			t.Errorf("syslog, id of %d: %v", n, err)
		}
	}
}

// TestSafeName: control characters, "/" and "%" in an id are
// written %XX in the file names derived from it; nothing else changes.
func TestSafeName(t *testing.T) {
	for id, want := range map[string]string{
		"abc":           "abc",
		"a/b":           "a%2Fb",
		"a\nb":          "a%0Ab",
		"x\x00\x1b\x7f": "x%00%1B%7F",
		"100%":          "100%25",
		"":              "_",
		".":             "_.",
		"..":            "_..",
		"ü-é_ok.1":      "ü-é_ok.1",
		"a%0Ab" + "\t":  "a%250Ab%09",
	} {
		if got := config.SafeName(id); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", id, got, want)
		}
	}
	o, err := config.ParseOptions(map[string]string{}, "json-file", "web\n1")
	if err != nil || o.LogPath != "/var/log/containers/web%0A1-json.log" {
		t.Errorf("log-path %q, %v", o.LogPath, err)
	}
}

// TestErrorShowsValueUsed: an error about an option left
// at its default shows the default, marked so, never "".
func TestErrorShowsValueUsed(t *testing.T) {
	_, err := config.ParseOptions(map[string]string{"mode": "non-blocking", "max-buffer-size": "4k"}, "json-file", "cid")
	if err == nil || !strings.Contains(err.Error(), `log-opt line-max="16k" (default)`) {
		t.Errorf("%v", err)
	}
	_, err = config.ParseOptions(map[string]string{"mode": "non-blocking", "max-buffer-size": "4k", "line-max": "8k"}, "json-file", "cid")
	if err == nil || !strings.Contains(err.Error(), `log-opt line-max="8k": `) {
		t.Errorf("%v", err)
	}
	long := strings.Repeat("z", 10000)
	_, err = config.ParseOptions(map[string]string{"mode": long}, "json-file", "cid")
	if err == nil || len(err.Error()) > 400 || !strings.Contains(err.Error(), "10000 bytes") {
		t.Errorf("%d bytes: %.300s", len(err.Error()), err)
	}
}

// TestCacheOptions: Docker's dual-logging options are accepted for every
// driver with Docker's defaults; the cache is kept only for drivers that
// cannot be read back; every option is honoured and checked.
func TestCacheOptions(t *testing.T) {
	for _, d := range []string{"syslog", "fluentd", "gelf", "splunk", "awslogs", "gcplogs", "otlp", "loki", "some-new-driver"} {
		o, err := config.ParseOptions(map[string]string{}, d, "cid")
		if err != nil || !o.Cache || o.CachePath != "/var/log/containers/cid-cached.log" ||
			o.CacheMaxSize != 20_000_000 || o.CacheMaxFiles != 5 || !o.CacheCompress {
			t.Errorf("%s: defaults %+v, %v", d, o, err)
		}
	}
	for _, d := range []string{"json-file", "local", "journald", "none"} {
		o, err := config.ParseOptions(map[string]string{"cache-disabled": "false", "cache-max-size": "1m"}, d, "cid")
		if err != nil || o.Cache {
			t.Errorf("%s: cache %v, %v: want the options accepted and no cache", d, o.Cache, err)
		}
	}
	o, err := config.ParseOptions(map[string]string{"cache-disabled": "true"}, "syslog", "cid")
	if err != nil || o.Cache {
		t.Errorf("cache-disabled=true: cache %v, %v", o.Cache, err)
	}
	o, err = config.ParseOptions(map[string]string{"cache-max-size": "3k", "cache-max-file": "2", "cache-compress": "false", "cache-path": "/c/x.log"}, "gelf", "cid")
	if err != nil || o.CacheMaxSize != 3000 || o.CacheMaxFiles != 2 || o.CacheCompress || o.CachePath != "/c/x.log" {
		t.Errorf("given values: %+v, %v", o, err)
	}
	if o, err := config.ParseOptions(map[string]string{"cache-max-file": "1"}, "gelf", "cid"); err != nil || o.CacheCompress {
		t.Errorf("cache-max-file=1 with the default compression: %+v, %v: want accepted, nothing compressed", o, err)
	}
	for opts, name := range map[*map[string]string]string{
		{"cache-disabled": "yes please"}:                  "cache-disabled",
		{"cache-max-size": "0"}:                           "cache-max-size",
		{"cache-max-size": "big"}:                         "cache-max-size",
		{"cache-max-file": "0"}:                           "cache-max-file",
		{"cache-compress": "zip"}:                         "cache-compress",
		{"cache-compress": "true", "cache-max-file": "1"}: "cache-compress",
		{"cache-path": "relative.log"}:                    "cache-path",
		{"cache-path": "/" + strings.Repeat("n", 300)}:    "cache-path",
	} {
		_, err := config.ParseOptions(*opts, "syslog", "cid")
		if err == nil || !strings.HasPrefix(err.Error(), "log-opt "+name+"=") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line naming %s", *opts, err, name)
		}
	}
}
