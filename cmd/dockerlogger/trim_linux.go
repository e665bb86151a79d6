package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseStartupPages lets the kernel drop the pages of this binary's
// read-only mappings that were only needed to start: every driver
// package's initialisation (the AWS and Google SDKs among them) touches
// about 16 MB of code and tables that a running logger never reads again.
// The pages are clean copies of the file, so anything still used comes
// back from the page cache on its next touch. Writable mappings are left
// alone.
func releaseStartupPages() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || fs[5] != exe || strings.Contains(fs[1], "w") {
			continue
		}
		a, b, _ := strings.Cut(fs[0], "-")
		start, err1 := strconv.ParseUint(a, 16, 64)
		end, err2 := strconv.ParseUint(b, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		// Not memory Go allocated: pass the range to the system as is.
		unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
	}
}
