package filelog

import (
	"encoding/binary"
	"fmt"

	"github.com/docker/docker/api/types/plugins/logdriver"
	"github.com/docker/docker/daemon/logger"
)

// Local is the local driver's logger: each message is Docker's protobuf
// logdriver.LogEntry framed by its 4-byte big-endian size before and after.
type Local struct {
	file *File
	// Reused under file.mu so that encoding allocates nothing.
	entry   logdriver.LogEntry
	partial logdriver.PartialLogEntryMetadata
	err     error
}

// NewLocal opens the file for a local logger.
func NewLocal(o Options) (*Local, error) {
	o.complete = completeLocal
	f, err := Open(o)
	if err != nil {
		return nil, err
	}
	return &Local{file: f}, nil
}

// Log encodes msg into the buffer; it owns msg and puts it back in the pool.
func (l *Local) Log(msg *logger.Message) error {
	l.file.mu.Lock()
	e := &l.entry
	e.Source = msg.Source
	e.TimeNano = msg.Timestamp.UnixNano()
	e.Line = msg.Line
	e.Partial = msg.PLogMetaData != nil
	e.PartialLogMetadata = nil
	if e.Partial {
		l.partial.Ordinal = int32(msg.PLogMetaData.Ordinal)
		l.partial.Last = msg.PLogMetaData.Last
		l.partial.Id = msg.PLogMetaData.ID
		e.PartialLogMetadata = &l.partial
	}
	l.err = nil
	err := l.file.append(msg.Timestamp, int64(len(msg.Line)), l.encode)
	if err == nil {
		err = l.err
	}
	e.Line = nil
	l.file.mu.Unlock()
	logger.PutMessage(msg)
	return err
}

// encode appends l.entry, framed, to b.
func (l *Local) encode(b []byte) []byte {
	n := l.entry.Size()
	start := len(b)
	b = grow(b, n+8)
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	if m, err := l.entry.MarshalTo(b[start+4 : start+4+n]); err != nil || m != n {
		l.err = fmt.Errorf("error marshalling logger.Message: %v (%d of %d bytes)", err, m, n)
		return b[:start]
	}
	binary.BigEndian.PutUint32(b[start+4+n:], uint32(n))
	return b
}

// grow extends b by n bytes.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// SetAccounting makes the logger report what it wrote and lost (see
// Accounting). Call it before the first message.
func (l *Local) SetAccounting(a Accounting) { l.file.SetAccounting(a) }

// Unwritten returns the lines taken and not yet written (File.Unwritten).
func (l *Local) Unwritten() (lines, bytes int64) { return l.file.Unwritten() }

// Flush writes what is buffered.
func (l *Local) Flush() error { return l.file.Flush() }

// Close flushes and closes the file, waiting for any compression.
func (l *Local) Close() error { return l.file.Close() }

// CloseHandingOver closes for a live upgrade (File.CloseHandingOver).
func (l *Local) CloseHandingOver() error { return l.file.CloseHandingOver() }

// Name is the driver's name.
func (l *Local) Name() string { return "local" }
