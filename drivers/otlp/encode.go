package otlp

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/docker/docker/daemon/logger"
	"google.golang.org/protobuf/encoding/protowire"
)

// The messages of opentelemetry-proto (opentelemetry/proto/collector/logs/
// v1/logs_service.proto, logs/v1/logs.proto, common/v1/common.proto),
// encoded by hand: the generated types would link a descriptor of every
// OTLP message into every logger. Field numbers are the .proto's.
const (
	// ExportLogsServiceRequest
	reqResourceLogs = 1
	// ResourceLogs
	rlResource  = 1
	rlScopeLogs = 2
	// Resource
	resAttributes = 1
	// ScopeLogs
	slScope      = 1
	slLogRecords = 2
	// InstrumentationScope
	scopeName    = 1
	scopeVersion = 2
	// LogRecord
	lrTime           = 1
	lrSeverityNumber = 2
	lrSeverityText   = 3
	lrBody           = 5
	lrAttributes     = 6
	lrObservedTime   = 11
	// KeyValue
	kvKey   = 1
	kvValue = 2
	// AnyValue
	avString = 1
	avBool   = 2
	avInt    = 3
	avArray  = 5
	// ArrayValue
	arrValues = 1
	avBytes   = 7
	// ExportLogsServiceResponse, ExportLogsPartialSuccess
	respPartialSuccess = 1
	psRejected         = 1
	psMessage          = 2
)

// SeverityNumber: stdout is INFO, stderr ERROR.
const (
	severityInfo  = 9
	severityError = 17
)

// attr is a record's or the resource's attribute: a string, a bool or an
// integer value.
type attr struct {
	key  string
	str  string
	num  int64
	kind byte // 's', 'b', 'i', or 'a' for an array of the one string str
}

func strAttr(k, v string) attr { return attr{key: k, str: v, kind: 's'} }

// appendAnyValue appends an AnyValue message's fields.
func appendAnyValue(b []byte, a attr) []byte {
	switch a.kind {
	case 'b':
		b = protowire.AppendTag(b, avBool, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(a.num))
	case 'i':
		b = protowire.AppendTag(b, avInt, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(a.num))
	case 'a':
		elem := protowire.SizeTag(avString) + protowire.SizeBytes(len(a.str))
		b = protowire.AppendTag(b, avArray, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(protowire.SizeTag(arrValues)+protowire.SizeBytes(elem)))
		b = protowire.AppendTag(b, arrValues, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(elem))
		b = protowire.AppendTag(b, avString, protowire.BytesType)
		return protowire.AppendString(b, a.str)
	}
	b = protowire.AppendTag(b, avString, protowire.BytesType)
	return protowire.AppendString(b, a.str)
}

// appendKeyValue appends a KeyValue as field num of its parent.
func appendKeyValue(b []byte, num protowire.Number, a attr) []byte {
	var v []byte
	v = appendAnyValue(v, a)
	n := protowire.SizeTag(kvKey) + protowire.SizeBytes(len(a.key)) + protowire.SizeTag(kvValue) + protowire.SizeBytes(len(v))
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b = protowire.AppendTag(b, kvKey, protowire.BytesType)
	b = protowire.AppendString(b, a.key)
	b = protowire.AppendTag(b, kvValue, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// head is what every request of one logger repeats: the resource and the
// scope, encoded once.
type head struct {
	resourcePB []byte // Resource message
	scopePB    []byte // InstrumentationScope message
	resourceJS []byte // "resource":{...}
	scopeJS    []byte // "scope":{...}
}

func newHead(resource []attr, scope, version string) *head {
	h := &head{}
	for _, a := range resource {
		h.resourcePB = appendKeyValue(h.resourcePB, resAttributes, a)
	}
	h.scopePB = protowire.AppendTag(h.scopePB, scopeName, protowire.BytesType)
	h.scopePB = protowire.AppendString(h.scopePB, scope)
	if version != "" {
		h.scopePB = protowire.AppendTag(h.scopePB, scopeVersion, protowire.BytesType)
		h.scopePB = protowire.AppendString(h.scopePB, version)
	}
	h.resourceJS = append(h.resourceJS, `"resource":{"attributes":[`...)
	for i, a := range resource {
		if i > 0 {
			h.resourceJS = append(h.resourceJS, ',')
		}
		h.resourceJS = appendJSONKeyValue(h.resourceJS, a)
	}
	h.resourceJS = append(h.resourceJS, "]}"...)
	h.scopeJS = append(h.scopeJS, `"scope":{"name":`...)
	h.scopeJS = appendJSONString(h.scopeJS, scope)
	if version != "" {
		h.scopeJS = append(h.scopeJS, `,"version":`...)
		h.scopeJS = appendJSONString(h.scopeJS, version)
	}
	h.scopeJS = append(h.scopeJS, '}')
	return h
}

// record is what a LogRecord takes from a message.
type record struct {
	t, observed time.Time
	stderr      bool
	line        []byte
	attrs       []attr
}

// recordAttrs are a message's attributes: its stream, and for a line cut
// into partial messages, where this part stands (the parts are not joined:
// see the package comment).
func recordAttrs(msg *logger.Message) []attr {
	as := []attr{strAttr("log.iostream", msg.Source)}
	if p := msg.PLogMetaData; p != nil {
		as = append(as, strAttr("docker.partial.id", p.ID),
			attr{key: "docker.partial.ordinal", num: int64(p.Ordinal), kind: 'i'},
			attr{key: "docker.partial.last", num: b2i(p.Last), kind: 'b'})
	}
	for _, a := range msg.Attrs {
		as = append(as, strAttr(a.Key, a.Value))
	}
	return as
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// protoBatch is a batch encoded as http/protobuf: the LogRecords are
// appended as they come, after room for the envelope, which Encode writes
// in front of them. A line is copied once, into the records: a batch of
// one long line (a message cut at the pipe's window) costs that line and
// not three copies of it.
type protoBatch struct {
	h       *head
	records []byte // envelope room, then LogRecord fields of ScopeLogs (tag, length, message)
	rec     []byte // scratch: a LogRecord's fields before and after its body
}

// envelopeMax is the most the envelope takes: three tags and lengths, the
// resource and the scope.
func (b *protoBatch) envelopeMax() int {
	return 4*(protowire.SizeTag(reqResourceLogs)+binary.MaxVarintLen64) + len(b.h.resourcePB) + len(b.h.scopePB)
}

func (b *protoBatch) Size() int {
	if len(b.records) == 0 {
		return len(b.h.resourcePB) + 32
	}
	return len(b.records) // the envelope's room is about what it takes
}

func (b *protoBatch) Reset() { b.records = b.records[:0] }

func (b *protoBatch) Add(msg *logger.Message) {
	if len(b.records) == 0 {
		b.records = slices.Grow(b.records, b.envelopeMax())[:b.envelopeMax()] // room: its bytes are written by Encode
	}
	r := b.rec[:0]
	r = protowire.AppendTag(r, lrTime, protowire.Fixed64Type)
	r = protowire.AppendFixed64(r, uint64(msg.Timestamp.UnixNano()))
	sev, text := uint64(severityInfo), "INFO"
	if msg.Source == "stderr" {
		sev, text = severityError, "ERROR"
	}
	r = protowire.AppendTag(r, lrSeverityNumber, protowire.VarintType)
	r = protowire.AppendVarint(r, sev)
	r = protowire.AppendTag(r, lrSeverityText, protowire.BytesType)
	r = protowire.AppendString(r, text)
	before := len(r)
	for _, a := range recordAttrs(msg) {
		r = appendKeyValue(r, lrAttributes, a)
	}
	r = protowire.AppendTag(r, lrObservedTime, protowire.Fixed64Type)
	r = protowire.AppendFixed64(r, uint64(time.Now().UnixNano()))
	b.rec = r
	// Body: an AnyValue, a string when the line is UTF-8, else bytes.
	avField := protowire.Number(avString)
	if !utf8.Valid(msg.Line) {
		avField = avBytes
	}
	av := protowire.SizeTag(avField) + protowire.SizeBytes(len(msg.Line))
	size := len(r) + protowire.SizeTag(lrBody) + protowire.SizeBytes(av)
	b.records = protowire.AppendTag(b.records, slLogRecords, protowire.BytesType)
	b.records = protowire.AppendVarint(b.records, uint64(size))
	b.records = append(b.records, r[:before]...)
	b.records = protowire.AppendTag(b.records, lrBody, protowire.BytesType)
	b.records = protowire.AppendVarint(b.records, uint64(av))
	b.records = protowire.AppendTag(b.records, avField, protowire.BytesType)
	b.records = protowire.AppendBytes(b.records, msg.Line)
	b.records = append(b.records, r[before:]...)
}

func (b *protoBatch) Encode() ([]byte, error) {
	room := b.envelopeMax()
	if len(b.records) < room { // no record
		b.records = slices.Grow(b.records[:0], room)[:room]
	}
	records := len(b.records) - room
	scope := protowire.SizeTag(slScope) + protowire.SizeBytes(len(b.h.scopePB)) + records
	rl := protowire.SizeTag(rlResource) + protowire.SizeBytes(len(b.h.resourcePB)) +
		protowire.SizeTag(rlScopeLogs) + protowire.SizeBytes(scope)
	var env [64]byte
	e := env[:0]
	e = protowire.AppendTag(e, reqResourceLogs, protowire.BytesType)
	e = protowire.AppendVarint(e, uint64(rl))
	e = protowire.AppendTag(e, rlResource, protowire.BytesType)
	e = protowire.AppendBytes(e, b.h.resourcePB)
	e = protowire.AppendTag(e, rlScopeLogs, protowire.BytesType)
	e = protowire.AppendVarint(e, uint64(scope))
	e = protowire.AppendTag(e, slScope, protowire.BytesType)
	e = protowire.AppendBytes(e, b.h.scopePB)
	start := room - len(e)
	copy(b.records[start:], e)
	return b.records[start:], nil
}

// jsonBatch is a batch encoded as http/json (the protobuf JSON mapping
// the OTLP specification prescribes: lowerCamelCase names, 64-bit
// integers as strings, enums as numbers, bytes as base64).
type jsonBatch struct {
	h       *head
	records []byte // LogRecord objects, comma separated
	out     []byte
}

func (b *jsonBatch) Size() int { return len(b.records) + len(b.h.resourceJS) + 64 }
func (b *jsonBatch) Reset()    { b.records = b.records[:0] }

func (b *jsonBatch) Add(msg *logger.Message) {
	r := b.records
	if len(r) > 0 {
		r = append(r, ',')
	}
	r = append(r, `{"timeUnixNano":"`...)
	r = strconv.AppendInt(r, msg.Timestamp.UnixNano(), 10)
	r = append(r, `","observedTimeUnixNano":"`...)
	r = strconv.AppendInt(r, time.Now().UnixNano(), 10)
	if msg.Source == "stderr" {
		r = append(r, `","severityNumber":17,"severityText":"ERROR","body":{`...)
	} else {
		r = append(r, `","severityNumber":9,"severityText":"INFO","body":{`...)
	}
	if utf8.Valid(msg.Line) {
		r = append(r, `"stringValue":`...)
		r = appendJSONString(r, string(msg.Line))
	} else {
		r = append(r, `"bytesValue":"`...)
		r = base64.StdEncoding.AppendEncode(r, msg.Line)
		r = append(r, '"')
	}
	r = append(r, `},"attributes":[`...)
	for i, a := range recordAttrs(msg) {
		if i > 0 {
			r = append(r, ',')
		}
		r = appendJSONKeyValue(r, a)
	}
	r = append(r, "]}"...)
	b.records = r
}

func (b *jsonBatch) Encode() ([]byte, error) {
	out := append(b.out[:0], `{"resourceLogs":[{`...)
	out = append(out, b.h.resourceJS...)
	out = append(out, `,"scopeLogs":[{`...)
	out = append(out, b.h.scopeJS...)
	out = append(out, `,"logRecords":[`...)
	out = append(out, b.records...)
	out = append(out, "]}]}]}"...)
	b.out = out
	return out, nil
}

func appendJSONKeyValue(b []byte, a attr) []byte {
	b = append(b, `{"key":`...)
	b = appendJSONString(b, a.key)
	switch a.kind {
	case 'b':
		b = append(b, `,"value":{"boolValue":`...)
		b = strconv.AppendBool(b, a.num != 0)
	case 'i':
		b = append(b, `,"value":{"intValue":"`...)
		b = strconv.AppendInt(b, a.num, 10)
		b = append(b, '"')
	case 'a':
		b = append(b, `,"value":{"arrayValue":{"values":[{"stringValue":`...)
		b = appendJSONString(b, a.str)
		b = append(b, "}]}"...)
	default:
		b = append(b, `,"value":{"stringValue":`...)
		b = appendJSONString(b, a.str)
	}
	return append(b, "}}"...)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 (possible
// only in attribute values) is replaced, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		q, _ := json.Marshal(s)
		return append(b, q...)
	}
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// partialSuccess reads an ExportLogsServiceResponse: the records the
// collector refused and why. A body it cannot read counts as none refused.
func partialSuccessPB(body []byte) (int64, string) {
	ps := field(body, respPartialSuccess)
	if ps == nil {
		return 0, ""
	}
	var rejected int64
	var msg string
	for len(ps) > 0 {
		num, typ, n := protowire.ConsumeTag(ps)
		if n < 0 {
			break
		}
		ps = ps[n:]
		switch {
		case num == psRejected && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(ps)
			if m < 0 {
				return rejected, msg
			}
			rejected, ps = int64(v), ps[m:]
			continue
		case num == psMessage && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(ps)
			if m < 0 {
				return rejected, msg
			}
			msg, ps = string(v), ps[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, ps)
		if m < 0 {
			break
		}
		ps = ps[m:]
	}
	return rejected, msg
}

// field returns the last bytes field num of a message, nil if none.
func field(b []byte, want protowire.Number) []byte {
	var out []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return out
		}
		b = b[n:]
		if num == want && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return out
			}
			out, b = v, b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return out
		}
		b = b[m:]
	}
	return out
}

// partialSuccessJSON reads the JSON form of the same response.
func partialSuccessJSON(body []byte) (int64, string) {
	var r struct {
		PartialSuccess struct {
			Rejected json.RawMessage `json:"rejectedLogRecords"`
			Message  string          `json:"errorMessage"`
		} `json:"partialSuccess"`
	}
	if json.Unmarshal(body, &r) != nil {
		return 0, ""
	}
	v := string(r.PartialSuccess.Rejected)
	if uq, err := strconv.Unquote(v); err == nil {
		v = uq
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	return n, r.PartialSuccess.Message
}
