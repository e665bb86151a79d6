// Package dockerlogger_test checks the layering that each package's doc
// comment promises ("It must never import ..."): data flows one way,
// inputs → reader → mode → driver, and the supervisor sits outside it.
package dockerlogger_test

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/joyent/dockerlogger/"

// mustNot lists, per package (relative to the module), what its doc
// comment says it must never import, directly or through another package.
// "*" stands for every package of the module but internal/ helpers.
var mustNot = map[string][]string{
	"supervisor":  {"drivers", "reader", "mode", "ring", "spool", "filelog", "worker"},
	"config":      {"drivers", "reader", "mode", "supervisor", "worker"},
	"zfd":         {"drivers", "reader", "mode", "supervisor", "worker"},
	"pipepeek":    {"drivers", "reader", "mode", "supervisor", "worker"},
	"console":     {"drivers", "reader", "mode", "supervisor", "worker", "pipepeek"},
	"filelog":     {"reader", "mode", "supervisor", "drivers", "worker"},
	"earlysignal": {"*"},
	"safedir":     {"*"},
	"protocol":    {"*"},
	"backoff":     {"*"},
	"worker":      {"supervisor", "cmd/dockerlogger"},
	"ring":        {"drivers", "reader", "mode", "worker", "supervisor"},
	"reader":      {"drivers", "mode", "supervisor", "worker"},
	"spool":       {"drivers", "reader", "mode", "worker", "supervisor"},
	"diag":        {"config", "drivers", "reader", "mode", "ring", "spool", "filelog", "supervisor", "worker", "zfd"},
	"drivers":     {"reader", "mode", "supervisor", "worker", "github.com/docker/docker/daemon/logger/splunk"},
	"logcache":    {"drivers", "mode", "supervisor", "worker"},
	"readback":    {"drivers", "reader", "mode", "supervisor", "worker", "filelog"},

	"drivers/capability": {"drivers", "drivers/fluentd", "reader", "mode", "supervisor", "worker", "config"},
	"drivers/fluentd":    {"drivers", "reader", "mode", "supervisor", "worker"},
	"drivers/gcplogs":    {"drivers", "reader", "mode", "supervisor", "worker"},
	"drivers/logopt":     {"*"},
	"drivers/httppush":   {"drivers", "drivers/fluentd", "drivers/gcplogs", "drivers/otlp", "drivers/loki", "drivers/splunk", "reader", "mode", "supervisor", "worker"},
	"drivers/otlp":       {"drivers", "reader", "mode", "supervisor", "worker"},
	"drivers/loki":       {"drivers", "reader", "mode", "supervisor", "worker"},
	"drivers/splunk":     {"drivers", "reader", "mode", "supervisor", "worker"},
	"internal/sink/loki": {"*"},
	"internal/otelcol":   {"*"},
	"relp":               {"reader", "mode", "worker", "github.com/docker/docker"},
	"mode":               {"worker", "supervisor"},
	"faults":             {"*"},
	"soak":               {"*"},

	"internal/sink/cloudwatch":   {"*"},
	"internal/sink/hec":          {"*"},
	"internal/sink/cloudlogging": {"*"},
	"internal/sink/forward":      {"*"},
	"internal/sink/store":        {"*"},
	"internal/rsyslogd":          {"*"},
	"internal/logproc":           {"*"},
	"internal/measure":           {"*"},
	"bench/cmd/dockercopier":     {"drivers"},
	"bench/cmd/readback":         {"drivers"},
	"bench":                      {"drivers"},
	"internal/leakcheck":         {"*"},
}

func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := map[string]bool{}
	for {
		var p struct {
			ImportPath string
			Dir        string
			GoFiles    []string
			Deps       []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(p.ImportPath, module)
		rules, ok := mustNot[rel]
		if !ok {
			if promises(t, p.Dir, p.GoFiles) {
				t.Errorf("package %s says what it must never import, but has no row in mustNot", rel)
			}
			continue
		}
		seen[rel] = true
		for _, dep := range p.Deps {
			for _, bad := range rules {
				switch {
				case bad == "*":
					if strings.HasPrefix(dep, module) && !strings.HasPrefix(dep, module+"internal/") {
						t.Errorf("%s imports %s: it must never import another package of this module", rel, dep)
					}
				case strings.Contains(bad, "."):
					if dep == bad || strings.HasPrefix(dep, bad+"/") {
						t.Errorf("%s imports %s, which its doc comment rules out", rel, dep)
					}
				case dep == module+bad:
					t.Errorf("%s imports %s, which its doc comment rules out", rel, dep)
				}
			}
		}
	}
	for rel := range mustNot {
		if !seen[rel] && rel != "soak" {
			t.Errorf("package %s is in the layering table but not in the module", rel)
		}
	}
}

// promises reports whether a package's files say what it must never
// import: then the table must say it too.
func promises(t *testing.T, dir string, files []string) bool {
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "must never import") {
			return true
		}
	}
	return false
}
