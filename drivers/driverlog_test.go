package drivers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
)

// TestRouteDriverLogs: what a Docker driver logs through containerd/log
// reaches printf as one line per entry, warnings and above only, and
// nothing goes to the standard logger's own output.
func TestRouteDriverLogs(t *testing.T) {
	l := log.L.Logger
	out, level, hooks := l.Out, l.GetLevel(), l.ReplaceHooks(make(logrus.LevelHooks))
	t.Cleanup(func() { l.SetOutput(out); l.SetLevel(level); l.ReplaceHooks(hooks) })

	var got []string
	printf := func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) }
	RouteDriverLogs(printf)
	RouteDriverLogs(printf) // twice: still one line per entry

	ctx := context.Background()
	// As Docker's splunk and gcplogs drivers log.
	log.G(ctx).WithError(errors.New("dial tcp: refused")).WithField("module", "logger/splunk").Warn("Error while sending logs")
	log.G(ctx).WithField("message", `{"line":"a"}`).Error("Failed to send a message")
	log.G(ctx).Errorf("gcplogs driver has dropped %v logs", 3)
	log.G(ctx).Info("Trying to get region from IMDS")
	log.G(ctx).Debug("debug")
	log.G(ctx).WithField("k", "two\nlines").Error("first\nsecond\n")
	log.G(ctx).WithField("big", strings.Repeat("x", 600)).Warn("long")

	want := []string{
		`driver warning: Error while sending logs error="dial tcp: refused" module=logger/splunk`,
		`driver error: Failed to send a message message="{\"line\":\"a\"}"`,
		`driver error: gcplogs driver has dropped 3 logs`,
		`driver error: first second k="two\nlines"`,
		`driver warning: long big="` + strings.Repeat("x", 512) + `...(600 bytes)"`,
	}
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d: %q", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n got %q\nwant %q", i, got[i], want[i])
		}
		if strings.ContainsAny(got[i], "\r\n") {
			t.Errorf("line %d breaks: %q", i, got[i])
		}
	}
	if l.Out != io.Discard {
		t.Errorf("the standard logger still writes to %v", l.Out)
	}
}
