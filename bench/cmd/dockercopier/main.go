// Command dockercopier is the benchmark's baseline for Docker's own path:
// logger.Copier reads stdin and feeds Docker's json-file driver, in one
// process, as dockerd does. It writes DOCKERLOG_LOGPATH.
//
// It must never import dockerlogger's drivers package, which registers
// its own json-file driver under the same name.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/daemon/logger/jsonfilelog"
)

func main() {
	path := os.Getenv("DOCKERLOG_LOGPATH")
	if path == "" {
		fmt.Fprintln(os.Stderr, "dockercopier: DOCKERLOG_LOGPATH is not set")
		os.Exit(2)
	}
	l, err := jsonfilelog.New(logger.Info{
		Config:      map[string]string{},
		ContainerID: os.Getenv("DOCKERLOG_CONTAINERID"),
		LogPath:     path,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "dockercopier: %v\n", err)
		os.Exit(1)
	}
	c := logger.NewCopier(map[string]io.Reader{"stdout": os.Stdin}, l)
	c.Run()
	c.Wait()
	if err := l.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "dockercopier: %v\n", err)
		os.Exit(1)
	}
}
