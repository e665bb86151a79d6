//go:build !linux

package main

import "errors"

// shrinkPipe: only Linux sizes pipes (F_SETPIPE_SZ).
func shrinkPipe(fd, size int) (refused bool, err error) {
	return false, errors.New("no F_SETPIPE_SZ on this system")
}
