//go:build linux

package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/joyent/dockerlogger/internal/sink/cloudlogging"
)

const gcpProject = "dockerlogger-footprint"

// gcpNamespaceScript runs in new mount and network namespaces: it puts
// the hosts file $0 over /etc/hosts, says so, and holds the namespaces
// until its stdin closes.
const gcpNamespaceScript = `set -e
mount --bind "$0" /etc/hosts
echo mounted
exec cat >/dev/null
`

// gcpSetup serves Cloud Logging on 127.0.0.1:443 in a private namespace
// where logging.googleapis.com is 127.0.0.1, for loggers run there by
// nsenter. Without root or nsenter it returns a nil argv.
func gcpSetup(p params, dir string) (argv []string, envf func(int) []string, cleanup func(), err error) {
	nsenter, lerr := exec.LookPath("nsenter")
	if os.Geteuid() != 0 || lerr != nil {
		return nil, nil, func() {}, nil
	}
	account, err := cloudlogging.NewServiceAccount(gcpProject, "footprint")
	if err != nil {
		return nil, nil, nil, err
	}
	certs, err := cloudlogging.NewCerts(cloudlogging.Host)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := account.JSON()
	if err != nil {
		return nil, nil, nil, err
	}
	gdir := filepath.Join(dir, "gcp")
	if err := os.MkdirAll(gdir, 0o755); err != nil {
		return nil, nil, nil, err
	}
	hosts := "127.0.0.1 localhost\n127.0.0.1 " + cloudlogging.Host + "\n"
	for name, b := range map[string][]byte{"key.json": key, "ca.pem": certs.CAPEM, "hosts": []byte(hosts)} {
		if err := os.WriteFile(filepath.Join(gdir, name), b, 0o644); err != nil {
			return nil, nil, nil, err
		}
	}
	holder := exec.Command("sh", "-c", gcpNamespaceScript, filepath.Join(gdir, "hosts"))
	holder.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET}
	stdin, err := holder.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	stdout, err := holder.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	holder.Stderr = os.Stderr
	if err := holder.Start(); err != nil {
		return nil, nil, nil, fmt.Errorf("namespace holder: %w", err)
	}
	endHolder := func() { stdin.Close(); holder.Wait() }
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "mounted\n" {
		endHolder()
		return nil, nil, nil, fmt.Errorf("namespace holder: %q %v", line, err)
	}
	var ln net.Listener
	if err := inNet(holder.Process.Pid, func() (err error) {
		if err := loopbackUp(); err != nil {
			return err
		}
		ln, err = net.Listen("tcp", "127.0.0.1:443")
		return err
	}); err != nil {
		endHolder()
		return nil, nil, nil, err
	}
	s := cloudlogging.New(account, certs.Server)
	s.Serve(ln)
	cleanup = func() { s.Close(); endHolder() }
	pid := holder.Process.Pid
	argv = []string{nsenter, fmt.Sprintf("--mount=/proc/%d/ns/mnt", pid), fmt.Sprintf("--net=/proc/%d/ns/net", pid), "--",
		filepath.Join(p.bin, "dockerlogger"), "gcplogs"}
	envf = func(i int) []string {
		return env(map[string]string{"gcp-project": gcpProject}, "HOME="+gdir, "CLOUDSDK_CONFIG="+filepath.Join(gdir, "gcloud"),
			"GOOGLE_APPLICATION_CREDENTIALS="+filepath.Join(gdir, "key.json"), "SSL_CERT_FILE="+filepath.Join(gdir, "ca.pem"),
			fmt.Sprintf("DOCKERLOG_CONTAINERNAME=/idle-%d", i))
	}
	return argv, envf, cleanup, nil
}

// inNet runs f on a thread moved into the network namespace of pid; the
// thread is never given back (it ends with its goroutine), so nothing
// else of this program runs in that namespace. A socket keeps the
// namespace it was made in.
func inNet(pid int, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("enter the namespace: %w", err)
			return
		}
		done <- f()
	}()
	return <-done
}

// loopbackUp brings up lo, which a new network namespace has down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}
