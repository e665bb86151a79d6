// Package metrics stands in for github.com/docker/go-metrics in
// dockerlogger's build (see the replace directive in ../../go.mod). The
// only user linked in is Docker's daemon/logger, which counts failed
// writes and reads and long lines for the Docker daemon's /metrics
// endpoint; a logger process has no such endpoint, so nobody could ever
// read them. The real package registers them with Prometheus's client,
// whose initialisation (procfs, the default registry, its protobuf
// types) allocates about 200 KB in every process at start, every
// container. Here the counters count nothing. It holds only what
// daemon/logger calls, with the real signatures: anything that needs more
// does not build.
package metrics

// Labels are the constant labels of a namespace.
type Labels = map[string]string

// Counter is a metric that only goes up.
type Counter interface {
	// Inc adds Sum(vs) to the counter.
	Inc(...float64)
}

// Namespace is a group of metrics, named alike.
type Namespace struct{}

// NewNamespace returns a namespace; its metrics are read by nobody.
func NewNamespace(name, subsystem string, labels Labels) *Namespace { return &Namespace{} }

// NewCounter returns a counter that keeps nothing.
func (n *Namespace) NewCounter(name, help string) Counter { return nop{} }

// Register would make the namespace's metrics visible on a /metrics
// endpoint, which a logger does not have.
func Register(n *Namespace) {}

type nop struct{}

func (nop) Inc(...float64) {}
