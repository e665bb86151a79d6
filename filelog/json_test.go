package filelog_test

import (
	"bytes"
	"math/rand"
	"testing"
	"time"

	"github.com/docker/docker/daemon/logger/jsonfilelog/jsonlog"

	"github.com/joyent/dockerlogger/filelog"
)

// AppendJSON writes what Docker's jsonlog encoder writes, for random lines
// drawn from the bytes the encoders treat differently, at every alignment
// of the eight-byte fast path.
func TestAppendJSONMatchesDockerRandom(t *testing.T) {
	alphabet := []byte("ab <>&\"\\\n\r\t\x00\x1f\x7f\x80\xbf\xc3\xa9\xe2\x80\xa8\xa9\xf0\x9f\x99\x82\xff")
	rng := rand.New(rand.NewSource(1))
	ts := time.Date(2024, 1, 2, 3, 4, 5, 600, time.UTC)
	attrs := []byte(`{"a":"b"}`)
	var want bytes.Buffer
	var got []byte
	for n := 0; n < 20000; n++ {
		line := make([]byte, rng.Intn(40))
		for i := range line {
			if rng.Intn(3) == 0 {
				line[i] = alphabet[rng.Intn(len(alphabet))]
			} else {
				line[i] = 'a' + byte(rng.Intn(26))
			}
		}
		nl := rng.Intn(2) == 0
		var a []byte
		if rng.Intn(2) == 0 {
			a = attrs
		}
		docLine := line
		if nl {
			docLine = append(append([]byte(nil), line...), '\n')
		}
		want.Reset()
		if err := (&jsonlog.JSONLogs{Log: docLine, Stream: "stdout", Created: ts, RawAttrs: a}).MarshalJSONBuf(&want); err != nil {
			t.Fatal(err)
		}
		want.WriteByte('\n')
		got = filelog.AppendJSON(got[:0], line, nl, "stdout", a, ts)
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("line %q newline %v:\ndocker %s\nours   %s", line, nl, want.Bytes(), got)
		}
	}
}
