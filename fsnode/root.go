// Package fsnode glues tmpmount's file data (spool) to go-fuse's fs API: it
// holds the directory tree, attributes and extended attributes of every
// node, and answers the kernel's requests with the errno tmpfs would give.
//
// The tree is tmpmount's own: each node type (Dir, File, Symlink, Special)
// embeds go-fuse's fs.Inode, and the same object is handed back to go-fuse on
// every lookup, so go-fuse's own tree is only a cache of what the kernel
// currently knows. Node ids equal inode numbers (fs.Options.ExternalNodeID),
// which lets the raw request wrapper (raw.go) find a node from a request.
//
// Locking: Root.tree guards every directory's entries, parent pointers and
// link counts; node.mu guards one node's attributes. Take tree before any
// node.mu, and never hold two node.mu at once.
package fsnode

import (
	"fmt"
	"io"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tmpmount/tmpmount/fsnode/ringfuse"
	"github.com/tmpmount/tmpmount/keepdir"
	"github.com/tmpmount/tmpmount/policy"
	"github.com/tmpmount/tmpmount/spool"
)

// Config is what a mount needs to serve its tree.
type Config struct {
	// Spool configures the store of file data; New opens it.
	Spool spool.Config

	// Mode, UID and GID are the root directory's permission bits and
	// owner, as tmpfs's mode=, uid= and gid= options.
	Mode     uint32
	UID, GID uint32

	// Resolver picks each file's delete policy.
	Resolver policy.Resolver

	// KeepDir is where keep-policy files are saved (at every last close
	// of a writer); "" when no keep policy can be in force. New opens it
	// and holds it open for the mount's life.
	KeepDir string

	// Events, if not nil, gets one JSON line per create, rollover,
	// delete and keep.
	Events io.Writer

	// Atime says when reads update atime (relatime by default).
	Atime Atime

	// MaxInodes bounds the nodes (files, directories, links, ...) the
	// mount holds, as tmpfs's nr_inodes= (0: no bound).
	MaxInodes int64

	// Logger gets operational messages (log.Default() if nil).
	Logger *log.Logger
}

// Root is the state of one mount: the only per-mount state there is.
type Root struct {
	store    *spool.Store
	log      *log.Logger
	resolver *policy.Resolver
	keepDir  string
	keeper   *keeper // nil without a keep dir
	atime    Atime
	events   *eventLog
	notifier *notifier
	extras   requestExtras // request fields the fs API drops (extras.go)
	noACL    bool          // --no-acl: system.posix_acl_* refused (set by Mount before serving)
	exports  exportTable   // nodes other than files by inode number, for file handles (export.go)
	locked   atomic.Int64  // nodes immutable or append-only (fileattr.go)

	// passthrough: opens of files on disk hand the kernel the backing
	// file (set by Mount once the kernel is known to accept it, and by
	// updatePassthrough as the capacity changes).
	passthrough       atomic.Bool
	passthroughMu     sync.Mutex
	passthroughWhyNot string // why the kernel or the user rule it out; "" if neither does
	passthroughNote   string // what Passthrough says

	limitsMu sync.Mutex // one change of limits at a time (remount.go)

	// The request path (transport.go), set by Mount.
	ring    *ringfuse.Transport // nil when /dev/fuse serves everything
	devFuse *ringfuse.DevCounter

	// notesMu guards what Mount learns while requests are already served
	// (the rings start before Mount returns).
	notesMu       sync.Mutex
	transportNote string

	dir *Dir // the root directory

	// tree guards every Dir's entries, parent and name, every File's
	// names, and link counts.
	tree sync.RWMutex

	started time.Time
	deletes [3]atomic.Int64 // files deleted, by policy.Reason

	nextIno    atomic.Uint64 // last inode number handed out
	inodes     atomic.Int64  // nodes with a name or an open handle, plus their names past the first (as tmpfs)
	maxInodes  atomic.Int64
	reclaims   reclaims // files on their way out (forget.go)
	streams    dirStreams
	staleOpens staleOpens

	// files maps inode numbers to the regular files whose data is not yet
	// freed, so that raw requests (which carry only a node id) and the
	// spool's rollover reports can find them.
	filesMu sync.Mutex
	files   map[uint64]*File

	rolloverErrors rateLimit // of "rollover failed" log lines
}

// rootIno is the root directory's inode number (and FUSE node id).
const rootIno = 1

// New opens the store of file data and makes the tree of a fresh, empty
// mount.
func New(cfg Config) (*Root, error) {
	r := &Root{
		log:      cfg.Logger,
		resolver: &cfg.Resolver,
		keepDir:  cfg.KeepDir,
		atime:    cfg.Atime,
		files:    make(map[uint64]*File),
		started:  time.Now(),
	}
	r.maxInodes.Store(cfg.MaxInodes)
	if r.log == nil {
		r.log = log.Default()
	}
	r.events = newEventLog(cfg.Events, r.log)
	sc := cfg.Spool
	sc.OnRollover = r.rolledOver
	sc.OnRolloverError = r.rolloverFailed
	sc.NodeMemory = r.nodeMemory
	store, err := spool.Open(sc)
	if err != nil {
		return nil, err
	}
	r.store = store
	if cfg.KeepDir != "" {
		dir, err := keepdir.Open(cfg.KeepDir)
		if err != nil {
			store.Close()
			return nil, err
		}
		r.keeper = newKeeper(r, dir)
	}
	r.notifier = newNotifier()
	r.nextIno.Store(rootIno)
	now := nowTimespec()
	r.dir = &Dir{node: node{
		root:  r,
		mode:  fuseDirMode | cfg.Mode&07777,
		uid:   cfg.UID,
		gid:   cfg.GID,
		nlink: 2,
		atime: now, mtime: now, ctime: now, btime: now,
	}}
	r.dir.entries.init()
	r.inodes.Store(1)
	return r, nil
}

// rolledOver is the spool's report that file ino moved to disk, and why.
func (r *Root) rolledOver(ino uint64, size int64, why spool.Reason) {
	f := r.fileByIno(ino)
	if f == nil || r.events == nil {
		return
	}
	r.tree.RLock()
	path := f.pathLocked()
	r.tree.RUnlock()
	r.events.rolledOver(f, path, size, why)
}

// rolloverFailed is the spool's report that file ino could not move to
// disk. The caller gets an errno; the log says why, at most once a second
// (a full spill disk fails every write that needs a rollover).
func (r *Root) rolloverFailed(ino uint64, err error) {
	skipped, ok := r.rolloverErrors.allow(time.Second)
	if !ok {
		return
	}
	path := "a deleted file"
	if f := r.fileByIno(ino); f != nil {
		r.tree.RLock()
		path = fmt.Sprintf("%q", f.pathLocked())
		r.tree.RUnlock()
	}
	more := ""
	if skipped > 0 {
		more = fmt.Sprintf(" (and %d more rollover failure(s) since the last report)", skipped)
	}
	r.log.Printf("rollover of %s (inode %d) to the spill directory %s failed, the file stays in RAM: %v%s", path, ino, r.store.Dir(), err, more)
}

// rateLimit lets through at most one event per interval and counts the
// others.
type rateLimit struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

// allow reports whether an event may go through now, and how many were
// held back since the last one that did.
func (l *rateLimit) allow(interval time.Duration) (skipped int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); l.last.IsZero() || now.Sub(l.last) >= interval {
		skipped, l.skipped, l.last = l.skipped, 0, now
		return skipped, true
	}
	l.skipped++
	return 0, false
}

// awaitInodeRoom gives files just deleted a moment to be forgotten when
// --inodes leaves no room. Call it without root.tree held: the forget that
// frees a file (File.dropKernelRefs) takes it.
func (r *Root) awaitInodeRoom() {
	if r.inodesFull() {
		r.reclaims.waitFreed(reclaimWaitNoSpace)
	}
}

// inodesFull reports whether --inodes leaves no room for another node.
func (r *Root) inodesFull() bool {
	limit := r.maxInodes.Load()
	return limit > 0 && r.inodes.Load() >= limit
}

// Store returns the spool store that holds file data.
func (r *Root) Store() *spool.Store { return r.store }

// Inodes is the number of nodes in use: named, or unnamed but open.
func (r *Root) Inodes() int64 { return r.inodes.Load() }

func (r *Root) allocIno() uint64 { return r.nextIno.Add(1) }

func (r *Root) registerFile(f *File) {
	r.filesMu.Lock()
	r.files[f.ino()] = f
	r.filesMu.Unlock()
}

func (r *Root) unregisterFile(f *File) {
	r.filesMu.Lock()
	delete(r.files, f.ino())
	r.filesMu.Unlock()
}

// fileByIno returns the live regular file with inode number ino, or nil.
func (r *Root) fileByIno(ino uint64) *File {
	r.filesMu.Lock()
	defer r.filesMu.Unlock()
	return r.files[ino]
}
