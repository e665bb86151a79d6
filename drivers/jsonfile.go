package drivers

import (
	"fmt"
	"os"
	"strings"

	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/drivers/capability"
	"github.com/joyent/dockerlogger/filelog"
)

// Asserted here, where filelog's drivers are registered: filelog cannot
// import package capability, which names filelog.Accounting.
var (
	_ capability.Flusher         = (*filelog.JSON)(nil)
	_ capability.AccountedLogger = (*filelog.JSON)(nil)
	_ capability.UnwrittenLogger = (*filelog.JSON)(nil)
	_ capability.HandoverCloser  = (*filelog.JSON)(nil)
)

// Our own json-file driver: Docker's writes one write(2) per line, which is
// what makes it slow; package filelog writes the same bytes, rotates and
// compresses the same way, and writes once per read.
func init() {
	register("json-file", func(info logger.Info) (logger.Logger, error) {
		l, err := filelog.NewJSONDriver(info, reportRotation(info))
		if err != nil {
			return nil, fmt.Errorf("json-file: %w", err)
		}
		return l, nil
	}, filelog.JSONOptionNames())
}

// reportRotation returns where our file drivers report what Docker's only
// log: a rename or compression that failed at rotation. One line each on
// the logger's own stderr; they happen at most once per rotation.
func reportRotation(info logger.Info) func(error) {
	return func(err error) {
		msg := strings.ReplaceAll(fmt.Sprintf("%s: %s", info.LogPath, err), "\n", `\n`)
		fmt.Fprintf(os.Stderr, "dockerlogger: %s\n", diag.Cut(msg, diag.MaxLine))
	}
}

// register adds a driver and the validator of its option names to
// Docker's registry. A clash is a programming error found at start.
func register(name string, create logger.Creator, options []string) {
	if err := logger.RegisterLogDriver(name, create); err != nil {
		panic(err)
	}
	if err := logger.RegisterLogOptValidator(name, func(cfg map[string]string) error {
		return filelog.ValidateOptions(name, options, cfg)
	}); err != nil {
		panic(err)
	}
}
