package fsnode

import "sort"

// dirEntries is a directory's name table, ordered by a cookie that grows
// with each insertion. A readdir stream remembers the cookie of the last
// entry it returned and resumes after it, so an entry that nobody touches
// while a directory is being read is returned exactly once, however the
// directory changes around it (new entries get larger cookies and show up
// at the end; removed ones are skipped). The cookie is also the d_off the
// kernel sees, so telldir/seekdir work across requests.
//
// All methods need Root.tree: read-locked for get/after, write-locked for
// add/remove.
type dirEntries struct {
	byName map[string]*dirent
	order  []*dirent // ascending cookies; removed entries stay until compact
	live   int
	next   uint64 // cookie for the next insertion
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

func (e *dirEntries) compact() {
	kept := make([]*dirent, 0, e.live)
	for _, d := range e.order {
		if d.child != nil {
			kept = append(kept, d)
		}
	}
	e.order = kept
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
