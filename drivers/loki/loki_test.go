package loki

import (
	"testing"

	"github.com/docker/docker/daemon/logger"
)

// TestIgnored sums the entries Loki's ingester says it ignored, per
// stream; 0 when it does not say.
func TestIgnored(t *testing.T) {
	answer := "entry with timestamp 2026-11-26 ignored, reason: 'entry out of order',\n" +
		"user 'fake', total ignored: 2 out of 5 for stream: {source=\"stdout\"}\n" +
		"user 'fake', total ignored: 1 out of 3 for stream: {source=\"stderr\"}"
	if n := ignored([]byte(answer)); n != 3 {
		t.Errorf("ignored = %d, want 3", n)
	}
	for _, a := range []string{"", "invalid request", "total ignored: x out of 3", "total ignored: 4"} {
		if n := ignored([]byte(a)); n != 0 {
			t.Errorf("ignored(%q) = %d", a, n)
		}
	}
}

// TestStreamLabels: Grafana's driver's labels: the external labels as
// tag templates, labels and env with - and . as _, the compose and swarm
// labels, host; empty values left out.
func TestStreamLabels(t *testing.T) {
	info := logger.Info{
		Config:          map[string]string{"labels": "app.tier,empty", "env": "MY-VAR"},
		ContainerName:   "/web",
		ContainerLabels: map[string]string{"app.tier": "front", "empty": "", "com.docker.swarm.service.name": "svc"},
		ContainerEnv:    []string{"MY-VAR=1"},
	}
	got, err := streamLabels(info, "container_name={{.Name}},job=docker")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"container_name": "web", "job": "docker", "app_tier": "front", "MY_VAR": "1", "swarm_service": "svc"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (%v)", k, got[k], v, got)
		}
	}
	if _, ok := got["empty"]; ok || got["host"] == "" {
		t.Errorf("labels %v", got)
	}
	if s := labelString(map[string]string{"b": `x"y`, "a": "1"}); s != `{a="1", b="x\"y"}` {
		t.Errorf("labelString = %s", s)
	}
}
