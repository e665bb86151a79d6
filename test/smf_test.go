package test

// Tests of smf/: the SMF manifest and method script that install
// dockerlogger on an illumos compute node. CI has no illumos, so the
// manifest is checked as XML against the real binary's options, and the
// method script runs for real under Linux sh with the illumos-only
// commands (svcprop, zoneadm, zonecfg, mount, and pgrep's -z zone option)
// replaced by small shell scripts on PATH that record their arguments and
// answer as those commands do. They are test doubles for the operating
// system, not for our code: the script's own logic, cp/mv/chmod, the
// binary's checks, and the signals to real dockerlogger processes all run
// for real.

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	smfDir      = "../smf"
	smfManifest = smfDir + "/dockerlogger.xml"
	smfScript   = smfDir + "/dockerlogger-setup.sh"
)

type smfBundle struct {
	XMLName  xml.Name     `xml:"service_bundle"`
	Type     string       `xml:"type,attr"`
	Name     string       `xml:"name,attr"`
	Services []smfService `xml:"service"`
}

type smfService struct {
	Name    string `xml:"name,attr"`
	Type    string `xml:"type,attr"`
	Version string `xml:"version,attr"`
	Default *struct {
		Enabled string `xml:"enabled,attr"`
	} `xml:"create_default_instance"`
	Deps []struct {
		Name     string `xml:"name,attr"`
		Grouping string `xml:"grouping,attr"`
		FMRIs    []struct {
			Value string `xml:"value,attr"`
		} `xml:"service_fmri"`
	} `xml:"dependency"`
	Methods []struct {
		Name    string `xml:"name,attr"`
		Type    string `xml:"type,attr"`
		Exec    string `xml:"exec,attr"`
		Timeout string `xml:"timeout_seconds,attr"`
	} `xml:"exec_method"`
	PGs []smfPG `xml:"property_group"`
}

type smfPG struct {
	Name     string `xml:"name,attr"`
	Type     string `xml:"type,attr"`
	Propvals []struct {
		Name  string `xml:"name,attr"`
		Type  string `xml:"type,attr"`
		Value string `xml:"value,attr"`
	} `xml:"propval"`
	Props []struct {
		Name   string `xml:"name,attr"`
		Type   string `xml:"type,attr"`
		Values []struct {
			Value string `xml:"value,attr"`
		} `xml:"astring_list>value_node"`
	} `xml:"property"`
}

// smfProp is one property of the manifest: name "pg/prop", type, values.
type smfProp struct {
	name, typ string
	values    []string
}

func (s *smfService) props() []smfProp {
	var ps []smfProp
	for _, pg := range s.PGs {
		for _, pv := range pg.Propvals {
			ps = append(ps, smfProp{pg.Name + "/" + pv.Name, pv.Type, []string{pv.Value}})
		}
		for _, p := range pg.Props {
			var vs []string
			for _, v := range p.Values {
				vs = append(vs, v.Value)
			}
			ps = append(ps, smfProp{pg.Name + "/" + p.Name, p.Type, vs})
		}
	}
	return ps
}

func (s *smfService) prop(t testing.TB, name string) string {
	t.Helper()
	for _, p := range s.props() {
		if p.name == name && len(p.values) == 1 {
			return p.values[0]
		}
	}
	t.Fatalf("manifest has no single-valued property %s", name)
	return ""
}

// smfOrder is the order of a service's children in
// service_bundle.dtd.1 (the subset this manifest may use).
var smfOrder = []string{"create_default_instance", "single_instance", "restarter", "dependency",
	"dependent", "method_context", "exec_method", "property_group", "instance", "stability", "template"}

// smfLoadManifest parses the manifest strictly, checks what encoding/xml does
// not (the DOCTYPE, "--" in comments, the DTD's child order) and returns
// its one service.
func smfLoadManifest(t *testing.T) *smfService {
	t.Helper()
	raw := smfRead(t, smfManifest)
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	var doctype string
	depth, inService := 0, false
	var children []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", smfManifest, err)
		}
		switch tok := tok.(type) {
		case xml.Directive:
			doctype = string(tok)
		case xml.Comment:
			if bytes.Contains(tok, []byte("--")) {
				t.Errorf("comment contains \"--\", which XML forbids: %q", tok)
			}
		case xml.StartElement:
			depth++
			if depth == 2 && tok.Name.Local == "service" {
				inService = true
			} else if depth == 3 && inService {
				children = append(children, tok.Name.Local)
			}
		case xml.EndElement:
			if depth == 2 {
				inService = false
			}
			depth--
		}
	}
	if want := `DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1"`; doctype != want {
		t.Errorf("doctype %q, want %q", doctype, want)
	}
	rank := map[string]int{}
	for i, n := range smfOrder {
		rank[n] = i
	}
	last := -1
	for _, c := range children {
		r, ok := rank[c]
		if !ok {
			t.Errorf("service child <%s> is not one this test knows from the DTD", c)
			continue
		}
		if r < last {
			t.Errorf("service child <%s> is out of the DTD's order %v (children: %v)", c, smfOrder, children)
		}
		last = r
	}
	var b smfBundle
	if err := xml.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	if b.Type != "manifest" || len(b.Services) != 1 {
		t.Fatalf("want one service in a manifest bundle, got type %q with %d services", b.Type, len(b.Services))
	}
	return &b.Services[0]
}

// TestSMFManifest checks the manifest's structure: the service, its
// dependency, a transient duration, and exec methods that run the method
// script the manifest installs, which exists in smf/.
func TestSMFManifest(t *testing.T) {
	s := smfLoadManifest(t)
	if s.Name != "smartdc/application/dockerlogger" || s.Type != "service" {
		t.Errorf("service %q type %q", s.Name, s.Type)
	}
	if s.Default == nil || s.Default.Enabled != "true" {
		t.Errorf("want an enabled default instance (svc:/smartdc/application/dockerlogger:default)")
	}
	var fsLocal bool
	for _, d := range s.Deps {
		for _, f := range d.FMRIs {
			fsLocal = fsLocal || (f.Value == "svc:/system/filesystem/local" && d.Grouping == "require_all")
		}
	}
	if !fsLocal {
		t.Errorf("no require_all dependency on svc:/system/filesystem/local")
	}
	if got := s.prop(t, "startd/duration"); got != "transient" {
		t.Errorf("startd/duration = %q, want transient", got)
	}
	method := s.prop(t, "install/method")
	if filepath.Base(method) != filepath.Base(smfScript) {
		t.Errorf("install/method %s is not smf/%s", method, filepath.Base(smfScript))
	}
	st, err := os.Stat(filepath.Join(smfDir, filepath.Base(method)))
	if err != nil {
		t.Fatalf("the method script is not in smf/: %v", err)
	}
	if st.Mode().Perm()&0o111 == 0 {
		t.Errorf("%s is not executable (mode %v)", smfScript, st.Mode())
	}
	got := map[string]string{}
	for _, m := range s.Methods {
		if m.Type != "method" || m.Timeout == "" {
			t.Errorf("exec_method %s: type %q timeout %q", m.Name, m.Type, m.Timeout)
		}
		got[m.Name] = m.Exec
	}
	for _, name := range []string{"start", "stop", "refresh"} {
		if want := method + " " + name; got[name] != want {
			t.Errorf("exec_method %s: exec %q, want %q", name, got[name], want)
		}
	}
	for _, name := range []string{"install/source", "install/target", "zones/mountpoint"} {
		if v := s.prop(t, name); !filepath.IsAbs(v) {
			t.Errorf("%s = %q, want an absolute path", name, v)
		}
	}
}

// TestSMFConfigOptions checks every property in the manifest's "config"
// group against the real binary: the name is one of dockerlogger's added
// log-opts for every driver, the value is its default (and one of its
// allowed values), and the binary's --validate accepts them all together.
func TestSMFConfigOptions(t *testing.T) {
	s := smfLoadManifest(t)
	out, errs, code := RunCLI(t, Env("x", nil), "--list-drivers", "--json")
	if code != 0 {
		t.Fatalf("--list-drivers --json: exit %d: %s", code, errs)
	}
	var drivers []struct {
		Name  string `json:"name"`
		Added []struct {
			Name    string   `json:"name"`
			Default string   `json:"default"`
			Values  []string `json:"values"`
		} `json:"added_options"`
	}
	if err := json.Unmarshal([]byte(out), &drivers); err != nil {
		t.Fatalf("--list-drivers --json: %v", err)
	}
	if len(drivers) == 0 {
		t.Fatal("--list-drivers --json lists no drivers")
	}
	config := map[string]string{}
	for _, p := range s.props() {
		name, ok := strings.CutPrefix(p.name, "config/")
		if !ok {
			continue
		}
		if p.typ != "astring" || len(p.values) != 1 {
			t.Errorf("%s: type %s with %d values, want one astring", p.name, p.typ, len(p.values))
			continue
		}
		config[name] = p.values[0]
	}
	if len(config) == 0 {
		t.Fatal("the manifest has no config properties")
	}
	for _, d := range drivers {
		for name, value := range config {
			found := false
			for _, o := range d.Added {
				if o.Name != name {
					continue
				}
				found = true
				if value != o.Default {
					t.Errorf("%s: config/%s = %q, binary's default %q", d.Name, name, value, o.Default)
				}
				if len(o.Values) > 0 && !smfContains(o.Values, value) {
					t.Errorf("%s: config/%s = %q, not one of %v", d.Name, name, value, o.Values)
				}
			}
			if !found {
				t.Errorf("config/%s is not an added log-opt of driver %s", name, d.Name)
			}
		}
	}
	for _, drv := range []string{"json-file", "local"} {
		if _, errs, code := RunCLI(t, Env("smf-validate", config), "--validate", drv); code != 0 {
			t.Errorf("--validate %s rejects the manifest's config: exit %d: %s", drv, code, errs)
		}
	}
}

func smfContains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// TestSMFScriptLint: the method script parses as sh and passes
// shellcheck for POSIX sh.
func TestSMFScriptLint(t *testing.T) {
	if out, err := exec.Command("sh", "-n", smfScript).CombinedOutput(); err != nil {
		t.Errorf("sh -n %s: %v\n%s", smfScript, err, out)
	}
	sc := needCmd(t, "shellcheck")
	if out, err := exec.Command(sc, "-s", "sh", smfScript).CombinedOutput(); err != nil {
		t.Errorf("shellcheck -s sh %s: %v\n%s", smfScript, err, out)
	}
}

// smfNode is a fake compute node for the method script: a root
// directory, the stubbed illumos commands, and the zones they report.
type smfNode struct {
	t                      *testing.T
	dir, stubs, calls      string
	source, target, script string
	mountpoint             string
	env                    []string
	zoneRoot               map[string]string // zone name -> zone root
}

// smfStubs are the illumos commands, as sh scripts. Each records its
// argv, one call per line, tab-separated, in $SMF_CALLS. svcprop answers
// from $SMF_STATE/props ("pg/name type value..." lines, svcprop's own
// format); mount -p prints $SMF_STATE/mnttab (vfstab format, as illumos
// mount -p does) and a lofs mount appends to it; pgrep drops illumos' -z
// zone list (Linux has no zones) and runs the real procps pgrep.
var smfStubs = map[string]string{
	"svcprop": `p=$2
if [ "${p#*/}" != "$p" ]; then
	awk -v p="$p" '$1 == p { for (i = 3; i <= NF; i++) printf "%s%s", $i, (i < NF ? " " : "\n") }' "$SMF_STATE/props"
else
	awk -v p="$p/" 'index($1, p) == 1' "$SMF_STATE/props"
fi`,
	"zoneadm": `[ "$1 $2" = "list -p" ] || exit 2
cat "$SMF_STATE/zoneadm"`,
	"zonecfg": `[ -f "$SMF_STATE/zonecfg.$2" ] && cat "$SMF_STATE/zonecfg.$2"
exit 0`,
	"mount": `if [ "$1" = -p ]; then cat "$SMF_STATE/mnttab"; exit 0; fi
[ "$1 $2 $3 $4" = "-F lofs -o ro" ] || exit 33
printf '%s - %s lofs - no ro\n' "$5" "$6" >> "$SMF_STATE/mnttab"`,
	"pgrep": `z=no
for a do
	shift
	if [ "$z" = yes ]; then z=done; continue; fi
	if [ "$a" = -z ]; then z=yes; continue; fi
	set -- "$@" "$a"
done
exec "$REAL_PGREP" "$@"`,
}

func newSMFNode(t *testing.T) *smfNode {
	t.Helper()
	realPgrep := needCmd(t, "pgrep")
	needCmd(t, "ps")
	s := smfLoadManifest(t)
	n := &smfNode{t: t, dir: t.TempDir(), zoneRoot: map[string]string{}}
	n.stubs = filepath.Join(n.dir, "stubs")
	n.calls = filepath.Join(n.dir, "calls")
	state := filepath.Join(n.dir, "state")
	for _, d := range []string{n.stubs, state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range smfStubs {
		script := "#!/bin/sh\n{ printf '%s' \"" + name + "\"; printf '\\t%s' \"$@\"; echo; } >> \"$SMF_CALLS\"\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(n.stubs, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A short, unique process name: pgrep -x then finds only this test's
	// loggers, not those of other tests running on the machine.
	name := fmt.Sprintf("dls%d", os.Getpid()%1000000)
	n.source = filepath.Join(n.dir, "opt/smartdc/docker/bin/dockerlogger")
	n.target = filepath.Join(n.dir, "opt/smartdc/docker/logger", name)
	n.mountpoint = s.prop(t, "zones/mountpoint")
	smfCopyFile(t, filepath.Join(bin, "dockerlogger"), n.source)
	var props strings.Builder
	for _, p := range s.props() {
		vals := p.values
		switch p.name {
		case "install/source":
			vals = []string{n.source}
		case "install/target":
			vals = []string{n.target}
		}
		fmt.Fprintf(&props, "%s %s %s\n", p.name, p.typ, strings.Join(vals, " "))
	}
	smfWriteFile(t, filepath.Join(state, "props"), props.String())

	// Zones: z1 and z7 are running docker zones (lx, joyent-minimal);
	// z2 is not docker, z3 not running, z4 of a brand not listed, z5
	// already has the mount, z6's tenant made the mount point's parent a
	// symlink out of the zone.
	var zl, mnttab strings.Builder
	zone := func(id int, name, zstate, brand, docker string) string {
		path := filepath.Join(n.dir, "zones", name)
		root := filepath.Join(path, "root")
		if err := os.MkdirAll(filepath.Join(root, "var"), 0o755); err != nil {
			t.Fatal(err)
		}
		n.zoneRoot[name] = root
		fmt.Fprintf(&zl, "%d:%s:%s:%s:uuid-%s:%s:excl:R:\n", id, name, zstate, path, name, brand)
		if docker != "" {
			smfWriteFile(t, filepath.Join(state, "zonecfg."+name), "attr:\n\tname: docker\n\ttype: string\n\tvalue: "+docker+"\n")
		}
		return root
	}
	fmt.Fprintf(&zl, "0:global:running:/::ipkg:shared:R:\n")
	zone(1, "z1", "running", "lx", "true")
	zone(2, "z2", "running", "joyent", "false")
	zone(3, "z3", "installed", "lx", "true")
	zone(4, "z4", "running", "bhyve", "true")
	r5 := zone(5, "z5", "running", "joyent", "true")
	fmt.Fprintf(&mnttab, "/somewhere - %s lofs - no ro\n", r5+n.mountpoint)
	r6 := zone(6, "z6", "running", "lx", "true")
	if err := os.Symlink(filepath.Join(n.dir, "outside"), filepath.Join(r6, "var", "log")); err != nil {
		t.Fatal(err)
	}
	zone(7, "z7", "running", "joyent-minimal", "true")
	smfWriteFile(t, filepath.Join(state, "zoneadm"), zl.String())
	smfWriteFile(t, filepath.Join(state, "mnttab"), mnttab.String())
	smfWriteFile(t, n.calls, "")

	n.script, _ = filepath.Abs(smfScript)
	n.env = []string{
		"PATH=" + n.stubs + ":" + os.Getenv("PATH"),
		"SMF_CALLS=" + n.calls, "SMF_STATE=" + state, "REAL_PGREP=" + realPgrep,
		"SMF_FMRI=svc:/smartdc/application/dockerlogger:default",
	}
	return n
}

func smfCopyFile(t testing.TB, from, to string) {
	t.Helper()
	b := smfRead(t, from)
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func smfWriteFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func smfRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// run runs the method script with one argument and returns its output
// (stdout and stderr: SMF puts both in the service log) and exit code.
func (n *smfNode) run(arg string) (string, int) {
	n.t.Helper()
	cmd := exec.Command("sh", n.script, arg)
	cmd.Env = n.env
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		n.t.Fatalf("run %s %s: %v", n.script, arg, err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// takeCalls returns the calls of the stubbed commands since the last
// take, as tab-separated argv lines, leaving out "mount -p" (a query),
// and forgets them.
func (n *smfNode) takeCalls() []string {
	n.t.Helper()
	b := smfRead(n.t, n.calls)
	smfWriteFile(n.t, n.calls, "")
	var got []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && l != "mount\t-p" {
			got = append(got, l)
		}
	}
	return got
}

// smfOnly returns the calls of one command.
func smfOnly(calls []string, cmd string) []string {
	var got []string
	for _, c := range calls {
		if strings.HasPrefix(c, cmd+"\t") {
			got = append(got, c)
		}
	}
	return got
}

// TestSMFMethodInstall runs the method script's start, a second start,
// stop, and a refresh whose new binary the config rejects.
func TestSMFMethodInstall(t *testing.T) {
	n := newSMFNode(t)
	out, code := n.run("start")
	if code != 0 {
		t.Fatalf("start: exit %d:\n%s", code, out)
	}
	src := smfRead(t, n.source)
	if got, err := os.ReadFile(n.target); err != nil || !bytes.Equal(got, src) {
		t.Fatalf("target %s is not a copy of the source (err %v)", n.target, err)
	}
	st, _ := os.Stat(n.target)
	if st.Mode().Perm() != 0o755 {
		t.Errorf("target mode %v, want 0755", st.Mode().Perm())
	}
	if ents, _ := os.ReadDir(filepath.Dir(n.target)); len(ents) != 1 {
		t.Errorf("target directory holds %d entries, want only the binary (no temp file left)", len(ents))
	}
	// The script ran the new binary: its version line, driver list and
	// config check are in the service log.
	if !strings.Contains(out, "dockerlogger dev commit") || !strings.Contains(out, "json-file: configuration ok") {
		t.Errorf("start did not run version and --validate; output:\n%s", out)
	}
	if !strings.Contains(out, "drivers: ") || !strings.Contains(out, " json-file ") {
		t.Errorf("start did not list the drivers; output:\n%s", out)
	}
	dir := filepath.Dir(n.target)
	want := []string{
		"mount\t-F\tlofs\t-o\tro\t" + dir + "\t" + n.zoneRoot["z1"] + n.mountpoint,
		"mount\t-F\tlofs\t-o\tro\t" + dir + "\t" + n.zoneRoot["z7"] + n.mountpoint,
	}
	calls := n.takeCalls()
	mounts := smfOnly(calls, "mount")
	if p := smfOnly(calls, "pgrep"); len(p) != 1 {
		t.Errorf("a first install with no loggers running: want one pgrep finding none, got %q", p)
	}
	if strings.Join(mounts, "\n") != strings.Join(want, "\n") {
		t.Errorf("mounts:\n%s\nwant:\n%s\noutput:\n%s", strings.Join(mounts, "\n"), strings.Join(want, "\n"), out)
	}
	for _, z := range []string{"z1", "z7"} {
		if st, err := os.Lstat(n.zoneRoot[z] + n.mountpoint); err != nil || !st.IsDir() {
			t.Errorf("zone %s: mount point not created as a directory: %v", z, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(n.dir, "outside")); !os.IsNotExist(err) {
		t.Errorf("the script followed zone z6's symlink out of the zone (err %v)", err)
	}
	if !strings.Contains(out, "is a symbolic link; not following it") {
		t.Errorf("no word about z6's symlink; output:\n%s", out)
	}

	// Again: nothing to copy, nothing to mount, nobody to signal.
	st1, _ := os.Stat(n.target)
	out, code = n.run("start")
	if code != 0 || !strings.Contains(out, "is up to date") {
		t.Fatalf("second start: exit %d:\n%s", code, out)
	}
	if st2, _ := os.Stat(n.target); !os.SameFile(st1, st2) {
		t.Errorf("second start replaced an unchanged target")
	}
	calls = n.takeCalls()
	if m, p := smfOnly(calls, "mount"), smfOnly(calls, "pgrep"); len(m)+len(p) != 0 {
		t.Errorf("second start mounted %v, looked for loggers %v", m, p)
	}

	out, code = n.run("stop")
	if code != 0 {
		t.Errorf("stop: exit %d:\n%s", code, out)
	}
	if calls := n.takeCalls(); len(calls) != 0 {
		t.Errorf("stop called %v", calls)
	}
	if !bytes.Equal(smfRead(t, n.target), src) {
		t.Errorf("stop changed the installed binary")
	}

	// A new binary that rejects the config must not replace the working
	// one, and the error names the option.
	props := filepath.Join(n.dir, "state", "props")
	smfWriteFile(t, props, string(smfRead(t, props))+"config/mode astring bogus\n")
	smfAppend(t, n.source, "smf-test: a different binary\n")
	out, code = n.run("refresh")
	if code == 0 || !strings.Contains(out, `log-opt mode="bogus"`) {
		t.Errorf("refresh with a bad config: exit %d (want non-zero, naming the option):\n%s", code, out)
	}
	if !bytes.Equal(smfRead(t, n.target), src) {
		t.Errorf("a rejected binary replaced the installed one")
	}
	if ents, _ := os.ReadDir(filepath.Dir(n.target)); len(ents) != 1 {
		t.Errorf("a failed refresh left %d entries in the target directory", len(ents))
	}
}

func smfAppend(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// smfLogger is a dockerlogger started from a given path, as dockerinit
// starts the installed one in a zone.
type smfLogger struct {
	*Logger
	logPath string
}

func smfStartLogger(t *testing.T, exe, logPath string) *smfLogger {
	t.Helper()
	l := StartLoggerAt(t, exe, Env("smf-upgrade", map[string]string{"log-path": logPath}), "json-file")
	l.Stderr.Close() // the container's stderr: nothing to say here
	if err := l.WaitReady(30 * time.Second); err != nil {
		t.Fatalf("logger %s not ready: %v; stderr: %s", exe, err, l.Errors())
	}
	return &smfLogger{Logger: l, logPath: logPath}
}

// smfChildren returns the pids of pid's children (real procps pgrep -P:
// a Go process forks from any of its threads, so no single
// /proc/PID/task/TID/children file lists them all).
func smfChildren(pid int) []string {
	out, _ := exec.Command("pgrep", "-P", strconv.Itoa(pid)).Output()
	return strings.Fields(string(out))
}

// worker returns the pid of the logger's only child, its worker.
func (l *smfLogger) worker(t *testing.T) int {
	t.Helper()
	var pid int
	Eventually(t, 10*time.Second, "one worker under the supervisor", func() bool {
		f := smfChildren(l.Cmd.Process.Pid)
		if len(f) != 1 {
			return false
		}
		pid, _ = strconv.Atoi(f[0])
		return true
	})
	return pid
}

// TestSMFLiveUpgrade runs "refresh" after a new binary was dropped at
// install/source while a logger started from the installed file is
// running, with real processes and real signals: the script must SIGHUP
// that supervisor (not its worker), which hands over to a worker started
// from the new file, losing no line; a logger started from another file
// must not be signalled.
func TestSMFLiveUpgrade(t *testing.T) {
	n := newSMFNode(t)
	if out, code := n.run("start"); code != 0 {
		t.Fatalf("start: exit %d:\n%s", code, out)
	}
	n.takeCalls()

	up := smfStartLogger(t, n.target, filepath.Join(n.dir, "up.log"))
	other := smfStartLogger(t, filepath.Join(bin, "dockerlogger"), filepath.Join(n.dir, "other.log"))
	upWorker, otherWorker := up.worker(t), other.worker(t)
	before, after := Lines("before", 200), Lines("after", 200)
	WriteLines(t, up.Stdout, before)
	WriteLines(t, other.Stdout, before)

	// The new binary: the same program with bytes appended, so the
	// running worker's executable tells old from new by its size.
	smfAppend(t, n.source, "smf-test: the upgraded binary\n")
	newSize := int64(len(smfRead(t, n.source)))
	old, err := os.Open(n.target)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldBytes := smfRead(t, n.target)

	out, code := n.run("refresh")
	if code != 0 {
		t.Fatalf("refresh: exit %d:\n%s", code, out)
	}
	// Atomic: renamed over, so the file a running process holds is
	// untouched, and the path names a new file.
	held, _ := io.ReadAll(old)
	if !bytes.Equal(held, oldBytes) {
		t.Errorf("refresh wrote into the installed file in place (the old file changed)")
	}
	if got := smfRead(t, n.target); int64(len(got)) != newSize {
		t.Errorf("target has %d bytes after refresh, want the new binary's %d", len(got), newSize)
	}
	if st, _ := os.Stat(n.target); st.Mode().Perm() != 0o755 {
		t.Errorf("target mode %v after refresh, want 0755", st.Mode().Perm())
	}
	if !strings.Contains(out, fmt.Sprintf("supervisors: %d\n", up.Cmd.Process.Pid)) {
		t.Errorf("refresh did not name supervisor %d, and only it, as signalled:\n%s", up.Cmd.Process.Pid, out)
	}
	pg := smfOnly(n.takeCalls(), "pgrep")
	if len(pg) == 0 || !strings.HasPrefix(pg[0], "pgrep\t-z\tz1,z5,z6,z7\t-x\t"+filepath.Base(n.target)) {
		t.Errorf("pgrep not scoped to the docker zones and the binary's name: %q", pg)
	}

	// The supervisor started a new worker from the new file.
	Eventually(t, 15*time.Second, "a new worker from the new binary", func() bool {
		f := smfChildren(up.Cmd.Process.Pid)
		if len(f) != 1 || f[0] == strconv.Itoa(upWorker) {
			return false
		}
		st, err := os.Stat("/proc/" + f[0] + "/exe")
		return err == nil && st.Size() == newSize
	})
	if err := syscall.Kill(upWorker, 0); err == nil {
		t.Errorf("the old worker %d still runs", upWorker)
	}
	if w := other.worker(t); w != otherWorker {
		t.Errorf("the logger started from another file was upgraded too (worker %d -> %d)", otherWorker, w)
	}

	WriteLines(t, up.Stdout, after)
	WriteLines(t, other.Stdout, after)
	want := append(append([]string(nil), before...), after...)
	for _, l := range []*smfLogger{up, other} {
		l.Stdout.Close()
		select {
		case <-l.Done():
		case <-time.After(20 * time.Second):
			t.Fatalf("logger did not exit; stderr: %s", l.Errors())
		}
		if c := l.Cmd.ProcessState.ExitCode(); c != 0 {
			t.Errorf("logger exit %d; stderr: %s", c, l.Errors())
		}
		if got := smfJSONLines(t, l.logPath); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: %d lines delivered, want the %d written, once each, in order; stderr: %s",
				l.logPath, len(got), len(want), l.Errors())
		}
		if st := parseStats(t, l.Errors()); st["restarts"] != "0" {
			t.Errorf("%s: restarts=%s, want 0 (a handover is not a crash)", l.logPath, st["restarts"])
		}
	}
}

// smfJSONLines reads the "log" field of every record of a json-file log,
// without its newline.
func smfJSONLines(t *testing.T, path string) []string {
	t.Helper()
	var lines []string
	for _, rec := range strings.Split(strings.TrimSpace(string(smfRead(t, path))), "\n") {
		var m struct {
			Log string `json:"log"`
		}
		if err := json.Unmarshal([]byte(rec), &m); err != nil {
			t.Fatalf("%s: bad record %q: %v", path, rec, err)
		}
		lines = append(lines, strings.TrimSuffix(m.Log, "\n"))
	}
	return lines
}
