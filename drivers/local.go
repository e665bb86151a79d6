package drivers

import (
	"fmt"

	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/drivers/capability"
	"github.com/joyent/dockerlogger/filelog"
)

// As for json-file (jsonfile.go).
var (
	_ capability.Flusher         = (*filelog.Local)(nil)
	_ capability.AccountedLogger = (*filelog.Local)(nil)
	_ capability.UnwrittenLogger = (*filelog.Local)(nil)
	_ capability.HandoverCloser  = (*filelog.Local)(nil)
)

// Our own local driver: Docker's format and rotation (package filelog),
// written once per read instead of once per line.
func init() {
	register("local", func(info logger.Info) (logger.Logger, error) {
		l, err := filelog.NewLocalDriver(info, reportRotation(info))
		if err != nil {
			return nil, fmt.Errorf("local: %w", err)
		}
		return l, nil
	}, filelog.LocalOptionNames())
}
