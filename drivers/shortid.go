package drivers

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/daemon/logger/templates"

	"github.com/joyent/dockerlogger/diag"
)

// Docker's Info.ID and Info.ImageID slice the ids to 12 characters, and
// journald's driver slices ContainerID too: with a shorter id (containerd
// lets a container be called "web"; an image id is often empty there)
// they fail or panic. dockerlogger takes ids of any length, so it renders
// the tag itself, with .ID the whole id when it is shorter than 12
// characters, and hands the driver the result as a literal template. It
// does so for every id and every driver that has a tag, at --validate
// and at start alike (renderTag): the run never renders a tag the
// validation did not.

// tagDefault is the template each driver uses when its tag is unset or
// empty (Docker's loggerutils.ParseLogTag defaults); drivers missing here
// have no tag.
var tagDefault = map[string]string{
	"syslog":    "{{.ID}}",
	"fluentd":   "{{.ID}}",
	"gelf":      "{{.ID}}",
	"journald":  "{{.ID}}",
	"splunk":    "{{.ID}}",
	"awslogs":   "{{.FullID}}",
	"json-file": "",
}

// safeInfo is what a tag template sees: Docker's Info, with the ids whole
// when they are shorter than 12 characters.
type safeInfo struct{ *logger.Info }

func (s safeInfo) ID() string      { return short(s.ContainerID) }
func (s safeInfo) ImageID() string { return short(s.ContainerImageID) }

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// renderTag replaces the tag option by its rendering, where the driver
// uses a tag, so that the driver never renders one itself; and pads a
// short id for journald. It returns an error for a tag template that does
// not parse or render.
func renderTag(driver string, info *logger.Info) error {
	if driver == "journald" && len(info.ContainerID) < 12 {
		// journald's driver takes CONTAINER_ID as ContainerID[:12]: pad
		// the id so it cannot panic. Its fields then carry the padding;
		// the tag is rendered from the id as given.
		defer func(id string) { info.ContainerID = id + strings.Repeat("_", 12-len(id)) }(info.ContainerID)
	}
	def, hasTag := tagDefault[driver]
	if !hasTag {
		return nil
	}
	tag, set := info.Config["tag"]
	if driver == "splunk" && set && tag == "" {
		return nil // splunk: an empty tag means no tag
	}
	if tag == "" {
		tag = def
	}
	if tag == "" {
		return nil // json-file: no tag
	}
	b, err := executeTag(tag, safeInfo{info})
	if err != nil {
		if len(err.Error()) > 2*diag.MaxQuote { // text/template quotes the template
			return fmt.Errorf("log-opt tag=%s: %s", diag.Quote(tag), diag.Cut(err.Error(), 2*diag.MaxQuote))
		}
		return fmt.Errorf("log-opt tag=%s: %w", diag.Quote(tag), err)
	}
	cfg := make(map[string]string, len(info.Config)+1)
	for k, v := range info.Config {
		cfg[k] = v
	}
	cfg["tag"] = literalTag(b)
	info.Config = cfg
	return nil
}

// literalTag returns a template that renders s: the driver parses the tag
// as a template again. An empty s must stay empty, not become the
// driver's default {{.ID}}, which is what Docker's drivers do with a tag
// option that is empty (and would slice a short id).
func literalTag(s string) string {
	if s == "" {
		return `{{""}}`
	}
	return strings.ReplaceAll(s, "{{", `{{"{{"}}`)
}

// A tag goes with every message: a template that renders more than
// maxTag bytes, or runs longer than tagTimeout (ranges over split strings
// can loop long without writing), is refused. Docker's drivers render the
// tag again with Docker's functions, unbounded: Validate, which every run
// passes first, keeps a hostile tag from reaching them.
const (
	maxTag     = 1 << 10
	tagTimeout = time.Second
)

var errTagTooLong = fmt.Errorf("renders to more than %d bytes", maxTag)

// tagFuncs replace those of Docker's template functions that can exhaust
// memory before anything is written: pad allocates what it is asked for.
var tagFuncs = template.FuncMap{
	"pad": func(source string, prefix, suffix int) (string, error) {
		if prefix < 0 || suffix < 0 || prefix > maxTag || suffix > maxTag {
			return "", fmt.Errorf("pad %d %d: each must be from 0 to %d", prefix, suffix, maxTag)
		}
		if source == "" {
			return source, nil
		}
		return strings.Repeat(" ", prefix) + source + strings.Repeat(" ", suffix), nil
	},
}

// executeTag renders tag with Docker's template functions, bounded in
// size and time. A panic in a function is an error (text/template
// recovers it).
func executeTag(tag string, data any) (string, error) {
	base, err := templates.NewParse("log-tag", "")
	if err != nil {
		return "", err
	}
	tmpl, err := base.Funcs(tagFuncs).Parse(tag)
	if err != nil {
		return "", err
	}
	type result struct {
		s   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		w := &capWriter{max: maxTag}
		err := tmpl.Execute(w, data)
		if errors.Is(err, errTagTooLong) {
			err = errTagTooLong // without text/template's wrapping
		}
		done <- result{w.b.String(), err}
	}()
	t := time.NewTimer(tagTimeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.s, r.err
	case <-t.C:
		// The goroutine runs on until the template ends: the caller
		// exits on this error (bad configuration).
		return "", fmt.Errorf("takes longer than %v to render", tagTimeout)
	}
}

// capWriter fails a write that would pass max bytes.
type capWriter struct {
	b   bytes.Buffer
	max int
}

func (w *capWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > w.max {
		return 0, errTagTooLong
	}
	return w.b.Write(p)
}
