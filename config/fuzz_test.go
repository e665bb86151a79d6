package config_test

import (
	"strings"
	"testing"

	"github.com/joyent/dockerlogger/config"
)

// FuzzConfig feeds arbitrary DOCKERLOG_CONFIG JSON (Triton style) and
// arbitrary containerd argv (words separated by newlines) to FromArgs:
// it must never panic, and must return either a usable Config or an
// error, never both, never neither. The seed corpus in
// testdata/fuzz/FuzzConfig runs as an ordinary test.
func FuzzConfig(f *testing.F) {
	f.Add(`{"max-size":"10m","mode":"non-blocking","max-buffer-size":"2m"}`, "driver\njson-file\nmax-size\n10m")
	f.Add(`{"line-max":"1"}`, "max-file\n3\ndriver\nlocal")
	f.Fuzz(func(t *testing.T, cfgJSON, argv string) {
		if strings.ContainsRune(cfgJSON, 0) {
			t.Skip("an environment variable cannot hold NUL")
		}
		clearEnv(t, "DOCKERLOG_CONFIG", cfgJSON, "DOCKERLOG_CONTAINERID", "fuzz")
		c, err := config.FromArgs([]string{"json-file"})
		check(t, "triton", c, err)
		if err == nil {
			opts, perr := config.ParseOpts(cfgJSON)
			if perr != nil {
				t.Fatalf("FromArgs accepted %q but ParseOpts says %v", cfgJSON, perr)
			}
			for k, v := range opts {
				if c.Opts[k] != v {
					t.Fatalf("option %q=%q came out as %q", k, v, c.Opts[k])
				}
			}
		}

		clearEnv(t, "CONTAINER_ID", "fuzz", "CONTAINER_NAMESPACE", "ns")
		var args []string
		if argv != "" {
			args = strings.Split(argv, "\n")
		}
		c, err = config.FromArgs(args)
		check(t, "containerd", c, err)
		if err == nil && (!c.Containerd || c.Driver == "" || len(args)%2 != 0) {
			t.Fatalf("argv %q accepted as %+v", args, c)
		}
	})
}

func check(t *testing.T, what string, c *config.Config, err error) {
	t.Helper()
	switch {
	case err != nil && c != nil:
		t.Fatalf("%s: both a config and an error: %v", what, err)
	case err == nil && c == nil:
		t.Fatalf("%s: neither a config nor an error", what)
	case err != nil && err.Error() == "":
		t.Fatalf("%s: empty error", what)
	case err == nil:
		o := c.Options
		if o.LineMax <= 0 || o.CloseTimeout <= 0 || o.LogPath == "" || o.SpoolMaxSize <= 0 || o.MaxBufferSize <= 0 {
			t.Fatalf("%s: accepted options out of range: %+v", what, o)
		}
	}
}
