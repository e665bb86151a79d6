package safedir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestOpenRefusesLinkedDirectory(t *testing.T) {
	tmp := t.TempDir()
	real := filepath.Join(tmp, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(tmp, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(link); !errors.Is(err, ErrLink) {
		t.Fatalf("Open(link) = %v, want ErrLink", err)
	}
	if _, err := MkdirAll(link, 0o700); !errors.Is(err, ErrLink) {
		t.Fatalf("MkdirAll(link) = %v, want ErrLink", err)
	}
	// A link above the last component is the system's and is followed.
	d, err := MkdirAll(filepath.Join(link, "a", "b"), 0o700)
	if err != nil {
		t.Fatalf("MkdirAll below a link: %v", err)
	}
	d.Close()
	if st, err := os.Stat(filepath.Join(real, "a", "b")); err != nil || !st.IsDir() {
		t.Fatalf("a/b not created under the link's target: %v", err)
	}
}

func TestOpenFileRefusesLinksAndFIFOs(t *testing.T) {
	tmp := t.TempDir()
	victim := filepath.Join(tmp, "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	sub := filepath.Join(tmp, "d")
	os.Mkdir(sub, 0o700)
	os.Symlink(victim, filepath.Join(sub, "planted"))
	if err := syscall.Mkfifo(filepath.Join(sub, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(sub, "dir"), 0o700)
	d, err := Open(sub)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for name, want := range map[string]error{"planted": ErrLink, "fifo": ErrNotRegular, "dir": ErrNotRegular} {
		for _, flag := range []int{os.O_WRONLY | os.O_TRUNC | os.O_CREATE, os.O_RDONLY, os.O_RDWR} {
			if f, err := d.OpenFile(name, flag, 0o600); !errors.Is(err, want) {
				if f != nil {
					f.Close()
				}
				t.Errorf("OpenFile(%s, %#x) = %v, want %v", name, flag, err, want)
			}
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatalf("victim changed: %q", b)
	}
	for _, bad := range []string{"", ".", "..", "a/b", "../victim"} {
		if _, err := d.OpenFile(bad, os.O_RDONLY, 0); err == nil || !strings.Contains(err.Error(), "not a file name") {
			t.Errorf("OpenFile(%q) = %v, want a refusal", bad, err)
		}
	}
	f, err := d.OpenFile("new", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	f.Close()
	if err := d.Rename("new", "renamed"); err != nil {
		t.Fatal(err)
	}
	names, _ := d.Names()
	if !contains(names, "renamed") || contains(names, "new") {
		t.Fatalf("names after rename: %v", names)
	}
	if err := d.Remove("planted"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Fatalf("Remove followed the link: %v", err)
	}
}

func TestCheckPrivate(t *testing.T) {
	tmp := t.TempDir()
	for mode, ok := range map[os.FileMode]bool{0o700: true, 0o755: true, 0o770: false, 0o777: false, 0o1777: false} {
		p := filepath.Join(tmp, mode.String())
		os.Mkdir(p, 0o700)
		os.Chmod(p, mode)
		d, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.CheckPrivate(); (err == nil) != ok {
			t.Errorf("mode %v: CheckPrivate = %v", mode, err)
		}
		d.Close()
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestOpenFileRefusesHardLinksForWriting(t *testing.T) {
	tmp := t.TempDir()
	victim := filepath.Join(tmp, "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	if err := os.Link(victim, filepath.Join(tmp, "planted")); err != nil {
		t.Fatal(err)
	}
	d, err := Open(tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, flag := range []int{os.O_WRONLY | os.O_TRUNC, os.O_RDWR | os.O_APPEND | os.O_CREATE} {
		if f, err := d.OpenFile("planted", flag, 0o600); !errors.Is(err, ErrHardLink) {
			if f != nil {
				f.Close()
			}
			t.Errorf("flag %#x: %v, want ErrHardLink", flag, err)
		}
	}
	if f, err := d.OpenFile("planted", os.O_RDONLY, 0); err != nil {
		t.Errorf("reading a hard link: %v", err)
	} else {
		f.Close()
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("victim now %q", b)
	}
}

func TestCreateReplacesWhatIsThere(t *testing.T) {
	tmp := t.TempDir()
	victim := filepath.Join(tmp, "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	sub := filepath.Join(tmp, "d")
	os.Mkdir(sub, 0o700)
	os.Symlink(victim, filepath.Join(sub, "a"))
	os.Link(victim, filepath.Join(sub, "b"))
	d, err := Open(sub)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, name := range []string{"a", "b", "c"} {
		f, err := d.Create(name, os.O_WRONLY|os.O_TRUNC, 0o640)
		if err != nil {
			t.Fatalf("Create(%s): %v", name, err)
		}
		f.WriteString("new")
		f.Close()
		if st, err := os.Lstat(filepath.Join(sub, name)); err != nil || !st.Mode().IsRegular() {
			t.Errorf("%s: %v %v", name, st, err)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("victim now %q", b)
	}
	f, name, err := d.CreateTemp(".stats-", 0o600)
	if err != nil || !strings.HasPrefix(name, ".stats-") {
		t.Fatalf("CreateTemp: %q %v", name, err)
	}
	f.Close()
}
