package cloudlogging

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	mrpb "google.golang.org/genproto/googleapis/api/monitoredres"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const project = "unit-project"

// fixture is a sink on a loopback port and a client of the real gRPC
// stubs that trusts the sink's CA and names the service's host.
type fixture struct {
	s       *Server
	account *ServiceAccount
	client  loggingpb.LoggingServiceV2Client
	certs   *Certs
	addr    string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	account, err := NewServiceAccount(project, "writer")
	if err != nil {
		t.Fatal(err)
	}
	certs, err := NewCerts(Host)
	if err != nil {
		t.Fatal(err)
	}
	s := New(account, certs.Server)
	t.Cleanup(s.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Serve(ln)
	f := &fixture{s: s, account: account, certs: certs, addr: ln.Addr().String()}
	f.client = loggingpb.NewLoggingServiceV2Client(f.dial(t, certs.CAPEM))
	return f
}

func (f *fixture) dial(t *testing.T, caPEM []byte) *grpc.ClientConn {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA PEM does not parse")
	}
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(grpccreds.NewTLS(&tls.Config{RootCAs: pool, ServerName: Host})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// token is the bearer token Google's own auth library makes from the key
// file: a self-signed JWT, as the gRPC clients send it.
func token(t *testing.T, a *ServiceAccount, scope string) string {
	t.Helper()
	key, err := a.JSON()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := credentials.NewCredentialsFromJSON(credentials.ServiceAccount, key, &credentials.DetectOptions{
		Scopes: []string{scope}, UseSelfSignedJWT: true})
	if err != nil {
		t.Fatalf("Google's library refuses the key file: %v", err)
	}
	tok, err := creds.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok.Value
}

func withToken(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

func text(s string) *loggingpb.LogEntry {
	return &loggingpb.LogEntry{Payload: &loggingpb.LogEntry_TextPayload{TextPayload: s}}
}

// TestWrite: an authenticated write is accepted and recorded in order,
// with the request's log name, resource and labels as defaults each entry
// may override.
func TestWrite(t *testing.T) {
	f := newFixture(t)
	ctx := withToken(token(t, f.account, "https://www.googleapis.com/auth/logging.write"))
	global := &mrpb.MonitoredResource{Type: "global", Labels: map[string]string{"project_id": project}}
	own := text("two")
	own.LogName = "projects/" + project + "/logs/other"
	own.Labels = map[string]string{"k": "entry"}
	own.Resource = &mrpb.MonitoredResource{Type: "gce_instance"}
	_, err := f.client.WriteLogEntries(ctx, &loggingpb.WriteLogEntriesRequest{
		LogName:  "projects/" + project + "/logs/app",
		Resource: global,
		Labels:   map[string]string{"k": "request", "r": "1"},
		Entries:  []*loggingpb.LogEntry{text("one"), own, text("three")},
	})
	if err != nil {
		t.Fatal(err)
	}
	es, err := f.s.Wait("projects/"+project+"/logs/app", 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if es[0].GetTextPayload() != "one" || es[1].GetTextPayload() != "three" ||
		es[0].Resource.Type != "global" || es[0].Labels["k"] != "request" || es[0].Labels["r"] != "1" {
		t.Fatalf("entries %v", es)
	}
	all := f.s.Entries()
	if len(all) != 3 || all[1].LogName != own.LogName || all[1].Resource.Type != "gce_instance" ||
		all[1].Labels["k"] != "entry" || all[1].Labels["r"] != "1" {
		t.Fatalf("entry with its own name, resource and label: %+v", all[1])
	}
	if len(f.s.Requests()) != 1 || len(f.s.Refused()) != 0 {
		t.Fatalf("requests %v, refused %v", f.s.Requests(), f.s.Refused())
	}
}

// TestRefused: what the service refuses, with its status code; nothing
// refused is recorded as an entry.
func TestRefused(t *testing.T) {
	f := newFixture(t)
	// Another key under the account's name and key id: only the
	// signature tells them apart.
	other, err := NewServiceAccount(project, "writer")
	if err != nil {
		t.Fatal(err)
	}
	other.KeyID = f.account.KeyID
	good := token(t, f.account, "https://www.googleapis.com/auth/logging.write")
	app := "projects/" + project + "/logs/app"
	global := &mrpb.MonitoredResource{Type: "global"}
	for _, c := range []struct {
		name string
		ctx  context.Context
		req  *loggingpb.WriteLogEntriesRequest
		code codes.Code
	}{
		{"no token", context.Background(), &loggingpb.WriteLogEntriesRequest{LogName: app, Resource: global, Entries: []*loggingpb.LogEntry{text("x")}}, codes.Unauthenticated},
		{"signed by another key", withToken(token(t, other, "https://www.googleapis.com/auth/logging.write")), &loggingpb.WriteLogEntriesRequest{LogName: app, Resource: global, Entries: []*loggingpb.LogEntry{text("x")}}, codes.Unauthenticated},
		{"scope without write", withToken(token(t, f.account, "https://www.googleapis.com/auth/logging.read")), &loggingpb.WriteLogEntriesRequest{LogName: app, Resource: global, Entries: []*loggingpb.LogEntry{text("x")}}, codes.Unauthenticated},
		{"token not a JWT", withToken("ya29.opaque"), &loggingpb.WriteLogEntriesRequest{LogName: app, Resource: global, Entries: []*loggingpb.LogEntry{text("x")}}, codes.Unauthenticated},
		{"another project", withToken(good), &loggingpb.WriteLogEntriesRequest{LogName: "projects/elsewhere/logs/app", Resource: global, Entries: []*loggingpb.LogEntry{text("x")}}, codes.PermissionDenied},
		{"no log name", withToken(good), &loggingpb.WriteLogEntriesRequest{Resource: global, Entries: []*loggingpb.LogEntry{text("x")}}, codes.InvalidArgument},
		{"bad log name", withToken(good), &loggingpb.WriteLogEntriesRequest{LogName: "logs/app", Resource: global, Entries: []*loggingpb.LogEntry{text("x")}}, codes.InvalidArgument},
		{"no resource", withToken(good), &loggingpb.WriteLogEntriesRequest{LogName: app, Entries: []*loggingpb.LogEntry{text("x")}}, codes.InvalidArgument},
		{"no entries", withToken(good), &loggingpb.WriteLogEntriesRequest{LogName: app, Resource: global}, codes.InvalidArgument},
		{"no payload", withToken(good), &loggingpb.WriteLogEntriesRequest{LogName: app, Resource: global, Entries: []*loggingpb.LogEntry{{}}}, codes.InvalidArgument},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.client.WriteLogEntries(c.ctx, c.req)
			if status.Code(err) != c.code {
				t.Fatalf("error %v, want %v", err, c.code)
			}
		})
	}
	refused := f.s.Refused()
	if len(f.s.Entries()) != 0 || len(refused) != 10 {
		t.Fatalf("entries %v, refused %v", f.s.Entries(), refused)
	}
	if !strings.Contains(refused[1], "signature does not verify") {
		t.Fatalf("the token signed by another key was refused for another reason: %s", refused[1])
	}
}

// TestOtherCA: a client that trusts another CA does not complete the
// handshake, so the certificate is really checked by clients.
func TestOtherCA(t *testing.T) {
	f := newFixture(t)
	other, err := NewCerts(Host)
	if err != nil {
		t.Fatal(err)
	}
	client := loggingpb.NewLoggingServiceV2Client(f.dial(t, other.CAPEM))
	_, err = client.WriteLogEntries(withToken(token(t, f.account, "https://www.googleapis.com/auth/logging.write")),
		&loggingpb.WriteLogEntriesRequest{LogName: "projects/" + project + "/logs/app",
			Resource: &mrpb.MonitoredResource{Type: "global"}, Entries: []*loggingpb.LogEntry{text("x")}})
	if status.Code(err) != codes.Unavailable || len(f.s.Requests()) != 0 {
		t.Fatalf("error %v with an untrusted certificate; requests %v", err, f.s.Requests())
	}
}

// TestREST: entries:write over HTTPS with a JSON body, on the same port:
// accepted with a valid token (jsonPayload, timestamp and resource as
// sent), refused as Google's REST API refuses, with the JSON error body
// and the HTTP status of the code, and recorded as refused.
func TestREST(t *testing.T) {
	f := newFixture(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(f.certs.CAPEM)
	hc := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: Host},
		ForceAttemptHTTP2: true,
	}}
	post := func(path, tok, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "https://"+f.addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tok := token(t, f.account, "https://www.googleapis.com/auth/logging.write")
	body := `{"logName":"projects/` + project + `/logs/app","resource":{"type":"project","labels":{"project_id":"` + project + `"}},` +
		`"entries":[{"timestamp":"2024-05-06T07:08:09.123456789Z","jsonPayload":{"message":"hi","n":{"k":"v"}}}]}`
	if code, b := post("/v2/entries:write", tok, body); code != 200 || strings.TrimSpace(b) != "{}" {
		t.Fatalf("valid write: %d %s", code, b)
	}
	es := f.s.Entries()
	if len(es) != 1 || es[0].GetJsonPayload().AsMap()["message"] != "hi" || es[0].Resource.Labels["project_id"] != project ||
		es[0].Timestamp.AsTime() != time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC) {
		t.Fatalf("entries %v", es)
	}
	for _, c := range []struct {
		name, path, tok, body string
		code                  int
		status                string
	}{
		{"no token", "/v2/entries:write", "", body, 401, "UNAUTHENTICATED"},
		{"bad log name", "/v2/entries:write", tok, strings.ReplaceAll(body, "logs/app", "x"), 400, "INVALID_ARGUMENT"},
		{"not JSON", "/v2/entries:write", tok, "{", 400, "INVALID_ARGUMENT"},
		{"other path", "/v2/entries:list", tok, body, 404, "NOT_FOUND"},
	} {
		code, b := post(c.path, c.tok, c.body)
		var e struct {
			Error struct {
				Code   int
				Status string
			}
		}
		if json.Unmarshal([]byte(b), &e); code != c.code || e.Error.Code != c.code || e.Error.Status != c.status {
			t.Errorf("%s: %d %s, want %d %s", c.name, code, b, c.code, c.status)
		}
	}
	denied := strings.ReplaceAll(body, "projects/"+project+"/logs", "projects/someone-else/logs")
	if code, b := post("/v2/entries:write", tok, denied); code != 403 || !strings.Contains(b, `"PERMISSION_DENIED"`) {
		t.Errorf("another project: %d %s", code, b)
	}
	// Recorded as refused: the requests that parsed (no token, bad log
	// name, another project), as the gRPC path records them.
	if len(f.s.Entries()) != 1 || len(f.s.Refused()) != 3 {
		t.Fatalf("entries %d (want 1), refused %v (want 3)", len(f.s.Entries()), f.s.Refused())
	}
}
