package filelog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger"
)

// TestRotationNeverFollowsLinks: links planted at every name
// rotation and compression use (the log itself after start, .1, .2, .1.gz,
// .2.gz; symbolic and hard) never make the File write, truncate, rename
// over or compress their target.
func TestRotationNeverFollowsLinks(t *testing.T) {
	for _, compress := range []bool{false, true} {
		root := t.TempDir()
		victim := filepath.Join(root, "victim")
		const precious = "precious\n"
		os.WriteFile(victim, []byte(precious), 0o644)
		hard := filepath.Join(root, "hardvictim")
		os.WriteFile(hard, []byte(precious), 0o644)
		dir := filepath.Join(root, "logs")
		os.Mkdir(dir, 0o777)
		path := filepath.Join(dir, "c-json.log")
		var errs []string
		j, err := NewJSON(Options{Path: path, MaxSize: 1000, MaxFiles: 3, Compress: compress,
			OnError: func(err error) { errs = append(errs, err.Error()) }}, nil)
		if err != nil {
			t.Fatal(err)
		}
		plant := func(round int) {
			for i, name := range []string{"c-json.log.1", "c-json.log.2", "c-json.log.1.gz", "c-json.log.2.gz"} {
				p := filepath.Join(dir, name)
				os.Remove(p)
				if (i+round)%2 == 0 {
					os.Symlink(victim, p)
				} else {
					os.Link(hard, p)
				}
			}
		}
		for round := 0; round < 6; round++ {
			plant(round)
			for i := 0; i < 30; i++ {
				m := logger.NewMessage()
				m.Line = append(m.Line, strings.Repeat("y", 80)...)
				m.Source = "stdout"
				m.Timestamp = time.Unix(int64(i), 0)
				if err := j.Log(m); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			j.Flush()
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{victim, hard} {
			if b, _ := os.ReadFile(v); string(b) != precious {
				t.Errorf("compress=%v: %s now holds %q", compress, filepath.Base(v), b)
			}
		}
		if st, err := os.Lstat(path); err != nil || !st.Mode().IsRegular() {
			t.Errorf("log file: %v %v", st, err)
		}
	}
}

// TestOpenRefusesLinkedDirectoryAndNonRegular: a log directory that is a
// link, and a log-path that is a FIFO (no reader: open(2) would hang),
// a device or a link, are refused at once, with the path named.
func TestOpenRefusesLinkedDirectoryAndNonRegular(t *testing.T) {
	root := t.TempDir()
	real := filepath.Join(root, "real")
	os.Mkdir(real, 0o755)
	os.Symlink(real, filepath.Join(root, "link"))
	if _, err := NewJSON(Options{Path: filepath.Join(root, "link", "c.log"), MaxSize: -1, MaxFiles: 1}, nil); err == nil ||
		!strings.Contains(err.Error(), "log directory "+filepath.Join(root, "link")+" is a symbolic link") {
		t.Errorf("linked directory: %v", err)
	}
	fifo := filepath.Join(root, "fifo")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := NewJSON(Options{Path: fifo, MaxSize: -1, MaxFiles: 1}, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), fifo+" is not a regular file") {
			t.Errorf("FIFO: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("opening a FIFO log-path hangs")
	}
	if ents, _ := os.ReadDir(real); len(ents) != 0 {
		t.Errorf("written through the link: %v", ents)
	}
}
