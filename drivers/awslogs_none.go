//go:build illumos || solaris

package drivers

// waitAfterClose has nothing to wait for where awslogs is not built.
func waitAfterClose(string) {}
