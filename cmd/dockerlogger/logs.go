package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	timetypes "github.com/docker/docker/api/types/time"

	"github.com/joyent/dockerlogger/config"
	"github.com/joyent/dockerlogger/readback"
)

const logsUsage = "usage: dockerlogger logs [-f] [--tail N|all] [--since T] [--until T] [-t] [--details] [PATH | DRIVER | driver NAME KEY VALUE...]"

// logs is `dockerlogger logs`: docker logs' flags and output, on a file
// the json-file or local driver or the dual-logging cache wrote (see
// package readback).
func logs(args []string, stdout, stderr io.Writer, fail func(int, error) int) int {
	o := readback.Options{Tail: -1, Stdout: stdout, Stderr: stderr}
	var rest []string
	now := time.Now()
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		value := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag %s needs a value (%s)", name, logsUsage)
			}
			i++
			return args[i], nil
		}
		var err error
		switch {
		case a == "--":
			rest = append(rest, args[i+1:]...)
			i = len(args)
		case a == "-f" || a == "--follow":
			o.Follow = true
		case a == "-t" || a == "--timestamps":
			o.Timestamps = true
		case a == "--details":
			o.Details = true
		case name == "--tail" || name == "-n":
			var v string
			if v, err = value(); err == nil {
				o.Tail, err = parseTail(v)
			}
		case name == "--since" || name == "--until":
			var v string
			var ts time.Time
			if v, err = value(); err == nil {
				ts, err = parseTime(name, v, now)
			}
			if name == "--since" {
				o.Since = ts
			} else {
				o.Until = ts
			}
		case strings.HasPrefix(a, "-") && len(rest) == 0:
			err = fmt.Errorf("unknown flag %s (%s)", a, logsUsage)
		default:
			rest = append(rest, a)
		}
		if err != nil {
			return fail(exitConfig, err)
		}
	}
	path, err := logsPath(rest)
	if err != nil {
		return fail(exitConfig, err)
	}
	if err := readback.Read(context.Background(), path, o); err != nil {
		return fail(exitConfig, fmt.Errorf("logs: %w", err))
	}
	return exitOK
}

// parseTail takes docker logs' --tail: a number, or "all" (as is any
// negative number).
func parseTail(v string) (int, error) {
	if v == "all" {
		return -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("--tail %s: not a number of lines or \"all\"", strconv.Quote(v))
	}
	if n < 0 {
		return -1, nil
	}
	return n, nil
}

// parseTime takes a time as docker logs does (Docker's own parser): RFC
// 3339, a Unix timestamp, or a duration before now such as 10m.
func parseTime(flag, v string, now time.Time) (time.Time, error) {
	s, err := timetypes.GetTimestamp(v, now)
	if err == nil {
		var sec, nsec int64
		if sec, nsec, err = timetypes.ParseTimestamps(s, 0); err == nil {
			return time.Unix(sec, nsec), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s %s: not a time (RFC 3339, a Unix timestamp, or a duration such as 10m)", flag, strconv.Quote(v))
}

// logsPath is the file to read: PATH as given (one word with a "/", or
// naming a file that exists), or the file the logger would write for the
// same environment and arguments (DRIVER, or containerd's pairs):
// log-path for json-file and local, the cache for drivers that keep one.
func logsPath(rest []string) (string, error) {
	if len(rest) == 1 {
		if _, err := os.Lstat(rest[0]); err == nil || strings.Contains(rest[0], "/") {
			return rest[0], nil
		}
	}
	if len(rest) == 0 && !config.IsContainerdArgs(rest, os.Getenv) {
		return "", errors.New(logsUsage)
	}
	c, err := config.FromArgs(rest)
	if err != nil {
		return "", err
	}
	switch {
	case c.Driver == "json-file" || c.Driver == "local":
		return c.Options.LogPath, nil
	case c.Options.Cache:
		return c.Options.CachePath, nil
	}
	return "", fmt.Errorf("driver %s keeps no file to read back (no cache: cache-disabled, or a driver Docker reads itself)", c.Driver)
}
