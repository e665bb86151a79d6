package drivers

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/daemon/logger/loggerutils"

	"github.com/joyent/dockerlogger/config"
)

// idLengths are the container id lengths every driver must take (DESIGN:
// any length, never assume 12+).
var idLengths = []int{1, 11, 12, 64, 300}

// tagTemplates are the tags tried with every driver and id length; "-"
// stands for no tag option at all.
var tagTemplates = []string{"-", "", "{{.ID}}", "{{.FullID}}", "{{.Name}}", "{{.ImageName}}", "{{.ImageID}}",
	"{{.ImageFullID}}", "{{.DaemonName}}", "{{.Command}}", "{{.ID}}/{{.Name}}/{{.ImageID}}", "{{json .}}"}

// driverBase holds what each driver needs to be created in a unit test
// without a network (UDP needs no listener; fluentd-async connects later;
// splunk does not check the connection).
func driverBase(t *testing.T, driver string) map[string]string {
	switch driver {
	case "syslog":
		return map[string]string{"syslog-address": "udp://127.0.0.1:9"}
	case "gelf":
		return map[string]string{"gelf-address": "udp://127.0.0.1:9"}
	case "fluentd":
		return map[string]string{"fluentd-address": "tcp://127.0.0.1:9", "fluentd-async": "true"}
	case "splunk":
		return map[string]string{"splunk-url": "http://127.0.0.1:9", "splunk-token": "t", "splunk-verify-connection": "false"}
	case "awslogs":
		return map[string]string{"awslogs-group": "g", "awslogs-region": "us-east-1"}
	case "loki":
		return map[string]string{"loki-url": "http://127.0.0.1:9/loki/api/v1/push"}
	}
	return map[string]string{}
}

// creatable says whether a driver can be created here without a sink.
func creatable(driver string) bool {
	switch driver {
	case "awslogs", "gcplogs":
		return false // they reach for the cloud at creation
	case "journald":
		_, err := os.Stat("/run/systemd/journal/socket")
		return err == nil
	}
	return true
}

// TestEveryDriverEveryIDEveryTag: with ids of any length and
// a tag that renders empty (no image name under containerd, no name), no
// driver may fall back to Docker's {{.ID}} (which slices the id to 12 and
// fails on a shorter one). Every combination validates, the tag the
// driver is handed renders without error to what the validation rendered,
// and every driver that can be created here is created.
func TestEveryDriverEveryIDEveryTag(t *testing.T) {
	for _, driver := range List() {
		_, hasTag := tagDefault[driver]
		for _, n := range idLengths {
			for _, named := range []bool{false, true} {
				for _, tag := range tagTemplates {
					if tag != "-" && !hasTag {
						continue
					}
					name := fmt.Sprintf("%s/id%d/named=%v/tag=%s", driver, n, named, tag)
					opts := driverBase(t, driver)
					if tag != "-" {
						opts["tag"] = tag
					}
					id := strings.Repeat("c", n)
					if driver == "json-file" || driver == "local" {
						opts["log-path"] = filepath.Join(t.TempDir(), "c.log")
					}
					c := &config.Config{Driver: driver, Opts: opts, Container: config.Container{ID: id, Daemon: "containerd"}}
					if named {
						c.Container.Name, c.Container.ImageName, c.Container.ImageID = "/web", "busybox", "sha256:0123456789abcdef"
					}
					o, err := config.ParseOptions(opts, driver, id)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					c.Options = o
					if err := Validate(c); err != nil {
						t.Errorf("%s: --validate: %v", name, err)
						continue
					}
					info := Info(c)
					if err := renderTag(driver, &info); err != nil {
						t.Errorf("%s: render: %v", name, err)
						continue
					}
					if driver == "journald" && len(info.ContainerID) < 12 {
						t.Errorf("%s: journald gets an id of %d characters", name, len(info.ContainerID))
					}
					if def, ok := tagDefault[driver]; ok && !(driver == "splunk" && tag == "") { // splunk: "" is no tag
						got, err := loggerutils.ParseLogTag(info, def)
						if err != nil {
							t.Errorf("%s: the driver's tag fails: %v", name, err)
						}
						if tag == "{{.ImageName}}" && !named && got != "" {
							t.Errorf("%s: an empty tag became %q", name, got)
						}
						if (tag == "-" || tag == "") && def == "{{.ID}}" && driver != "splunk" && got != id[:min(12, n)] {
							t.Errorf("%s: default tag %q, want %q", name, got, id[:min(12, n)])
						}
					}
					if !creatable(driver) {
						continue
					}
					create, err := Creator(driver)
					if err != nil {
						t.Fatal(err)
					}
					l, err := create(info)
					if err != nil {
						t.Errorf("%s: create: %v", name, err)
						continue
					}
					l.Close()
				}
			}
		}
	}
}

// TestValidateRendersAsRun: a tag that cannot render fails --validate
// with the same error the run gets, for every id length (a run no longer
// renders with another context than the validation did).
func TestValidateRendersAsRun(t *testing.T) {
	for _, n := range idLengths {
		id := strings.Repeat("d", n)
		for _, tag := range []string{"{{.Nope}}", "{{pad .ID 5000 0}}", "{{"} {
			opts := map[string]string{"syslog-address": "udp://127.0.0.1:9", "tag": tag}
			c := &config.Config{Driver: "syslog", Opts: opts, Container: config.Container{ID: id}}
			c.Options, _ = config.ParseOptions(opts, "syslog", id)
			verr := Validate(c)
			_, oerr := Open(c, func(error) {})
			if verr == nil || oerr == nil || !strings.Contains(verr.Error(), oerr.Error()) {
				t.Errorf("id %d, tag %s: validate %v, open %v", n, tag, verr, oerr)
			}
		}
	}
}

// TestUnknownOptionsDeterministic: with several unknown
// options the error names the first in sorted order, every time.
func TestUnknownOptionsDeterministic(t *testing.T) {
	for _, driver := range []string{"json-file", "local", "syslog", "gelf", "fluentd", "journald", "splunk", "awslogs", "gcplogs"} {
		opts := driverBase(t, driver)
		for _, k := range []string{"zz-bogus", "mm-bogus", "aa-bogus", "qq-bogus", "bb-bogus"} {
			opts[k] = "1"
		}
		if driver == "gelf" {
			opts["gelf-address"] = "udp://127.0.0.1:9"
		}
		want := ""
		for i := 0; i < 30; i++ {
			err := Validate(cfg(driver, opts))
			if err == nil {
				t.Fatalf("%s: accepted", driver)
			}
			if !strings.Contains(err.Error(), "aa-bogus") {
				t.Fatalf("%s: %v does not name the first unknown option, aa-bogus", driver, err)
			}
			if want == "" {
				want = err.Error()
			} else if err.Error() != want {
				t.Fatalf("%s: %q then %q", driver, want, err)
			}
		}
	}
}

// TestBadValuesDeterministic: Docker's gelf validator
// checks values while ranging over the options: with two bad values the
// error names the first, sorted, every time.
func TestBadValuesDeterministic(t *testing.T) {
	opts := map[string]string{"gelf-address": "udp://127.0.0.1:9", "gelf-compression-level": "99",
		"gelf-compression-type": "lzma", "gelf-tcp-max-reconnect": "1"}
	for i := 0; i < 30; i++ {
		err := Validate(cfg("gelf", opts))
		if err == nil || !strings.Contains(err.Error(), "gelf-compression-level") {
			t.Fatalf("run %d: %v", i, err)
		}
	}
}

// TestLogPathRefusedAtStart: what the file
// drivers could never write safely is refused by Validate (so at
// --validate and at start, exit 2) with one line naming it.
func TestLogPathRefusedAtStart(t *testing.T) {
	root := t.TempDir()
	fifo := filepath.Join(root, "fifo")
	syscall.Mkfifo(fifo, 0o600)
	victim := filepath.Join(root, "victim")
	os.WriteFile(victim, nil, 0o600)
	link := filepath.Join(root, "link.log")
	os.Symlink(victim, link)
	hard := filepath.Join(root, "hard.log")
	os.Link(victim, hard)
	realDir := filepath.Join(root, "real")
	os.Mkdir(realDir, 0o755)
	linkDir := filepath.Join(root, "linkdir")
	os.Symlink(realDir, linkDir)
	long := filepath.Join(root, strings.Repeat("l", 251))
	for _, c := range []struct {
		driver, path string
		opts         map[string]string
		want         string
	}{
		{"json-file", fifo, nil, "is a FIFO"},
		{"local", fifo, nil, "is a FIFO"},
		{"json-file", "/dev/full", nil, "is a device"},
		{"json-file", link, nil, "is a symbolic link"},
		{"json-file", hard, nil, "hard links"},
		{"json-file", root, nil, "is a directory"},
		{"json-file", filepath.Join(linkDir, "c.log"), nil, "its directory \"" + linkDir + "\" is a symbolic link"},
		{"json-file", long, map[string]string{"max-size": "1m", "max-file": "10", "compress": "true"}, "NAME_MAX"},
		{"local", long, nil, "NAME_MAX"}, // local keeps 5, compressed: .4.gz
	} {
		opts := map[string]string{"log-path": c.path}
		for k, v := range c.opts {
			opts[k] = v
		}
		err := Validate(cfg(c.driver, opts))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "log-path=") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s %s: %v, want %q", c.driver, c.path, err, c.want)
		}
	}
	c := cfg("syslog", map[string]string{"syslog-address": "udp://127.0.0.1:9", "stats-file": filepath.Join(linkDir, "s.prom")})
	if err := Validate(c); err == nil || !strings.Contains(err.Error(), "stats-file=") || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("stats-file in a linked directory: %v", err)
	}
	// A long name that leaves room for its rotations is fine.
	if err := Validate(cfg("json-file", map[string]string{"log-path": long})); err != nil {
		t.Errorf("one file kept: %v", err)
	}
}

var _ = logger.Info{}
