// Package otlp is our own driver "otlp": it sends each line as one
// OpenTelemetry LogRecord to a collector over OTLP/HTTP (POST /v1/logs),
// http/protobuf or http/json, optionally gzip-compressed, batched by size
// and time through drivers/httppush. OTLP/gRPC is refused: it would need
// the generated OTLP types and their descriptors in every logger.
//
// A record's time is when the logger read the line; its observed time,
// when the driver took it; severity INFO for stdout, ERROR for stderr;
// its body the line, a string when it is UTF-8, bytes otherwise; the
// attribute log.iostream its stream. The resource names the container
// (container.id, container.name, container.image.name and .tags,
// container.image.id, host.name, service.name), the labels and env
// log-opts, then otlp-resource-attributes, which win. A line cut into
// partial messages is not joined: each part is a record with the
// attributes docker.partial.id, .ordinal and .last, so that no part waits
// in memory for the next and each is counted as the reader made it.
//
// The server's answers are the specification's: 200 with a partial
// success drops the records it names (counted "partial-reject"); 429,
// 502, 503 and 504 are retried with backoff and Retry-After, as is a
// connection that fails; any other code drops the batch (counted
// "rejected"), for sending it again cannot help.
//
// It must never import package drivers (which imports it to register it),
// the reader, a delivery mode, the supervisor or the worker.
package otlp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/containerd/log"
	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/drivers/capability"
	"github.com/joyent/dockerlogger/drivers/httppush"
)

// Name is the driver's name.
const Name = "otlp"

func init() {
	if err := logger.RegisterLogDriver(Name, newDriver); err != nil {
		panic(err)
	}
	if err := logger.RegisterLogOptValidator(Name, func(cfg map[string]string) error {
		_, err := parse(cfg, os.Getenv)
		return err
	}); err != nil {
		panic(err)
	}
}

type driver struct {
	*httppush.Pusher
}

var (
	_ capability.Flusher        = (*driver)(nil)
	_ capability.PendingLogger  = (*driver)(nil)
	_ capability.DroppingLogger = (*driver)(nil)
	_ capability.MarkerLogger   = (*driver)(nil)
)

func (*driver) Name() string { return Name }

// maxAnswer bounds how much of an answer is read.
const maxAnswer = 64 << 10

func newDriver(info logger.Info) (logger.Logger, error) {
	o, err := parse(info.Config, os.Getenv)
	if err != nil {
		return nil, err
	}
	extra, err := info.ExtraAttributes(nil)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := o.tls.Config()
	if err != nil {
		return nil, err
	}
	client := httppush.NewClient(tlsConfig, nil, o.timeout)
	h := newHead(resource(info, extra, o), "dockerlogger", "")
	contentType := "application/x-protobuf"
	newBatch := func() httppush.Batch { return &protoBatch{h: h} }
	partial := partialSuccessPB
	if o.protocol == protoJSON {
		contentType = "application/json"
		newBatch = func() httppush.Batch { return &jsonBatch{h: h} }
		partial = partialSuccessJSON
	}
	send := func(ctx context.Context, body []byte) httppush.Result {
		if o.gzip {
			var err error
			if body, err = httppush.Gzip(body); err != nil {
				return httppush.Result{Refused: -1, Reason: diag.Rejected, Err: err}
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(body))
		if err != nil {
			return httppush.Result{Refused: -1, Reason: diag.Rejected, Err: err}
		}
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("User-Agent", "dockerlogger")
		if o.gzip {
			req.Header.Set("Content-Encoding", "gzip")
		}
		if o.user != "" || o.pass != "" {
			req.SetBasicAuth(o.user, o.pass)
		}
		for _, kv := range o.headers {
			req.Header.Set(kv[0], kv[1])
		}
		resp, err := client.Do(req)
		if err != nil {
			return httppush.Result{Retry: true, Err: fmt.Errorf("otlp: post: %w", err)}
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		resp.Body.Close()
		switch c := resp.StatusCode; {
		case c >= 200 && c < 300:
			n, msg := partial(answer)
			if n > 0 {
				return httppush.Result{Refused: n, Reason: diag.PartialReject,
					Err: fmt.Errorf("otlp: the collector refused %d records: %s", n, diag.Cut(msg, 200))}
			}
			return httppush.Result{}
		case c == http.StatusTooManyRequests, c == http.StatusBadGateway, c == http.StatusServiceUnavailable, c == http.StatusGatewayTimeout:
			return httppush.Result{Retry: true, After: httppush.RetryAfter(resp.Header),
				Err: fmt.Errorf("otlp: %s", resp.Status)}
		default:
			return httppush.Result{Refused: -1, Reason: diag.Rejected,
				Err: fmt.Errorf("otlp: %s, batch dropped: %s", resp.Status, diag.Cut(strings.TrimSpace(string(answer)), 200))}
		}
	}
	p := httppush.New(httppush.Config{
		Name:       Name,
		NewBatch:   newBatch,
		BatchSize:  o.batchSize,
		BatchWait:  o.batchWait,
		MinBackoff: minBackoff,
		MaxBackoff: maxBackoff,
		Send:       send,
		Report:     report,
	})
	return &driver{p}, nil
}

// Backoff between attempts. The SDKs' exporters start at 5 s and stop at
// 30 s; a collector answers at once when it is up, and a logger that
// waits 30 s after a collector's restart holds lines for nothing: start
// sooner and stop at 5 s (a server's Retry-After may ask for longer).
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// report is where Docker's drivers say what went wrong (the worker routes
// it to its rate-limited error line).
func report(err error) { log.G(context.TODO()).Warn(err.Error()) }

// resource is the resource's attributes, in order.
func resource(info logger.Info, extra map[string]string, o *options) []attr {
	var as []attr
	set := func(k, v string) {
		for i := range as {
			if as[i].key == k {
				as[i] = strAttr(k, v)
				return
			}
		}
		as = append(as, strAttr(k, v))
	}
	name := strings.TrimPrefix(info.ContainerName, "/")
	service := o.serviceName
	if service == "" {
		service = name
	}
	if service == "" {
		service = "unknown_service"
	}
	set("service.name", service)
	set("container.id", info.ContainerID)
	if name != "" {
		set("container.name", name)
	}
	if image, tag := splitImage(info.ContainerImageName); image != "" {
		set("container.image.name", image)
		if tag != "" {
			as = append(as, attr{key: "container.image.tags", str: tag, kind: 'a'})
		}
	}
	if info.ContainerImageID != "" {
		set("container.image.id", info.ContainerImageID)
	}
	if host, err := os.Hostname(); err == nil {
		set("host.name", host)
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		set(k, extra[k])
	}
	for _, kv := range o.resource {
		set(kv[0], kv[1])
	}
	return as
}

// splitImage splits name:tag (not a registry's host:port); a digest
// reference keeps its digest in the name.
func splitImage(ref string) (string, string) {
	if strings.Contains(ref, "@") {
		return ref, ""
	}
	i := strings.LastIndexByte(ref, ':')
	if i < 0 || strings.Contains(ref[i+1:], "/") {
		return ref, ""
	}
	return ref[:i], ref[i+1:]
}
