package readback

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/filelog"
)

// TestFastJSONAsEncodingJSON: every record the fast path takes decodes to
// what encoding/json gives, for lines with every byte the writer escapes,
// and records it must leave alone are left.
func TestFastJSONAsEncodingJSON(t *testing.T) {
	var lines [][]byte
	for c := 0; c < 256; c++ {
		lines = append(lines, []byte{'a', byte(c), 'z'})
	}
	lines = append(lines, []byte(""), []byte(`quote " back \ slash / <>&`), []byte("é ü 日本 \u2028 \U0001F600"),
		[]byte("\xed\xa0\x80 lone surrogate bytes"), bytes.Repeat([]byte("x"), 20000))
	ts := time.Date(2024, 2, 3, 4, 5, 6, 7, time.UTC)
	var recs [][]byte
	for i, l := range lines {
		for _, nl := range []bool{true, false} {
			stream := []string{"stdout", "stderr"}[i%2]
			recs = append(recs, filelog.AppendJSON(nil, l, nl, stream, nil, ts))
			recs = append(recs, filelog.AppendJSON(nil, l, nl, stream, []byte(`{"tag":"t"}`), ts))
		}
	}
	recs = append(recs, []byte(`{"log":"\ud83d\ude00\n","stream":"stdout","time":"2024-02-03T04:05:06Z"}`+"\n"),
		[]byte(`{"stream":"stdout","log":"x\n","time":"2024-02-03T04:05:06Z"}`+"\n"),
		[]byte(`{"log":"x\n","stream":"stdout","time":"2024-02-03T04:05:06Z","extra":1}`+"\n"))
	fast := 0
	for _, rec := range recs {
		var a, b Entry
		var d decoder
		if !fastJSON(rec, &a) {
			continue
		}
		fast++
		d.jl.Reset()
		if err := decodeSlow(&d, rec, &b); err != nil {
			t.Fatalf("%q: encoding/json: %v", rec, err)
		}
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("%q:\nfast %+v\nslow %+v", rec, a, b)
		}
	}
	if fast < len(lines) {
		t.Errorf("the fast path took only %d of %d records", fast, len(recs))
	}
}

func decodeSlow(d *decoder, rec []byte, e *Entry) error {
	// The path decode takes when fastJSON says no.
	return d.decodeJSON(rec, e)
}
