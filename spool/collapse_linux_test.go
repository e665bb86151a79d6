package spool

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCollapseTrims: on ext4 and xfs, which support
// FALLOC_FL_COLLAPSE_RANGE, the acknowledged prefix is cut out of the
// file, so its size (not only its allocation) follows the live records.
func TestCollapseTrims(t *testing.T) {
	e := &events{}
	o := e.opts(filepath.Join(t.TempDir(), "spool"))
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(o.Dir), &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.EXT4_SUPER_MAGIC && st.Type != unix.XFS_SUPER_MAGIC {
		t.Skipf("skipped: %s is not ext4 or xfs (statfs type %#x)", filepath.Dir(o.Dir), st.Type)
	}
	s := open(t, o)
	big := strings.Repeat("c", 4000)
	for i := range 1024 { // about 4 MiB
		s.Append(&Record{Line: fmt.Appendf(nil, "%06d %s", i, big)})
	}
	s.Flush()
	ctx := context.Background()
	n := 0
	for n < 1000 {
		b, err := s.Next(ctx, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		n += len(b.Records)
		s.Ack()
	}
	p := segFiles(t, o.Dir)[0]
	if size := fileSize(t, p); size > s.Len()+1<<20 {
		t.Fatalf("file is %d bytes for %d live bytes after acknowledging %d records: not collapsed", size, s.Len(), n)
	}
	// What is left is still read right, before and after a restart.
	got, _ := drain(t, s, 1<<20)
	if len(got) != 1024-n || got[0][:6] != fmt.Sprintf("%06d", n) {
		t.Fatalf("after collapse: %d records from %q", len(got), got[0][:6])
	}
}

// TestPunchDetected: where hole punching is known to work, the spool uses
// it (so TestPunchFreesBlocks cannot skip there).
func TestPunchDetected(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(dir), &st); err != nil {
		t.Fatal(err)
	}
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.TMPFS_MAGIC, unix.BTRFS_SUPER_MAGIC:
	default:
		t.Skipf("skipped: statfs type %#x of %s not known to punch holes", st.Type, filepath.Dir(dir))
	}
	s := open(t, Options{Dir: dir})
	if !s.Punching() {
		t.Fatalf("spool on statfs type %#x does not punch holes", st.Type)
	}
	if s2 := open(t, Options{Dir: dir + "2", NoPunch: true}); s2.Punching() {
		t.Fatal("NoPunch spool punches holes")
	}
}
