package filelog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger"
)

func logLine(t *testing.T, l interface{ Log(*logger.Message) error }, line string) {
	t.Helper()
	m := logger.NewMessage()
	m.Line = append(m.Line, line...)
	m.Source = "stdout"
	m.Timestamp = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := l.Log(m); err != nil {
		t.Fatal(err)
	}
}

// A json-file whose last record was torn by a killed logger is cut back to
// its last whole record before anything is appended.
func TestJSONTrimsTornRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	j, err := NewJSON(Options{Path: path, MaxSize: -1, MaxFiles: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logLine(t, j, "first")
	logLine(t, j, "second")
	j.Close()
	whole, _ := os.ReadFile(path)
	// Tear a third record at every length.
	third := `{"log":"third\n","stream":"stdout","time":"2026-01-02T03:04:05.000000006Z"}`
	for cut := 1; cut < len(third); cut++ {
		if err := os.WriteFile(path, append(append([]byte(nil), whole...), third[:cut]...), 0o640); err != nil {
			t.Fatal(err)
		}
		var reported []error
		j, err := NewJSON(Options{Path: path, MaxSize: -1, MaxFiles: 1, OnError: func(e error) { reported = append(reported, e) }}, nil)
		if err != nil {
			t.Fatal(err)
		}
		logLine(t, j, "again")
		j.Close()
		got, _ := os.ReadFile(path)
		want := string(whole) + `{"log":"again\n","stream":"stdout","time":"2026-01-02T03:04:05.000000006Z"}` + "\n"
		if string(got) != want {
			t.Fatalf("cut at %d: file is\n%s\nwant\n%s", cut, got, want)
		}
		if len(reported) != 1 || !strings.Contains(reported[0].Error(), "torn record") {
			t.Fatalf("cut at %d: reported %v", cut, reported)
		}
	}
}

// The same for the local format's framed records.
func TestLocalTrimsTornRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-local.log")
	l, err := NewLocal(Options{Path: path, MaxSize: -1, MaxFiles: 1})
	if err != nil {
		t.Fatal(err)
	}
	logLine(t, l, "first")
	logLine(t, l, "second")
	l.Close()
	two, _ := os.ReadFile(path)
	l, _ = NewLocal(Options{Path: path, MaxSize: -1, MaxFiles: 1})
	logLine(t, l, "third")
	l.Close()
	three, _ := os.ReadFile(path)
	frame := three[len(two):]
	for cut := 1; cut < len(frame); cut++ {
		if err := os.WriteFile(path, append(append([]byte(nil), two...), frame[:cut]...), 0o640); err != nil {
			t.Fatal(err)
		}
		l, err := NewLocal(Options{Path: path, MaxSize: -1, MaxFiles: 1, OnError: func(error) {}})
		if err != nil {
			t.Fatal(err)
		}
		logLine(t, l, "third")
		l.Close()
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, three) {
			t.Fatalf("cut at %d of %d: %d bytes, want %d", cut, len(frame), len(got), len(three))
		}
	}
}
