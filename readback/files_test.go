package readback

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// openNewer opens, oldest first, the rotated files newer than the one
// being followed, and the current file, in one look; a listing with a
// gap in its numbers (a rename under way) does not hold.
func TestOpenNewer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	for name, data := range map[string]string{"c.log.3": "three\n", "c.log.2": "two\n", "c.log.1": "one\n", "c.log": "now\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Open(path + ".3")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	info, _ := self.Stat()
	files, current, err := openNewer(path, self, info, info.Size())
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(files)
	defer current.Close()
	var got []string
	for _, r := range files {
		b, _ := io.ReadAll(r.rc)
		got = append(got, r.name+"="+string(b))
	}
	if len(got) != 2 || got[0] != path+".2=two\n" || got[1] != path+".1=one\n" {
		t.Errorf("newer files %q, want c.log.2 then c.log.1", got)
	}
	if b, _ := io.ReadAll(current); string(b) != "now\n" {
		t.Errorf("current file holds %q", b)
	}
	if !contiguous(path, []string{path + ".3.gz", path + ".2", path + ".1.gz"}) {
		t.Error("3, 2, 1 called not contiguous")
	}
	if contiguous(path, []string{path + ".3.gz", path + ".1"}) || contiguous(path, []string{path + ".2", path + ".2.gz"}) {
		t.Error("a gap or a repeat called contiguous")
	}
}
