//go:build !illumos && !solaris

package drivers

// awslogs does not build on illumos or solaris: Docker's dockerversion
// package calls a kernel-version function that only exists elsewhere.
import _ "github.com/docker/docker/daemon/logger/awslogs"
