//go:build illumos || solaris

package zfd

// On illumos dockerinit may pass the zfd devices as fds 3/4; where it does
// not, open the devices themselves. In tty mode there is one device.
func platformDefaults(s Spec) Spec {
	if s.TTY {
		if s.Stdout == "" && !Valid(StdoutFD) {
			s.Stdout = "/dev/zfd/1"
		}
		return s
	}
	if s.Stdout == "" && !Valid(StdoutFD) {
		s.Stdout = "/dev/zfd/3"
	}
	if s.Stderr == "" && !Valid(StderrFD) {
		s.Stderr = "/dev/zfd/4"
	}
	return s
}
