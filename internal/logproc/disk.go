package logproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// Tmpfs mounts a tmpfs of size (mount's size=, e.g. "8m" or bytes) at dir
// and returns its unmount. It needs root.
func Tmpfs(dir, size string) (func(), error) {
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mount tmpfs: %v: %s", err, out)
	}
	return func() { exec.Command("umount", "-l", dir).Run() }, nil
}

// Fill writes a file at path until the filesystem is full: a disk-full
// fault, over when the file is removed.
func Fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			return fmt.Errorf("fill %s: %w", path, err)
		}
	}
	// The last bytes, below one buffer.
	small := make([]byte, 512)
	for {
		if _, err := f.Write(small); err != nil {
			return nil
		}
	}
}
