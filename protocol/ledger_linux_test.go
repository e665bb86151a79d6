package protocol

import (
	"testing"
	"unsafe"
)

// TestLedgerLayout: an old supervisor shares its ledger with a newer
// worker across a live upgrade, so the fields keep their offsets.
func TestLedgerLayout(t *testing.T) {
	var p ledgerPage
	for name, c := range map[string]struct{ got, want uintptr }{
		"handed[0]":      {unsafe.Offsetof(p.handed), 0},
		"replayed":       {unsafe.Offsetof(p.replayed), 16},
		"ringLines":      {unsafe.Offsetof(p.ringLines), 24},
		"ringBytes":      {unsafe.Offsetof(p.ringBytes), 32},
		"droppedLines":   {unsafe.Offsetof(p.droppedLines), 40},
		"droppedBytes":   {unsafe.Offsetof(p.droppedBytes), 48},
		"partial":        {unsafe.Offsetof(p.partial), 56},
		"partial[1]":     {unsafe.Offsetof(p.partial) + unsafe.Sizeof(p.partial[0]), 152},
		"consumed":       {unsafe.Offsetof(p.consumed), 248},
		"nonce":          {unsafe.Offsetof(p.nonce), 264},
		"relieving":      {unsafe.Offsetof(p.relieving), 280},
		"maybeDelivered": {unsafe.Offsetof(p.maybeDelivered), 288},
		"driverLines":    {unsafe.Offsetof(p.driverLines), 296},
		"driverBytes":    {unsafe.Offsetof(p.driverBytes), 304},
	} {
		if c.got != c.want {
			t.Errorf("%s at offset %d, was %d", name, c.got, c.want)
		}
	}
}

// TestLedgerShared: what one mapping writes, another mapping of the same
// memory file (the worker's, after exec) reads.
func TestLedgerShared(t *testing.T) {
	l, err := NewLedger()
	if err != nil {
		t.Fatal(err)
	}
	l.Handed(1).Store(7)
	lines, _ := l.CarriedDrops()
	lines.Add(3)
	m, err := mapLedger(l.File())
	if err != nil {
		t.Fatal(err)
	}
	if m.Handed(1).Load() != 7 {
		t.Fatal("handed not shared")
	}
	if dl, _ := m.CarriedDrops(); dl.Load() != 3 {
		t.Fatal("drops not shared")
	}
	var none *Ledger
	if none.Handed(0) != nil || none.Replayed() != nil {
		t.Fatal("a nil ledger must give nil counters")
	}
}

// TestPartialSlot: what one worker keeps the next reads, and a slot left
// mid-write (odd version) reads as none.
func TestPartialSlot(t *testing.T) {
	l, err := NewLedger()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok := l.Partial(0); ok {
		t.Fatal("a new ledger has a partial line")
	}
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	l.SavePartial(1, id, 7, 42)
	if got, ord, ts, ok := l.Partial(1); !ok || got != id || ord != 7 || ts != 42 {
		t.Fatalf("Partial = %q %d %d %v", got, ord, ts, ok)
	}
	l.p.partial[1].version.Add(1) // a worker killed mid-write
	if _, _, _, ok := l.Partial(1); ok {
		t.Fatal("a torn slot was read")
	}
	l.p.partial[1].version.Add(1)
	l.SavePartial(1, "", 0, 0)
	if _, _, _, ok := l.Partial(1); ok {
		t.Fatal("a cleared slot was read")
	}
}

// TestPartialIDByOffset: a line is named by where it starts, the same for
// every worker of one ledger, another for another stream, offset or
// container.
func TestPartialIDByOffset(t *testing.T) {
	a, err := NewLedger()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewLedger()
	if err != nil {
		t.Fatal(err)
	}
	again, err := mapLedger(a.File()) // the next worker's mapping
	if err != nil {
		t.Fatal(err)
	}
	id := a.PartialID(0, 4096)
	if len(id) != 64 || again.PartialID(0, 4096) != id {
		t.Fatalf("id %q, the next worker's %q", id, again.PartialID(0, 4096))
	}
	for _, other := range []string{a.PartialID(1, 4096), a.PartialID(0, 4097), b.PartialID(0, 4096)} {
		if other == id {
			t.Fatalf("two lines named %s", id)
		}
	}
}
