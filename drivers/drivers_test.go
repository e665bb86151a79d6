package drivers

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/config"
	"github.com/joyent/dockerlogger/drivers/fluentd"
)

// plausible values for options whose Docker default is empty or computed.
var plausible = map[string]string{
	"tag": "{{.Name}}", "labels": "a,b", "labels-regex": "^a", "env": "A,B", "env-regex": "^A",
	"syslog-address": "udp://127.0.0.1:514", "syslog-tls-ca-cert": "/ca.pem",
	"syslog-tls-cert": "/cert.pem", "syslog-tls-key": "/key.pem",
	"gelf-address":   "udp://127.0.0.1:12201",
	"awslogs-region": "us-east-1", "awslogs-endpoint": "https://logs.example", "awslogs-group": "g",
	"awslogs-stream": "s", "awslogs-datetime-format": "%Y-%m-%d", "awslogs-multiline-pattern": "^x",
	"awslogs-credentials-endpoint": "/creds", "awslogs-format": "json/emf",
	"gcp-project": "p", "gcp-meta-zone": "z", "gcp-meta-name": "n", "gcp-meta-id": "i",
}

// base is what a driver's validator requires besides the option tested.
func base(driver, opt string) map[string]string {
	switch driver {
	case "awslogs":
		return map[string]string{"awslogs-group": "g"}
	case "gelf":
		if strings.HasPrefix(opt, "gelf-tcp-") {
			return map[string]string{"gelf-address": "tcp://127.0.0.1:12201"}
		}
		return map[string]string{"gelf-address": "udp://127.0.0.1:12201"}
	}
	return map[string]string{}
}

// TestOptionNamesAcceptedByDocker: every option the table (and so
// --list-drivers --json) claims is accepted by Docker's own validator for
// that driver, with its listed default or a plausible value.
func TestOptionNamesAcceptedByDocker(t *testing.T) {
	for driver, opts := range driverOptions {
		for _, o := range opts {
			if ours(driver, o.Name) || ownValidator(driver) {
				continue // checked by our own validator's tests
			}
			cfg := base(driver, o.Name)
			// A plausible value first: some defaults need the host (the
			// syslog validator stats /dev/log).
			v, ok := plausible[o.Name]
			if !ok {
				v = o.Default
			}
			if v == "" {
				t.Errorf("%s %s: no plausible value in the test", driver, o.Name)
				continue
			}
			cfg[o.Name] = v
			if err := logger.ValidateLogOpts(driver, cfg); err != nil {
				t.Errorf("%s: Docker's validator rejects %s=%q: %v", driver, o.Name, v, err)
			}
		}
	}
}

// dockerValidatorKeys reads the option names Docker's validators accept
// from the source of github.com/docker/docker in the module cache: the case
// labels of the switch on the option key in each driver's ValidateLogOpt,
// and local's LogOptKeys map. Parsing the source, rather than copying a
// list, is what lets this test catch an option Docker adds.
func dockerValidatorKeys(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/docker/docker").Output()
	if err != nil {
		t.Fatalf("find github.com/docker/docker in the module cache: %v", err)
	}
	root := filepath.Join(strings.TrimSpace(string(out)), "daemon", "logger")
	files := map[string]string{
		"json-file": "jsonfilelog/jsonfilelog.go",
		"local":     "local/local.go",
		"syslog":    "syslog/syslog.go",
		"fluentd":   "fluentd/fluentd.go",
		"gelf":      "gelf/gelf.go",
		"journald":  "journald/journald.go",
		"splunk":    "splunk/splunk.go", // replaced by drivers/splunk, which keeps its option names
		"awslogs":   "awslogs/cloudwatchlogs.go",
		"gcplogs":   "gcplogs/gcplogging.go",
	}
	keys := map[string][]string{}
	for driver, file := range files {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, filepath.Join(root, file), nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", file, err)
		}
		consts := map[string]string{}
		ast.Inspect(f, func(n ast.Node) bool {
			if vs, ok := n.(*ast.ValueSpec); ok {
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if bl, ok := vs.Values[i].(*ast.BasicLit); ok && bl.Kind == token.STRING {
							consts[name.Name], _ = strconv.Unquote(bl.Value)
						}
					}
				}
			}
			return true
		})
		str := func(e ast.Expr) (string, bool) {
			switch e := e.(type) {
			case *ast.BasicLit:
				s, err := strconv.Unquote(e.Value)
				return s, err == nil
			case *ast.Ident:
				s, ok := consts[e.Name]
				return s, ok
			}
			return "", false
		}
		set := map[string]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				if !strings.HasPrefix(strings.ToLower(n.Name.Name), "validatelogopt") {
					return false
				}
			case *ast.SwitchStmt:
				if id, ok := n.Tag.(*ast.Ident); !ok || (id.Name != "key" && id.Name != "k") {
					return true
				}
				for _, s := range n.Body.List {
					for _, e := range s.(*ast.CaseClause).List {
						if v, ok := str(e); ok {
							set[v] = true
						} else {
							t.Errorf("%s: cannot resolve case %#v", file, e)
						}
					}
				}
			case *ast.ValueSpec: // local's LogOptKeys
				if len(n.Names) == 1 && n.Names[0].Name == "LogOptKeys" {
					for _, el := range n.Values[0].(*ast.CompositeLit).Elts {
						if v, ok := str(el.(*ast.KeyValueExpr).Key); ok {
							set[v] = true
						}
					}
				}
			}
			return true
		})
		if len(set) == 0 {
			t.Errorf("%s: found no option names in %s", driver, file)
		}
		for k := range set {
			keys[driver] = append(keys[driver], k)
		}
		sort.Strings(keys[driver])
	}
	return keys
}

// ours reports whether a driver's option is one dockerlogger adds to
// Docker's (fluentd's TLS files), which Docker's validator does not know.
func ours(driver, name string) bool {
	return driver == "fluentd" && slices.Contains(fluentd.TLSKeys, name) || driver == "otlp" || driver == "loki"
}

// ownValidator reports whether the validator registered for a driver is
// our own package's, not Docker's. Splunk's is, though its option names
// are Docker's: TestOptionTableComplete still holds them to Docker's
// source, and drivers/splunk's tests check each value.
func ownValidator(driver string) bool {
	return driver == "otlp" || driver == "loki" || driver == "splunk"
}

// TestOptionTableComplete: the table lists exactly the options Docker's
// validators accept, no more and no fewer, besides the options we add.
func TestOptionTableComplete(t *testing.T) {
	docker := dockerValidatorKeys(t)
	for driver, want := range docker {
		var got []string
		for _, o := range driverOptions[driver] {
			if !ours(driver, o.Name) {
				got = append(got, o.Name)
			}
		}
		sort.Strings(got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: table lists %v\nDocker's validator accepts %v", driver, got, want)
		}
	}
}

func TestList(t *testing.T) {
	got := List()
	if !sort.StringsAreSorted(got) {
		t.Errorf("List not sorted: %v", got)
	}
	if runtime.GOOS != "linux" {
		t.Skip("the expected set is Linux's")
	}
	want := []string{"awslogs", "fluentd", "gcplogs", "gelf", "journald", "json-file", "local", "loki", "none", "otlp", "splunk", "syslog"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	// Every driver has an entry in the option table, and the table has no
	// driver this binary lacks.
	for _, d := range got {
		if _, ok := driverOptions[d]; !ok {
			t.Errorf("driver %s has no option table entry", d)
		}
	}
	for d := range driverOptions {
		if !Registered(d) {
			t.Errorf("option table lists %s, which is not registered", d)
		}
	}
}

func TestDescribe(t *testing.T) {
	ds := Describe()
	if len(ds) != len(List()) {
		t.Fatalf("Describe has %d drivers, List %d", len(ds), len(List()))
	}
	for _, d := range ds {
		if !sort.SliceIsSorted(d.Options, func(i, j int) bool { return d.Options[i].Name < d.Options[j].Name }) {
			t.Errorf("%s options not sorted", d.Name)
		}
		if len(d.Options) != len(driverOptions[d.Name]) {
			t.Errorf("%s: %d options described, table has %d", d.Name, len(d.Options), len(driverOptions[d.Name]))
		}
		if len(d.Added) != len(config.Added) {
			t.Errorf("%s: added options missing", d.Name)
		}
	}
}

func cfg(driver string, opts map[string]string) *config.Config {
	c := &config.Config{Driver: driver, Opts: opts, Container: config.Container{ID: "cid"}}
	o, err := config.ParseOptions(opts, driver, "cid")
	if err != nil {
		panic(err)
	}
	c.Options = o
	return c
}

func TestValidate(t *testing.T) {
	for _, name := range []string{"nosuch", "", "JSON-FILE", "logentries"} {
		err := Validate(cfg(name, map[string]string{}))
		if !errors.Is(err, ErrUnknownDriver) {
			t.Errorf("driver %q: %v, want ErrUnknownDriver", name, err)
		} else if !strings.Contains(err.Error(), strconv.Quote(name)) || !strings.Contains(err.Error(), "json-file") {
			t.Errorf("driver %q: error %q should name it and list the drivers", name, err)
		}
		if _, err := Creator(name); !errors.Is(err, ErrUnknownDriver) {
			t.Errorf("Creator(%q) = %v", name, err)
		}
	}
	good := []struct {
		driver string
		opts   map[string]string
	}{
		{"json-file", map[string]string{"max-size": "1k", "max-file": "3", "compress": "true", "mode": "non-blocking", "max-buffer-size": "2m"}},
		{"json-file", map[string]string{"mode": "spool", "spool-sync": "always", "line-max": "1k", "close-timeout": "1s"}},
		{"local", map[string]string{}},
		{"none", map[string]string{"mode": "non-blocking"}},
		{"none", map[string]string{"mode": "spool", "spool-dir": "/var/spool/x", "spool-max-size": "1m", "line-max": "1000k"}},
		{"syslog", map[string]string{"syslog-address": "tcp://127.0.0.1:514", "syslog-format": "rfc5424micro"}},
		{"gelf", map[string]string{"gelf-address": "udp://127.0.0.1:12201"}},
	}
	for _, g := range good {
		if err := Validate(cfg(g.driver, g.opts)); err != nil {
			t.Errorf("%s %v: %v", g.driver, g.opts, err)
		}
	}
	bad := []struct {
		driver string
		opts   map[string]string
		name   string
	}{
		{"json-file", map[string]string{"syslog-address": "udp://x:1"}, "syslog-address"},
		{"local", map[string]string{"tag": "x"}, "tag"},
		{"syslog", map[string]string{"syslog-address": "ftp://x"}, "ftp"},
		{"syslog", map[string]string{"syslog-format": "rfc9999"}, "syslog format"}, // Docker's words
		{"gelf", map[string]string{}, "gelf-address"},
		{"awslogs", map[string]string{}, "awslogs-group"},
		{"json-file", map[string]string{"max-size": "huge"}, "max-size"},
		{"local", map[string]string{"max-file": "1"}, "compress"},
		// A line the spool could never hold, whatever buffer-full says.
		{"none", map[string]string{"mode": "spool", "spool-dir": "/var/spool/x", "spool-max-size": "1m", "line-max": "1m"}, "line-max"},
	}
	for _, b := range bad {
		err := Validate(cfg(b.driver, b.opts))
		if err == nil {
			t.Errorf("%s %v: accepted", b.driver, b.opts)
			continue
		}
		if !strings.Contains(err.Error(), b.name) {
			t.Errorf("%s %v: error %q does not name %s", b.driver, b.opts, err, b.name)
		}
		if strings.HasPrefix(err.Error(), "logger: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s %v: error %q is not one clean line", b.driver, b.opts, err)
		}
	}
}

func TestValidateFileOpts(t *testing.T) {
	for _, c := range []struct {
		driver string
		opts   map[string]string
		bad    string // "" for accepted, else a word the error must contain
		docker string // if set: Docker rejects it only when the driver is created; a known gap
	}{
		{"json-file", map[string]string{}, "", ""},
		{"json-file", map[string]string{"max-size": "10m", "max-file": "3", "compress": "true"}, "", ""},
		{"json-file", map[string]string{"max-size": "1k"}, "", ""},
		{"json-file", map[string]string{"max-size": "0"}, "max-size", ""},
		{"json-file", map[string]string{"max-size": "-1"}, "max-size", ""},
		{"json-file", map[string]string{"max-size": "ten"}, "max-size", ""},
		{"json-file", map[string]string{"max-file": "0"}, "max-file", ""},
		{"json-file", map[string]string{"max-file": "x"}, "max-file", ""},
		{"json-file", map[string]string{"compress": "yes"}, "compress", ""},
		// Docker's json-file New: "compress cannot be true when max-file is
		// less than 2 or max-size is not set".
		{"json-file", map[string]string{"compress": "true", "max-file": "3"}, "compress", "json-file compress without max-size"},
		{"json-file", map[string]string{"compress": "true", "max-size": "1m"}, "compress", "json-file compress with max-file 1"},
		{"local", map[string]string{}, "", ""},
		{"local", map[string]string{"max-file": "1", "compress": "false"}, "", ""},
		{"local", map[string]string{"max-file": "1"}, "compress", ""},
		{"local", map[string]string{"max-file": "2", "max-size": "1k"}, "", ""},
		{"local", map[string]string{"compress": "maybe"}, "compress", ""},
	} {
		t.Run(c.driver+"_"+strings.Join(sortedPairs(c.opts), "_"), func(t *testing.T) {
			if c.docker != "" {
			}
			err := validateFileOpts(c.driver, c.opts)
			switch {
			case c.bad == "" && err != nil:
				t.Errorf("rejected: %v", err)
			case c.bad != "" && err == nil:
				t.Errorf("accepted")
			case c.bad != "" && !strings.Contains(err.Error(), c.bad):
				t.Errorf("error %q does not name %s", err, c.bad)
			}
			// What we accept, Docker's driver must be able to create.
			if err == nil {
				l, cerr := newFileDriver(t, c.driver, c.opts)
				if cerr != nil {
					t.Errorf("validateFileOpts accepts it but Docker's %s driver refuses: %v", c.driver, cerr)
				} else {
					l.Close()
				}
			}
		})
	}
}

func newFileDriver(t *testing.T, driver string, opts map[string]string) (logger.Logger, error) {
	create, err := Creator(driver)
	if err != nil {
		return nil, err
	}
	return create(logger.Info{Config: opts, ContainerID: "cid", LogPath: filepath.Join(t.TempDir(), "x.log")})
}

func sortedPairs(m map[string]string) []string {
	var s []string
	for _, k := range config.Sorted(m) {
		s = append(s, k+"="+m[k])
	}
	return s
}
