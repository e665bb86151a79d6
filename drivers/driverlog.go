package drivers

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
)

// maxDriverLogValue caps each field of a driver's log entry: a Docker
// driver may log a whole event there (Docker's splunk driver did, with
// "Failed to send a message").
const maxDriverLogValue = 512

// RouteDriverLogs sends what Docker's drivers log through
// github.com/containerd/log (the logrus standard logger) to printf, one
// line per entry, at warning level and above; below that it is dropped.
// Docker's drivers would otherwise write to the process's stderr
// unprefixed and without rate limit. Pass the logger's rate-limited error
// printer. It changes process-wide state, the standard logger: call it
// once at start.
func RouteDriverLogs(printf func(format string, args ...any)) {
	l := log.L.Logger
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.WarnLevel)
	hooks := make(logrus.LevelHooks)
	hooks.Add(driverLogHook{printf})
	l.ReplaceHooks(hooks)
}

// driverLogHook formats an entry as one line for printf.
type driverLogHook struct {
	printf func(format string, args ...any)
}

func (driverLogHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (h driverLogHook) Fire(e *logrus.Entry) error {
	h.printf("%s", formatDriverLog(e))
	return nil
}

// formatDriverLog renders "driver <level>: <message> key=value ..." with
// the keys sorted and nothing that could break the line.
func formatDriverLog(e *logrus.Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "driver %s: %s", e.Level, oneLine(e.Message))
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := fmt.Sprint(e.Data[k])
		if len(v) > maxDriverLogValue {
			v = fmt.Sprintf("%s...(%d bytes)", v[:maxDriverLogValue], len(v))
		}
		if v == "" || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == '"' || r == '=' || r > '~' }) {
			v = strconv.Quote(v)
		}
		fmt.Fprintf(&b, " %s=%s", oneLine(k), v)
	}
	return b.String()
}

// oneLine replaces line breaks by spaces.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(strings.TrimRight(s, "\r\n"))
}
