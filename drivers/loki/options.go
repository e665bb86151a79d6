package loki

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/daemon/logger/templates"

	"github.com/joyent/dockerlogger/drivers/httppush"
	"github.com/joyent/dockerlogger/drivers/logopt"
)

// The log-opts of Grafana's Docker driver that this one takes, with the
// same meaning and defaults, and loki-format, ours.
const (
	urlKey            = "loki-url"
	externalLabelsKey = "loki-external-labels"
	tenantKey         = "loki-tenant-id"
	batchSizeKey      = "loki-batch-size"
	batchWaitKey      = "loki-batch-wait"
	timeoutKey        = "loki-timeout"
	minBackoffKey     = "loki-min-backoff"
	maxBackoffKey     = "loki-max-backoff"
	retriesKey        = "loki-retries"
	caKey             = "loki-tls-ca-file"
	certKey           = "loki-tls-cert-file"
	keyKey            = "loki-tls-key-file"
	serverNameKey     = "loki-tls-server-name"
	skipVerifyKey     = "loki-tls-insecure-skip-verify"
	proxyKey          = "loki-proxy-url"
	formatKey         = "loki-format"
)

// Values of loki-format.
const (
	formatProtobuf = "protobuf"
	formatJSON     = "json"
)

// Options are the log-opts of the loki driver with their defaults
// (Grafana's: its clients' BatchWait, BatchSize, MinBackoff, MaxBackoff,
// MaxRetries and Timeout).
var Options = [][2]string{
	{"labels", ""}, {"labels-regex", ""}, {"env", ""}, {"env-regex", ""},
	{urlKey, ""},
	{externalLabelsKey, "container_name={{.Name}}"},
	{tenantKey, ""},
	{batchSizeKey, "1048576"},
	{batchWaitKey, "1s"},
	{timeoutKey, "10s"},
	{minBackoffKey, "500ms"},
	{maxBackoffKey, "5m"},
	{retriesKey, "10"},
	{caKey, ""},
	{certKey, ""},
	{keyKey, ""},
	{serverNameKey, ""},
	{skipVerifyKey, "false"},
	{proxyKey, ""},
	{formatKey, formatProtobuf},
}

// unsupported are options of Grafana's driver this one refuses, and why.
var unsupported = map[string]string{
	"loki-pipeline-stages":     "pipeline stages are not supported: relabel in Loki or in a collector",
	"loki-pipeline-stage-file": "pipeline stages are not supported: relabel in Loki or in a collector",
	"loki-relabel-config":      "relabelling is not supported: set the labels with loki-external-labels, labels and env",
	"no-file":                  "there is no json-file copy to turn off: the local copy for docker logs is the cache (cache-disabled)",
	"keep-file":                "there is no json-file copy to keep: the local copy for docker logs is the cache (cache-disabled)",
	"max-size":                 "the local copy for docker logs is the cache: use cache-max-size",
	"max-file":                 "the local copy for docker logs is the cache: use cache-max-file",
}

// options is a parsed configuration.
type options struct {
	url        *url.URL
	user, pass string // from the URL's user information, sent as basic auth
	tenant     string
	labels     map[string]string // every stream's labels but source
	batchSize  int
	batchWait  time.Duration
	timeout    time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
	retries    int
	tls        httppush.TLS
	proxy      *url.URL
	json       bool
}

// parse checks a configuration and computes the stream labels.
func parse(info logger.Info) (*options, error) {
	cfg := info.Config
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
		if why, ok := unsupported[k]; ok {
			return nil, fmt.Errorf("log-opt %s: %s", k, why)
		}
		return nil, fmt.Errorf("unknown log opt '%s' for loki log driver", k)
	}
	if err := logopt.CheckRegexOpts(cfg); err != nil {
		return nil, err
	}
	get := func(k string) string {
		if v, ok := cfg[k]; ok {
			return v
		}
		for _, o := range Options {
			if o[0] == k {
				return o[1]
			}
		}
		return ""
	}
	bad := func(k string, why string) error {
		return fmt.Errorf("log-opt %s=%q: %s", k, cfg[k], why)
	}
	o := &options{tenant: cfg[tenantKey]}
	raw, ok := cfg[urlKey]
	if !ok || raw == "" {
		return nil, fmt.Errorf("log-opt %s is required (e.g. http://loki:3100/loki/api/v1/push)", urlKey)
	}
	u, err := httppush.ParseURL(raw)
	if err != nil {
		// It may hold user:password: never quoted.
		return nil, fmt.Errorf("log-opt %s: %w", urlKey, err)
	}
	if u.User != nil {
		o.user = u.User.Username()
		o.pass, _ = u.User.Password()
		u.User = nil
	}
	o.url = u
	if strings.ContainsAny(o.tenant, "\r\n\x00") {
		return nil, bad(tenantKey, "holds a line break")
	}
	positive := func(k string) (time.Duration, error) {
		d, err := time.ParseDuration(get(k))
		if err != nil || d <= 0 {
			return 0, bad(k, "not a positive duration (e.g. 1s)")
		}
		return d, nil
	}
	if o.batchWait, err = positive(batchWaitKey); err != nil {
		return nil, err
	}
	if o.timeout, err = positive(timeoutKey); err != nil {
		return nil, err
	}
	if o.minBackoff, err = positive(minBackoffKey); err != nil {
		return nil, err
	}
	if o.maxBackoff, err = positive(maxBackoffKey); err != nil {
		return nil, err
	}
	if o.maxBackoff < o.minBackoff {
		return nil, bad(maxBackoffKey, "shorter than loki-min-backoff")
	}
	if o.batchSize, err = strconv.Atoi(get(batchSizeKey)); err != nil || o.batchSize <= 0 || o.batchSize > 64<<20 {
		return nil, bad(batchSizeKey, "not a number of bytes from 1 to 67108864")
	}
	if o.retries, err = strconv.Atoi(get(retriesKey)); err != nil || o.retries < 0 {
		return nil, bad(retriesKey, "not a whole number (0 retries without end)")
	}
	o.tls = httppush.TLS{CAFile: cfg[caKey], CertFile: cfg[certKey], KeyFile: cfg[keyKey], ServerName: cfg[serverNameKey]}
	if o.tls.SkipVerify, err = strconv.ParseBool(get(skipVerifyKey)); err != nil {
		return nil, bad(skipVerifyKey, "must be true or false")
	}
	if _, err := o.tls.Config(); err != nil {
		return nil, fmt.Errorf("loki TLS (%s, %s, %s): %w", caKey, certKey, keyKey, err)
	}
	if v := cfg[proxyKey]; v != "" {
		if o.proxy, err = httppush.ParseURL(v); err != nil {
			return nil, fmt.Errorf("log-opt %s: %w", proxyKey, err)
		}
	}
	switch get(formatKey) {
	case formatProtobuf:
	case formatJSON:
		o.json = true
	default:
		return nil, bad(formatKey, "must be protobuf or json")
	}
	if o.labels, err = streamLabels(info, get(externalLabelsKey)); err != nil {
		return nil, err
	}
	return o, nil
}

// Docker labels that Grafana's driver turns into stream labels by itself.
var knownLabels = [][2]string{
	{"com.docker.swarm.service.name", "swarm_service"},
	{"com.docker.stack.namespace", "swarm_stack"},
	{"com.docker.compose.service", "compose_service"},
	{"com.docker.compose.project", "compose_project"},
}

// streamLabels are the labels of every stream, as Grafana's driver makes
// them: loki-external-labels (values are Docker tag templates), the
// labels and env log-opts (names with - and . as _), the swarm and
// compose labels, and host. The driver adds source per message. Unlike
// Grafana's there is no filename label: no json-file is written.
func streamLabels(info logger.Info, external string) (map[string]string, error) {
	labels := map[string]string{}
	for _, lv := range strings.Split(external, ",") {
		parts := strings.Split(lv, "=")
		if len(parts) != 2 {
			return nil, fmt.Errorf("log-opt %s=%q: %q is not name=value", externalLabelsKey, external, lv)
		}
		if !validName(parts[0]) {
			return nil, fmt.Errorf("log-opt %s=%q: %q is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)", externalLabelsKey, external, parts[0])
		}
		tmpl, err := templates.NewParse("label_value", parts[1])
		if err != nil {
			return nil, fmt.Errorf("log-opt %s=%q: %w", externalLabelsKey, external, err)
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, &info); err != nil {
			return nil, fmt.Errorf("log-opt %s=%q: %w", externalLabelsKey, external, err)
		}
		labels[parts[0]] = b.String()
	}
	attrs, err := info.ExtraAttributes(func(k string) string {
		return strings.ReplaceAll(strings.ReplaceAll(k, "-", "_"), ".", "_")
	})
	if err != nil {
		return nil, err
	}
	for _, kl := range knownLabels {
		if v := info.ContainerLabels[kl[0]]; v != "" {
			attrs[kl[1]] = v
		}
	}
	for k, v := range attrs {
		if !validName(k) {
			return nil, fmt.Errorf("label %q (from labels or env) is not a label name", k)
		}
		labels[k] = v
	}
	if host, err := os.Hostname(); err == nil {
		labels["host"] = host
	}
	for k, v := range labels {
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("label %s: value is not UTF-8", k)
		}
		if v == "" {
			delete(labels, k) // Loki drops empty labels
		}
	}
	if len(labels) == 0 {
		return nil, errors.New("no stream labels: set loki-external-labels")
	}
	return labels, nil
}

// validName is Prometheus' label name syntax, which every Loki accepts.
func validName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i, c := range s {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
