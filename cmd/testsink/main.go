// Command testsink runs one of the in-repo test sinks (internal/sink)
// standalone, for fault-injection scripts: it serves the real wire
// protocol on an address and prints every record it receives to stdout
// as one JSON line. The first line on stdout is {"listening": URL}, so a
// script started with port 0 learns the port. It runs until SIGTERM or
// SIGINT.
//
//	testsink forward tcp 127.0.0.1:0        Fluentd Forward protocol v1
//	testsink forward unix /run/fluent.sock
//	testsink hec 127.0.0.1:0 TOKEN           Splunk HTTP Event Collector
//	testsink cloudwatch 127.0.0.1:0 KEYID REGION [GROUP...]   CloudWatch Logs API,
//	                                          with GROUPs created beforehand
//
// It is a test tool, never shipped: it must not import dockerlogger's
// own packages beyond internal/sink.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/joyent/dockerlogger/internal/sink/cloudwatch"
	"github.com/joyent/dockerlogger/internal/sink/forward"
	"github.com/joyent/dockerlogger/internal/sink/hec"
)

const usage = "usage: testsink forward tcp|unix ADDRESS | hec ADDRESS TOKEN | cloudwatch ADDRESS ACCESS_KEY_ID REGION [GROUP...]"

// sink is what main needs of each server.
type sink struct {
	url    string
	notify func() <-chan struct{}
	count  func() int
	emit   func(enc *json.Encoder, from int) // print records from index on
	close  func()
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "testsink: %v\n", err)
		os.Exit(2)
	}
}

func run(args []string, stdout io.Writer) error {
	s, err := open(args)
	if err != nil {
		return err
	}
	defer s.close()
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(map[string]string{"listening": s.url}); err != nil {
		return fmt.Errorf("write stdout: %w", err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	printed := 0
	for {
		ch := s.notify()
		if n := s.count(); n > printed {
			s.emit(enc, printed)
			printed = n
		}
		select {
		case <-ch:
		case <-sigs:
			if n := s.count(); n > printed {
				s.emit(enc, printed)
			}
			return nil
		}
	}
}

func open(args []string) (*sink, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("no sink named; %s", usage)
	}
	switch {
	case args[0] == "forward" && len(args) == 3:
		s, err := forward.Listen(args[1], args[2])
		if err != nil {
			return nil, err
		}
		return &sink{url: s.URL(), notify: s.Notify, close: s.Close,
			count: func() int { return len(s.Events()) },
			emit: func(enc *json.Encoder, from int) {
				for _, e := range s.Events()[from:] {
					enc.Encode(e)
				}
			}}, nil
	case args[0] == "hec" && len(args) == 3:
		s, err := hec.Listen(args[1], args[2], false)
		if err != nil {
			return nil, err
		}
		return &sink{url: s.URL(), notify: s.Notify, close: s.Close,
			count: func() int { return len(s.Events()) },
			emit: func(enc *json.Encoder, from int) {
				for _, e := range s.Events()[from:] {
					enc.Encode(e)
				}
			}}, nil
	case args[0] == "cloudwatch" && len(args) >= 4:
		s, err := cloudwatch.Listen(args[1], args[2], args[3])
		if err != nil {
			return nil, err
		}
		for _, g := range args[4:] {
			s.CreateGroup(g)
		}
		return &sink{url: s.URL(), notify: s.Notify, close: s.Close,
			count: func() int { return len(s.Events()) },
			emit: func(enc *json.Encoder, from int) {
				for _, e := range s.Events()[from:] {
					enc.Encode(e)
				}
			}}, nil
	}
	return nil, fmt.Errorf("bad arguments %q; %s", args, usage)
}
