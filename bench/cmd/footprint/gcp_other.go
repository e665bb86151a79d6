//go:build !linux

package main

// gcpSetup needs Linux namespaces: elsewhere gcplogs is skipped.
func gcpSetup(p params, dir string) (argv []string, envf func(int) []string, cleanup func(), err error) {
	return nil, nil, func() {}, nil
}
