package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCheckInOrder: a json-file with a line again, a line late and a line
// lost, each counted, in both the form read without decoding and another.
func TestCheckInOrder(t *testing.T) {
	entry := func(seq int, reordered bool) []byte {
		e := map[string]string{"log": string(line(seq)), "stream": "stdout", "time": "2024-01-02T03:04:05.000000006Z"}
		var b []byte
		if reordered {
			b, _ = json.Marshal(map[string]any{"time": e["time"], "stream": "stdout", "log": e["log"]})
		} else {
			b = []byte(`{"log":` + quote(e["log"]) + `,"stream":"stdout","time":"` + e["time"] + `"}`)
		}
		return append(b, '\n')
	}
	var file []byte
	for _, seq := range []int{0, 1, 3, 2, 3, 5, 6} { // 2 late, 3 again, 4 lost
		file = append(file, entry(seq, seq == 6)...)
	}
	path := filepath.Join(t.TempDir(), "json.log")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := checkInOrder(path, 7)
	if err != nil || c.unique != 6 || c.dups != 1 || c.late != 1 || c.bad != 0 || len(c.holes) != 1 || c.holes[0] != [2]int{4, 4} {
		t.Fatalf("checkInOrder = %+v, %v; want 6 unique, 1 again, 1 late, line 4 lost", c, err)
	}
	file = append(file, `{"log":"x\n","stream":"stdout","time":"t"}`+"\n"+"\x01"...)
	os.WriteFile(path, append(file, entry(4, false)...), 0o644)
	c, err = checkInOrder(path, 7)
	if err != nil || c.unique != 6 || c.bad != 2 || len(c.first) != 2 {
		t.Fatalf("a line never written, and one after a stray byte: %+v, %v; want 6 unique, 2 bad", c, err)
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestWhen(t *testing.T) {
	per := gapChunk / lineSize
	ws := []gapWrite{{at: 0}, {at: 600 * time.Millisecond}, {at: 1100 * time.Millisecond}, {at: 1600 * time.Millisecond}}
	marks := []gapMark{{at: 500 * time.Millisecond, hup: true}, {at: 1000 * time.Millisecond}, {at: 1500 * time.Millisecond, hup: true}}
	for seq, want := range map[int]string{
		0:          "(written before the first mark)",
		per + 1:    "(written 100.0 ms after SIGHUP 1)",
		2 * per:    "(written 100.0 ms after baseline 1)",
		3*per + 39: "(written 100.0 ms after SIGHUP 2)",
		99 * per:   "(written 100.0 ms after SIGHUP 2)", // past the last write: the last
	} {
		if got := when(seq, ws, marks); got != want {
			t.Errorf("when(%d) = %s, want %s", seq, got, want)
		}
	}
}
