package otlp

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"

	"github.com/joyent/dockerlogger/drivers/httppush"
	"github.com/joyent/dockerlogger/drivers/logopt"
)

// The log-opts of the otlp driver.
const (
	endpointKey    = "otlp-endpoint"
	protocolKey    = "otlp-protocol"
	headersKey     = "otlp-headers"
	compressionKey = "otlp-compression"
	timeoutKey     = "otlp-timeout"
	resourceKey    = "otlp-resource-attributes"
	caKey          = "otlp-tls-ca-cert"
	certKey        = "otlp-tls-cert"
	keyKey         = "otlp-tls-key"
	skipVerifyKey  = "otlp-tls-skip-verify"
	batchSizeKey   = "otlp-batch-size"
	batchWaitKey   = "otlp-batch-wait"
)

// Values of otlp-protocol and otlp-compression.
const (
	protoProtobuf = "http/protobuf"
	protoJSON     = "http/json"
	protoGRPC     = "grpc"
	compressNone  = "none"
	compressGzip  = "gzip"
)

// Options are the log-opts of the otlp driver with their defaults, which
// the OTEL_EXPORTER_OTLP_* variables of the logger's environment replace
// (see envNames).
var Options = [][2]string{
	{"labels", ""}, {"labels-regex", ""}, {"env", ""}, {"env-regex", ""},
	{endpointKey, "http://localhost:4318"},
	{protocolKey, protoProtobuf},
	{headersKey, ""},
	{compressionKey, compressNone},
	{timeoutKey, "10s"},
	{resourceKey, ""},
	{caKey, ""},
	{certKey, ""},
	{keyKey, ""},
	{skipVerifyKey, "false"},
	{batchSizeKey, "1m"},
	{batchWaitKey, "1s"},
}

// envNames are the variables of the OpenTelemetry specification that set
// an option's default, the logs-only one first (it wins). The endpoint
// variables differ: OTEL_EXPORTER_OTLP_ENDPOINT is a base to which
// /v1/logs is added, OTEL_EXPORTER_OTLP_LOGS_ENDPOINT is used as it is.
var envNames = map[string][]string{
	protocolKey:    {"OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"},
	headersKey:     {"OTEL_EXPORTER_OTLP_LOGS_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"},
	compressionKey: {"OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"},
	timeoutKey:     {"OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"}, // milliseconds
	caKey:          {"OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"},
	certKey:        {"OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"},
	keyKey:         {"OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY"},
	resourceKey:    {"OTEL_RESOURCE_ATTRIBUTES"},
}

const logsPath = "/v1/logs"

// options is a parsed configuration.
type options struct {
	url         string // the full URL posted to, without user information
	user, pass  string // the endpoint's user information, sent as basic auth
	protocol    string
	headers     [][2]string
	gzip        bool
	timeout     time.Duration
	resource    [][2]string
	serviceName string // OTEL_SERVICE_NAME
	tls         httppush.TLS
	batchSize   int
	batchWait   time.Duration
}

// setting is one option's value and where it came from, for errors.
type setting struct{ from, value string }

// lookup returns an option's setting: the log-opt, else the first
// variable of envNames that is set, else the default.
func lookup(cfg map[string]string, getenv func(string) string, key string) setting {
	if v, ok := cfg[key]; ok {
		return setting{"log-opt " + key, v}
	}
	for _, e := range envNames[key] {
		if v := getenv(e); v != "" {
			return setting{e, v}
		}
	}
	for _, o := range Options {
		if o[0] == key {
			return setting{"log-opt " + key, o[1]}
		}
	}
	return setting{"log-opt " + key, ""}
}

// parse checks a configuration. Its errors name the option (or the
// variable) and, but for otlp-headers, quote the value.
func parse(cfg map[string]string, getenv func(string) string) (*options, error) {
	names := make([]string, 0, len(cfg))
	for k := range cfg {
		names = append(names, k)
	}
	sort.Strings(names)
next:
	for _, k := range names {
		for _, o := range Options {
			if o[0] == k {
				continue next
			}
		}
		return nil, fmt.Errorf("unknown log opt '%s' for otlp log driver", k)
	}
	if err := logopt.CheckRegexOpts(cfg); err != nil {
		return nil, err
	}
	o := &options{}
	bad := func(s setting, err error) error {
		return fmt.Errorf("%s=%q: %w", s.from, s.value, err)
	}
	// The endpoint.
	var err error
	if o.url, o.user, o.pass, err = endpoint(cfg, getenv); err != nil {
		return nil, err
	}
	s := lookup(cfg, getenv, protocolKey)
	switch s.value {
	case protoProtobuf, protoJSON:
		o.protocol = s.value
	case protoGRPC:
		return nil, bad(s, errors.New("OTLP/gRPC is not supported: use http/protobuf (port 4318)"))
	default:
		return nil, bad(s, errors.New("must be http/protobuf or http/json"))
	}
	s = lookup(cfg, getenv, headersKey)
	if o.headers, err = pairs(s.value); err != nil {
		// The value holds credentials: never quoted.
		return nil, fmt.Errorf("%s: %w", s.from, err)
	}
	for _, h := range o.headers {
		if !validHeaderName(h[0]) {
			return nil, fmt.Errorf("%s: %q is not a header name", s.from, h[0])
		}
		if strings.ContainsAny(h[1], "\r\n\x00") {
			return nil, fmt.Errorf("%s: the value of %s holds a line break", s.from, h[0])
		}
	}
	s = lookup(cfg, getenv, compressionKey)
	switch s.value {
	case compressNone, "":
	case compressGzip:
		o.gzip = true
	default:
		return nil, bad(s, errors.New("must be none or gzip"))
	}
	s = lookup(cfg, getenv, timeoutKey)
	if strings.HasPrefix(s.from, "OTEL_") {
		ms, err := strconv.ParseUint(s.value, 10, 32)
		if err != nil || ms == 0 {
			return nil, bad(s, errors.New("not a positive number of milliseconds"))
		}
		o.timeout = time.Duration(ms) * time.Millisecond
	} else if o.timeout, err = time.ParseDuration(s.value); err != nil || o.timeout <= 0 {
		return nil, bad(s, errors.New("not a positive duration (e.g. 10s)"))
	}
	s = lookup(cfg, getenv, resourceKey)
	if o.resource, err = pairs(s.value); err != nil {
		return nil, bad(s, err)
	}
	o.serviceName = getenv("OTEL_SERVICE_NAME")
	o.tls.CAFile = lookup(cfg, getenv, caKey).value
	o.tls.CertFile = lookup(cfg, getenv, certKey).value
	o.tls.KeyFile = lookup(cfg, getenv, keyKey).value
	s = lookup(cfg, getenv, skipVerifyKey)
	if o.tls.SkipVerify, err = strconv.ParseBool(s.value); err != nil {
		return nil, bad(s, errors.New("must be true or false"))
	}
	if _, err := o.tls.Config(); err != nil {
		return nil, fmt.Errorf("otlp TLS (%s, %s, %s): %w", caKey, certKey, keyKey, err)
	}
	s = lookup(cfg, getenv, batchSizeKey)
	n, err := units.RAMInBytes(s.value)
	if err != nil || n <= 0 || n > 64<<20 {
		return nil, bad(s, errors.New("not a size from 1 byte to 64m"))
	}
	o.batchSize = int(n)
	s = lookup(cfg, getenv, batchWaitKey)
	if o.batchWait, err = time.ParseDuration(s.value); err != nil || o.batchWait < 0 {
		return nil, bad(s, errors.New("not a duration (e.g. 1s; 0 sends each line at once)"))
	}
	return o, nil
}

// endpoint returns the URL to post to and its user information, taken
// out of it so that no error quoting the URL quotes a password.
func endpoint(cfg map[string]string, getenv func(string) string) (u string, user, pass string, err error) {
	s, base := setting{}, true
	if v, ok := cfg[endpointKey]; ok {
		s = setting{"log-opt " + endpointKey, v}
	} else if v := getenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"); v != "" {
		s, base = setting{"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", v}, false
	} else if v := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" {
		s = setting{"OTEL_EXPORTER_OTLP_ENDPOINT", v}
	} else {
		s = setting{"log-opt " + endpointKey, "http://localhost:4318"}
	}
	pu, err := httppush.ParseURL(s.value)
	if err != nil {
		// A URL may hold user:password: name it, never quote it.
		return "", "", "", fmt.Errorf("%s: %w", s.from, err)
	}
	if pu.RawQuery != "" || pu.Fragment != "" {
		return "", "", "", fmt.Errorf("%s: no query or fragment allowed", s.from)
	}
	// A base gets /v1/logs added to its path, as the specification says
	// of OTEL_EXPORTER_OTLP_ENDPOINT; one that ends with it already is
	// taken as it is.
	if base && !strings.HasSuffix(pu.Path, logsPath) {
		pu.Path = strings.TrimSuffix(pu.Path, "/") + logsPath
	}
	if pu.User != nil {
		user = pu.User.Username()
		pass, _ = pu.User.Password()
		pu.User = nil
	}
	return pu.String(), user, pass, nil
}

// pairs parses k=v,k=v as the OTEL_EXPORTER_OTLP_HEADERS and
// OTEL_RESOURCE_ATTRIBUTES variables are written: keys and values
// trimmed, values percent-decoded. Its errors never quote a value.
func pairs(s string) ([][2]string, error) {
	var out [][2]string
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for i, item := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("entry %d is not key=value", i+1)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("entry %d (%s): bad percent-encoding", i+1, k)
		}
		out = append(out, [2]string{k, dv})
	}
	return out, nil
}

// validHeaderName reports whether s is an HTTP token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
