// Package config turns what a platform hands the logger — the driver name on
// argv with the DOCKERLOG_* environment (Triton's dockerinit, loginit), or
// containerd's binary:// argv pairs — into one Config, and owns the log-opts
// that dockerlogger adds to Docker's.
//
// It must never import a log driver, the reader, a delivery mode or the
// supervisor: it only describes what was asked for.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/joyent/dockerlogger/diag"
)

// Env is the DOCKERLOG_* environment, as Triton's dockerinit sets it.
type Env struct {
	Config        string `envconfig:"CONFIG"`
	ContainerID   string `envconfig:"CONTAINERID"`
	ContainerName string `envconfig:"CONTAINERNAME"`
	ImageID       string `envconfig:"IMAGEID"`
	ImageName     string `envconfig:"IMAGENAME"`
	CreateTime    string `envconfig:"CREATETIME"`
	Entrypoint    string `envconfig:"ENTRYPOINT"`
	Cmd           string `envconfig:"CMD"`
	Labels        string `envconfig:"LABELS"`
	Env           string `envconfig:"ENV"`
	LogPath       string `envconfig:"LOGPATH"`
	// Stdout and Stderr name FIFOs to read instead of the inherited fds 3/4.
	Stdout string `envconfig:"STDOUT"`
	Stderr string `envconfig:"STDERR"`
	// TTY marks a container with a terminal: one stream only.
	TTY bool `envconfig:"TTY"`
	// InitPID is the process that on-failure=kill-init terminates.
	InitPID int `envconfig:"INIT_PID"`
	// Tee: fds 7 and 8 are the console's stdout and stderr, and every
	// byte read is copied there too (loginit --tee).
	Tee bool `envconfig:"TEE"`
}

// Container is the metadata a driver may put in tags and attributes.
type Container struct {
	ID         string            `json:"id"`
	Name       string            `json:"name,omitempty"`
	Namespace  string            `json:"namespace,omitempty"`
	ImageID    string            `json:"image_id,omitempty"`
	ImageName  string            `json:"image_name,omitempty"`
	Created    time.Time         `json:"created"`
	Entrypoint string            `json:"entrypoint,omitempty"`
	Args       []string          `json:"args,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Env        []string          `json:"env,omitempty"`
	// Daemon is what Docker calls DaemonName: "docker" for Triton-style
	// use, "containerd" under containerd.
	Daemon string `json:"daemon"`
}

// Config is everything the worker needs to run.
type Config struct {
	Driver string
	// Opts are the log-opts as given: Docker's and ours together.
	Opts      map[string]string
	Container Container
	// Options are ours, parsed from Opts.
	Options Options
	// Stdout, Stderr and TTY say where the inputs are (see package zfd).
	Stdout, Stderr string
	TTY            bool
	InitPID        int
	Tee            bool
	// Containerd is true when started by containerd's binary:// logging.
	Containerd bool
}

// FromArgs builds the Config for `dockerlogger ARGS...` from the process
// environment. It accepts `DRIVER` (DOCKERLOG_* environment) and
// containerd's `key value ...` pairs with a `driver` key.
func FromArgs(args []string) (*Config, error) {
	var env Env
	if err := envconfig.Process("DOCKERLOG", &env); err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	if IsContainerdArgs(args, os.Getenv) {
		return fromContainerd(args, env, os.Getenv)
	}
	if len(args) != 1 {
		return nil, fmt.Errorf("usage: dockerlogger DRIVER (got %d arguments)", len(args))
	}
	return fromEnv(args[0], env)
}

// IsContainerdArgs reports whether args look like containerd's binary://
// query pairs: an even number of words with a "driver" key, or any argv
// at all when containerd's CONTAINER_ID is set and DOCKERLOG_CONTAINERID
// is not.
func IsContainerdArgs(args []string, getenv func(string) string) bool {
	if getenv("CONTAINER_ID") != "" && getenv("DOCKERLOG_CONTAINERID") == "" {
		return true
	}
	if len(args) < 2 || len(args)%2 != 0 {
		return false
	}
	for i := 0; i < len(args); i += 2 {
		if args[i] == "driver" {
			return true
		}
	}
	return false
}

func fromEnv(driver string, env Env) (*Config, error) {
	if env.Config == "" {
		return nil, errors.New("DOCKERLOG_CONFIG is required (a JSON object of log-opts, e.g. {})")
	}
	if env.ContainerID == "" {
		return nil, errors.New("DOCKERLOG_CONTAINERID is required")
	}
	opts, err := ParseOpts(env.Config)
	if err != nil {
		return nil, err
	}
	c := &Config{Driver: driver, Opts: opts, Stdout: env.Stdout, Stderr: env.Stderr,
		TTY: env.TTY, InitPID: env.InitPID, Tee: env.Tee}
	ct := Container{ID: env.ContainerID, Name: dockerName(env.ContainerName),
		ImageID: env.ImageID, ImageName: env.ImageName, Daemon: "docker"}
	if env.CreateTime != "" {
		t, err := time.Parse(time.RFC3339Nano, env.CreateTime)
		if err != nil {
			return nil, fmt.Errorf("DOCKERLOG_CREATETIME: not RFC 3339: %s", diag.Quote(env.CreateTime))
		}
		ct.Created = t
	}
	var entry, cmd []string
	if err := jsonVar("DOCKERLOG_ENTRYPOINT", env.Entrypoint, &entry); err != nil {
		return nil, err
	}
	if err := jsonVar("DOCKERLOG_CMD", env.Cmd, &cmd); err != nil {
		return nil, err
	}
	// As Docker's daemon: the entrypoint's first word is the path, the
	// rest of the entrypoint and the cmd are the args.
	if full := append(entry, cmd...); len(full) > 0 {
		ct.Entrypoint, ct.Args = full[0], full[1:]
	}
	if err := jsonVar("DOCKERLOG_LABELS", env.Labels, &ct.Labels); err != nil {
		return nil, err
	}
	if err := jsonVar("DOCKERLOG_ENV", env.Env, &ct.Env); err != nil {
		return nil, err
	}
	c.Container = ct
	if env.LogPath != "" {
		if _, ok := c.Opts["log-path"]; !ok {
			c.Opts["log-path"] = env.LogPath
		}
	}
	if err := c.parseOptions(); err != nil {
		return nil, err
	}
	return c, nil
}

func fromContainerd(args []string, env Env, getenv func(string) string) (*Config, error) {
	if len(args)%2 != 0 {
		return nil, fmt.Errorf("binary:// query: odd number of argv words (%d): want key value pairs", len(args))
	}
	opts := map[string]string{}
	driver := ""
	for i := 0; i < len(args); i += 2 {
		k, v := args[i], args[i+1]
		if k == "driver" {
			if driver != "" {
				return nil, fmt.Errorf("binary:// query: option %s given twice", diag.Quote(k))
			}
			driver = v
			continue
		}
		if _, dup := opts[k]; dup {
			return nil, fmt.Errorf("binary:// query: option %s given twice", diag.Quote(k))
		}
		opts[k] = v
	}
	if driver == "" {
		return nil, errors.New("binary:// query has no driver= parameter (e.g. binary:///usr/bin/dockerlogger?driver=json-file)")
	}
	id := getenv("CONTAINER_ID")
	if id == "" {
		id = env.ContainerID
	}
	if id == "" {
		return nil, errors.New("CONTAINER_ID is not set (containerd sets it for binary:// loggers)")
	}
	c := &Config{Driver: driver, Opts: opts, Containerd: true, Stdout: env.Stdout,
		Stderr: env.Stderr, InitPID: env.InitPID}
	c.Container = Container{ID: id, Name: dockerName(id), Namespace: getenv("CONTAINER_NAMESPACE"), Daemon: "containerd"}
	if err := c.parseOptions(); err != nil {
		return nil, err
	}
	return c, nil
}

// dockerName gives a container name the leading "/" Docker's names have:
// drivers send it as is (fluentd's container_name) and strip it for tags.
func dockerName(name string) string {
	if name == "" || strings.HasPrefix(name, "/") {
		return name
	}
	return "/" + name
}

// ParseOpts parses DOCKERLOG_CONFIG: a JSON object of strings.
func ParseOpts(s string) (map[string]string, error) {
	var raw map[string]any
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("DOCKERLOG_CONFIG: not a JSON object: %v", err)
	}
	if raw == nil {
		return nil, errors.New("DOCKERLOG_CONFIG: not a JSON object: null")
	}
	opts := make(map[string]string, len(raw))
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, ok := raw[k].(string)
		if !ok {
			return nil, fmt.Errorf("DOCKERLOG_CONFIG: option %s: value must be a string, got %s", diag.Quote(k), jsonType(raw[k]))
		}
		opts[k] = v
	}
	return opts, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func jsonVar(name, s string, v any) error {
	if s == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("%s: bad JSON: %v", name, err)
	}
	return nil
}

// secretWords mark the names (of log-opts, of environment variables)
// whose values must never be printed.
var secretWords = []string{"token", "password", "passwd", "secret", "credential", "key", "headers"}

// isSecretName reports whether name's value is a secret. "key" counts
// except in the names of key files (syslog-tls-key is a path).
func isSecretName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range secretWords {
		if !strings.Contains(n, w) {
			continue
		}
		if w == "key" && (strings.HasSuffix(n, "tls-key") || strings.Contains(n, "key-file") || strings.Contains(n, "key-path")) {
			continue
		}
		return true
	}
	return false
}

// Redacted returns opts with the values of secret options replaced, and
// the user information of URLs in any value (tcp://user:pass@host), for
// ctxdump, errors and anything else the logger prints.
func Redacted(opts map[string]string) map[string]string {
	m := make(map[string]string, len(opts))
	for k, v := range opts {
		m[k] = redactValue(k, v)
	}
	return m
}

// RedactedEnv returns a copy of a K=V list with the values of secret
// names (AWS_SECRET_ACCESS_KEY=...) and URL user information replaced.
func RedactedEnv(env []string) []string {
	if env == nil {
		return nil
	}
	out := make([]string, len(env))
	for i, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			out[i] = kv
			continue
		}
		out[i] = k + "=" + redactValue(k, v)
	}
	return out
}

func redactValue(name, v string) string {
	if v == "" {
		return v
	}
	if isSecretName(name) {
		return "REDACTED"
	}
	if i, j, ok := userinfo(v); ok {
		return v[:i] + "REDACTED" + v[j:]
	}
	return v
}

// userinfo finds the user information of a URL, v[i:j] (before the "@"
// of the authority), without url.Parse: a URL that does not parse (a
// bad port) must be redacted too.
func userinfo(v string) (i, j int, ok bool) {
	s := strings.Index(v, "://")
	if s < 0 {
		return 0, 0, false
	}
	i = s + 3
	auth := v[i:]
	if e := strings.IndexAny(auth, "/?#"); e >= 0 {
		auth = auth[:e]
	}
	at := strings.LastIndex(auth, "@")
	if at <= 0 {
		return 0, 0, false
	}
	return i, i + at, true
}

// minSecret is the shortest value Secrets returns: replacing a shorter
// one ("1", "ab") everywhere would mangle messages without hiding much.
const minSecret = 4

// Secrets returns the secret values of c: secret options, the user
// information of URLs in any option, secret environment values. The
// logger replaces each wherever it appears in what it prints (errors
// that quote a value, a driver's own messages).
func (c *Config) Secrets() []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if len(s) >= minSecret && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	one := func(name, v string) {
		if v == "" {
			return
		}
		if isSecretName(name) {
			add(v)
			return
		}
		if i, j, ok := userinfo(v); ok {
			ui := v[i:j]
			add(ui)
			if _, pw, ok := strings.Cut(ui, ":"); ok {
				add(pw)
			}
		}
	}
	for k, v := range c.Opts {
		one(k, v)
	}
	for _, kv := range c.Container.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			one(k, v)
		}
	}
	// Longest first, so that a secret containing another goes whole.
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// RedactString replaces every secret in s by REDACTED.
func RedactString(s string, secrets []string) string {
	for _, v := range secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, "REDACTED")
		}
	}
	return s
}

// RedactError returns err with every secret in its text replaced; it
// still unwraps to err.
func RedactError(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := RedactString(err.Error(), secrets)
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
