package drivers

import (
	"fmt"
	"strconv"

	units "github.com/docker/go-units"

	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/drivers/loki"
	"github.com/joyent/dockerlogger/drivers/otlp"
	"github.com/joyent/dockerlogger/drivers/splunk"
)

// Options every Docker driver that tags or decorates messages shares.
var common = []Option{
	{"tag", "{{.ID}}"},
	{"labels", ""},
	{"labels-regex", ""},
	{"env", ""},
	{"env-regex", ""},
}

func with(extra ...Option) []Option { return append(append([]Option(nil), common...), extra...) }

// driverOptions are the log-opts each of Docker's drivers accepts, with
// Docker's defaults ("" where Docker has none or computes one). A test
// checks every name against Docker's own validators.
var driverOptions = map[string][]Option{
	"json-file": with(Option{"max-size", "-1"}, Option{"max-file", "1"}, Option{"compress", "false"}),
	"local":     {{"max-size", "20m"}, {"max-file", "5"}, {"compress", "true"}},
	"syslog": with(
		Option{"syslog-address", "unix:///dev/log"},
		Option{"syslog-facility", "daemon"},
		Option{"syslog-format", "rfc3164"},
		Option{"syslog-tls-ca-cert", ""},
		Option{"syslog-tls-cert", ""},
		Option{"syslog-tls-key", ""},
		Option{"syslog-tls-skip-verify", "false"},
	),
	"fluentd": with(
		Option{"fluentd-address", "tcp://127.0.0.1:24224"},
		Option{"fluentd-async", "false"},
		Option{"fluentd-async-reconnect-interval", "0"},
		Option{"fluentd-buffer-limit", "1048576"},
		Option{"fluentd-max-retries", "2147483647"},
		Option{"fluentd-request-ack", "false"},
		Option{"fluentd-retry-wait", "1s"},
		Option{"fluentd-sub-second-precision", "false"},
		Option{"fluentd-write-timeout", "0"},
		// Ours, not Docker's: TLS with a CA and a client certificate.
		Option{"fluentd-tls-ca-cert", ""},
		Option{"fluentd-tls-cert", ""},
		Option{"fluentd-tls-key", ""},
		Option{"fluentd-tls-skip-verify", "false"},
	),
	"gelf": with(
		Option{"gelf-address", ""},
		Option{"gelf-compression-type", "gzip"},
		Option{"gelf-compression-level", "1"},
		Option{"gelf-tcp-max-reconnect", "3"},
		Option{"gelf-tcp-reconnect-delay", "1"},
	),
	"journald": with(),
	"awslogs": {
		{"tag", "{{.ID}}"},
		{"awslogs-region", ""},
		{"awslogs-endpoint", ""},
		{"awslogs-group", ""},
		{"awslogs-stream", ""},
		{"awslogs-create-group", "false"},
		{"awslogs-datetime-format", ""},
		{"awslogs-multiline-pattern", ""},
		{"awslogs-credentials-endpoint", ""},
		{"awslogs-force-flush-interval-seconds", "5"},
		{"awslogs-max-buffered-events", "4096"},
		{"awslogs-format", ""},
	},
	"gcplogs": {
		{"labels", ""},
		{"labels-regex", ""},
		{"env", ""},
		{"env-regex", ""},
		{"gcp-project", ""},
		{"gcp-log-cmd", "false"},
		{"gcp-meta-zone", ""},
		{"gcp-meta-name", ""},
		{"gcp-meta-id", ""},
	},
	"none": nil,
	"otlp": ownTable(otlp.Options),
	"loki": ownTable(loki.Options),
	// Ours, with Docker's option names and defaults (drivers_test.go
	// checks them against Docker's source).
	"splunk": ownTable(splunk.Options),
}

// ownTable turns the option table of one of our own drivers' packages into
// this table's rows.
func ownTable(opts [][2]string) []Option {
	out := make([]Option, len(opts))
	for i, o := range opts {
		out[i] = Option{o[0], o[1]}
	}
	return out
}

// validateFileOpts checks the values Docker's json-file and local drivers
// only check when they are created, so that --validate catches them.
func validateFileOpts(driver string, opts map[string]string) error {
	bad := func(k, why string) error {
		return fmt.Errorf("%s: log-opt %s=%s: %s", driver, k, diag.Quote(opts[k]), why)
	}
	// Docker's json-file wants both positive; local allows 0.
	maxFiles, minSize, minFiles := 1, int64(1), 1
	if driver == "local" {
		maxFiles, minSize, minFiles = 5, 0, 0
	}
	sized := false
	if v, ok := opts["max-size"]; ok {
		n, err := units.FromHumanSize(v)
		if err != nil || n < minSize {
			return bad("max-size", "not a positive size (e.g. 10m)")
		}
		sized = true
	}
	if v, ok := opts["max-file"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < minFiles {
			return bad("max-file", fmt.Sprintf("not a whole number of at least %d", minFiles))
		}
		maxFiles = n
	}
	compress := driver == "local"
	if v, ok := opts["compress"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return bad("compress", "must be true or false")
		}
		compress = b
	}
	if driver == "local" && compress && maxFiles <= 1 {
		return fmt.Errorf("local: compression cannot be enabled when max-file is 1 (set compress=false)")
	}
	if driver == "json-file" && compress && (maxFiles < 2 || !sized) {
		return fmt.Errorf("json-file: log-opt compress=true needs max-file of at least 2 and a max-size")
	}
	return nil
}
