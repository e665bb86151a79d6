package filelog

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/daemon/logger/loggerutils"
	units "github.com/docker/go-units"
)

// JSONOptionNames are the log-opts Docker's json-file driver accepts.
func JSONOptionNames() []string {
	return []string{"max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag"}
}

// LocalOptionNames are the log-opts Docker's local driver accepts.
func LocalOptionNames() []string { return []string{"max-file", "max-size", "compress"} }

// NewJSONDriver creates a json-file logger from info exactly as Docker's
// jsonfilelog.New does: the same options, defaults (unbounded, one file,
// no compression), checks, and extra attributes (labels, env, and tag
// only when the user asked for one). onError (may be nil) gets the errors
// Docker only logs: a failed rename or compression at rotation.
func NewJSONDriver(info logger.Info, onError func(error)) (*JSON, error) {
	o := Options{Path: info.LogPath, MaxSize: -1, MaxFiles: 1, OnError: onError}
	if v, ok := info.Config["max-size"]; ok {
		n, err := units.FromHumanSize(v)
		if err != nil {
			return nil, fmt.Errorf("max-size: %w", err)
		}
		if n <= 0 {
			return nil, errors.New("max-size must be a positive number")
		}
		o.MaxSize = n
	}
	if v, ok := info.Config["max-file"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("max-file: %w", err)
		}
		if n < 1 {
			return nil, errors.New("max-file cannot be less than 1")
		}
		o.MaxFiles = n
	}
	if v, ok := info.Config["compress"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("compress: %w", err)
		}
		if b && (o.MaxFiles == 1 || o.MaxSize == -1) {
			return nil, errors.New("compress cannot be true when max-file is less than 2 or max-size is not set")
		}
		o.Compress = b
	}
	attrs, err := info.ExtraAttributes(nil)
	if err != nil {
		return nil, fmt.Errorf("labels/env: %w", err)
	}
	tag, err := loggerutils.ParseLogTag(info, "")
	if err != nil {
		return nil, fmt.Errorf("tag: %w", err)
	}
	if tag != "" {
		attrs["tag"] = tag
	}
	var raw []byte
	if len(attrs) > 0 {
		// encoding/json sorts the keys, as Docker's driver gets them.
		if raw, err = json.Marshal(attrs); err != nil {
			return nil, fmt.Errorf("attrs: %w", err)
		}
	}
	return NewJSON(o, raw)
}

// NewLocalDriver creates a local logger from info exactly as Docker's
// local.New does: defaults 20m, 5 files, compressed. onError is as for
// NewJSONDriver.
func NewLocalDriver(info logger.Info, onError func(error)) (*Local, error) {
	if info.LogPath == "" {
		return nil, errors.New("log path is missing")
	}
	o := Options{Path: info.LogPath, MaxSize: 20 << 20, MaxFiles: 5, Compress: true, OnError: onError}
	if v, ok := info.Config["max-size"]; ok {
		n, err := units.FromHumanSize(v)
		if err != nil {
			return nil, fmt.Errorf("invalid value for max-size: %s: %w", v, err)
		}
		o.MaxSize = n
	}
	if v, ok := info.Config["max-file"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("invalid value for max-file: %s: %w", v, err)
		}
		o.MaxFiles = n
	}
	if v, ok := info.Config["compress"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("error reading compress log option: %w", err)
		}
		o.Compress = b
	}
	switch {
	case o.MaxSize < 0:
		return nil, errors.New("max size should be a positive number")
	case o.MaxFiles < 0:
		return nil, errors.New("max file count cannot be less than 0")
	case o.Compress && o.MaxFiles <= 1:
		return nil, errors.New("compression cannot be enabled when max file count is 1")
	}
	return NewLocal(o)
}

// ValidateOptions checks that cfg holds only the names in allowed, with
// the error Docker's validator for driver gives.
func ValidateOptions(driver string, allowed []string, cfg map[string]string) error {
next:
	for k := range cfg {
		for _, a := range allowed {
			if k == a {
				continue next
			}
		}
		if driver == "local" {
			return fmt.Errorf("unknown log opt '%s' for log driver local", k)
		}
		return fmt.Errorf("unknown log opt '%s' for %s log driver", k, driver)
	}
	return nil
}
