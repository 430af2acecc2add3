package fsnode

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tmpmount/tmpmount/keepdir"
	"github.com/tmpmount/tmpmount/policy"
	"github.com/tmpmount/tmpmount/spool"
)

// The keep directory mirrors the mount's keep files. Each time the last
// handle that can write a keep file is released (and after a chmod, touch,
// truncate or setfattr of one that no handle can write), the file is due:
// the keeper, a goroutine of its own, copies it into the keep directory
// under no name (a snapshot), syncs it, and links it into place under each
// of the file's names, replacing the previous copy; renames, links and
// unlinks in the mount, and a file ceasing to be keep, are mirrored there.
// RELEASE only marks the file and queues it, so close(2) is not slowed.
//
// The queue holds each file at most once (saves of one file coalesce), so
// it is bounded by the files the mount holds, and adding to it never
// blocks or fails. The latest closed version is never lost: a request that
// would change a due file (an open for writing, a setattr, a setxattr)
// first takes its snapshot itself, and one that finds the keeper copying
// the file waits for that copy; the data of a snapshot never mixes two
// versions. Everything in the keep dir is done with the rights of the
// file's owner (keepdir.RunAs).

// keepState is a file's standing with the keeper, guarded by node.mu
// (queued by keeper.mu).
type keepState struct {
	// writers counts open handles that can write the file.
	writers int
	// changing counts setattr and setxattr requests under way: a
	// snapshot waits until none is.
	changing int
	// dirty: the keep dir may lack the file's present content or
	// attributes (so: a new file, or one that became keep).
	dirty bool
	// due: a snapshot is wanted, and queued; dueBytes is its data, as
	// counted in keeper.dueBytes.
	due      bool
	dueBytes int64
	// busy is non-nil while a snapshot copies the file's data; it is
	// closed when the copy is done.
	busy chan struct{}
	// snap is a snapshot not yet placed (taken by a request).
	snap *keepSnap
	// copy is what the keep dir holds of the file; nil: nothing.
	copy *keptCopy
	// ownerGID is the group the owner's processes were last seen with
	// (by a request of ownerSeen's, the owner then), the group saves act
	// with.
	ownerGID  uint32
	ownerSeen *uint32
	// failed: the last save of the file did not place every name.
	failed bool
	// said is what was last logged about the file (keeper.say).
	said string

	queued bool // in keeper.queue; guarded by keeper.mu
}

// keptCopy is the file's copy in the keep dir: one file there, with one
// name for each of the file's names in the mount.
type keptCopy struct {
	id    keepdir.FileID
	owner uint32            // the user whose rights placed it
	dests map[string]string // path in the mount -> path in the keep dir
}

// keepSnap is the file as it was at one moment, written into the keep dir
// under no name, with the identity that wrote it.
type keepSnap struct {
	temp *keepdir.Temp
	id   keepdir.Identity
}

// keeper saves keep files into the keep directory, in the background.
type keeper struct {
	root   *Root
	dir    *keepdir.Dir
	users  keepdir.Users
	copier spool.Copier

	mu       sync.Mutex
	cond     *sync.Cond // signalled when the queue or working changes
	queue    []*File    // each file at most once (keepState.queued)
	working  bool       // the worker is processing a batch
	stopping bool
	done     chan struct{} // closed when the worker has ended

	copied atomic.Int64 // bytes of data copied into the keep dir so far

	// The backlog, guarded by mu: files due and their data, and when
	// the worker last finished a batch.
	dueFiles  int
	dueBytes  int64
	lastBatch time.Time

	// made is the directories this mount made in the keep dir, and whose
	// rights made each: they go again when the last file in them goes,
	// and get their counterparts' modes again at unmount. Guarded by mu.
	made map[string]uint32
}

// How far the keep dir may fall behind the mount (the saves a SIGKILL can
// lose) before a request opening a keep file for writing is held back
// until it catches up, as the kernel holds back writers of dirty pages:
// never for more than keepHoldMax, and not at all while the keeper makes
// no progress (a keep dir on a hung disk must not stall the mount).
const (
	keepBacklogFiles = 1000
	keepBacklogBytes = 256 << 20
	keepHoldMax      = time.Second
)

// keepBatch bounds the files one round of the worker takes: their data is
// synced together, then their names placed, then their directories
// synced, so a burst of small files costs a few journal commits rather
// than two per file.
const keepBatch = 128

func newKeeper(r *Root, dir *keepdir.Dir) *keeper {
	k := &keeper{root: r, dir: dir, done: make(chan struct{}), made: make(map[string]uint32)}
	k.cond = sync.NewCond(&k.mu)
	go k.run()
	return k
}

// enqueue queues f for the worker, once. It never blocks for long: it may
// be called with root.tree and f.mu held.
func (k *keeper) enqueue(f *File) {
	k.mu.Lock()
	if !f.keep.queued && !k.stopping {
		f.keep.queued = true
		k.queue = append(k.queue, f)
		k.cond.Broadcast()
	}
	k.mu.Unlock()
}

func (k *keeper) run() {
	defer close(k.done)
	for {
		batch := k.next()
		if batch == nil {
			return
		}
		k.process(batch)
	}
}

// next waits for work and takes a batch of it; nil once stopped.
func (k *keeper) next() []*File {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.working = false
	k.lastBatch = time.Now()
	k.cond.Broadcast()
	for len(k.queue) == 0 {
		if k.stopping {
			return nil
		}
		k.cond.Wait()
	}
	n := min(len(k.queue), keepBatch)
	batch := slices.Clone(k.queue[:n])
	k.queue = slices.Delete(k.queue, 0, n)
	if len(k.queue) == 0 {
		k.queue = nil // let a burst's backing array go
	}
	for _, f := range batch {
		f.keep.queued = false
	}
	k.working = true
	return batch
}

// backlog counts files becoming due (+1) or not (-1), and their data.
func (k *keeper) backlog(files int, bytes int64) {
	k.mu.Lock()
	k.dueFiles += files
	k.dueBytes += bytes
	k.mu.Unlock()
}

// holdBack waits while the backlog is over its bound and the worker is
// working it off, for keepHoldMax at most.
func (k *keeper) holdBack() {
	start := time.Now()
	for time.Since(start) < keepHoldMax {
		k.mu.Lock()
		over := k.dueFiles > keepBacklogFiles || k.dueBytes > keepBacklogBytes
		moving := !k.stopping && time.Since(k.lastBatch) < keepHoldMax
		k.mu.Unlock()
		if !over || !moving {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// drain waits until the queue is empty and the worker idle, telling
// progress, if not nil, about every 100 ms how many bytes it has copied
// since the call, of about total.
func (k *keeper) drain(progress func(done, total int64), total int64) {
	start := k.copied.Load()
	idle := make(chan struct{})
	go func() {
		k.mu.Lock()
		for len(k.queue) > 0 || k.working {
			k.cond.Wait()
		}
		k.mu.Unlock()
		close(idle)
	}()
	report := func() {
		if progress != nil {
			done := k.copied.Load() - start
			progress(done, max(total, done))
		}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-idle:
			report()
			return
		case <-tick.C:
			report()
		}
	}
}

// stop ends the worker once the queue is empty, and closes the keep dir.
func (k *keeper) stop() {
	k.mu.Lock()
	k.stopping = true
	k.cond.Broadcast()
	k.mu.Unlock()
	<-k.done
	k.dir.Close()
}

// identityOf is whose rights f's next keep-dir work needs: the identity
// its pending snapshot was written with, else its owner's.
func (k *keeper) identityOf(f *File) keepdir.Identity {
	f.mu.Lock()
	if s := f.keep.snap; s != nil {
		f.mu.Unlock()
		return s.id
	}
	uid, gid := f.uid, f.keep.ownerGID
	seen := f.keep.ownerSeen != nil && *f.keep.ownerSeen == uid // not if chowned since
	f.mu.Unlock()
	return k.users.Identity(uid, gid, seen)
}

// process does a batch: grouped by identity, each group on a thread with
// that identity.
func (k *keeper) process(batch []*File) {
	type group struct {
		id    keepdir.Identity
		files []*File
	}
	var groups []*group
	for _, f := range batch {
		id := k.identityOf(f)
		i := slices.IndexFunc(groups, func(g *group) bool { return g.id.UID == id.UID && g.id.GID == id.GID })
		if i < 0 {
			groups = append(groups, &group{id: id})
			i = len(groups) - 1
		}
		groups[i].files = append(groups[i].files, f)
	}
	for _, g := range groups {
		var jobs []*keepJob
		err := keepdir.RunAs(g.id, func() error {
			jobs = k.reconcile(g.id, g.files)
			return nil
		})
		if err != nil {
			k.root.log.Printf("keep: cannot act as %v for %d file(s): %v", g.id, len(g.files), err)
			for _, f := range g.files {
				f.mu.Lock()
				f.keep.dirty, f.keep.failed = true, true
				f.mu.Unlock()
			}
			continue
		}
		for _, j := range jobs {
			k.finish(j)
		}
	}
}

// keepJob is the work on one file in one round.
type keepJob struct {
	f     *File
	id    keepdir.Identity
	keep  bool     // the file is to be in the keep dir
	paths []string // its paths in the mount, sorted
	prev  *keptCopy
	snap  *keepSnap // the version to place; nil: only names change
	attrs keepdir.Attrs
	busy  chan struct{} // set while this job copies the file

	dests      map[string]string // placed: path in the mount -> in the keep dir
	placed     []string          // paths newly given a name, for the events log
	removed    []string          // keep-dir paths removed
	newID      keepdir.FileID
	newVersion bool // place had a new snapshot to place
	failed     bool
}

// reconcile brings the keep dir in line with each file: snapshots of the
// due ones, synced together, then names placed and stale ones removed,
// then the directories synced. It runs as id.
func (k *keeper) reconcile(id keepdir.Identity, files []*File) []*keepJob {
	var jobs []*keepJob
	for _, f := range files {
		j := k.prepare(f, id, true)
		if j == nil {
			continue
		}
		if j.busy != nil {
			k.snapshot(j)
		}
		jobs = append(jobs, j)
	}
	var temps []int
	for _, j := range jobs {
		if j.snap != nil {
			temps = append(temps, j.snap.temp.Fd())
		}
	}
	failed := keepdir.SyncAll(temps)
	for _, j := range jobs {
		if j.snap == nil {
			continue
		}
		if err := failed[j.snap.temp.Fd()]; err != nil {
			k.root.log.Printf("keep %q: %v", j.paths[0], err)
			j.failed = true
			j.snap.temp.Close()
			j.snap = nil
		}
	}
	dirs := map[string]int{}
	for _, j := range jobs {
		if j.failed {
			continue // its last good copy stays where it is
		}
		k.place(j, dirs)
	}
	var dirFds []int
	names := map[int]string{}
	for rel, fd := range dirs {
		dirFds = append(dirFds, fd)
		names[fd] = rel
	}
	for fd, err := range keepdir.SyncAll(dirFds) {
		k.root.log.Printf("keep: %q in keep dir: %v", names[fd], err)
	}
	for _, fd := range dirFds {
		unix.Close(fd)
	}
	return jobs
}

// prepare looks at f and says what to do with it, as id; nil for nothing
// now. A due file gets a job that snapshots it (busy set: writers wait);
// whole, it also takes a pending snapshot to place and the names to
// reconcile.
func (k *keeper) prepare(f *File, id keepdir.Identity, whole bool) *keepJob {
	st, statErr := f.data.Stat()
	r := k.root
	r.tree.RLock()
	defer r.tree.RUnlock()
	paths := make([]string, 0, len(f.names))
	for _, l := range f.names {
		paths = append(paths, l.dir.pathLocked(l.name))
	}
	slices.Sort(paths)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keep.busy != nil || f.keep.changing > 0 {
		return nil // the request at work queues it again when done
	}
	if f.uid != id.UID && (f.keep.snap == nil || !whole) {
		if whole {
			k.enqueue(f) // chowned meanwhile: again, as its owner
		}
		return nil
	}
	j := &keepJob{f: f, id: id, keep: f.life.Policy() == policy.Keep && !f.life.Gone() && len(paths) > 0, paths: paths, prev: f.keep.copy}
	if whole {
		j.snap, f.keep.snap = f.keep.snap, nil
	}
	if !j.keep {
		f.setDueLocked(false)
		if j.snap != nil {
			j.snap.temp.Close()
			j.snap = nil
		}
		if !whole || j.prev == nil {
			return nil
		}
		return j
	}
	switch {
	case f.keep.due && f.uid != id.UID:
		// Chowned since its pending snapshot: that one is placed now,
		// and the next is taken as the new owner, next round.
		k.enqueue(f)
	case f.keep.due:
		f.setDueLocked(false)
		f.keep.dirty = false
		if j.snap != nil {
			j.snap.temp.Close() // older than what is taken now
			j.snap = nil
		}
		j.busy = make(chan struct{})
		f.keep.busy = j.busy
		if statErr == nil {
			f.absorbBackingTimesLocked(st)
		}
		j.attrs = keepdir.Attrs{
			UID: f.uid, GID: f.gid, Mode: f.mode & 07777,
			Atime:  unix.Timespec{Sec: f.atime.sec, Nsec: int64(f.atime.nsec)},
			Mtime:  unix.Timespec{Sec: f.mtime.sec, Nsec: int64(f.mtime.nsec)},
			Xattrs: make(map[string][]byte, len(f.xattrs)),
		}
		for name, v := range f.xattrs {
			j.attrs.Xattrs[name] = v // values are never changed in place
		}
	case !whole:
		return nil
	}
	return j
}

// snapshot copies j's file into a new nameless file in the keep dir, in
// the directory of its first name, and ends j.busy once the data is
// copied. It runs as j.id.
func (k *keeper) snapshot(j *keepJob) {
	f := j.f
	release := func() {
		if j.busy == nil {
			return
		}
		f.mu.Lock()
		f.keep.busy = nil
		f.mu.Unlock()
		close(j.busy)
		j.busy = nil
	}
	defer release()
	fail := func(err error) {
		if !errors.Is(err, spool.ErrReleased) { // deleted meanwhile: nothing to save
			k.say(f, fmt.Sprintf("keep %q: %v", j.paths[0], err))
			j.failed = true
		}
	}
	dirRel, _ := path.Split(j.paths[0])
	parent, err := k.openDir(j, strings.TrimSuffix(dirRel, "/"))
	if err != nil {
		fail(err)
		return
	}
	temp, err := keepdir.NewTemp(parent)
	unix.Close(parent)
	if err != nil {
		fail(err)
		return
	}
	if err := f.data.CopyTo(temp.Fd(), &k.copier, func(n int64) { k.copied.Add(n) }); err != nil {
		temp.Close()
		fail(fmt.Errorf("copy: %w", err))
		return
	}
	release() // the file may change again: what it was is in temp
	notes, err := temp.Apply(j.attrs)
	if len(notes) > 0 {
		k.say(f, fmt.Sprintf("keep %q: %s", j.paths[0], strings.Join(notes, "; ")))
	}
	if err != nil {
		temp.Close()
		fail(err)
		return
	}
	j.snap = &keepSnap{temp: temp, id: j.id}
}

// openDir opens rel in the keep dir as j's identity, making what is
// missing after the mount's directories.
func (k *keeper) openDir(j *keepJob, rel string) (int, error) {
	return k.dir.OpenDir(rel, func(sub string) keepdir.DirSpec {
		spec := k.root.dirSpecForKeep(sub)
		spec.Chown = j.id.UID == 0 && unix.Geteuid() == 0
		return spec
	}, func(sub string) {
		k.mu.Lock()
		k.made[sub] = j.id.UID
		k.mu.Unlock()
	})
}

// place gives j's version its names in the keep dir and removes the names
// the file no longer has. The directories it changed are left in dirs,
// open, to be synced. It runs as j.id.
func (k *keeper) place(j *keepJob, dirs map[string]int) {
	j.dests = map[string]string{}
	j.newVersion = j.snap != nil
	src := -1
	if j.snap != nil {
		src = j.snap.temp.Fd()
		if id, err := keepdir.Identify(src); err == nil {
			j.newID = id
		}
	} else if j.prev != nil {
		j.newID = j.prev.id
	}
	if j.snap != nil && j.prev != nil && j.prev.owner != j.id.UID {
		// The file changed owner (root's chown) since its last save: its
		// old copy goes first, with the rights of the user who placed
		// it, and the new owner's is placed as new.
		k.removeCopy(j, j.prev)
		j.prev = nil
	}
	var prevID keepdir.FileID
	if j.prev != nil {
		prevID = j.prev.id
	}
	for _, p := range j.paths {
		if !j.keep {
			break
		}
		prevDest, had := j.prev.destOf(p)
		if had && prevDest == p && j.snap == nil {
			j.dests[p] = p // already there
			continue
		}
		// (One saved beside another's file tries its own name again.)
		if src < 0 {
			if j.prev == nil {
				break // never saved: its names come with its first save
			}
			fd, err := k.reopen(j.prev)
			if err != nil || fd < 0 {
				// Its copy is gone or replaced: save it whole.
				j.failed = true
				j.f.mu.Lock()
				j.f.keep.dirty = true
				j.f.setDueLocked(j.f.keep.writers == 0)
				j.f.mu.Unlock()
				k.enqueue(j.f)
				break
			}
			defer unix.Close(fd)
			src = fd
		}
		dirRel, base := path.Split(p)
		dirRel = strings.TrimSuffix(dirRel, "/")
		parent, ok := dirs[dirRel]
		if !ok {
			fd, err := k.openDir(j, dirRel)
			if err != nil {
				k.say(j.f, fmt.Sprintf("keep %q: %v", p, err))
				j.failed = true
				continue
			}
			parent, dirs[dirRel] = fd, fd
		}
		used, why, err := keepdir.Place(src, parent, base, j.id.UID, prevID)
		if err != nil {
			k.say(j.f, fmt.Sprintf("keep %q as uid %d: %v; not saved", p, j.id.UID, err))
			j.failed = true
			continue
		}
		dest := path.Join(dirRel, used)
		if why != "" && (!had || dest != prevDest) { // said once, not at every save
			k.root.log.Printf("keep %q: %s; saved as %q instead", p, why, dest)
		}
		j.dests[p] = dest
		if j.snap != nil || !had || dest != prevDest {
			j.placed = append(j.placed, p)
		}
	}
	if j.snap != nil {
		j.snap.temp.Close() // its names hold it now
		j.snap = nil
	}
	if j.prev == nil {
		return
	}
	kept := map[string]bool{}
	for _, d := range j.dests {
		kept[d] = true
	}
	for _, d := range j.prev.dests {
		if !kept[d] {
			k.removeDest(j, j.prev, d)
		}
	}
}

// say logs msg about f unless it is what was last said about f: a file
// refused at every close is said to be once, not at every save.
func (k *keeper) say(f *File, msg string) {
	f.mu.Lock()
	again := f.keep.said == msg
	f.keep.said = msg
	f.mu.Unlock()
	if !again {
		k.root.log.Print(msg)
	}
}

// removeCopy removes every name of c, as the user who placed it.
func (k *keeper) removeCopy(j *keepJob, c *keptCopy) {
	err := keepdir.RunAs(k.users.Identity(c.owner, 0, false), func() error {
		for _, d := range c.dests {
			k.removeDest(j, c, d)
		}
		return nil
	})
	if err != nil {
		k.root.log.Printf("keep: remove the copy of %q as uid %d: %v", j.paths, c.owner, err)
	}
}

// removeDest removes the name d of c from the keep dir, if it is still c,
// and the directories this mount made for it if they are left empty.
func (k *keeper) removeDest(j *keepJob, c *keptCopy, d string) {
	ok, err := k.dir.Remove(d, c.id, c.owner)
	if err != nil {
		k.root.log.Printf("keep: remove %q from keep dir: %v", d, err)
		return
	}
	if ok {
		j.removed = append(j.removed, d)
		k.removeMadeDirs(path.Dir(d))
	}
}

// destOf is where the copy has the mount's path p.
func (c *keptCopy) destOf(p string) (string, bool) {
	if c == nil {
		return "", false
	}
	d, ok := c.dests[p]
	return d, ok
}

// reopen opens one of c's names that still holds it.
func (k *keeper) reopen(c *keptCopy) (int, error) {
	for _, d := range c.dests {
		fd, err := k.dir.Reopen(d, c.id)
		if err != nil || fd >= 0 {
			return fd, err
		}
	}
	return -1, nil
}

// removeMadeDirs removes rel and the directories above it that this mount
// made, while they are empty.
func (k *keeper) removeMadeDirs(rel string) {
	for rel != "." && rel != "" && k.madeDir(rel) {
		if !k.dir.RemoveDir(rel) {
			return
		}
		k.mu.Lock()
		delete(k.made, rel)
		k.mu.Unlock()
		rel = path.Dir(rel)
	}
}

func (k *keeper) madeDir(rel string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.made[rel]
	return ok
}

// syncMadeDirs gives the directories this mount made in the keep dir the
// modes (and, as root, owners) their counterparts in the mount have now:
// they were made with the modes of the moment, and a directory's chmod
// is not mirrored as it happens. Each is changed with the rights of the
// user who made it.
func (k *keeper) syncMadeDirs() {
	k.mu.Lock()
	made := maps.Clone(k.made)
	k.mu.Unlock()
	for rel, uid := range made {
		spec, ok := k.root.dirSpecIfPresent(rel)
		if !ok {
			continue
		}
		spec.Chown = uid == 0 && unix.Geteuid() == 0
		id := k.users.Identity(uid, 0, false)
		err := keepdir.RunAs(id, func() error { return k.dir.SetDirMode(rel, spec) })
		if err != nil {
			k.root.log.Printf("keep: mode of %q in keep dir: %v", rel, err)
		}
	}
}

// finish records what a job did in the file and the events log.
func (k *keeper) finish(j *keepJob) {
	f := j.f
	if j.attrs.Xattrs != nil {
		// The copy read the backing file, which may have moved its
		// atime; a file passthrough handles use takes its times from
		// there. (As the daemon: the backing file is its own.)
		f.copyTimesToBacking()
	}
	f.mu.Lock()
	switch {
	case j.dests == nil:
		// Not placed (its snapshot failed): the last good copy stays.
	case len(j.dests) > 0:
		f.keep.copy = &keptCopy{id: j.newID, owner: j.id.UID, dests: j.dests}
	default:
		f.keep.copy = nil
	}
	if j.failed {
		f.keep.dirty, f.keep.failed = true, true
	} else if j.newVersion {
		f.keep.failed = false
	}
	f.mu.Unlock()
	for _, p := range j.placed {
		k.root.events.kept(f, p, path.Join(k.dir.Path(), j.dests[p]))
	}
	for _, d := range j.removed {
		k.root.events.unkept(f, path.Join(k.dir.Path(), d))
	}
}

// settle makes sure no save of f is due or being copied, taking a due
// snapshot in the calling request: what follows may change the file.
func (k *keeper) settle(f *File) {
	for {
		f.mu.Lock()
		busy, due := f.keep.busy, f.keep.due
		f.mu.Unlock()
		switch {
		case busy != nil:
			<-busy
		case due:
			if !k.snapshotNow(f) {
				// A setattr under way holds snapshots back for the
				// moment it takes: look again shortly.
				time.Sleep(time.Millisecond)
			}
		default:
			return
		}
	}
}

// snapshotNow takes f's due snapshot in the calling request, as its owner,
// and leaves it for the worker to place. It reports whether it did.
func (k *keeper) snapshotNow(f *File) bool {
	id := k.identityOf(f)
	var j *keepJob
	err := keepdir.RunAs(id, func() error {
		if j = k.prepare(f, id, false); j != nil {
			k.snapshot(j)
		}
		return nil
	})
	if err != nil {
		k.root.log.Printf("keep: cannot act as %v: %v", id, err)
	}
	if j == nil {
		return false
	}
	f.copyTimesToBacking() // see finish
	f.mu.Lock()
	if j.snap != nil {
		if old := f.keep.snap; old != nil {
			old.temp.Close()
		}
		f.keep.snap = j.snap
	}
	if j.failed {
		f.keep.dirty, f.keep.failed = true, true
	}
	f.mu.Unlock()
	k.enqueue(f)
	return true
}

// openedForWrite counts h as a handle that can write f. A save of f that
// is due is taken first: it is of the file as its last writer left it.
func (f *File) openedForWrite(h *handle, uid, gid uint32) {
	h.writable = true
	k := f.root.keeper
	if k == nil {
		return
	}
	f.mu.Lock()
	f.keep.writers++
	if uid == f.uid {
		f.keep.ownerGID, f.keep.ownerSeen = gid, &uid
	}
	pending := f.keep.due || f.keep.busy != nil
	isKeep := f.life.Policy() == policy.Keep
	f.mu.Unlock()
	if pending {
		k.settle(f)
	}
	if isKeep {
		k.holdBack()
	}
	f.mu.Lock()
	f.keep.dirty = true
	f.mu.Unlock()
}

// writerClosedLocked counts a released handle that could write f; the
// last one makes a changed keep file due. f.mu must be held.
func (f *File) writerClosedLocked(h *handle) {
	if !h.writable || f.root.keeper == nil {
		return
	}
	f.keep.writers--
	f.keepDueIfIdleLocked()
}

// keepDueIfIdleLocked makes the file due, and queues it, if it is a
// changed keep file that no handle can write. f.mu must be held.
func (f *File) keepDueIfIdleLocked() {
	if f.keep.writers > 0 || !f.keep.dirty || f.life.Policy() != policy.Keep || f.life.Gone() {
		return
	}
	f.setDueLocked(true)
	f.root.keeper.enqueue(f)
}

// setDueLocked makes the file due or not, and keeps the keeper's count of
// the data due. f.mu must be held.
func (f *File) setDueLocked(due bool) {
	if due == f.keep.due {
		return
	}
	f.keep.due = due
	k := f.root.keeper
	if due {
		f.keep.dueBytes = 0
		if st, err := f.data.Stat(); err == nil {
			f.keep.dueBytes = min(st.Blocks*512, st.Size)
		}
		k.backlog(1, f.keep.dueBytes)
	} else {
		k.backlog(-1, -f.keep.dueBytes)
	}
}

// keepBeforeChange precedes a setattr or setxattr of f: a due save is
// taken first, and no snapshot starts until keepAfterChange.
func (f *File) keepBeforeChange() {
	k := f.root.keeper
	if k == nil {
		return
	}
	for {
		f.mu.Lock()
		if f.keep.busy == nil && !f.keep.due {
			f.keep.changing++
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		k.settle(f)
	}
}

// keepAfterChange follows the change (changed: it was made): a keep file
// no handle can write is due now, as if closed.
func (f *File) keepAfterChange(changed bool) {
	k := f.root.keeper
	if k == nil {
		return
	}
	f.mu.Lock()
	f.keep.changing--
	if changed {
		f.keep.dirty = true
		f.keepDueIfIdleLocked()
	}
	if f.keep.due {
		k.enqueue(f) // one held back while the change was under way
	}
	f.mu.Unlock()
}

// keepMade follows the making of a file no handle has open (mknod): a keep
// file is saved, empty.
func (f *File) keepMade() {
	if f.root.keeper == nil {
		return
	}
	f.mu.Lock()
	f.keepDueIfIdleLocked()
	f.mu.Unlock()
}

// keepPolicyChangedLocked follows a change of the file's policy from old:
// a file that became keep is saved (now, if no handle can write it), one
// that stopped being keep leaves the keep dir. f.mu must be held.
func (f *File) keepPolicyChangedLocked(old policy.Policy) {
	k := f.root.keeper
	now := f.life.Policy()
	if k == nil || old == now || (old != policy.Keep && now != policy.Keep) {
		return
	}
	if now == policy.Keep {
		f.keep.dirty = true
		f.keepDueIfIdleLocked()
	}
	k.enqueue(f) // and one that stopped being keep leaves the keep dir
}

// keepNamesChanged follows a change of the file's names (link, unlink,
// rename, its deletion): the keep dir follows if it holds the file.
func (f *File) keepNamesChanged() {
	k := f.root.keeper
	if k == nil {
		return
	}
	f.mu.Lock()
	// A keep file's save may be under way with its old names: it is
	// looked at again after.
	tracked := f.keep.copy != nil || f.keep.snap != nil || f.life.Policy() == policy.Keep
	f.mu.Unlock()
	if tracked {
		k.enqueue(f)
	}
}

// keepNamesBelowChangedLocked follows a rename of d: the paths of every
// file below it changed. root.tree must be held.
func (d *Dir) keepNamesBelowChangedLocked() {
	if d.root.keeper != nil {
		d.eachFileBelowLocked((*File).keepNamesChanged)
	}
}

// dirSpecForKeep is how to make the keep dir's counterpart of the mount's
// directory at rel: its mode and owner (0755 and the daemon's user if it
// is gone).
func (r *Root) dirSpecForKeep(rel string) keepdir.DirSpec {
	if spec, ok := r.dirSpecIfPresent(rel); ok {
		return spec
	}
	return keepdir.DirSpec{Mode: 0o755, UID: uint32(unix.Geteuid()), GID: uint32(unix.Getegid())}
}

// dirSpecIfPresent is the mode and owner of the mount's directory at rel,
// if there is one.
func (r *Root) dirSpecIfPresent(rel string) (keepdir.DirSpec, bool) {
	r.tree.RLock()
	defer r.tree.RUnlock()
	d := r.dir
	for _, name := range strings.Split(rel, "/") {
		sub, ok := d.entries.get(name).(*Dir)
		if !ok {
			return keepdir.DirSpec{}, false
		}
		d = sub
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return keepdir.DirSpec{Mode: d.mode & 07777, UID: d.uid, GID: d.gid}, true
}

// Shutdown ends the mount's files once the kernel has let go of the mount:
// keep files not yet saved as they are now are saved (and the keeper's
// queue drained), every other file is deleted (reason unmount), and all
// file data is freed. progress, if not nil, hears how many bytes of keep
// files are copied of about how many, as it goes. It returns how many keep
// files the keep dir holds as they are, and how many it could not save.
func (r *Root) Shutdown(progress func(done, total int64)) (saved, failed int) {
	r.notifier.stop()
	r.filesMu.Lock()
	files := make([]*File, 0, len(r.files))
	for _, f := range r.files {
		files = append(files, f)
	}
	r.filesMu.Unlock()

	kept := make(map[*File]bool)
	if k := r.keeper; k != nil {
		var total int64
		for _, f := range files {
			r.tree.RLock()
			named := len(f.names) > 0
			r.tree.RUnlock()
			f.mu.Lock()
			isKeep := f.life.Policy() == policy.Keep && !f.life.Gone()
			need := named && isKeep && (f.keep.dirty || f.keep.copy == nil || f.keep.snap != nil)
			if need {
				f.keep.dirty = true
				f.setDueLocked(true)
			}
			look := isKeep || f.keep.copy != nil
			f.mu.Unlock()
			if need {
				if st, err := f.data.Stat(); err == nil {
					total += min(st.Blocks*512, st.Size)
				}
			}
			if look {
				k.enqueue(f) // and its names checked
			}
		}
		k.drain(progress, total)
		k.syncMadeDirs()
		k.stop()
		for _, f := range files {
			f.mu.Lock()
			isKeep := f.life.Policy() == policy.Keep && !f.life.Gone()
			ok := f.keep.copy != nil && !f.keep.dirty
			failedSave := f.keep.failed
			f.mu.Unlock()
			switch {
			case ok:
				kept[f] = true
				saved++
			case isKeep && failedSave:
				failed++
			}
		}
	}

	for _, f := range files {
		if !kept[f] {
			reason, path := f.unmountDeletion()
			r.events.deleted(f, path, reason)
			r.deletes[reason].Add(1)
		}
		f.data.Release()
	}
	return saved, failed
}
