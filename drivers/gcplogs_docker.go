//go:build dockergcplogs

package drivers

// Docker's gcplogs driver (Google's gRPC client), for the end-to-end test
// that compares its entries with ours (see gcplogs.go); never in the
// default build.
import _ "github.com/docker/docker/daemon/logger/gcplogs"
