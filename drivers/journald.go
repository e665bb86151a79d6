//go:build linux

package drivers

// journald writes to journald's socket in pure Go; it exists on Linux only.
import _ "github.com/docker/docker/daemon/logger/journald"
