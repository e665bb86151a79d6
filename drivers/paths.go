package drivers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"

	"github.com/joyent/dockerlogger/config"
	"github.com/joyent/dockerlogger/diag"
)

// checkNames refuses an option the driver does not accept, naming the
// first in sorted order with the words of Docker's validator for that
// driver. driverOptions lists exactly the names Docker's validators take
// (a test reads them from Docker's source).
func checkNames(driver string, opts map[string]string) error {
	allowed, ok := driverOptions[driver]
	if !ok || driver == "none" {
		return nil
	}
	names := make([]string, 0, len(opts))
	for k := range opts {
		names = append(names, k)
	}
	sort.Strings(names)
next:
	for _, k := range names {
		for _, o := range allowed {
			if o.Name == k {
				continue next
			}
		}
		q := "'" + k + "'"
		if len(k) > diag.MaxQuote {
			q = diag.Quote(k)
		}
		switch driver {
		case "local":
			return fmt.Errorf("%s: unknown log opt %s for log driver local", driver, q)
		case "gcplogs":
			return fmt.Errorf("%s: %s is not a valid option for the gcplogs driver", driver, diag.Quote(k))
		case "gelf":
			return fmt.Errorf("%s: unknown log opt %s for gelf log driver", driver, diag.Quote(k))
		}
		return fmt.Errorf("%s: unknown log opt %s for %s log driver", driver, q, driver)
	}
	return nil
}

// checkLogPath refuses, at --validate and at start, a log-path the file
// drivers could never write safely, with one line naming it: a directory
// that is a symbolic link, a file that is not a regular file of its own
// (a symbolic link, a FIFO that would hang open(2), a device such as
// /dev/full, a directory, a hard link to another file), or rotated names
// (path.N, path.N.gz) longer than the kernel takes. What appears later is
// refused when the file is opened (package filelog, through safedir).
func checkLogPath(driver, path string, opts map[string]string) error {
	bad := func(why string) error {
		return fmt.Errorf("%s: log-opt log-path=%s: %s", driver, diag.Quote(path), why)
	}
	maxFiles, compress := 1, false
	if driver == "local" {
		maxFiles, compress = 5, true
	}
	if n, err := strconv.Atoi(opts["max-file"]); err == nil {
		maxFiles = n
	}
	if b, err := strconv.ParseBool(opts["compress"]); err == nil {
		compress = b
	}
	if maxFiles > 1 {
		suffix := "." + strconv.Itoa(maxFiles-1)
		if compress {
			suffix += ".gz"
		}
		if why := config.CheckPathLen(path, len(suffix)); why != "" {
			return bad("with " + suffix + " added for its rotated files: " + why)
		}
	}
	dir := filepath.Dir(path)
	if st, err := os.Lstat(dir); err == nil && st.Mode()&fs.ModeSymlink != 0 {
		return bad(fmt.Sprintf("its directory %s is a symbolic link: refusing to follow it (point log-path at the real directory)", diag.Quote(dir)))
	}
	st, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // created at start
		}
		return nil // not ours to judge now (permissions): the driver says
	}
	switch m := st.Mode(); {
	case m&fs.ModeSymlink != 0:
		return bad("is a symbolic link: refusing to follow it (remove it, or point log-path at the real file)")
	case m&fs.ModeNamedPipe != 0:
		return bad("is a FIFO, not a regular file")
	case m&fs.ModeDevice != 0:
		return bad("is a device, not a regular file")
	case m.IsDir():
		return bad("is a directory, not a regular file")
	case !m.IsRegular():
		return bad("is not a regular file")
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink > 1 {
		return bad(fmt.Sprintf("has %d hard links: refusing to write a file that has other names", sys.Nlink))
	}
	return nil
}

// checkStatsPath refuses a stats-file whose directory is a symbolic link:
// the file is rewritten there (a temporary file renamed over it) relative
// to the directory opened without following one (diag.WriteFile).
func checkStatsPath(path string) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	if st, err := os.Lstat(dir); err == nil && st.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("log-opt stats-file=%s: its directory %s is a symbolic link: refusing to follow it", diag.Quote(path), diag.Quote(dir))
	}
	return nil
}

// requiredOpts are the options a driver's validator needs before it
// looks at any other, for the drivers whose validator checks values while
// ranging over the options (gelf's; the others check names only in their
// loop, and values in a fixed order after it, some depending on others).
var requiredOpts = map[string][]string{"gelf": {"gelf-address"}}

// firstSorted returns the error of the first option, in sorted order,
// that the validator refuses on its own (with the driver's required
// options): some of Docker's validators check values while ranging over
// the map, so with two bad values they name one or the other from one run
// to the next.
func firstSorted(driver string, opts map[string]string, validate func(string, map[string]string) error) error {
	required, ok := requiredOpts[driver]
	if !ok {
		return nil
	}
	base := map[string]string{}
	for _, k := range required {
		if v, ok := opts[k]; ok {
			base[k] = v
		}
	}
	if validate(driver, base) != nil {
		return nil // the whole validation says what is missing
	}
	names := make([]string, 0, len(opts))
	for k := range opts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if _, ok := base[k]; ok {
			continue
		}
		one := map[string]string{k: opts[k]}
		for r, v := range base {
			one[r] = v
		}
		if err := validate(driver, one); err != nil {
			return err
		}
	}
	return nil
}
