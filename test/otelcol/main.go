// Command otelcol is the OpenTelemetry Collector's own OTLP receiver
// (go.opentelemetry.io/collector/receiver/otlpreceiver), run on its own
// for dockerlogger's end-to-end tests: every request the receiver accepts
// is written to -out as one line of OTLP JSON (the Collector's
// plog.JSONMarshaler), in the order the receiver passed them on. It stands
// in for a collector with the file exporter: that exporter is not served at
// the receiver's release (see the package list), and the receiver is the
// part whose behaviour the tests check.
//
// It is a module of its own so that nothing of the Collector enters
// dockerlogger's go.mod.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

type host struct{}

func (host) GetExtensions() map[component.ID]component.Component { return nil }

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:4318", "HTTP listen address")
	out := flag.String("out", "", "file the received logs are appended to, one JSON line per request")
	cert := flag.String("tls-cert", "", "server certificate (TLS when set)")
	key := flag.String("tls-key", "", "server key")
	clientCA := flag.String("client-ca", "", "CA that client certificates must chain to")
	flag.Parse()
	if err := run(*endpoint, *out, *cert, *key, *clientCA); err != nil {
		fmt.Fprintf(os.Stderr, "otelcol: %v\n", err)
		os.Exit(1)
	}
}

func run(endpoint, out, cert, key, clientCA string) error {
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var mu sync.Mutex
	var m plog.JSONMarshaler
	next, err := consumer.NewLogs(func(_ context.Context, ld plog.Logs) error {
		b, err := m.MarshalLogs(ld)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		_, err = f.Write(append(b, '\n'))
		return err
	})
	if err != nil {
		return err
	}
	http := map[string]any{"endpoint": endpoint}
	if cert != "" {
		tls := map[string]any{"cert_file": cert, "key_file": key}
		if clientCA != "" {
			tls["client_ca_file"] = clientCA
		}
		http["tls"] = tls
	}
	factory := otlpreceiver.NewFactory()
	cfg := factory.CreateDefaultConfig()
	conf := confmap.NewFromStringMap(map[string]any{"protocols": map[string]any{"http": http}})
	if err := conf.Unmarshal(cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	set := receivertest.NewNopSettings(factory.Type())
	r, err := factory.CreateLogs(context.Background(), set, cfg, next)
	if err != nil {
		return err
	}
	if err := r.Start(context.Background(), host{}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "otelcol: listening on %s\n", endpoint)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	return r.Shutdown(context.Background())
}
