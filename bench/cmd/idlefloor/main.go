// Command idlefloor is the floor of the footprint benchmark: a Go program
// that does nothing but what a logger must do at idle, block reading its
// two input pipes (fds 3 and 4), after saying ready with a byte on fd 5
// as the logger does. With -two it runs the reading in a child process it
// waits for, as the supervised logger does, so that what two Go processes
// cost at least is measured beside one.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
)

func main() {
	two := flag.Bool("two", false, "read in a child process and wait for it (a supervisor and its worker)")
	flag.Parse()
	if *two {
		cmd := exec.Command(os.Args[0])
		cmd.ExtraFiles = []*os.File{os.NewFile(3, "stdout"), os.NewFile(4, "stderr"), os.NewFile(5, "ready")}
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "idlefloor: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if ready := os.NewFile(5, "ready"); ready != nil {
		ready.Write([]byte{1})
		ready.Close()
	}
	var wg sync.WaitGroup
	for _, fd := range []uintptr{3, 4} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(io.Discard, os.NewFile(fd, "input"))
		}()
	}
	wg.Wait()
}
