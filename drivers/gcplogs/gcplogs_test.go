package gcplogs

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/auth"
	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/diag"
)

// What Google's client derives from a project and a version, as this
// driver must derive it too (the end-to-end test compares whole requests).
func TestGoogleRules(t *testing.T) {
	for in, want := range map[string]string{"my-project": "projects/my-project", "folders/123": "folders/123"} {
		if got, err := makeParent(in); err != nil || got != want {
			t.Errorf("makeParent(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := makeParent(detectProjectID); err == nil {
		t.Errorf("makeParent(%q): no error off Google Cloud", detectProjectID)
	}
	for parent, want := range map[string]resource{
		"projects/p":        {Type: "project", Labels: map[string]string{"project_id": "p"}},
		"folders/7":         {Type: "folder", Labels: map[string]string{"folder_id": "7"}},
		"billingAccounts/b": {Type: "billing_account", Labels: map[string]string{"account_id": "b"}},
		"other/x":           {Type: "global", Labels: map[string]string{"project_id": "x"}},
	} {
		if got := monitoredResource(parent); !reflect.DeepEqual(*got, want) {
			t.Errorf("monitoredResource(%q) = %+v, want %+v", parent, *got, want)
		}
	}
	for status, want := range map[string]string{"PERMISSION_DENIED": "PermissionDenied", "UNAVAILABLE": "Unavailable", "DEADLINE_EXCEEDED": "DeadlineExceeded"} {
		if got := codeName(status); got != want {
			t.Errorf("codeName(%q) = %q, want %q", status, got, want)
		}
	}
	if err := ValidateLogOpts(map[string]string{"gcp-bogus": "1"}); err == nil || err.Error() != `"gcp-bogus" is not a valid option for the gcplogs driver` {
		t.Errorf("ValidateLogOpts: %v", err)
	}
}

// staticToken is a token provider for tests.
type staticToken struct{}

func (staticToken) Token(context.Context) (*auth.Token, error) {
	return &auth.Token{Value: "t", Expiry: time.Now().Add(time.Hour)}, nil
}

// toServer sends every request to srv, whatever its URL.
type toServer struct{ srv *httptest.Server }

func (s toServer) RoundTrip(r *http.Request) (*http.Response, error) {
	u, _ := url.Parse(s.srv.URL + r.URL.Path)
	r = r.Clone(r.Context())
	r.URL, r.Host = u, u.Host
	return http.DefaultTransport.RoundTrip(r)
}

// testDriver is the driver of project p whose requests go to answer.
func testDriver(t *testing.T, answer http.HandlerFunc) (*gcplogs, *[]writeRequest, *sync.Mutex) {
	t.Helper()
	var mu sync.Mutex
	var reqs []writeRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req writeRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("request body: %v", err)
		}
		mu.Lock()
		reqs = append(reqs, req)
		mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	c := &client{http: &http.Client{Transport: toServer{srv}}, creds: auth.NewCredentials(&auth.CredentialsOptions{TokenProvider: staticToken{}}), parent: "projects/p"}
	return newDriver(c, nil, &containerInfo{ID: "c"}), &reqs, &mu
}

func logLines(t *testing.T, l *gcplogs, n int, line string) {
	t.Helper()
	for i := 0; i < n; i++ {
		m := logger.NewMessage()
		m.Line = append(m.Line, fmt.Sprint(line, i)...)
		m.Source = "stdout"
		m.Timestamp = time.Now()
		if err := l.Log(m); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBatchesLikeGoogle: Google's bundler's batches: the diagnostic entry
// after the first line, with partial success asked for, 1000 entries at
// most (the diagnostic one among them), and a batch sent before an entry
// that would take it past 8 MiB.
func TestBatchesLikeGoogle(t *testing.T) {
	ok := func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("{}")) }
	l, reqs, mu := testDriver(t, ok)
	logLines(t, l, 1500, "line ")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(*reqs) != 2 || len((*reqs)[0].Entries) != 1000 || len((*reqs)[1].Entries) != 501 {
		t.Fatalf("%d requests, want 1000 entries then 501", len(*reqs))
	}
	first := (*reqs)[0]
	if !first.PartialSuccess || (*reqs)[1].PartialSuccess || !strings.HasSuffix(first.Entries[1].LogName, "/logs/diagnostic-log") {
		t.Fatalf("partial success %v, %v; second entry %+v: want the diagnostic entry second, partial success in the first batch only",
			first.PartialSuccess, (*reqs)[1].PartialSuccess, first.Entries[1])
	}
	mu.Unlock()

	l, reqs, mu = testDriver(t, ok)
	big := strings.Repeat("x", 1<<20)
	logLines(t, l, 10, big)
	l.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(*reqs) != 2 || len((*reqs)[0].Entries) != 8 || len((*reqs)[1].Entries) != 3 {
		t.Fatalf("%d requests, want 7 lines and the diagnostic entry, then 3 lines", len(*reqs))
	}
}

// TestCountsWhatIsNotWritten: a batch the service refuses as invalid is
// dropped as rejected, one it refuses otherwise (no retry helps) as given
// up on, each counted by line without the diagnostic entry; nothing stays
// pending.
func TestCountsWhatIsNotWritten(t *testing.T) {
	for _, c := range []struct {
		status, code int
		name, reason string
	}{
		{400, 400, "INVALID_ARGUMENT", diag.Rejected},
		{403, 403, "PERMISSION_DENIED", diag.DriverGaveUp},
	} {
		l, _, _ := testDriver(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(c.status)
			fmt.Fprintf(w, `{"error":{"code":%d,"message":"no","status":%q}}`, c.code, c.name)
		})
		var mu sync.Mutex
		got := map[string]int64{}
		l.OnDrop(func(reason string, lines, _ int64) { mu.Lock(); got[reason] += lines; mu.Unlock() })
		logLines(t, l, 5, "refused ")
		l.Close()
		mu.Lock()
		if len(got) != 1 || got[c.reason] != 5 {
			t.Errorf("%s: dropped %v, want 5 %s", c.name, got, c.reason)
		}
		mu.Unlock()
		if n, _ := l.Pending(); n != 0 {
			t.Errorf("%s: %d pending after Close", c.name, n)
		}
	}
}
