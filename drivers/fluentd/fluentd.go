// Package fluentd is our own fluentd driver, registered as "fluentd" with
// Docker's registry when package drivers imports it. It sends what
// Docker's daemon/logger/fluentd sends, takes the same options with the
// same defaults and rejects the same values, with one difference: Docker
// sets ForceStopAsyncSend to fluentd-async, so with fluentd-async=true its
// Close discards the events still queued. Docker's daemon rarely closes a
// driver; dockerlogger closes it at every container exit, so that would
// lose the last lines while counting them as delivered. Here Close drains
// the queue, and the worker bounds how long that may take with
// close-timeout.
//
// Error texts are Docker's, except where Docker returns the bare parse
// error of a value: those name the option.
//
// Added options: fluentd-tls-ca-cert, fluentd-tls-cert, fluentd-tls-key
// and fluentd-tls-skip-verify, for a tls:// address (fluenttls.go). Every
// tls:// address goes through fluenttls.go's bridge, with or without
// them, so that TLS is always dialed, checked and reported one way.
//
// It must never import package drivers (which imports it to register it),
// the reader, a delivery mode, the supervisor or the worker: what it
// implements beyond Docker's logger.Logger it names in drivers/capability.
package fluentd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/containerd/log"
	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/daemon/logger/loggerutils"
	units "github.com/docker/go-units"
	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/joyent/dockerlogger/drivers/capability"
	"github.com/joyent/dockerlogger/drivers/logopt"
)

const (
	fluentdName = "fluentd"

	fluentdDefaultBufferLimit = 1024 * 1024
	fluentdDefaultHost        = "127.0.0.1"
	fluentdDefaultPort        = 24224
	fluentdDefaultProtocol    = "tcp"
	// Docker's default: fluent-logger-golang retries practically forever.
	fluentdDefaultMaxRetries = math.MaxInt32
	fluentdDefaultRetryWait  = 1000 // ms

	fluentdMinReconnectInterval = 100 * time.Millisecond
	fluentdMaxReconnectInterval = 10 * time.Second

	fluentdAddressKey                = "fluentd-address"
	fluentdAsyncKey                  = "fluentd-async"
	fluentdAsyncReconnectIntervalKey = "fluentd-async-reconnect-interval"
	fluentdBufferLimitKey            = "fluentd-buffer-limit"
	fluentdMaxRetriesKey             = "fluentd-max-retries"
	fluentdRequestAckKey             = "fluentd-request-ack"
	fluentdRetryWaitKey              = "fluentd-retry-wait"
	fluentdSubSecondPrecisionKey     = "fluentd-sub-second-precision"
	fluentdWriteTimeoutKey           = "fluentd-write-timeout"
)

func init() {
	if err := logger.RegisterLogDriver(fluentdName, newFluentd); err != nil {
		panic(err)
	}
	if err := logger.RegisterLogOptValidator(fluentdName, validateFluentdOpts); err != nil {
		panic(err)
	}
}

// fluentdLogger sends each message as one Forward protocol event.
type fluentdLogger struct {
	tag           string
	containerID   string
	containerName string
	writer        *fluent.Fluent
	extra         map[string]string
	bridge        *fluentdBridge // tls:// only
	queue         *asyncQueue    // fluentd-async=true only
	gaveUp        atomic.Pointer[func(lines, bytes int64)]
}

var (
	_ capability.PendingLogger  = (*fluentdLogger)(nil)
	_ capability.GivingUpLogger = (*fluentdLogger)(nil)
)

// OnGiveUp sets what is told of a message fluent-logger-golang gave up on.
func (f *fluentdLogger) OnGiveUp(gaveUp func(lines, bytes int64)) { f.gaveUp.Store(&gaveUp) }

// asyncQueue follows the messages fluent-logger-golang holds in its async
// queue: they were accepted (counted delivered) but not yet sent, so one
// it gives up on, or one still queued when close-timeout ends the logger,
// is lost. Its result callback comes in queue order.
type asyncQueue struct {
	mu    sync.Mutex
	sizes []int // line bytes of each queued message, oldest first
	bytes int64
}

func (q *asyncQueue) push(n int) {
	q.mu.Lock()
	q.sizes = append(q.sizes, n)
	q.bytes += int64(n)
	q.mu.Unlock()
}

// unpush takes back the newest message, which the queue refused.
func (q *asyncQueue) unpush() {
	q.mu.Lock()
	q.bytes -= int64(q.sizes[len(q.sizes)-1])
	q.sizes = q.sizes[:len(q.sizes)-1]
	q.mu.Unlock()
}

func (q *asyncQueue) pop() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.sizes) == 0 {
		return 0
	}
	n := q.sizes[0]
	q.sizes = q.sizes[1:]
	q.bytes -= int64(n)
	return n
}

func (q *asyncQueue) pending() (lines, bytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int64(len(q.sizes)), q.bytes
}

// newFluentd creates the driver. Without fluentd-async it connects now, so
// a server that is down is an error (the caller retries creating it).
func newFluentd(info logger.Info) (logger.Logger, error) {
	cfg, err := parseFluentdConfig(info.Config)
	if err != nil {
		return nil, err
	}
	tag, err := loggerutils.ParseLogTag(info, loggerutils.DefaultTemplate)
	if err != nil {
		return nil, fmt.Errorf("log-opt tag: %w", err)
	}
	if err := logopt.CheckRegexOpts(info.Config); err != nil {
		return nil, err
	}
	extra, err := info.ExtraAttributes(nil)
	if err != nil {
		return nil, err
	}
	bridge, err := startFluentdBridge(info.Config, &cfg)
	if err != nil {
		return nil, err
	}
	fl := &fluentdLogger{}
	if cfg.Async {
		queue := &asyncQueue{}
		fl.queue = queue
		cfg.AsyncResultCallback = func(_ []byte, err error) {
			n := queue.pop()
			if err != nil {
				log.G(context.TODO()).WithError(err).Errorf("fluentd: gave up on a message (%d bytes)", n)
				if g := fl.gaveUp.Load(); g != nil {
					(*g)(1, int64(n))
				}
			}
		}
	}
	w, err := fluent.New(cfg)
	if err != nil {
		if bridge != nil {
			bridge.Close()
		}
		return nil, err
	}
	fl.tag, fl.containerID, fl.containerName = tag, info.ContainerID, info.ContainerName
	fl.writer, fl.extra, fl.bridge = w, extra, bridge
	return fl, nil
}

// startFluentdBridge checks the TLS options, starts the TLS bridge for a
// tls:// address and points cfg at it; nil for other addresses. Without
// fluentd-async it dials the server first, so that a server that is down
// or refuses us fails the creation with the reason, as with tcp://.
// Later failures go where Docker's drivers log theirs (driver error).
func startFluentdBridge(opts map[string]string, cfg *fluent.Config) (*fluentdBridge, error) {
	loc := fluentdLocation{protocol: cfg.FluentNetwork, host: cfg.FluentHost, port: cfg.FluentPort}
	t, err := parseFluentdTLS(opts, loc)
	if err != nil || t == nil {
		return nil, err
	}
	address := opts[fluentdAddressKey]
	report := func(err error) { log.G(context.TODO()).Error(err) }
	b, err := newFluentdBridge(loc, address, t, time.Duration(cfg.RetryWait)*time.Millisecond, report, !cfg.Async)
	if err != nil {
		return nil, err
	}
	cfg.FluentNetwork, cfg.FluentSocketPath = "unix", b.path
	return b, nil
}

// Log sends the record Docker's fluentd driver sends.
func (f *fluentdLogger) Log(msg *logger.Message) error {
	data := map[string]string{
		"container_id":   f.containerID,
		"container_name": f.containerName,
		"source":         msg.Source,
		// Not copied: fluent-logger-golang encodes the record before
		// PostWithTime returns, and msg is let go of only then (at a
		// large line-max a copy is the size of the line).
		"log": unsafe.String(unsafe.SliceData(msg.Line), len(msg.Line)),
	}
	for k, v := range f.extra {
		data[k] = v
	}
	if p := msg.PLogMetaData; p != nil {
		data["partial_message"] = "true"
		data["partial_id"] = p.ID
		data["partial_ordinal"] = strconv.Itoa(p.Ordinal)
		data["partial_last"] = strconv.FormatBool(p.Last)
	}
	ts, n := msg.Timestamp, len(msg.Line)
	if f.queue != nil {
		f.queue.push(n)
	}
	// fluent-logger-golang keeps what fails to send and sends it again.
	err := f.writer.PostWithTime(f.tag, ts, data)
	logger.PutMessage(msg)
	if err != nil && f.queue != nil {
		f.queue.unpush()
	}
	return err
}

// Pending returns the messages accepted but still in fluent-logger-golang's
// async queue, and their line bytes: what is lost if the logger must exit
// now.
func (f *fluentdLogger) Pending() (lines, bytes int64) {
	if f.queue == nil {
		return 0, 0
	}
	return f.queue.pending()
}

// Close sends what is still queued (fluentd-async=true), then closes the
// connection. It returns only when the queue is empty: the caller bounds
// the wait.
func (f *fluentdLogger) Close() error {
	err := f.writer.Close()
	if f.bridge != nil {
		// After the writer: its queue drains through the bridge.
		f.bridge.Close()
	}
	return err
}

func (f *fluentdLogger) Name() string { return fluentdName }

// validateFluentdOpts accepts Docker's option names for fluentd and checks
// their values without touching the network.
func validateFluentdOpts(cfg map[string]string) error {
	for key := range cfg {
		switch key {
		case "env", "env-regex", "labels", "labels-regex", "tag",
			fluentdAddressKey, fluentdAsyncKey, fluentdAsyncReconnectIntervalKey,
			fluentdBufferLimitKey, fluentdMaxRetriesKey, fluentdRequestAckKey,
			fluentdRetryWaitKey, fluentdSubSecondPrecisionKey, fluentdWriteTimeoutKey,
			fluentdTLSCACertKey, fluentdTLSCertKey, fluentdTLSKeyKey, fluentdTLSSkipVerifyKey:
		default:
			return fmt.Errorf("unknown log opt '%s' for fluentd log driver", key)
		}
	}
	if err := logopt.CheckRegexOpts(cfg); err != nil {
		return err
	}
	if _, err := parseFluentdConfig(cfg); err != nil {
		return err
	}
	// The address parsed above. The TLS files are read, no network used.
	loc, _ := parseFluentdAddress(cfg[fluentdAddressKey])
	_, err := parseFluentdTLS(cfg, loc)
	return err
}

// parseFluentdConfig turns the options into fluent-logger-golang's
// configuration, as Docker's driver does, checking in Docker's order.
func parseFluentdConfig(cfg map[string]string) (fluent.Config, error) {
	var none fluent.Config

	loc, err := parseFluentdAddress(cfg[fluentdAddressKey])
	if err != nil {
		return none, fmt.Errorf("invalid fluentd-address (%s): %w", cfg[fluentdAddressKey], err)
	}

	bufferLimit := fluentdDefaultBufferLimit
	if v := cfg[fluentdBufferLimitKey]; v != "" {
		n, err := units.RAMInBytes(v)
		if err != nil {
			return none, logopt.BadOpt(cfg, fluentdBufferLimitKey, err)
		}
		bufferLimit = int(n)
	}

	retryWait := fluentdDefaultRetryWait
	if v := cfg[fluentdRetryWaitKey]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return none, logopt.BadOpt(cfg, fluentdRetryWaitKey, err)
		}
		retryWait = int(d.Seconds() * 1000)
	}

	maxRetries := fluentdDefaultMaxRetries
	if v := cfg[fluentdMaxRetriesKey]; v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return none, logopt.BadOpt(cfg, fluentdMaxRetriesKey, err)
		}
		// Above MaxInt32 fluent-logger-golang's int arithmetic overflows.
		if n > math.MaxInt32 {
			return none, errors.New("invalid fluentd-max-retries: value out of range")
		}
		maxRetries = int(n)
	}

	parseBool := func(key string) (bool, error) {
		v := cfg[key]
		if v == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, logopt.BadOpt(cfg, key, err)
		}
		return b, nil
	}

	async, err := parseBool(fluentdAsyncKey)
	if err != nil {
		return none, err
	}

	var reconnectInterval int
	if v := cfg[fluentdAsyncReconnectIntervalKey]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return none, fmt.Errorf("invalid value for %s: %w", fluentdAsyncReconnectIntervalKey, err)
		}
		if d != 0 {
			if d < fluentdMinReconnectInterval || d > fluentdMaxReconnectInterval {
				return none, fmt.Errorf("invalid value for %s: value (%q) must be between %s and %s",
					fluentdAsyncReconnectIntervalKey, d, fluentdMinReconnectInterval, fluentdMaxReconnectInterval)
			}
			reconnectInterval = int(d.Milliseconds())
		}
	}

	subSecond, err := parseBool(fluentdSubSecondPrecisionKey)
	if err != nil {
		return none, err
	}
	requestAck, err := parseBool(fluentdRequestAckKey)
	if err != nil {
		return none, err
	}

	var writeTimeout time.Duration
	if v := cfg[fluentdWriteTimeoutKey]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return none, fmt.Errorf("invalid value for %s: value must be a duration: %w", fluentdWriteTimeoutKey, err)
		}
		if d < 0 {
			return none, fmt.Errorf("invalid value for %s: value must be a duration that is non-negative", fluentdWriteTimeoutKey)
		}
		writeTimeout = d
	}

	return fluent.Config{
		FluentPort:             loc.port,
		FluentHost:             loc.host,
		FluentNetwork:          loc.protocol,
		FluentSocketPath:       loc.path,
		BufferLimit:            bufferLimit,
		RetryWait:              retryWait,
		MaxRetry:               maxRetries,
		Async:                  async,
		AsyncReconnectInterval: reconnectInterval,
		SubSecondPrecision:     subSecond,
		RequestAck:             requestAck,
		// The one difference from Docker: Close drains the queue.
		ForceStopAsyncSend: false,
		WriteTimeout:       writeTimeout,
	}, nil
}

// fluentdLocation is where the driver connects: a host and port for tcp
// and tls, a path for unix.
type fluentdLocation struct {
	protocol string
	host     string
	port     int
	path     string
}

// parseFluentdAddress parses fluentd-address as Docker does: empty is
// tcp://127.0.0.1:24224, no scheme is tcp, host and port default apart.
func parseFluentdAddress(address string) (fluentdLocation, error) {
	if address == "" {
		return fluentdLocation{protocol: fluentdDefaultProtocol, host: fluentdDefaultHost, port: fluentdDefaultPort}, nil
	}
	if !strings.Contains(address, "://") {
		address = fluentdDefaultProtocol + "://" + address
	}
	u, err := url.Parse(address)
	if err != nil {
		return fluentdLocation{}, err
	}
	switch u.Scheme {
	case "unix":
		if strings.TrimLeft(u.Path, "/") == "" {
			return fluentdLocation{}, errors.New("path is empty")
		}
		return fluentdLocation{protocol: u.Scheme, path: u.Path}, nil
	case "tcp", "tls":
	default:
		return fluentdLocation{}, fmt.Errorf("unsupported scheme: '%s'", u.Scheme)
	}
	if u.Path != "" {
		return fluentdLocation{}, errors.New("should not contain a path element")
	}
	loc := fluentdLocation{protocol: u.Scheme, host: fluentdDefaultHost, port: fluentdDefaultPort}
	if h := u.Hostname(); h != "" {
		loc.host = h
	}
	if p := u.Port(); p != "" {
		// Port numbers are 16 bits.
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return fluentdLocation{}, fmt.Errorf("invalid port: %w", err)
		}
		loc.port = int(n)
	}
	return loc, nil
}
