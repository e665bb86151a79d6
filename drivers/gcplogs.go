//go:build !dockergcplogs

package drivers

// Our own gcplogs driver (REST) registers itself as "gcplogs". Built with
// -tags dockergcplogs, Docker's registers instead (gcplogs_docker.go):
// the end-to-end tests compare what the two send.
import _ "github.com/joyent/dockerlogger/drivers/gcplogs"
