package test

// End-to-end tests of the spool directory's safety: the
// logger runs as root inside every container, often on a directory the
// container can write. A spool-dir that is a link, that another user
// owns, that group or others may write, or that holds a link in the place
// of one of the spool's files is refused before anything is read: exit 2
// (as for any bad configuration), one line naming the directory, from the
// logger and from --validate, and the link's target is untouched.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// spoolRefused runs the logger and --validate on spool-dir dir and checks
// that both refuse it: exit 2, one line naming dir and saying want.
func spoolRefused(t *testing.T, dir, want string) {
	t.Helper()
	env := Env("spoolsec0001", map[string]string{"mode": "spool", "spool-dir": dir})
	l := StartLoggerNoWait(t, env, "none")
	WriteLines(t, l.Stdout, Lines("must not reach a link", 3))
	code := l.Wait(t, 30*time.Second)
	for _, r := range []struct {
		what, stderr string
		code         int
	}{{"logger", l.Errors(), code}, {"--validate", "", 0}} {
		if r.what == "--validate" {
			_, r.stderr, r.code = RunCLI(t, env, "--validate", "none")
		}
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		// A path too long to quote whole is named by its option, its
		// value cut to what an error line quotes.
		named := strings.Contains(lines[0], "spool-dir "+dir) || len(dir) > 200 && strings.Contains(lines[0], `log-opt spool-dir="`)
		if r.code != 2 || len(lines) != 1 || !named || !strings.Contains(lines[0], want) {
			t.Errorf("%s on %s: exit %d, stderr %q; want exit 2 and one line naming the dir and saying %q", r.what, dir, r.code, r.stderr, want)
		}
		noPanic(t, r.what, r.stderr)
	}
}

// victim is a root-owned 0600 file that a link points at.
func victim(t *testing.T) (path string, untouched func()) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(path, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, func() {
		t.Helper()
		b, err := os.ReadFile(path)
		fi, serr := os.Stat(path)
		if err != nil || string(b) != "precious\n" || serr != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("the link's target %s now holds %q (%v, mode %v)", path, b, err, fi.Mode())
		}
	}
}

// TestSpoolDirLinkRefused: a spool-dir that is itself a link (to a
// directory of ours) is refused, not followed.
func TestSpoolDirLinkRefused(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	v, untouched := victim(t)
	real := filepath.Join(tmp, "real")
	os.Mkdir(real, 0o700)
	os.Symlink(v, filepath.Join(real, "0000000000000000.seg"))
	link := filepath.Join(tmp, "spool")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	spoolRefused(t, link, "symbolic link")
	untouched()
}

// TestSpoolPlantedLinks: a link planted in the place of each of the
// spool's files (state, lock, the first and a later segment) is refused,
// in a private directory (planted before it was made private) and in a
// world-writable one (nobody plants it).
func TestSpoolPlantedLinks(t *testing.T) {
	needRoot(t)
	for _, name := range []string{"state", "lock", "0000000000000000.seg", "0000000000000007.seg"} {
		for _, mode := range []os.FileMode{0o700, 0o777} {
			v, untouched := victim(t)
			dir := filepath.Join(t.TempDir(), "wspool")
			if err := os.Mkdir(dir, mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(dir, mode)
			if name == "0000000000000007.seg" {
				os.WriteFile(filepath.Join(dir, "0000000000000000.seg"), nil, 0o600)
			}
			if err := os.Symlink(v, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			if mode == 0o777 {
				os.Lchown(filepath.Join(dir, name), 65534, 65534)
				spoolRefused(t, dir, "mode 0777")
			} else {
				spoolRefused(t, dir, name+" is a symbolic link")
			}
			untouched()
		}
	}
}

// TestSpoolDirNotPrivate: a spool-dir writable by group or others, or
// owned by another user (nobody), is refused.
func TestSpoolDirNotPrivate(t *testing.T) {
	needRoot(t)
	for _, mode := range []os.FileMode{0o777, 0o770, 0o702, 0o1777} {
		dir := filepath.Join(t.TempDir(), "spool")
		os.Mkdir(dir, 0o700)
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		spoolRefused(t, dir, "has mode")
		if files, _ := os.ReadDir(dir); len(files) != 0 {
			t.Errorf("mode %v: the logger wrote %d files into the dir it refused", mode, len(files))
		}
	}
	dir := filepath.Join(t.TempDir(), "spool")
	os.Mkdir(dir, 0o700)
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	spoolRefused(t, dir, "is owned by uid 65534, this logger runs as uid 0")
}

// TestSpoolDirTooLong: a spool-dir with a name longer than NAME_MAX, or a
// path too long for its files, is a configuration error (exit 2, one
// line), from --validate too; a missing spool-dir is created 0700.
func TestSpoolDirTooLong(t *testing.T) {
	tmp := t.TempDir()
	for _, dir := range []string{
		filepath.Join(tmp, strings.Repeat("n", 256)),
		filepath.Join(tmp, strings.Repeat(strings.Repeat("p", 250)+"/", 17)),
	} {
		spoolRefused(t, dir, "_MAX")
	}
	fresh := filepath.Join(tmp, "new", "spool")
	env := Env("spoolsec0002", map[string]string{"mode": "spool", "spool-dir": fresh})
	if out, stderr, code := RunCLI(t, env, "--validate", "none"); code != 0 {
		t.Fatalf("--validate of a spool-dir to create: exit %d, %s %s", code, out, stderr)
	}
	l := StartLogger(t, env, "none")
	WriteLines(t, l.Stdout, Lines("x", 3))
	if code := l.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, l.Errors())
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("spool-dir %s: %v, %v; want created 0700", fresh, fi, err)
	}
}
