// Package gcplogs is our own gcplogs driver, registered as "gcplogs" with
// Docker's registry when package drivers imports it. It sends what
// Docker's daemon/logger/gcplogs sends through the Google Cloud Logging
// client (cloud.google.com/go/logging): the same ping at creation, the
// same entries in the same batches, the same log names, monitored resource
// and payload, with the same options, defaults and validation. It speaks
// the service's REST API (POST /v2/entries:write, JSON) instead of gRPC:
// Google's client, with its gRPC and protobuf registries, was the largest
// part of what every logger initialises and keeps in memory, whatever its
// driver (see the README's footprint figures).
//
// Credentials are found as Google's client finds them
// (cloud.google.com/go/auth/credentials: GOOGLE_APPLICATION_CREDENTIALS,
// gcloud's file, the metadata server), with the same scope, and a
// service-account key signs its own JWT as Google's client does. On GCE the
// project and instance come from the metadata server, as in Docker.
//
// Batching, retries and counting are drivers/httppush's, with Google's
// client's thresholds and retries: what it holds unsent is bounded (two
// batches) and said (capability.PendingLogger), and a batch the service
// refused or that was given up on is counted dropped, where Google's
// client holds up to 1 GiB and loses what it cannot write, counted
// delivered.
//
// Differences: errors of the REST API read "code = PermissionDenied desc =
// ..." where Google's client says "rpc error: code = PermissionDenied desc
// = ...", and the batch size limits count the JSON of an entry where
// Google's count its protobuf encoding.
//
// It must never import package drivers (which imports it to register it),
// the reader, a delivery mode, the supervisor or the worker.
package gcplogs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/compute/metadata"
	"github.com/containerd/log"
	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/drivers/capability"
	"github.com/joyent/dockerlogger/drivers/httppush"
)

const (
	name = "gcplogs"

	projectOptKey     = "gcp-project"
	logLabelsKey      = "labels"
	logLabelsRegexKey = "labels-regex"
	logEnvKey         = "env"
	logEnvRegexKey    = "env-regex"
	logCmdKey         = "gcp-log-cmd"
	logZoneKey        = "gcp-meta-zone"
	logNameKey        = "gcp-meta-name"
	logIDKey          = "gcp-meta-id"

	// writeScope is the scope Google's client asks its credentials for.
	writeScope = "https://www.googleapis.com/auth/logging.write"
	// detectProjectID is the project Google's client takes from the
	// environment (logging.DetectProjectID).
	detectProjectID = "*detect-project-id*"
	logID           = "gcplogs-docker-driver"
	// endpoint is the service's write method; the host is the one
	// Google's client dials.
	endpoint = "https://logging.googleapis.com/v2/entries:write"

	// Google's client's batching (logging.Default*): a batch goes when
	// its first entry is a second old, at 1000 entries or at 8 MiB.
	// (Its 1 GiB of batches waiting is httppush's two here.)
	delayThreshold = time.Second
	countThreshold = 1000
	byteThreshold  = 1 << 23

	// Google's client's call settings for WriteLogEntries: each attempt
	// within a minute, retried with backoff on DeadlineExceeded, Internal
	// and Unavailable; a batch's write is given ten minutes in all.
	callTimeout  = time.Minute
	writeTimeout = 10 * time.Minute
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = time.Minute
	multiplier   = 1.30

	// instrumentationVersion is the version of Google's Go library that
	// Docker v28.5.2 links (cloud.google.com/go/logging v1.20.0): the
	// diagnostic entry that library sends once per process names it, and
	// ours sends the same entry.
	instrumentationVersion = "1.20.0"
)

func init() {
	if err := logger.RegisterLogDriver(name, New); err != nil {
		panic(err)
	}
	if err := logger.RegisterLogOptValidator(name, ValidateLogOpts); err != nil {
		panic(err)
	}
}

// ValidateLogOpts accepts Docker's options for gcplogs and no other, with
// Docker's message.
func ValidateLogOpts(cfg map[string]string) error {
	for k := range cfg {
		switch k {
		case projectOptKey, logLabelsKey, logLabelsRegexKey, logEnvKey, logEnvRegexKey, logCmdKey, logZoneKey, logNameKey, logIDKey:
		default:
			return fmt.Errorf("%q is not a valid option for the gcplogs driver", k)
		}
	}
	return nil
}

// gce is what the metadata server says, asked once per process as Docker
// does.
var gce = sync.OnceValue(func() (g struct {
	on                         bool
	project, zone, name, ident string
}) {
	g.on = metadata.OnGCE()
	if g.on {
		// Not vital, as in Docker: their fields are left out when empty.
		ctx := context.Background()
		g.project, _ = metadata.ProjectIDWithContext(ctx)
		g.zone, _ = metadata.ZoneWithContext(ctx)
		g.name, _ = metadata.InstanceNameWithContext(ctx)
		g.ident, _ = metadata.InstanceIDWithContext(ctx)
	}
	return g
})

// dockerLogEntry and the two below are Docker's jsonPayload, field for
// field.
type dockerLogEntry struct {
	Instance  *instanceInfo  `json:"instance,omitempty"`
	Container *containerInfo `json:"container,omitempty"`
	Message   string         `json:"message,omitempty"`
}

type instanceInfo struct {
	Zone string `json:"zone,omitempty"`
	Name string `json:"name,omitempty"`
	ID   string `json:"id,omitempty"`
}

type containerInfo struct {
	Name      string            `json:"name,omitempty"`
	ID        string            `json:"id,omitempty"`
	ImageName string            `json:"imageName,omitempty"`
	ImageID   string            `json:"imageId,omitempty"`
	Created   time.Time         `json:"created,omitempty"`
	Command   string            `json:"command,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// resource is a monitored resource, as the REST API spells it.
type resource struct {
	Type   string            `json:"type"`
	Labels map[string]string `json:"labels,omitempty"`
}

// entry is a LogEntry as the REST API spells it, with the fields Docker's
// driver and Google's client set.
type entry struct {
	LogName     string          `json:"logName,omitempty"`
	Timestamp   string          `json:"timestamp"`
	InsertID    string          `json:"insertId,omitempty"`
	TextPayload string          `json:"textPayload,omitempty"`
	JSONPayload json.RawMessage `json:"jsonPayload,omitempty"`
}

// writeRequest is a WriteLogEntriesRequest.
type writeRequest struct {
	LogName        string    `json:"logName"`
	Resource       *resource `json:"resource,omitempty"`
	Entries        []entry   `json:"entries"`
	PartialSuccess bool      `json:"partialSuccess,omitempty"`
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// client writes entries for one project.
type client struct {
	http   *http.Client
	creds  *auth.Credentials
	parent string // projects/PROJECT (or another parent given with a slash)
}

type gcplogs struct {
	push      *httppush.Pusher
	c         *client
	logName   string
	resource  *resource
	instance  *instanceInfo
	container *containerInfo

	// instrumented says the diagnostic entry was sent (once per driver,
	// as Google's client does once per process: one driver here).
	instrumented atomic.Bool
	// next is the entry Fits made of the message Add takes next (both
	// called under the Pusher's lock).
	next struct {
		msg *logger.Message
		e   entry
	}
}

// Not a capability.Flusher, unlike our other drivers on httppush: a
// blocking-mode reader would send a batch per read, where Docker's driver
// sends Google's batches (the end-to-end test compares them request by
// request). What it holds is counted all the same (Pending).
var (
	_ capability.PendingLogger  = (*gcplogs)(nil)
	_ capability.DroppingLogger = (*gcplogs)(nil)
	_ capability.MarkerLogger   = (*gcplogs)(nil)
)

// New creates the driver as Docker's New does: the project from
// gcp-project or the metadata server, credentials found, a ping written
// to the log "ping" to prove they work.
func New(info logger.Info) (logger.Logger, error) {
	g := gce()
	project := g.project
	if p, found := info.Config[projectOptKey]; found {
		project = p
	}
	if project == "" {
		return nil, fmt.Errorf("No project was specified and couldn't read project from the metadata server. Please specify a project")
	}
	parent, err := makeParent(project)
	if err != nil {
		return nil, err
	}
	creds, err := credentials.DetectDefault(&credentials.DetectOptions{Scopes: []string{writeScope}, UseSelfSignedJWT: true})
	if err != nil {
		return nil, err
	}
	c := &client{http: &http.Client{}, creds: creds, parent: parent}

	var instance *instanceInfo
	if g.on {
		instance = &instanceInfo{Zone: g.zone, Name: g.name, ID: g.ident}
	} else if info.Config[logZoneKey] != "" || info.Config[logNameKey] != "" || info.Config[logIDKey] != "" {
		instance = &instanceInfo{Zone: info.Config[logZoneKey], Name: info.Config[logNameKey], ID: info.Config[logIDKey]}
	}
	if err := c.ping(context.Background()); err != nil {
		return nil, fmt.Errorf("unable to connect or authenticate with Google Cloud Logging: %v", err)
	}

	extraAttrs, err := info.ExtraAttributes(nil)
	if err != nil {
		return nil, err
	}
	container := &containerInfo{
		Name:      info.ContainerName,
		ID:        info.ContainerID,
		ImageName: info.ContainerImageName,
		ImageID:   info.ContainerImageID,
		Created:   info.ContainerCreated,
		Metadata:  extraAttrs,
	}
	if info.Config[logCmdKey] == "true" {
		container.Command = info.Command()
	}
	return newDriver(c, instance, container), nil
}

// newDriver is the driver writing through c, once its resource is known.
func newDriver(c *client, instance *instanceInfo, container *containerInfo) *gcplogs {
	res := monitoredResource(c.parent)
	if instance != nil {
		res = &resource{Type: "gce_instance", Labels: map[string]string{"instance_id": instance.ID, "zone": instance.Zone}}
	}
	l := &gcplogs{c: c, logName: c.parent + "/logs/" + logID, resource: res, instance: instance, container: container}
	l.push = httppush.New(httppush.Config{
		Name:       name,
		NewBatch:   func() httppush.Batch { return &batch{l: l} },
		BatchSize:  byteThreshold,
		BatchWait:  delayThreshold,
		MaxRecords: countThreshold,
		Attempts:   1, // Send retries as Google's client does
		Send:       l.send,
		Report:     l.report,
	})
	return l
}

// makeParent is Google's client's: a bare project id is projects/ID.
func makeParent(parent string) (string, error) {
	if strings.ContainsRune(parent, '/') {
		return parent, nil
	}
	if parent == detectProjectID {
		return parent, fmt.Errorf("could not determine project ID from environment")
	}
	return "projects/" + parent, nil
}

// monitoredResource is the resource Google's client gives entries off
// GCE: the parent itself.
func monitoredResource(parent string) *resource {
	kind, id, ok := strings.Cut(parent, "/")
	if !ok {
		return &resource{Type: "global", Labels: map[string]string{"project_id": parent}}
	}
	types := map[string][2]string{
		"organizations":   {"organization", "organization_id"},
		"folders":         {"folder", "folder_id"},
		"projects":        {"project", "project_id"},
		"billingAccounts": {"billing_account", "account_id"},
	}
	t, ok := types[kind]
	if !ok {
		return &resource{Type: "global", Labels: map[string]string{"project_id": id}}
	}
	return &resource{Type: t[0], Labels: map[string]string{t[1]: id}}
}

// ping writes what Google's client's Ping writes: "ping" to the log
// "ping", at the Unix epoch with insert id "ping" so that the service
// keeps one.
func (c *client) ping(ctx context.Context) error {
	return c.write(ctx, &writeRequest{
		LogName:  c.parent + "/logs/ping",
		Resource: monitoredResource(c.parent),
		Entries:  []entry{{TextPayload: "ping", Timestamp: timestamp(time.Unix(0, 0)), InsertID: "ping"}},
	}, callTimeout)
}

// apiError is an error status of the service.
type apiError struct {
	code    string // gRPC's name of the status: PermissionDenied
	message string
}

func (e *apiError) Error() string { return fmt.Sprintf("code = %s desc = %s", e.code, e.message) }

// retryable are the codes Google's client tries again.
func retryable(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.code == "DeadlineExceeded" || ae.code == "Internal" || ae.code == "Unavailable"
	}
	return true // no answer: as gRPC's Unavailable
}

// write sends req, trying again with Google's client's backoff on the
// errors it retries, until limit has passed.
func (c *client) write(ctx context.Context, req *writeRequest, limit time.Duration) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return c.writeBody(ctx, body, limit)
}

// writeBody is write of a request already encoded.
func (c *client) writeBody(ctx context.Context, body []byte, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	pause := firstBackoff
	for {
		err := c.post(ctx, body)
		if err == nil || !retryable(err) {
			return err
		}
		// gax's backoff: a random pause up to the current bound.
		d := time.Duration(1 + rand.Int64N(int64(pause)))
		pause = min(time.Duration(float64(pause)*multiplier), maxBackoff)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// post makes one attempt, within callTimeout.
func (c *client) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	tok, err := c.creds.Token(ctx)
	if err != nil {
		return &apiError{code: "Unauthenticated", message: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	typ := tok.Type
	if typ == "" {
		typ = "Bearer"
	}
	req.Header.Set("Authorization", typ+" "+tok.Value)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil || e.Error.Status == "" {
		return &apiError{code: codeOfHTTP(resp.StatusCode), message: strings.TrimSpace(string(b))}
	}
	return &apiError{code: codeName(e.Error.Status), message: e.Error.Message}
}

// codeName turns the REST API's status (PERMISSION_DENIED) into gRPC's
// name of the code (PermissionDenied), which Google's client prints.
func codeName(status string) string {
	var b strings.Builder
	for _, w := range strings.Split(strings.ToLower(status), "_") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// codeOfHTTP is the code of an HTTP status with no error body, as
// Google's HTTP-to-gRPC mapping has it.
func codeOfHTTP(s int) string {
	switch s {
	case 400:
		return "InvalidArgument"
	case 401:
		return "Unauthenticated"
	case 403:
		return "PermissionDenied"
	case 404:
		return "NotFound"
	case 409:
		return "Aborted"
	case 429:
		return "ResourceExhausted"
	case 499:
		return "Canceled"
	case 501:
		return "Unimplemented"
	case 503:
		return "Unavailable"
	case 504:
		return "DeadlineExceeded"
	}
	if s >= 500 {
		return "Internal"
	}
	return "Unknown"
}

// diagnosticSource marks the message that stands for Google's diagnostic
// entry: no line of the container has it (they are stdout or stderr).
const diagnosticSource = "gcplogs diagnostic entry"

// Log adds the message to the batch (httppush), as Google's client's
// Logger.Log does, with its diagnostic entry after the first. Unlike
// Google's client, which holds up to 1 GiB and drops beyond it, it waits
// while two batches are unsent, then fails, so the delivery mode retries
// and counts; a batch the service refuses, or that it still has not taken
// after Google's ten minutes of retries, is counted dropped.
func (l *gcplogs) Log(m *logger.Message) error {
	if err := l.push.Log(m); err != nil {
		return err
	}
	if !l.instrumented.Swap(true) {
		d := logger.NewMessage()
		d.Source = diagnosticSource
		// A marker: a record of the batch, as in Google's bundler, but
		// no line of the container's.
		if err := l.push.LogMarker(d); err != nil {
			l.instrumented.Store(false)
		}
	}
	return nil
}

// LogMarker takes a drop marker (capability.MarkerLogger).
func (l *gcplogs) LogMarker(m *logger.Message) error { return l.push.LogMarker(m) }

// Pending is what was taken and not yet written (capability.PendingLogger).
func (l *gcplogs) Pending() (lines, bytes int64) { return l.push.Pending() }

// OnDrop sets who is told of lines not written (capability.DroppingLogger).
func (l *gcplogs) OnDrop(f func(reason string, lines, bytes int64)) { l.push.OnDrop(f) }

// Close sends what is batched and waits for it, as Docker's Close
// (Logger.Flush, then Client.Close) does.
func (l *gcplogs) Close() error { return l.push.Close() }

// entryOf is the entry Docker's driver makes of m.
func (l *gcplogs) entryOf(m *logger.Message) entry {
	if m.Source == diagnosticSource {
		return l.instrumentation()
	}
	if m == l.next.msg {
		return l.next.e
	}
	ts := m.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	// Marshal cannot fail on these types (invalid UTF-8 is replaced).
	payload, _ := json.Marshal(&dockerLogEntry{Instance: l.instance, Container: l.container, Message: string(m.Line)})
	return entry{Timestamp: timestamp(ts), JSONPayload: payload}
}

// send writes one batch, retrying as Google's client does for up to
// writeTimeout. What it could not write is dropped: refused as invalid
// (InvalidArgument), or given up on. With the diagnostic entry the batch
// asked for partial success, so the service may have written some of its
// lines: all are counted dropped, never one delivered that was not.
func (l *gcplogs) send(ctx context.Context, body []byte) httppush.Result {
	err := l.c.writeBody(ctx, body, writeTimeout)
	if err == nil {
		return httppush.Result{}
	}
	reason := diag.DriverGaveUp
	var ae *apiError
	if errors.As(err, &ae) && ae.code == "InvalidArgument" {
		reason = diag.Rejected
	}
	return httppush.Result{Refused: -1, Reason: reason, Err: err}
}

// batch gathers entries as Google's client's bundler does: sent a second
// after its first entry, at 1000 entries or at 8 MiB, before an entry
// that would take it past 8 MiB.
type batch struct {
	l       *gcplogs
	entries []entry
	size    int
}

var _ httppush.Fitter = (*batch)(nil)

func entrySize(e entry) int { return len(e.JSONPayload) + len(e.Timestamp) }

func (b *batch) Fits(m *logger.Message, limit int) bool {
	e := b.l.entryOf(m)
	b.l.next.msg, b.l.next.e = m, e
	return b.size+entrySize(e) <= limit
}

func (b *batch) Add(m *logger.Message) {
	e := b.l.entryOf(m)
	b.l.next.msg, b.l.next.e = nil, entry{}
	b.entries = append(b.entries, e)
	b.size += entrySize(e)
}

func (b *batch) Size() int { return b.size }

func (b *batch) Encode() ([]byte, error) {
	req := &writeRequest{LogName: b.l.logName, Resource: b.l.resource, Entries: b.entries}
	if len(b.entries) > 1 {
		for _, e := range b.entries {
			if strings.HasSuffix(e.LogName, "diagnostic-log") {
				req.PartialSuccess = true
			}
		}
	}
	return json.Marshal(req)
}

func (b *batch) Reset() {
	clear(b.entries)
	b.entries, b.size = b.entries[:0], 0
}

// instrumentation is the diagnostic entry Google's Go client adds to the
// first batch of a process (logging's instrumentLogs).
func (l *gcplogs) instrumentation() entry {
	p, _ := json.Marshal(map[string]any{"logging.googleapis.com/diagnostic": map[string]any{
		"instrumentation_source": []map[string]string{{"name": "go", "version": instrumentationVersion}},
		"runtime":                goVersion(),
	}})
	return entry{LogName: l.c.parent + "/logs/diagnostic-log", Timestamp: timestamp(time.Now()), JSONPayload: p}
}

// report says what went wrong as Docker's OnError does: on Docker's log.
func (l *gcplogs) report(err error) { log.G(context.TODO()).Error(err) }

func (l *gcplogs) Name() string { return name }

// goVersion is the Go version as Google's client reports it in its
// diagnostic entry: go1.26.8 is 1.26.8, go1.26 is 1.26.0, a pre-release
// keeps its suffix after a dash.
func goVersion() string {
	s := runtime.Version()
	if d, ok := strings.CutPrefix(s, "devel +"); ok {
		if i := strings.IndexFunc(d, unicode.IsSpace); i >= 0 {
			d = d[:i]
		}
		return d
	}
	if !strings.HasPrefix(s, "go1") {
		return "UNKNOWN"
	}
	s = s[2:]
	var pre string
	if i := strings.IndexFunc(s, func(r rune) bool { return !strings.ContainsRune("0123456789.", r) }); i >= 0 {
		s, pre = s[:i], s[i:]
	}
	if strings.HasSuffix(s, ".") {
		s += "0"
	} else if strings.Count(s, ".") < 2 {
		s += ".0"
	}
	if pre != "" {
		s += "-" + pre
	}
	return s
}
