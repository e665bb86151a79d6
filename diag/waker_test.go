package diag

import "testing"

func TestWaker(t *testing.T) {
	var w Waker
	ch := make(chan struct{}, 1)
	w.Poke() // nobody waits: nothing happens
	if len(ch) != 0 {
		t.Fatal("a poke before Arm was delivered")
	}
	w.Arm(&ch)
	w.Poke()
	w.Poke() // once per Arm
	if len(ch) != 1 {
		t.Fatalf("%d wake-ups after two pokes of one Arm, want 1", len(ch))
	}
	<-ch
	w.Arm(&ch)
	w.Disarm()
	w.Poke()
	if len(ch) != 0 {
		t.Fatal("a poke after Disarm was delivered")
	}
}
