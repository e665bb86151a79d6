// Package splunk is our own driver "splunk": it posts lines to Splunk's
// HTTP Event Collector as Docker's splunk driver does, with its name, its
// log-opts, defaults and checks (options.go), and its wire format
// (encode.go): POST {splunk-url}/services/collector/event/1.0 with
// "Authorization: Splunk <token>", a body of HEC event objects one after
// the other, in the inline, json or raw shape of splunk-format,
// optionally gzip-compressed at splunk-gzip-level, with a new
// X-Splunk-Request-Channel on each post when splunk-index-acknowledgment
// is on (acknowledgements are not read back, as Docker's do not), and an
// OPTIONS request at creation when splunk-verify-connection is on.
//
// Batching, retries and counting are drivers/httppush's: a batch is sent
// when it holds 1000 messages or a megabyte, or 5 s after its first line
// (SPLUNK_LOGGING_DRIVER_POST_MESSAGES_BATCH_SIZE and _FREQUENCY change
// the first and the last, as for Docker's). Docker's driver instead holds
// up to 10,000 messages while HEC fails, plus 4,000 in a channel, in
// memory it does not bound in bytes nor report, then logs them to the
// daemon's log and counts them as sent; here what is held is a filling
// batch and two sealed ones, reported (capability.PendingLogger), and the
// delivery mode bounds it.
//
// HEC's answers: 2xx taken; 401 and 403 (a token refused now may be
// fixed on the server, and the lines are good: kept, as Docker's driver
// keeps them), 408, 429 and 5xx retried with backoff and Retry-After,
// without end (the worker's close-timeout and failure-timeout bound it);
// 400 names the first event it could not read ("invalid-event-number"),
// HEC having indexed those before it: the rest are counted "rejected",
// the whole batch when it names none; any other code drops the batch,
// counted "rejected", for sending it again cannot help.
//
// It must never import package drivers (which imports it to register it),
// the reader, a delivery mode, the supervisor or the worker.
package splunk

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/containerd/log"
	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/daemon/logger/loggerutils"

	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/drivers/capability"
	"github.com/joyent/dockerlogger/drivers/httppush"
)

// Name is the driver's name.
const Name = "splunk"

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

// Bounds of one driver's posts and answers.
const (
	// batchBytes is the encoded size at which a batch is sent: HEC takes
	// far more (max_content_length), but the delivery modes hand a driver
	// about a megabyte before it must send (mode's driverQueueMax).
	batchBytes = 1 << 20
	// timeout bounds one request, as Docker's driver bounds a round of
	// posts.
	timeout    = 30 * time.Second
	minBackoff = 100 * time.Millisecond
	// maxBackoff is Docker's post frequency: a retry no later than the
	// next post would have been.
	maxBackoff = 5 * time.Second
	maxAnswer  = 64 << 10
)

type driver struct {
	*httppush.Pusher
	shape  *shape
	client *http.Client
}

var (
	_ capability.Flusher        = (*driver)(nil)
	_ capability.PendingLogger  = (*driver)(nil)
	_ capability.DroppingLogger = (*driver)(nil)
	_ capability.MarkerLogger   = (*driver)(nil)
)

func (*driver) Name() string { return Name }

func (d *driver) Log(msg *logger.Message) error {
	if d.shape.skip(msg.Line) {
		logger.PutMessage(msg)
		return nil
	}
	return d.Pusher.Log(msg)
}

func (d *driver) LogMarker(msg *logger.Message) error {
	if d.shape.skip(msg.Line) {
		logger.PutMessage(msg)
		return nil
	}
	return d.Pusher.LogMarker(msg)
}

// Close sends what is left (httppush.Pusher.Close) and lets the
// connections go.
func (d *driver) Close() error {
	err := d.Pusher.Close()
	d.client.CloseIdleConnections()
	return err
}

func newDriver(info logger.Info) (logger.Logger, error) {
	o, err := parse(info.Config, os.Getenv)
	if err != nil {
		return nil, err
	}
	host, err := info.Hostname()
	if err != nil {
		return nil, fmt.Errorf("%s: the host field: %w", Name, err)
	}
	// An empty tag option means no tag, as for Docker's driver (package
	// drivers renders any other into a literal before it gets here).
	var tag string
	if t, ok := info.Config["tag"]; !ok || t != "" {
		if tag, err = loggerutils.ParseLogTag(info, loggerutils.DefaultTemplate); err != nil {
			return nil, fmt.Errorf("%s: tag: %w", Name, err)
		}
	}
	attrs, err := info.ExtraAttributes(nil)
	if err != nil {
		return nil, fmt.Errorf("%s: labels and env: %w", Name, err)
	}
	tlsConfig, err := o.tls.Config()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	client := httppush.NewClient(tlsConfig, nil, timeout)
	if tr, ok := client.Transport.(*http.Transport); ok {
		// Docker's driver goes through the proxy of HTTPS_PROXY and
		// NO_PROXY: so does this one, where loki and otlp take none.
		tr.Proxy = http.ProxyFromEnvironment
	}
	if o.verify {
		if err := verify(client, o.url); err != nil {
			client.CloseIdleConnections()
			return nil, err
		}
	}
	s := newShape(o, host, tag, attrs)
	var gz *compressor
	if o.gzip {
		gz = &compressor{level: o.gzipLevel}
	}
	p := httppush.New(httppush.Config{
		Name:       Name,
		NewBatch:   func() httppush.Batch { return &batch{shape: s, gz: gz} },
		BatchSize:  batchBytes,
		BatchWait:  o.batchWait,
		MaxRecords: o.batchRecords,
		MinBackoff: minBackoff,
		MaxBackoff: maxBackoff,
		Send:       sender(client, o),
		Report:     func(err error) { log.G(context.TODO()).Warn(err.Error()) },
	})
	return &driver{Pusher: p, shape: s, client: client}, nil
}

// verify is Docker's connection check: OPTIONS on the endpoint, no token,
// and anything but 200 fails the driver's creation (retried by package
// drivers, so that the container starts meanwhile).
func verify(client *http.Client, url string) error {
	req, err := http.NewRequest(http.MethodOptions, url, http.NoBody)
	if err != nil {
		return fmt.Errorf("%s: verify connection: %w", Name, err)
	}
	req.Header.Set("User-Agent", "dockerlogger")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: verify connection: %w", Name, err)
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: verify connection: %s: %s", Name, resp.Status, hecText(answer))
	}
	return nil
}

// sender posts one batch's body and judges the answer.
func sender(client *http.Client, o *options) func(context.Context, []byte) httppush.Result {
	auth := "Splunk " + o.token
	return func(ctx context.Context, body []byte) httppush.Result {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(body))
		if err != nil {
			return httppush.Result{Refused: -1, Reason: diag.Rejected, Err: fmt.Errorf("%s: %w", Name, err)}
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set("User-Agent", "dockerlogger")
		if o.gzip {
			req.Header.Set("Content-Encoding", "gzip")
		}
		if o.indexAck {
			req.Header.Set("X-Splunk-Request-Channel", newChannel())
		}
		resp, err := client.Do(req)
		if err != nil {
			return httppush.Result{Retry: true, Err: fmt.Errorf("%s: post: %w", Name, err)}
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		resp.Body.Close()
		return judge(resp, answer, func() int64 { return countEvents(body, o.gzip) })
	}
}

// judge makes a Result of HEC's answer; events counts the batch's
// events, only needed for a 400 that names one.
func judge(resp *http.Response, answer []byte, events func() int64) httppush.Result {
	c := resp.StatusCode
	switch {
	case c >= 200 && c < 300:
		return httppush.Result{}
	case c == http.StatusUnauthorized || c == http.StatusForbidden || c == http.StatusRequestTimeout ||
		c == http.StatusTooManyRequests || c >= 500:
		return httppush.Result{Retry: true, After: httppush.RetryAfter(resp.Header),
			Err: fmt.Errorf("%s: %s: %s", Name, resp.Status, hecText(answer))}
	case c == http.StatusBadRequest:
		var r struct {
			Invalid *int64 `json:"invalid-event-number"`
		}
		refused := int64(-1)
		if json.Unmarshal(answer, &r) == nil && r.Invalid != nil && *r.Invalid >= 0 {
			if n := events() - *r.Invalid; n > 0 {
				refused = n
			}
		}
		what := "batch dropped"
		if refused > 0 {
			what = fmt.Sprintf("%d events dropped", refused)
		}
		return httppush.Result{Refused: refused, Reason: diag.Rejected,
			Err: fmt.Errorf("%s: %s, %s: %s", Name, resp.Status, what, hecText(answer))}
	default:
		return httppush.Result{Refused: -1, Reason: diag.Rejected,
			Err: fmt.Errorf("%s: %s, batch dropped: %s", Name, resp.Status, hecText(answer))}
	}
}

// hecText is what an answer says, in one short line: HEC's
// {"text":…,"code":…}, or the body as it is.
func hecText(answer []byte) string {
	var r struct {
		Text string `json:"text"`
		Code *int   `json:"code"`
	}
	if json.Unmarshal(answer, &r) == nil && r.Text != "" && r.Code != nil {
		return fmt.Sprintf("%s (code %d)", diag.Cut(r.Text, 200), *r.Code)
	}
	return diag.Cut(strings.Join(strings.Fields(string(answer)), " "), 200)
}

// countEvents counts the event objects of a body; 0 if it cannot be read.
func countEvents(body []byte, gzipped bool) int64 {
	var r io.Reader = bytes.NewReader(body)
	if gzipped {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return 0
		}
		r = zr
	}
	dec := json.NewDecoder(r)
	var n int64
	for {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			if !errors.Is(err, io.EOF) {
				return 0
			}
			return n
		}
		n++
	}
}

// newChannel is a random (version 4) UUID, which HEC takes as a channel.
func newChannel() string {
	var u [16]byte
	rand.Read(u[:]) // never fails (crypto/rand)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
