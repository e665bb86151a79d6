package otlp

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestPrecedence: a log-opt wins over OTEL_EXPORTER_OTLP_LOGS_*, which
// wins over OTEL_EXPORTER_OTLP_*, which wins over the default; the
// generic endpoint is a base, the logs one is taken as it is.
func TestPrecedence(t *testing.T) {
	cases := []struct {
		cfg     map[string]string
		env     map[string]string
		url     string
		proto   string
		timeout time.Duration
	}{
		{nil, nil, "http://localhost:4318/v1/logs", protoProtobuf, 10 * time.Second},
		{nil, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4318/base/", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
			"OTEL_EXPORTER_OTLP_TIMEOUT": "2500"}, "https://c:4318/base/v1/logs", protoJSON, 2500 * time.Millisecond},
		{nil, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4318", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://l:1/custom",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf"}, "https://l:1/custom", protoProtobuf, 10 * time.Second},
		{map[string]string{endpointKey: "http://opt:4318/v1/logs", protocolKey: "http/json", timeoutKey: "3s"},
			map[string]string{"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://l:1/custom", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
				"OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "1"}, "http://opt:4318/v1/logs", protoJSON, 3 * time.Second},
	}
	for i, c := range cases {
		if c.cfg == nil {
			c.cfg = map[string]string{}
		}
		o, err := parse(c.cfg, env(c.env))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if o.url != c.url || o.protocol != c.proto || o.timeout != c.timeout {
			t.Errorf("case %d: url %q protocol %q timeout %v; want %q %q %v", i, o.url, o.protocol, o.timeout, c.url, c.proto, c.timeout)
		}
	}
}

// TestPairs: headers and resource attributes as the specification writes
// them: trimmed, values percent-decoded; errors never quote a value.
func TestPairs(t *testing.T) {
	got, err := pairs(" Authorization = Bearer%20abc , x-tenant=a%2Cb")
	want := [][2]string{{"Authorization", "Bearer abc"}, {"x-tenant", "a,b"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("pairs = %v, %v", got, err)
	}
	for _, bad := range []string{"sekrit", "a=1,,b=2", "=sekrit", "k=%zz-sekrit"} {
		if _, err := pairs(bad); err == nil || strings.Contains(err.Error(), "sekrit") {
			t.Errorf("pairs(%q) = %v", bad, err)
		}
	}
}

// TestPartialSuccess reads both encodings of a partial success.
func TestPartialSuccess(t *testing.T) {
	var ps []byte
	ps = protowire.AppendTag(ps, psRejected, protowire.VarintType)
	ps = protowire.AppendVarint(ps, 7)
	ps = protowire.AppendTag(ps, psMessage, protowire.BytesType)
	ps = protowire.AppendString(ps, "too big")
	var resp []byte
	resp = protowire.AppendTag(resp, respPartialSuccess, protowire.BytesType)
	resp = protowire.AppendBytes(resp, ps)
	if n, msg := partialSuccessPB(resp); n != 7 || msg != "too big" {
		t.Errorf("protobuf: %d %q", n, msg)
	}
	if n, _ := partialSuccessPB(nil); n != 0 {
		t.Errorf("empty answer: %d", n)
	}
	for _, body := range []string{`{"partialSuccess":{"rejectedLogRecords":"7","errorMessage":"too big"}}`,
		`{"partialSuccess":{"rejectedLogRecords":7,"errorMessage":"too big"}}`} {
		if n, msg := partialSuccessJSON([]byte(body)); n != 7 || msg != "too big" {
			t.Errorf("json %s: %d %q", body, n, msg)
		}
	}
	if n, _ := partialSuccessJSON([]byte(`{}`)); n != 0 {
		t.Errorf("{}: %d", n)
	}
}

func TestSplitImage(t *testing.T) {
	for ref, want := range map[string][2]string{
		"alpine":                     {"alpine", ""},
		"alpine:3.19":                {"alpine", "3.19"},
		"registry:5000/shop/web":     {"registry:5000/shop/web", ""},
		"registry:5000/shop/web:1.2": {"registry:5000/shop/web", "1.2"},
		"web@sha256:abcd":            {"web@sha256:abcd", ""},
	} {
		if n, tag := splitImage(ref); n != want[0] || tag != want[1] {
			t.Errorf("splitImage(%q) = %q, %q", ref, n, tag)
		}
	}
}
