package splunk

import (
	"compress/gzip"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/drivers/httppush"
	"github.com/joyent/dockerlogger/drivers/logopt"
)

// The log-opts of Docker's splunk driver, every one of them and no other.
const (
	urlKey        = "splunk-url"
	tokenKey      = "splunk-token"
	sourceKey     = "splunk-source"
	sourceTypeKey = "splunk-sourcetype"
	indexKey      = "splunk-index"
	caPathKey     = "splunk-capath"
	caNameKey     = "splunk-caname"
	skipVerifyKey = "splunk-insecureskipverify"
	formatKey     = "splunk-format"
	verifyKey     = "splunk-verify-connection"
	gzipKey       = "splunk-gzip"
	gzipLevelKey  = "splunk-gzip-level"
	indexAckKey   = "splunk-index-acknowledgment"
)

// Values of splunk-format.
const (
	formatInline = "inline"
	formatJSON   = "json"
	formatRaw    = "raw"
)

// Options are the log-opts of the splunk driver with Docker's defaults
// ("" where Docker has none).
var Options = [][2]string{
	{"tag", "{{.ID}}"}, {"labels", ""}, {"labels-regex", ""}, {"env", ""}, {"env-regex", ""},
	{urlKey, ""},
	{tokenKey, ""},
	{sourceKey, ""},
	{sourceTypeKey, ""},
	{indexKey, ""},
	{caPathKey, ""},
	{caNameKey, ""},
	{skipVerifyKey, "false"},
	{formatKey, formatInline},
	{verifyKey, "true"},
	{gzipKey, "false"},
	{gzipLevelKey, strconv.Itoa(gzip.DefaultCompression)},
	{indexAckKey, "false"},
}

// Docker's driver reads its batching from these variables of its
// environment (here, the logger's). Its SPLUNK_LOGGING_DRIVER_BUFFER_MAX
// and _CHANNEL_SIZE, counts of messages it holds, mean nothing here and
// are ignored: what is held is bounded in bytes (package comment).
const (
	frequencyEnv = "SPLUNK_LOGGING_DRIVER_POST_MESSAGES_FREQUENCY"
	batchSizeEnv = "SPLUNK_LOGGING_DRIVER_POST_MESSAGES_BATCH_SIZE"
)

// Docker's defaults for those variables: a post every 5 s at the latest
// (here 5 s after the batch's first line), of 1000 messages at most.
const (
	defaultBatchWait    = 5 * time.Second
	defaultBatchRecords = 1000
)

// collectorPath is the one endpoint Docker's driver posts to, whatever
// the path of splunk-url (which may only be empty or "/").
const collectorPath = "/services/collector/event/1.0"

// options is a parsed configuration.
type options struct {
	url                       string // the collector endpoint, without user information
	token                     string
	source, sourceType, index string
	tls                       httppush.TLS
	format                    string
	verify                    bool
	gzip                      bool
	gzipLevel                 int
	indexAck                  bool
	batchWait                 time.Duration
	batchRecords              int
}

// parse checks a configuration as Docker's driver does when it is
// created, without the network. Its errors name the option; they never
// quote splunk-token, nor splunk-url, which may hold a password.
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
		return nil, fmt.Errorf("unknown log opt '%s' for %s log driver", k, Name)
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
	bad := func(k, why string) error {
		return fmt.Errorf("log-opt %s=%s: %s", k, diag.Quote(cfg[k]), why)
	}
	boolean := func(k string) (bool, error) {
		b, err := strconv.ParseBool(get(k))
		if err != nil {
			return false, bad(k, "must be true or false")
		}
		return b, nil
	}
	o := &options{source: cfg[sourceKey], sourceType: cfg[sourceTypeKey], index: cfg[indexKey], token: cfg[tokenKey]}
	var err error
	if o.url, err = collectorURL(cfg[urlKey]); err != nil {
		return nil, err
	}
	if o.token == "" {
		return nil, fmt.Errorf("log-opt %s is required", tokenKey)
	}
	if strings.ContainsFunc(o.token, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		// It could never go in a header: every post would fail.
		return nil, fmt.Errorf("log-opt %s: holds a control character", tokenKey)
	}
	if o.tls.SkipVerify, err = boolean(skipVerifyKey); err != nil {
		return nil, err
	}
	o.tls.CAFile, o.tls.ServerName = cfg[caPathKey], cfg[caNameKey]
	if _, err := o.tls.Config(); err != nil {
		return nil, fmt.Errorf("log-opt %s: %w", caPathKey, err)
	}
	switch o.format = get(formatKey); o.format {
	case formatInline, formatJSON, formatRaw:
	default:
		return nil, bad(formatKey, "must be inline, json or raw")
	}
	if o.verify, err = boolean(verifyKey); err != nil {
		return nil, err
	}
	if o.gzip, err = boolean(gzipKey); err != nil {
		return nil, err
	}
	if o.gzipLevel, err = strconv.Atoi(get(gzipLevelKey)); err != nil || o.gzipLevel < gzip.DefaultCompression || o.gzipLevel > gzip.BestCompression {
		return nil, bad(gzipLevelKey, fmt.Sprintf("must be a whole number from %d to %d", gzip.DefaultCompression, gzip.BestCompression))
	}
	if o.indexAck, err = boolean(indexAckKey); err != nil {
		return nil, err
	}
	// Docker's driver logs a bad value and takes the default, or panics on
	// 0; refuse it instead, as otlp refuses a bad OTEL_ variable.
	o.batchWait, o.batchRecords = defaultBatchWait, defaultBatchRecords
	if v := getenv(frequencyEnv); v != "" {
		if o.batchWait, err = time.ParseDuration(v); err != nil || o.batchWait <= 0 {
			return nil, fmt.Errorf("%s=%s: not a positive duration (e.g. 5s)", frequencyEnv, diag.Quote(v))
		}
	}
	if v := getenv(batchSizeEnv); v != "" {
		if o.batchRecords, err = strconv.Atoi(v); err != nil || o.batchRecords <= 0 {
			return nil, fmt.Errorf("%s=%s: not a positive number of messages", batchSizeEnv, diag.Quote(v))
		}
	}
	return o, nil
}

// collectorURL checks splunk-url as Docker's driver does (an absolute
// http(s) URL with no path but "/", no query, no fragment; and a host)
// and returns the endpoint posted to. User information, which Docker's
// driver never sends (the token is the Authorization), is left out.
func collectorURL(raw string) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("log-opt %s is required (e.g. https://splunk:8088)", urlKey)
	}
	u, err := httppush.ParseURL(raw)
	if err == nil && (u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "") {
		err = errors.New("expected scheme://host:port, with no path, query or fragment")
	}
	if err != nil {
		return "", fmt.Errorf("log-opt %s: %w", urlKey, err)
	}
	u.User, u.Path, u.RawPath = nil, collectorPath, ""
	return u.String(), nil
}
