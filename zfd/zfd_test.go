package zfd

import (
	"os"
	"testing"
)

// The ioctl number as illumos computes it from sys/zfd.h:
// (('Z' << 24) | ('f' << 16) | ('d' << 8)) | 4.
func TestZFDMuxFlowconNumber(t *testing.T) {
	if zfdMuxFlowcon != 0x5a666404 {
		t.Fatalf("ZFD_MUX_FLOWCON = %#x, want 0x5a666404", zfdMuxFlowcon)
	}
}

// Valid must not take the Go runtime's own close-on-exec files for the
// container's output, and must take an inherited descriptor.
func TestValidIgnoresCloseOnExec(t *testing.T) {
	r, w, err := os.Pipe() // os.Pipe sets close-on-exec
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if Valid(int(r.Fd())) {
		t.Fatalf("fd %d is close-on-exec but Valid says it was inherited", r.Fd())
	}
	if Valid(1 << 20) {
		t.Fatal("a closed descriptor is Valid")
	}
}

// HungUp tells a pipe with no writer left, even with data still in it.
func TestHungUp(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := w.Write([]byte("unread\n")); err != nil {
		t.Fatal(err)
	}
	if HungUp(r) {
		t.Fatal("HungUp with the writer open")
	}
	w.Close()
	if !HungUp(r) {
		t.Fatal("not HungUp with the writer closed")
	}
}
