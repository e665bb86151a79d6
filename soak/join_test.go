package main

import "testing"

// TestJoinSplitIDs: a line's parts under two partial ids count as split
// only when no byte is missing between them; the middle of another line
// whose start was dropped, after a line that lost its end, is no split.
func TestJoinSplitIDs(t *testing.T) {
	const seed = 7
	a, b := item{seq: 1, n: 300}, item{seq: 2, n: 300}
	byseq := map[int]item{1: a, 2: b}
	ca, cb := content(seed, a), content(seed, b)
	part := func(data []byte, id string, more bool) msg { return msg{data: data, id: id, partial: more} }

	split := join([]msg{part(ca[:100], "x", true), part(ca[100:], "y", false)}, false, byseq, seed)
	if split.splitIDs != 1 || split.complete[1] != 1 {
		t.Errorf("contiguous parts under two ids: splitIDs %d, complete %v", split.splitIDs, split.complete)
	}
	cut := join([]msg{part(ca[:100], "x", true), part(cb[150:200], "y", true), part(cb[200:], "y", false)}, false, byseq, seed)
	if cut.splitIDs != 0 || cut.prefixes[1] != 1 || cut.orphans != 1 {
		t.Errorf("a line that lost its end, then another's middle: splitIDs %d, prefixes %v, orphans %d", cut.splitIDs, cut.prefixes, cut.orphans)
	}
	replay := join([]msg{part(ca[:100], "x", true), part(ca[100:], "x", false), part(ca[200:], "x", false)}, false, byseq, seed)
	if replay.complete[1] != 1 || replay.tails != 1 || replay.orphans != 0 {
		t.Errorf("a whole line, then its end again (a replay begun mid-line): complete %v, tails %d, orphans %d", replay.complete, replay.tails, replay.orphans)
	}
	lost := join([]msg{part(ca[:100], "x", false), part(cb[200:], "y", false)}, false, byseq, seed)
	if lost.tails != 0 || lost.orphans != 1 {
		t.Errorf("the end of a line never whole: tails %d, orphans %d", lost.tails, lost.orphans)
	}
	ord := func(data []byte, id string, o int, more bool) msg {
		return msg{data: data, id: id, ordinal: o, partial: more}
	}
	again := join([]msg{ord(ca[:100], "x", 1, true), ord(ca[100:200], "x", 2, true), ord(ca[100:200], "x", 2, true), ord(ca[200:], "x", 3, false)}, false, byseq, seed)
	if again.complete[1] != 1 || again.parts != 1 || again.damaged != 0 {
		t.Errorf("a part delivered twice (same id and ordinal): complete %v, parts %d, damaged %d", again.complete, again.parts, again.damaged)
	}
	// json-file keeps no partial id: parts written again by a replay
	// begun mid-line are known by their bytes.
	file := join([]msg{part(ca[:100], "", true), part(ca[100:200], "", true), part(ca[200:250], "", true),
		part(ca[100:200], "", true), part(ca[200:250], "", true), part(ca[250:], "", false)}, false, byseq, seed)
	if file.complete[1] != 1 || file.parts != 2 || file.damaged != 0 {
		t.Errorf("two parts written twice (no partial id): complete %v, parts %d, damaged %d", file.complete, file.parts, file.damaged)
	}
	// An empty line after one that lost its end is a line of its own,
	// not a part again; an empty last part ends the line it completes.
	emptyLine := join([]msg{part(ca[:100], "", true), part(nil, "", false), part(cb, "", false)}, false, byseq, seed)
	if emptyLine.parts != 0 || emptyLine.empties != 1 || emptyLine.prefixes[1] != 1 || emptyLine.complete[2] != 1 {
		t.Errorf("an empty line after a line that lost its end: parts %d, empties %d, prefixes %v, complete %v", emptyLine.parts, emptyLine.empties, emptyLine.prefixes, emptyLine.complete)
	}
	idEmpty := join([]msg{part(ca[:100], "x", true), part(nil, "", false)}, false, byseq, seed)
	if idEmpty.empties != 1 || idEmpty.prefixes[1] != 1 {
		t.Errorf("an empty line after a line with a partial id that lost its end: empties %d, prefixes %v", idEmpty.empties, idEmpty.prefixes)
	}
	lastEmpty := join([]msg{part(ca[:150], "", true), part(ca[150:], "", true), part(nil, "", false)}, false, byseq, seed)
	if lastEmpty.complete[1] != 1 || lastEmpty.empties != 0 || lastEmpty.parts != 0 {
		t.Errorf("a whole line ended by an empty last part: complete %v, empties %d, parts %d", lastEmpty.complete, lastEmpty.empties, lastEmpty.parts)
	}
	// Bytes that are no part of the line are not taken for a repeat.
	bad := join([]msg{part(ca[:100], "", true), part(ca[150:250], "", true), part(ca[250:], "", false)}, false, byseq, seed)
	if bad.parts != 0 || bad.damaged != 1 {
		t.Errorf("a line missing bytes in its middle: parts %d, damaged %d", bad.parts, bad.damaged)
	}
}

// earlierTimeouts counts what earlier workers dropped at close-timeout,
// from the stats line each printed after saying so, and leaves out the
// last worker's own.
func TestEarlierTimeouts(t *testing.T) {
	stderr := "dockerlogger: stats lines_read=5 lines_dropped_close_timeout=0 \n" +
		"dockerlogger: fluentd driver did not finish within close-timeout 4s\n" +
		"dockerlogger: drain: context canceled\n" +
		"dockerlogger: stats lines_read=94 lines_dropped_close_timeout=14 \n" +
		"dockerlogger: stats lines_read=20 lines_dropped_close_timeout=0 \n"
	if n := earlierTimeouts([]byte(stderr)); n != 14 {
		t.Errorf("one handover past close-timeout: %d, want 14", n)
	}
	last := stderr + "dockerlogger: fluentd driver did not finish within close-timeout 4s\n" +
		"dockerlogger: stats lines_read=30 lines_dropped_close_timeout=7 \n"
	if n := earlierTimeouts([]byte(last)); n != 14 {
		t.Errorf("and the last worker's own at exit: %d, want 14", n)
	}
}
