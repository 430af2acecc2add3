package fsnode

import "sort"

// dirEntries is a directory's name table, ordered by a cookie that grows
// with each insertion (a rename inserts too). A readdir stream resumes
// after the cookie of the last entry it returned, so an entry that nobody
// touches while a directory is being read is returned exactly once,
// however the directory changes around it: removed entries are skipped,
// and new ones come after every cookie the stream set out to list (see
// dirStream). The cookie is also the d_off the kernel sees, so
// telldir/seekdir work across requests.
//
// All methods need Root.tree: read-locked for get/after/each, write-locked
// for add/remove.
type dirEntries struct {
	byName map[string]*dirent
	order  []*dirent // ascending cookies; removed entries stay until compact
	live   int
	next   uint64 // cookie for the next insertion

	// closed: names the close policy removed that the kernel may still
	// have in its dentry cache (notifier.run drops them once it has told
	// the kernel), with the node each held. See Dir.Unlink.
	closed map[string]inode
}

type dirent struct {
	name   string
	child  inode // nil once removed
	cookie uint64
}

// Cookies 1 and 2 are "." and "..".
const (
	cookieDot    = 1
	cookieDotDot = 2
	firstCookie  = 3
)

func (e *dirEntries) init() {
	e.byName = make(map[string]*dirent)
	e.next = firstCookie
}

func (e *dirEntries) get(name string) inode {
	if d := e.byName[name]; d != nil {
		return d.child
	}
	return nil
}

func (e *dirEntries) len() int { return e.live }

func (e *dirEntries) add(name string, child inode) {
	d := &dirent{name: name, child: child, cookie: e.next}
	e.next++
	e.byName[name] = d
	e.order = append(e.order, d)
	e.live++
	delete(e.closed, name)
}

// remove drops name's entry and returns the child it held, or nil.
func (e *dirEntries) remove(name string) inode {
	d := e.byName[name]
	if d == nil {
		return nil
	}
	child := d.child
	delete(e.byName, name)
	d.child = nil
	e.live--
	if dead := len(e.order) - e.live; dead > 32 && dead > e.live {
		e.compact()
	}
	return child
}

// removeClosed removes name's entry for the close policy, remembering it
// until forgetClosed.
func (e *dirEntries) removeClosed(name string) {
	child := e.remove(name)
	if child == nil {
		return
	}
	if e.closed == nil {
		e.closed = make(map[string]inode)
	}
	e.closed[name] = child
}

// forgetClosed drops what removeClosed remembered of name, if it is still
// child's.
func (e *dirEntries) forgetClosed(name string, child inode) {
	if e.closed[name] == child {
		delete(e.closed, name)
		if len(e.closed) == 0 {
			e.closed = nil
		}
	}
}

// closedChild is the node the close policy removed from name, if the
// kernel may not know yet.
func (e *dirEntries) closedChild(name string) inode { return e.closed[name] }

func (e *dirEntries) compact() {
	kept := make([]*dirent, 0, e.live)
	for _, d := range e.order {
		if d.child != nil {
			kept = append(kept, d)
		}
	}
	e.order = kept
}

// each calls fn for every live entry with a cookie above from and below
// limit, in order, until fn returns false.
func (e *dirEntries) each(from, limit uint64, fn func(*dirent) bool) {
	i := sort.Search(len(e.order), func(i int) bool { return e.order[i].cookie > from })
	for ; i < len(e.order) && e.order[i].cookie < limit; i++ {
		if e.order[i].child != nil && !fn(e.order[i]) {
			return
		}
	}
}

// after returns the first live entry whose cookie is larger than cookie,
// or nil at the end.
func (e *dirEntries) after(cookie uint64) *dirent {
	i := sort.Search(len(e.order), func(i int) bool { return e.order[i].cookie > cookie })
	for ; i < len(e.order); i++ {
		if e.order[i].child != nil {
			return e.order[i]
		}
	}
	return nil
}
