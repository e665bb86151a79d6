// Package logopt holds the log-opt checks that more than one of our own
// drivers makes (syslog over RELP in package drivers, fluentd in
// drivers/fluentd), so that each is written and worded once.
//
// It must never import another package of this module: drivers and the
// drivers' packages import it.
package logopt

import (
	"fmt"
	"regexp"
)

// CheckRegexOpts checks labels-regex and env-regex, which Docker's
// validator lets through and its driver then fails on at every creation.
func CheckRegexOpts(cfg map[string]string) error {
	for _, key := range []string{"labels-regex", "env-regex"} {
		if v := cfg[key]; v != "" {
			if _, err := regexp.Compile(v); err != nil {
				return BadOpt(cfg, key, err)
			}
		}
	}
	return nil
}

// BadOpt names the option whose value failed to parse.
func BadOpt(cfg map[string]string, key string, err error) error {
	return fmt.Errorf("log-opt %s=%q: %w", key, cfg[key], err)
}
