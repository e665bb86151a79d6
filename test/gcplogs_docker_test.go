package test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"google.golang.org/protobuf/proto"
)

// TestGcplogsSameAsDocker: our gcplogs driver (REST) sends what Docker's
// driver (Google's gRPC client) sends for the same container and lines,
// compared field by field at the sink: the ping, then every request's log
// name, resource, labels and partial-success flag, and every entry's log
// name, resource, labels, severity, insert id, payload (the instance, the
// container, the message; Google's diagnostic entry) and that it has a
// timestamp. Docker's driver is built into a binary of its own with
// -tags dockergcplogs (drivers/gcplogs_docker.go).
func TestGcplogsSameAsDocker(t *testing.T) {
	n := newGCPNet(t)
	docker := filepath.Join(t.TempDir(), "dockerlogger")
	build := exec.Command("go", "build", "-tags", "dockergcplogs", "-o", docker, "../cmd/dockerlogger")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build with Docker's gcplogs: %v: %s", err, out)
	}
	out, errs := Lines("same-out", 40), Lines("same-err", 30)
	out = append(out, "quotes \" and <html> & \\ backslash", "ünïcödé \u2028 line separator", "\tleading tab")
	run := func(t *testing.T, exe string, opts map[string]string, extra []string) []*loggingpb.WriteLogEntriesRequest {
		t.Helper()
		s := n.newSink(t)
		n.startSink(t, s)
		defer s.Close()
		l := StartLoggerCmd(t, []string{needCmd(t, "nsenter"),
			fmt.Sprintf("--mount=/proc/%d/ns/mnt", n.pid), fmt.Sprintf("--net=/proc/%d/ns/net", n.pid), "--", exe, "gcplogs"},
			n.env(opts, extra...))
		if err := l.WaitReady(20 * time.Second); err != nil {
			t.Fatalf("%s not ready: %v; refused %v; stderr: %s", exe, err, s.Refused(), l.Errors())
		}
		WriteLines(t, l.Stdout, out)
		WriteLines(t, l.Stderr, errs)
		if code := l.Wait(t, 30*time.Second); code != 0 {
			t.Fatalf("%s: exit %d; stderr: %s", exe, code, l.Errors())
		}
		return s.Requests()
	}
	for _, c := range []struct {
		name  string
		opts  map[string]string
		extra []string
	}{
		{"every option", map[string]string{
			"gcp-project": gcpProject, "gcp-log-cmd": "true",
			"gcp-meta-zone": "europe-west1-b", "gcp-meta-name": "node-7", "gcp-meta-id": "1234567890123",
			"labels": "team", "env": "STAGE",
		}, []string{"DOCKERLOG_CONTAINERNAME=/web", "DOCKERLOG_IMAGENAME=example/web:1.2",
			"DOCKERLOG_IMAGEID=sha256:0123456789abcdef", "DOCKERLOG_CREATETIME=2024-05-06T07:08:09.123456789Z",
			`DOCKERLOG_ENTRYPOINT=["/bin/sh","-c"]`, `DOCKERLOG_CMD=["exec web --port 80"]`,
			`DOCKERLOG_LABELS={"team":"blue","other":"x"}`, `DOCKERLOG_ENV=["STAGE=prod","OTHER=y"]`}},
		// Off GCE without gcp-meta-*: no instance, the project as resource.
		{"project only", map[string]string{"gcp-project": gcpProject}, []string{`DOCKERLOG_CMD=["web"]`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := run(t, docker, c.opts, c.extra)
			got := run(t, filepath.Join(bin, "dockerlogger"), c.opts, c.extra)

			if len(want) < 2 || len(got) != len(want) {
				t.Fatalf("%d requests from ours, %d from Docker's (a ping, then the batches)", len(got), len(want))
			}
			if !proto.Equal(got[0], want[0]) {
				t.Fatalf("ping:\nours   %v\nDocker %v", got[0], want[0])
			}
			var gotEs, wantEs []*loggingpb.LogEntry
			for i := range want {
				g, w := proto.Clone(got[i]).(*loggingpb.WriteLogEntriesRequest), proto.Clone(want[i]).(*loggingpb.WriteLogEntriesRequest)
				gotEs, wantEs = append(gotEs, g.Entries...), append(wantEs, w.Entries...)
				g.Entries, w.Entries = nil, nil
				if !proto.Equal(g, w) {
					t.Fatalf("request %d beside its entries:\nours   %v\nDocker %v", i, g, w)
				}
			}
			// Lines of stdout and stderr interleave differently in each run:
			// entries are matched by log name and message.
			key := func(e *loggingpb.LogEntry) string {
				return e.LogName + "\x00" + e.GetJsonPayload().GetFields()["message"].GetStringValue()
			}
			byKey := map[string]*loggingpb.LogEntry{}
			for _, w := range wantEs {
				if byKey[key(w)] != nil {
					t.Fatalf("two entries from Docker's driver alike: %v", w)
				}
				byKey[key(w)] = w
			}
			if len(gotEs) != len(wantEs) {
				t.Fatalf("%d entries from ours, %d from Docker's", len(gotEs), len(wantEs))
			}
			diagnostic := 0
			for i, g := range gotEs {
				w := byKey[key(g)]
				if w == nil {
					t.Fatalf("entry %d of ours has no like from Docker's: %v", i, g)
				}
				delete(byKey, key(g))
				if g.Timestamp == nil || w.Timestamp == nil {
					t.Fatalf("entry %d without a timestamp: ours %v, Docker %v", i, g, w)
				}
				g.Timestamp, w.Timestamp = nil, nil // when each was read
				if !proto.Equal(g, w) {
					t.Fatalf("entry %d:\nours   %v\nDocker %v", i, g, w)
				}
				if strings.HasSuffix(w.LogName, "/diagnostic-log") {
					diagnostic++
				}
			}
			// The ping, every line, and Google's one diagnostic entry.
			if diagnostic != 1 || len(wantEs) != 1+len(out)+len(errs)+1 {
				t.Fatalf("%d entries with %d diagnostic, want the ping, %d lines and one diagnostic entry", len(wantEs), diagnostic, len(out)+len(errs))
			}
		})
	}
}
