// Package drivers owns Docker's log-driver registry as dockerlogger uses it:
// which drivers this binary has, the options each accepts with their
// defaults, the validation of a whole configuration, and the creation of a
// driver, retried while its sink is down. Our own drivers that are more
// than a wrapper live in packages of their own (drivers/fluentd,
// drivers/splunk), which register themselves when imported here, as
// Docker's do; what a driver
// may implement beyond logger.Logger is named in drivers/capability.
//
// It must never import the reader, a delivery mode or the supervisor: it
// sits at the end of the flow and knows nothing of what feeds it. Nor
// Docker's splunk driver, which drivers/splunk replaces: it holds what
// HEC has not taken unbounded in bytes, and counts it as sent.
package drivers

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/docker/docker/daemon/logger"
	// Each import registers its driver with Docker's registry.
	_ "github.com/docker/docker/daemon/logger/gelf"
	_ "github.com/docker/docker/daemon/logger/syslog"

	"github.com/joyent/dockerlogger/config"
	"github.com/joyent/dockerlogger/diag"
	// Our own drivers register themselves the same way; gcplogs is in
	// gcplogs.go.
	_ "github.com/joyent/dockerlogger/drivers/fluentd"
	_ "github.com/joyent/dockerlogger/drivers/loki"
	_ "github.com/joyent/dockerlogger/drivers/otlp"
	_ "github.com/joyent/dockerlogger/drivers/splunk"
	"github.com/joyent/dockerlogger/spool"
)

func init() {
	// Our options are handled before a driver sees the configuration;
	// Docker's validators would reject every one of them.
	logger.AddBuiltinLogOpts(config.AddedNames())
	// Docker's daemon handles "none" itself rather than registering it.
	if err := logger.RegisterLogDriver("none", func(logger.Info) (logger.Logger, error) { return noneLogger{}, nil }); err != nil {
		panic(err)
	}
}

// noneLogger discards every message, as Docker's "none" driver does.
type noneLogger struct{}

func (noneLogger) Log(m *logger.Message) error { logger.PutMessage(m); return nil }
func (noneLogger) Name() string                { return "none" }
func (noneLogger) Close() error                { return nil }

// List returns the drivers built into this binary, sorted.
func List() []string {
	return logger.ListDrivers()
}

// Registered reports whether name is a driver of this binary. Check it
// before logger.GetLogDriver, which panics on an unknown name.
func Registered(name string) bool {
	for _, d := range List() {
		if d == name {
			return true
		}
	}
	return false
}

// ErrUnknownDriver is returned for a driver this binary does not have.
var ErrUnknownDriver = errors.New("unknown log driver")

// Validate checks a whole configuration for its driver without touching
// the network: the driver exists, our added options parse (done by
// package config), and Docker's validator accepts the driver's options.
// Its error never quotes a secret (config.Secrets).
func Validate(c *config.Config) error {
	// Errors quote values, and Docker's quote whole URLs: user:pass@ too.
	err := config.RedactError(validate(c), c.Secrets())
	if err != nil && len(err.Error()) > maxError {
		// Docker's validators quote whole values: one short line.
		err = &cutError{msg: diag.Cut(err.Error(), maxError), err: err}
	}
	return err
}

// maxError bounds a validation error's length.
const maxError = 600

type cutError struct {
	msg string
	err error
}

func (e *cutError) Error() string { return e.msg }
func (e *cutError) Unwrap() error { return e.err }

func validate(c *config.Config) error {
	if !Registered(c.Driver) {
		return fmt.Errorf("%w %q (this binary has: %s)", ErrUnknownDriver, c.Driver, strings.Join(List(), ", "))
	}
	// Docker's ValidateLogOpts knows mode only as blocking/non-blocking and
	// max-buffer-size only with non-blocking: both are ours, so hand it
	// only the driver's own options.
	// Docker's validators range over a map: with two unknown options
	// they name one or the other from one run to the next. Name the
	// first, sorted, ourselves.
	if err := checkNames(c.Driver, c.DriverOpts()); err != nil {
		return err
	}
	validateOpts := logger.ValidateLogOpts
	if c.Driver == syslogName && isRelpAddress(c.DriverOpts()[syslogAddressKey]) {
		validateOpts = validateSyslogRelp // ours: Docker's rejects relp://
	}
	if err := firstSorted(c.Driver, c.DriverOpts(), validateOpts); err != nil {
		return fmt.Errorf("%s: %s", c.Driver, strings.TrimPrefix(err.Error(), "logger: "))
	}
	if err := validateOpts(c.Driver, c.DriverOpts()); err != nil {
		return fmt.Errorf("%s: %s", c.Driver, strings.TrimPrefix(err.Error(), "logger: "))
	}
	if c.Driver == "json-file" || c.Driver == "local" {
		if err := validateFileOpts(c.Driver, c.DriverOpts()); err != nil {
			return err
		}
		if err := checkLogPath(c.Driver, c.Options.LogPath, c.DriverOpts()); err != nil {
			return err
		}
	}
	if err := checkStatsPath(c.Options.StatsFile); err != nil {
		return err
	}
	if err := validateValues(c.Driver, c.DriverOpts()); err != nil {
		return err
	}
	if c.Options.Mode == config.Spool {
		if err := spool.CheckDir(c.Options.SpoolDir); err != nil {
			return err
		}
		// As line-max may not exceed max-buffer-size in non-blocking: a
		// line the spool could never hold would be dropped whatever
		// buffer-full says.
		if int64(c.Options.LineMax)+spool.MaxOverhead > c.Options.SpoolMaxSize {
			return fmt.Errorf("log-opt line-max=%d: larger than spool-max-size=%d less %d bytes of record overhead: such a line could never be held",
				c.Options.LineMax, c.Options.SpoolMaxSize, spool.MaxOverhead)
		}
	}
	// A tag that cannot be rendered would fail every attempt to create the
	// driver: say so now.
	info := Info(c)
	if err := renderTag(c.Driver, &info); err != nil {
		return fmt.Errorf("%s: %v", c.Driver, err)
	}
	return nil
}

// Info is the logger.Info a driver is created with.
func Info(c *config.Config) logger.Info {
	ct := c.Container
	info := logger.Info{
		Config:              c.DriverOpts(),
		ContainerID:         ct.ID,
		ContainerName:       ct.Name,
		ContainerEntrypoint: ct.Entrypoint,
		ContainerArgs:       ct.Args,
		ContainerImageID:    ct.ImageID,
		ContainerImageName:  ct.ImageName,
		ContainerCreated:    ct.Created,
		ContainerEnv:        ct.Env,
		ContainerLabels:     ct.Labels,
		DaemonName:          ct.Daemon,
	}
	if c.Driver == "json-file" || c.Driver == "local" {
		info.LogPath = c.Options.LogPath
	}
	return info
}

// Creator returns the function that creates the driver. Call Validate
// first: an unknown name is an error here, never a panic.
func Creator(name string) (logger.Creator, error) {
	if !Registered(name) {
		return nil, fmt.Errorf("%w %q", ErrUnknownDriver, name)
	}
	create, err := logger.GetLogDriver(name)
	if err == nil && name == syslogName {
		create = syslogCreator(create) // relp:// is ours (syslogrelp.go)
	}
	return create, err
}

// Option is one log-opt a driver accepts, with Docker's default.
type Option struct {
	Name    string `json:"name"`
	Default string `json:"default"`
}

// Description is what `--list-drivers --json` says of one driver.
type Description struct {
	Name    string       `json:"name"`
	Options []Option     `json:"options"`
	Added   []config.Opt `json:"added_options"`
}

// Describe lists every driver of this binary with its options.
func Describe() []Description {
	var ds []Description
	for _, name := range List() {
		opts := append([]Option(nil), driverOptions[name]...)
		sort.Slice(opts, func(i, j int) bool { return opts[i].Name < opts[j].Name })
		ds = append(ds, Description{Name: name, Options: opts, Added: config.Added})
	}
	return ds
}
