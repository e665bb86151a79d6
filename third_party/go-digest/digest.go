// Package digest stands in for github.com/opencontainers/go-digest in
// dockerlogger's build (see the replace directive in ../../go.mod). What
// is linked in (the OCI image-spec types and Docker's api/types/image,
// through daemon/logger) names only the type Digest, in struct fields no
// logger fills or reads; the real package compiles its regular
// expressions and registers its algorithms in every process at start:
// 92 KB allocated in every logger process, every container. Anything that
// needs more than the type does not build.
package digest

// Digest is a content identifier, "algorithm:encoded"
// (sha256:0123…).
type Digest string

// String returns the digest as it is written.
func (d Digest) String() string { return string(d) }
