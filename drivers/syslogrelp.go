package drivers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	syslog "github.com/RackSec/srslog"
	"github.com/containerd/log"
	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/daemon/logger/loggerutils"

	"github.com/joyent/dockerlogger/drivers/logopt"
	"github.com/joyent/dockerlogger/relp"
)

// The syslog driver over RELP (syslog-address relp://host:port), ours:
// Docker's syslog driver has no RELP and rejects the scheme. Syslog over
// TCP has no acknowledgement, so lines written just before a server goes
// away are lost and nobody can count them; RELP acknowledges every
// message, and package relp resends what was not acknowledged after a
// reconnection (at-least-once).
//
// Each message is what Docker's syslog driver formats for the same
// options — syslog-format (Docker's default, rfc3164, rfc5424,
// rfc5424micro), syslog-facility, tag, severity info for stdout and err
// for stderr, empty lines not sent — without the LF that ends a message on
// a TCP stream: a RELP frame carries its length. The driver's name stays
// "syslog". RELP over TLS is not supported yet: the syslog-tls-* options
// are refused.

const (
	syslogName       = "syslog"
	syslogAddressKey = "syslog-address"
	relpScheme       = "relp"
)

// isRelpAddress reports whether a syslog-address asks for RELP.
func isRelpAddress(address string) bool {
	return strings.HasPrefix(strings.ToLower(address), relpScheme+"://")
}

// syslogCreator is the syslog driver: ours for a relp:// address,
// Docker's otherwise.
func syslogCreator(docker logger.Creator) logger.Creator {
	return func(info logger.Info) (logger.Logger, error) {
		if isRelpAddress(info.Config[syslogAddressKey]) {
			return newSyslogRelp(info)
		}
		return docker(info)
	}
}

// syslogRelpFacilities are Docker's names for syslog-facility.
var syslogRelpFacilities = map[string]syslog.Priority{
	"kern": syslog.LOG_KERN, "user": syslog.LOG_USER, "mail": syslog.LOG_MAIL, "daemon": syslog.LOG_DAEMON,
	"auth": syslog.LOG_AUTH, "syslog": syslog.LOG_SYSLOG, "lpr": syslog.LOG_LPR, "news": syslog.LOG_NEWS,
	"uucp": syslog.LOG_UUCP, "cron": syslog.LOG_CRON, "authpriv": syslog.LOG_AUTHPRIV, "ftp": syslog.LOG_FTP,
	"local0": syslog.LOG_LOCAL0, "local1": syslog.LOG_LOCAL1, "local2": syslog.LOG_LOCAL2, "local3": syslog.LOG_LOCAL3,
	"local4": syslog.LOG_LOCAL4, "local5": syslog.LOG_LOCAL5, "local6": syslog.LOG_LOCAL6, "local7": syslog.LOG_LOCAL7,
}

// parseRelpFacility is Docker's parseFacility: a name, or 0 to 23.
func parseRelpFacility(facility string) (syslog.Priority, error) {
	if facility == "" {
		return syslog.LOG_DAEMON, nil
	}
	if p, ok := syslogRelpFacilities[facility]; ok {
		return p, nil
	}
	if n, err := strconv.Atoi(facility); err == nil && 0 <= n && n <= 23 {
		return syslog.Priority(n << 3), nil
	}
	return 0, errors.New("invalid syslog facility")
}

// parseRelpFormat is Docker's parseLogFormat for a stream transport.
func parseRelpFormat(format string) (syslog.Formatter, error) {
	switch format {
	case "":
		return syslog.UnixFormatter, nil
	case "rfc3164":
		return syslog.RFC3164Formatter, nil
	case "rfc5424":
		return relpRFC5424, nil
	case "rfc5424micro":
		return relpRFC5424Micro, nil
	}
	return nil, errors.New("Invalid syslog format")
}

// relpRFC5424 is Docker's rfc5424formatterWithAppNameAsTag: the tag is
// both APP-NAME and MSGID (rsyslog's %syslogtag% comes from APP-NAME).
func relpRFC5424(p syslog.Priority, hostname, tag, content string) string {
	return fmt.Sprintf("<%d>%d %s %s %s %d %s - %s",
		p, 1, time.Now().Format(time.RFC3339), hostname, tag, os.Getpid(), tag, content)
}

// relpRFC5424Micro is Docker's rfc5424microformatterWithAppNameAsTag:
// microsecond timestamps (RFC 5424's TIME-SECFRAC allows six digits).
func relpRFC5424Micro(p syslog.Priority, hostname, tag, content string) string {
	return fmt.Sprintf("<%d>%d %s %s %s %d %s - %s",
		p, 1, time.Now().Format("2006-01-02T15:04:05.000000Z07:00"), hostname, tag, os.Getpid(), tag, content)
}

// parseRelpAddress checks relp://host:port and returns host:port. RELP
// has no registered port: the port is required.
func parseRelpAddress(address string) (string, error) {
	u, err := url.Parse(address)
	if err != nil {
		return "", err
	}
	if u.Scheme != relpScheme {
		return "", fmt.Errorf("unsupported scheme: '%s'", u.Scheme)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("relp address must be relp://host:port, with nothing after the port")
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return "", errors.New("relp address must be relp://host:port (RELP has no default port)")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("invalid port %q", port)
	}
	return u.Host, nil
}

// validateSyslogRelp checks a syslog configuration whose address is
// relp://, in place of Docker's validator (which rejects the scheme). It
// has logger.ValidateLogOpts's signature.
func validateSyslogRelp(_ string, cfg map[string]string) error {
	for key := range cfg {
		switch key {
		case "env", "env-regex", "labels", "labels-regex", "tag", syslogAddressKey, "syslog-facility", "syslog-format":
		case "syslog-tls-ca-cert", "syslog-tls-cert", "syslog-tls-key", "syslog-tls-skip-verify":
			return fmt.Errorf("log-opt %s: relp over TLS is not supported yet", key)
		default:
			return fmt.Errorf("unknown log opt '%s' for syslog log driver", key)
		}
	}
	if _, err := parseRelpAddress(cfg[syslogAddressKey]); err != nil {
		return logopt.BadOpt(cfg, syslogAddressKey, err)
	}
	if _, err := parseRelpFacility(cfg["syslog-facility"]); err != nil {
		return err
	}
	if _, err := parseRelpFormat(cfg["syslog-format"]); err != nil {
		return err
	}
	return logopt.CheckRegexOpts(cfg)
}

// syslogRelp sends each message as one RELP syslog command.
type syslogRelp struct {
	client   *relp.Client
	facility syslog.Priority
	tag      string
	hostname string
	format   syslog.Formatter
}

// relpDialTimeout bounds the first connection and its open handshake.
const relpDialTimeout = 5 * time.Second

// newSyslogRelp creates the driver. It connects now, as Docker's syslog
// driver does over TCP: a server that is down is an error, and the caller
// retries creating it. Later breaks are the client's to mend.
func newSyslogRelp(info logger.Info) (logger.Logger, error) {
	if err := validateSyslogRelp(syslogName, info.Config); err != nil {
		return nil, err
	}
	tag, err := loggerutils.ParseLogTag(info, loggerutils.DefaultTemplate)
	if err != nil {
		return nil, err
	}
	if tag == "" {
		tag = os.Args[0] // srslog's default
	}
	addr, _ := parseRelpAddress(info.Config[syslogAddressKey])
	facility, _ := parseRelpFacility(info.Config["syslog-facility"])
	format, _ := parseRelpFormat(info.Config["syslog-format"])
	ctx, cancel := context.WithTimeout(context.Background(), relpDialTimeout)
	defer cancel()
	client, err := relp.Dial(ctx, addr, relp.Options{
		DialTimeout: relpDialTimeout,
		Report: func(err error) {
			log.G(context.TODO()).Warn(err.Error())
		},
		Reconnected: func(resend int) {
			if resend > 0 {
				log.G(context.TODO()).Warnf("relp %s: reconnected, sending again %d messages not acknowledged (they may arrive twice)", addr, resend)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	// srslog's hostname: the machine's name, else the connection's local
	// address.
	hostname, _ := os.Hostname()
	if hostname == "" {
		hostname = client.LocalAddr()
	}
	return &syslogRelp{client: client, facility: facility, tag: tag, hostname: hostname, format: format}, nil
}

// Log formats msg as Docker's syslog driver does and queues it. It returns
// once the message is in the RELP window; it waits while the window is
// full, and fails (nothing queued) if the server does not acknowledge for
// a while, so that the delivery mode retries and counts.
func (s *syslogRelp) Log(msg *logger.Message) error {
	if len(msg.Line) == 0 {
		return nil // Docker's syslog driver sends no empty message
	}
	sev := syslog.LOG_INFO
	if msg.Source == "stderr" {
		sev = syslog.LOG_ERR
	}
	p := (s.facility & 0xf8) | (sev & 0x07)
	line := string(msg.Line)
	n := int64(len(msg.Line))
	logger.PutMessage(msg)
	return s.client.SendSized([]byte(s.format(p, s.hostname, s.tag, line)), n)
}

// Pending returns the lines sent but not acknowledged by the server, and
// their bytes: lost if the logger must exit now.
func (s *syslogRelp) Pending() (lines, bytes int64) { return s.client.Pending() }

// Resent returns the lines sent again after a connection broke before the
// server acknowledged them: each may be at the server twice.
func (s *syslogRelp) Resent() int64 { return s.client.Resent() }

// relpFlushWait bounds Flush: longer, and a server that is down would
// hold the reader (and the other stream, which shares the driver) without
// an error for the delivery mode to count.
const relpFlushWait = 2 * time.Second

// Flush waits until the server has acknowledged every line, at most
// relpFlushWait. The reader calls it before it consumes a round of input
// from the pipe, and the spool before it frees a batch: so what the
// server has not acknowledged stays in the pipe or the spool, and a worker
// that dies (or gives up on a failing sink) leaves it to the next one.
// After relpFlushWait it returns the error and the caller goes on: those
// lines are then held only here, counted by Pending.
func (s *syslogRelp) Flush() error {
	ctx, cancel := context.WithTimeout(context.Background(), relpFlushWait)
	defer cancel()
	return s.client.Wait(ctx)
}

// Close waits until the server has acknowledged every line, then ends the
// session. It returns only then: the worker bounds the wait with
// close-timeout and counts what is still pending as dropped.
func (s *syslogRelp) Close() error { return s.client.Close(context.Background()) }

func (s *syslogRelp) Name() string { return syslogName }
