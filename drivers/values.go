package drivers

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/joyent/dockerlogger/diag"
)

// validateValues checks option values that Docker's validators let
// through and its drivers only refuse when they are created: here that
// would mean a driver retried forever after --validate said ok.
func validateValues(driver string, opts map[string]string) error {
	bad := func(k, why string) error {
		return fmt.Errorf("%s: log-opt %s=%s: %s", driver, k, diag.Quote(opts[k]), why)
	}
	isBool := func(k string) error {
		if v, ok := opts[k]; ok {
			if _, err := strconv.ParseBool(v); err != nil {
				return bad(k, "must be true or false")
			}
		}
		return nil
	}
	isRegexp := func(k string) error {
		if v, ok := opts[k]; ok {
			if _, err := regexp.Compile(v); err != nil {
				return bad(k, "not a regular expression: "+err.Error())
			}
		}
		return nil
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(isRegexp("labels-regex"))
	add(isRegexp("env-regex"))
	switch driver {
	case "awslogs":
		add(isRegexp("awslogs-multiline-pattern"))
	case "gcplogs":
		add(isBool("gcp-log-cmd"))
	case "gelf":
		if v, ok := opts["gelf-address"]; !ok || v == "" {
			add(fmt.Errorf("gelf: log-opt gelf-address is required (udp://host:port or tcp://host:port)"))
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}
