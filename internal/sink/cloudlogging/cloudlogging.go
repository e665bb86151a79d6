// Package cloudlogging is a test sink: Google Cloud Logging's write path,
// for the end-to-end tests of the gcplogs driver where Google is out of
// reach. It speaks the real API on one TLS port, both ways Google serves
// it: gRPC google.logging.v2.LoggingServiceV2 over HTTP/2, with the
// generated types and service descriptor of
// cloud.google.com/go/logging/apiv2/loggingpb, so Docker's driver talks to
// it through the unmodified Google client libraries; and REST, POST
// /v2/entries:write with the request as JSON (protojson of the same
// types) and errors as Google's JSON error body, for our own driver.
//
// It owns the Google side of one project: a service account's key pair
// and the JSON key file Google hands out for it (ServiceAccount), a TLS
// identity for logging.googleapis.com signed by a CA of its own (Certs),
// and WriteLogEntries with the checks the service makes that a client can
// trip over (in both protocols): a bearer token that is a JWT signed by the account's key
// (the self-signed JWT the Google libraries send for service-account
// keys; Unauthenticated otherwise), a log name of the account's project
// (PermissionDenied for another), and a log name and a monitored resource
// for every entry (InvalidArgument). Every other method is Unimplemented.
//
// It must never import dockerlogger's own packages: it stands for the
// real service and knows nothing of the client under test.
package cloudlogging

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	mrpb "google.golang.org/genproto/googleapis/api/monitoredres"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/joyent/dockerlogger/internal/sink/store"
)

// Host is the service's name, which its certificate must carry.
const Host = "logging.googleapis.com"

// Scopes that allow writing log entries (either suffices).
var writeScopes = []string{
	"https://www.googleapis.com/auth/logging.write",
	"https://www.googleapis.com/auth/logging.admin",
	"https://www.googleapis.com/auth/cloud-platform",
}

// ServiceAccount is one service account of a project, as Google holds it.
type ServiceAccount struct {
	Project string
	Email   string
	KeyID   string
	Key     *rsa.PrivateKey
}

// NewServiceAccount makes the account name in project with a fresh key.
func NewServiceAccount(project, name string) (*ServiceAccount, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("cloudlogging: generate service account key: %w", err)
	}
	id := make([]byte, 20)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("cloudlogging: key id: %w", err)
	}
	return &ServiceAccount{Project: project, Email: name + "@" + project + ".iam.gserviceaccount.com",
		KeyID: hex.EncodeToString(id), Key: key}, nil
}

// JSON is the account's key file, in the format of
// `gcloud iam service-accounts keys create` (what
// GOOGLE_APPLICATION_CREDENTIALS names).
func (a *ServiceAccount) JSON() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(a.Key)
	if err != nil {
		return nil, fmt.Errorf("cloudlogging: encode service account key: %w", err)
	}
	return json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  a.Project,
		"private_key_id":              a.KeyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                a.Email,
		"client_id":                   "100000000000000000001",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   "https://oauth2.googleapis.com/token",
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/" + url.PathEscape(a.Email),
		"universe_domain":             "googleapis.com",
	}, "", "  ")
}

// Certs is a CA and a server certificate it signed.
type Certs struct {
	CAPEM  []byte // the CA certificate, PEM: the client's trust root
	Server tls.Certificate
}

// NewCerts makes a CA and a certificate for hosts signed by it, valid for
// a day.
func NewCerts(hosts ...string) (*Certs, error) {
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("cloudlogging: CA key: %w", err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dockerlogger test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("cloudlogging: CA certificate: %w", err)
	}
	ca, err = x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("cloudlogging: parse CA certificate: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("cloudlogging: server key: %w", err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: hosts[0]},
		DNSNames:     hosts,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("cloudlogging: server certificate: %w", err)
	}
	return &Certs{
		CAPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Server: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
	}, nil
}

// Entry is one accepted log entry, with the request's defaults applied as
// the service applies them.
type Entry struct {
	LogName  string
	Resource *mrpb.MonitoredResource
	Labels   map[string]string
	*loggingpb.LogEntry
}

// Server serves LoggingServiceV2 for one service account.
type Server struct {
	loggingpb.UnimplementedLoggingServiceV2Server
	account *ServiceAccount
	grpc    *grpc.Server
	tls     *tls.Config
	servers []*http.Server

	// Store holds the entries accepted; it changes at every call.
	store.Store[Entry]

	mu       sync.Mutex
	requests []*loggingpb.WriteLogEntriesRequest
	refused  []string
}

// New makes a server accepting account's tokens, presenting cert. Serve
// starts it.
func New(account *ServiceAccount, cert tls.Certificate) *Server {
	s := &Server{Store: store.Store[Entry]{Name: "cloudlogging"}, account: account}
	s.grpc = grpc.NewServer()
	loggingpb.RegisterLoggingServiceV2Server(s.grpc, s)
	s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	return s
}

// Serve serves on ln in the background, until Close. It may be called
// more than once, to serve again after Stop.
func (s *Server) Serve(ln net.Listener) {
	hs := &http.Server{Handler: http.HandlerFunc(s.route), TLSConfig: s.tls}
	s.mu.Lock()
	s.servers = append(s.servers, hs)
	s.mu.Unlock()
	go hs.ServeTLS(ln, "", "")
}

// route hands gRPC to the gRPC server and the rest to REST.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		s.grpc.ServeHTTP(w, r)
		return
	}
	s.rest(w, r)
}

// Close stops serving and drops every connection.
func (s *Server) Close() {
	s.mu.Lock()
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	for _, hs := range servers {
		hs.Close()
	}
	s.grpc.Stop()
}

// Requests are the accepted WriteLogEntries requests, in order.
func (s *Server) Requests() []*loggingpb.WriteLogEntriesRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*loggingpb.WriteLogEntriesRequest(nil), s.requests...)
}

// Entries are the accepted entries, in the order received.
func (s *Server) Entries() []Entry { return s.All() }

// Refused lists the calls refused, as "code: message".
func (s *Server) Refused() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.refused...)
}

// Wait waits up to d until n entries with logName have been accepted and
// returns those entries.
func (s *Server) Wait(logName string, n int, d time.Duration) ([]Entry, error) {
	var got []Entry
	if s.Until(d, func() bool {
		got = nil
		for _, e := range s.All() {
			if e.LogName == logName {
				got = append(got, e)
			}
		}
		return len(got) >= n
	}) {
		return got, nil
	}
	return got, fmt.Errorf("cloudlogging: %d entries in %s after %v, want %d", len(got), logName, d, n)
}

// WriteLogEntries is the service's one write method.
func (s *Server) WriteLogEntries(ctx context.Context, req *loggingpb.WriteLogEntriesRequest) (*loggingpb.WriteLogEntriesResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	return &loggingpb.WriteLogEntriesResponse{}, s.accept(md.Get("authorization"), req)
}

// rest serves POST /v2/entries:write, as Google's REST API: the request
// as JSON, an empty JSON object back, or {"error": {code, message,
// status}} with the HTTP status of the error's code.
func (s *Server) rest(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v2/entries:write" {
		restError(w, status.Error(codes.NotFound, "The requested URL "+r.URL.Path+" was not found on this server."))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		return
	}
	req := &loggingpb.WriteLogEntriesRequest{}
	if err := protojson.Unmarshal(body, req); err != nil {
		restError(w, status.Error(codes.InvalidArgument, "Invalid JSON payload received. "+err.Error()))
		return
	}
	if err := s.accept(r.Header.Values("Authorization"), req); err != nil {
		restError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	io.WriteString(w, "{}\n")
}

// restError writes err (a gRPC status) as Google's REST APIs do.
func restError(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	httpStatus := map[codes.Code]int{
		codes.InvalidArgument: 400, codes.Unauthenticated: 401, codes.PermissionDenied: 403,
		codes.NotFound: 404, codes.Unimplemented: 501, codes.Unavailable: 503,
	}[st.Code()]
	if httpStatus == 0 {
		httpStatus = 500
	}
	name := strings.ToUpper(strings.Join(splitCamel(st.Code().String()), "_"))
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": httpStatus, "message": st.Message(), "status": name}})
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(httpStatus)
	w.Write(b)
}

// splitCamel splits PermissionDenied into Permission and Denied.
func splitCamel(s string) []string {
	var words []string
	start := 0
	for i := 1; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			words = append(words, s[start:i])
			start = i
		}
	}
	return append(words, s[start:])
}

// accept checks and stores one write, whichever protocol it came by.
func (s *Server) accept(auth []string, req *loggingpb.WriteLogEntriesRequest) error {
	entries, err := s.write(auth, req)
	s.mu.Lock()
	if err != nil {
		s.refused = append(s.refused, status.Code(err).String()+": "+status.Convert(err).Message())
	} else {
		s.requests = append(s.requests, proto.Clone(req).(*loggingpb.WriteLogEntriesRequest))
	}
	s.mu.Unlock()
	if err != nil {
		s.Signal()
	} else {
		s.Add(entries...)
	}
	return err
}

func (s *Server) write(auth []string, req *loggingpb.WriteLogEntriesRequest) ([]Entry, error) {
	if err := s.authenticate(auth); err != nil {
		return nil, err
	}
	if len(req.Entries) == 0 {
		return nil, status.Error(codes.InvalidArgument, "entries: at least one entry is required")
	}
	var out []Entry
	for i, pe := range req.Entries {
		e := Entry{LogName: req.LogName, Resource: req.Resource, Labels: map[string]string{}, LogEntry: proto.Clone(pe).(*loggingpb.LogEntry)}
		if pe.LogName != "" {
			e.LogName = pe.LogName
		}
		if pe.Resource != nil {
			e.Resource = pe.Resource
		}
		// The request's labels are defaults: an entry's own label wins.
		for k, v := range req.Labels {
			e.Labels[k] = v
		}
		for k, v := range pe.Labels {
			e.Labels[k] = v
		}
		if e.LogName == "" {
			return nil, status.Errorf(codes.InvalidArgument, "entries[%d]: log_name is missing and the request has none", i)
		}
		project, err := logProject(e.LogName)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "entries[%d]: %v", i, err)
		}
		if project != s.account.Project {
			return nil, status.Errorf(codes.PermissionDenied,
				"Permission 'logging.logEntries.create' denied on resource (or it may not exist): projects/%s", project)
		}
		if e.Resource == nil || e.Resource.Type == "" {
			return nil, status.Errorf(codes.InvalidArgument, "entries[%d]: resource is missing and the request has none", i)
		}
		if e.Payload == nil {
			return nil, status.Errorf(codes.InvalidArgument, "entries[%d]: no payload", i)
		}
		out = append(out, e)
	}
	return out, nil
}

// logProject checks "projects/PROJECT/logs/LOG_ID" (LOG_ID URL-encoded,
// at most 512 characters) and returns PROJECT.
func logProject(name string) (string, error) {
	parts := strings.SplitN(name, "/", 4)
	if len(parts) != 4 || parts[0] != "projects" || parts[1] == "" || parts[2] != "logs" || parts[3] == "" {
		return "", fmt.Errorf("log_name %q is not projects/[PROJECT_ID]/logs/[LOG_ID]", name)
	}
	id, err := url.PathUnescape(parts[3])
	if err != nil || len(id) > 512 || strings.ContainsAny(parts[3], "/ ") {
		return "", fmt.Errorf("log_name %q: LOG_ID must be URL-encoded and at most 512 characters", name)
	}
	return parts[1], nil
}

// authenticate accepts a bearer token that is a JWT signed (RS256) by the
// account's key, issued by the account, unexpired, and scoped for writing
// or addressed to the service: what Google accepts as a self-signed JWT.
func (s *Server) authenticate(auth []string) error {
	if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer ") {
		return unauthenticated("no bearer token")
	}
	parts := strings.Split(strings.TrimPrefix(auth[0], "Bearer "), ".")
	if len(parts) != 3 {
		return unauthenticated("the token is not a JWT")
	}
	var header struct{ Alg, Typ, Kid string }
	var claims struct {
		Iss, Sub, Aud, Scope string
		Iat, Exp             int64
	}
	if err := decodePart(parts[0], &header); err != nil {
		return unauthenticated("JWT header: " + err.Error())
	}
	if err := decodePart(parts[1], &claims); err != nil {
		return unauthenticated("JWT claims: " + err.Error())
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return unauthenticated("JWT signature: " + err.Error())
	}
	if header.Alg != "RS256" || header.Kid != s.account.KeyID {
		return unauthenticated(fmt.Sprintf("JWT alg %q kid %q: not a key of %s", header.Alg, header.Kid, s.account.Email))
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&s.account.Key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return unauthenticated("JWT signature does not verify")
	}
	now := time.Now().Unix()
	if claims.Iss != s.account.Email || (claims.Sub != "" && claims.Sub != s.account.Email) {
		return unauthenticated(fmt.Sprintf("JWT issuer %q is not %s", claims.Iss, s.account.Email))
	}
	if claims.Exp <= now || claims.Iat > now+300 || claims.Exp-claims.Iat > 3600 {
		return unauthenticated("JWT expired or not yet valid")
	}
	if claims.Aud != "https://"+Host+"/" && !hasScope(claims.Scope) {
		return unauthenticated(fmt.Sprintf("JWT audience %q and scope %q do not allow writing log entries", claims.Aud, claims.Scope))
	}
	return nil
}

func hasScope(scope string) bool {
	for _, have := range strings.Fields(scope) {
		for _, want := range writeScopes {
			if have == want {
				return true
			}
		}
	}
	return false
}

func decodePart(part string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func unauthenticated(why string) error {
	return status.Error(codes.Unauthenticated,
		"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. ("+why+")")
}
