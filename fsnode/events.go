package fsnode

import (
	"encoding/json"
	"io"
	"log"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tmpmount/tmpmount/policy"
	"github.com/tmpmount/tmpmount/spool"
)

// eventLog appends one JSON line per create, rollover, delete and keep to
// the --events file. Each line is one write(2) to a file opened with
// O_APPEND, so lines arrive whole and at once, even with several writers.
// A nil *eventLog logs nothing.
type eventLog struct {
	mu     sync.Mutex
	w      io.Writer
	log    *log.Logger
	failed bool // a write failed; said once, not per event
}

// event is one line of the log.
type event struct {
	Time   string `json:"time"`
	Event  string `json:"event"` // create, rollover, delete, keep, unkeep
	Path   fsName `json:"path"`  // relative to the mount root; "" for a file without a name
	Ino    uint64 `json:"ino"`
	Policy string `json:"policy,omitempty"` // create
	Source string `json:"source,omitempty"` // create: where the policy came from
	Size   *int64 `json:"size,omitempty"`   // rollover: the file's size when it moved
	Reason string `json:"reason,omitempty"` // delete: close, unmount or unlink; rollover: rolloverReasons
	Dest   fsName `json:"dest,omitempty"`   // keep: where the file was saved; unkeep: the copy removed
}

// fsName is a file name or path, any bytes but NUL, written to JSON so
// that it can be told from every other: valid UTF-8 as itself, and each
// byte that is not part of valid UTF-8 as the lone surrogate U+DC80+byte
// (an escape like "\udcff"), which no UTF-8 text can hold. That is
// Python's surrogateescape: os.fsencode(json.loads(line)["path"]) gives
// the name's bytes back. encoding/json would write U+FFFD for every bad
// byte, so that "bad\xff\xfe" and "bad\xef\xbf\xbd" (U+FFFD itself) looked
// the same.
type fsName string

func (n fsName) MarshalJSON() ([]byte, error) {
	const hex = "0123456789abcdef"
	s := string(n)
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			c := s[i]
			b = append(b, '\\', 'u', 'd', 'c', hex[c>>4], hex[c&0xf])
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u')
			b = append(b, hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"'), nil
}

func newEventLog(w io.Writer, logger *log.Logger) *eventLog {
	if w == nil {
		return nil
	}
	return &eventLog{w: w, log: logger}
}

func (l *eventLog) emit(e event) {
	if l == nil {
		return
	}
	e.Time = time.Now().UTC().Format(time.RFC3339Nano)
	line, err := json.Marshal(e)
	if err != nil {
		l.log.Printf("events: %v", err)
		return
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(line); err != nil && !l.failed {
		l.failed = true
		l.log.Printf("events: %v (further failures are not reported)", err)
	}
}

func (l *eventLog) created(f *File, path string) {
	if l == nil {
		return
	}
	f.mu.Lock()
	p, src := f.life.Policy(), f.life.Source()
	f.mu.Unlock()
	l.emit(event{Event: "create", Path: fsName(path), Ino: f.ino(), Policy: p.String(), Source: src.String()})
}

// rolloverReasons names why a file rolled over, in events: it grew past
// --max-size, the memory budget needed the room, it was written through a
// shared mapping, or user.tmpmount.spill was set on it.
var rolloverReasons = map[spool.Reason]string{
	spool.BySize:    "size",
	spool.ForMemory: "memory",
	spool.ByMapping: "mmap",
	spool.OnRequest: "xattr",
}

func (l *eventLog) rolledOver(f *File, path string, size int64, why spool.Reason) {
	l.emit(event{Event: "rollover", Path: fsName(path), Ino: f.ino(), Size: &size, Reason: rolloverReasons[why]})
}

func (l *eventLog) deleted(f *File, path string, reason policy.Reason) {
	l.emit(event{Event: "delete", Path: fsName(path), Ino: f.ino(), Reason: reason.String()})
}

func (l *eventLog) kept(f *File, path, dest string) {
	l.emit(event{Event: "keep", Path: fsName(path), Ino: f.ino(), Dest: fsName(dest)})
}

// unkept: the keep dir's copy at dest went, the file having been deleted,
// renamed or made not to be kept in the mount.
func (l *eventLog) unkept(f *File, dest string) {
	l.emit(event{Event: "unkeep", Ino: f.ino(), Dest: fsName(dest)})
}
