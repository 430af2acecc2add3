package policy

import "fmt"

// Action is what the filesystem must do after an event on a file.
type Action uint8

const (
	// Nothing: the file lives on.
	Nothing Action = iota
	// Free: the file has neither a name nor an open handle left; free its
	// data.
	Free
	// RemoveNames: a close-policy file's last handle is gone; remove every
	// name it has (then report NamesRemoved: the data goes once the
	// kernel holds no reference to the file, as an unlinked file's does).
	RemoveNames
)

func (a Action) String() string {
	switch a {
	case Free:
		return "free"
	case RemoveNames:
		return "remove-names"
	}
	return "nothing"
}

// Reason says why a file was deleted, for the events log.
type Reason uint8

const (
	ByUnlink  Reason = iota // its last name was removed and no handle was left
	ByClose                 // close policy: its last handle was released
	ByUnmount               // the mount ended
)

func (r Reason) String() string {
	switch r {
	case ByClose:
		return "close"
	case ByUnmount:
		return "unmount"
	}
	return "unlink"
}

// Entry is one regular file's lifecycle: its policy, where that came from,
// its open handles (every FUSE open and create counts; the kernel keeps a
// handle open for as long as a mapping of it exists), and whether it is
// gone. The link count and whether the kernel holds a reference to the
// file (its lookup count is not zero) are the filesystem's; they are
// passed in. Until the kernel holds none, a file without names or
// handles keeps its data: the kernel may still open it, as an open racing
// with an unlink or a rename over it does, and tmpfs lets that open
// succeed. An Entry is not safe for concurrent use: the filesystem guards
// it with the file's lock.
type Entry struct {
	own       Policy // the file's own user.tmpmount.delete, or Unset
	inherited Policy // from the nearest ancestor directory when made, or Unset
	policy    Policy
	source    Source
	opens     int
	gone      bool
	// closed: the close policy took the file's names; it is deleted by
	// close, though its data goes only once the kernel has forgotten it.
	closed bool
}

// NewEntry starts the lifecycle of a file made at path, having inherited
// the given setting from its directories.
func NewEntry(r *Resolver, path string, inherited Policy) Entry {
	e := Entry{inherited: inherited}
	e.policy, e.source = r.Resolve(Unset, path, inherited)
	return e
}

// Policy is the file's policy now.
func (e *Entry) Policy() Policy { return e.policy }

// Source is where the policy came from.
func (e *Entry) Source() Source { return e.source }

// Own is the file's own setting, or Unset.
func (e *Entry) Own() Policy { return e.own }

// Opens is the number of open handles.
func (e *Entry) Opens() int { return e.opens }

// Gone reports whether the file's data has been deleted.
func (e *Entry) Gone() bool { return e.gone }

// ClosedByPolicy reports whether the close policy took the file's names
// (since when it may have got a name again).
func (e *Entry) ClosedByPolicy() bool { return e.closed }

// SetOwn sets (or with Unset, clears) the file's own setting and resolves
// the policy again at path.
func (e *Entry) SetOwn(r *Resolver, own Policy, path string) {
	e.own = own
	e.Reresolve(r, path)
}

// Reresolve picks the policy again for the path the file has now: rules
// are checked at creation and again when a rename moves the file.
func (e *Entry) Reresolve(r *Resolver, path string) {
	e.policy, e.source = r.Resolve(e.own, path, e.inherited)
}

// Open counts a new handle. A deleted file cannot be opened again.
func (e *Entry) Open() error {
	if e.gone {
		return ErrGone
	}
	e.opens++
	return nil
}

// Close counts a released handle; links is the file's link count, and
// referenced whether the kernel holds a reference to it.
func (e *Entry) Close(links int, referenced bool) (Action, Reason, error) {
	if e.opens <= 0 {
		return Nothing, 0, fmt.Errorf("policy: close of a file with %d open handles", e.opens)
	}
	e.opens--
	if e.opens > 0 || e.gone {
		return Nothing, 0, nil
	}
	switch {
	case links == 0 && referenced:
		return Nothing, 0, nil // Forgotten frees it
	case links == 0:
		e.gone = true
		return Free, e.deleteReason(), nil
	case e.policy == Close:
		// The names go now; the data stays until the kernel forgets the
		// file (NamesRemoved, Forgotten), so that an open that looked the name up just before
		// (it races with the close that came first) opens it, as an open
		// racing with an unlink does, instead of failing with ESTALE.
		e.closed = true
		return RemoveNames, ByClose, nil
	}
	return Nothing, 0, nil
}

// NamesRemoved records that the filesystem removed every name of a file
// after RemoveNames; referenced says whether the kernel holds a reference
// to it.
func (e *Entry) NamesRemoved(referenced bool) (Action, Reason) {
	return e.freeIfUnused(0, referenced)
}

// deleteReason is why a file with no name left is deleted.
func (e *Entry) deleteReason() Reason {
	if e.closed {
		return ByClose
	}
	return ByUnlink
}

// Unlinked records that a name was removed; links is the count left, and
// referenced whether the kernel holds a reference to the file.
func (e *Entry) Unlinked(links int, referenced bool) (Action, Reason) {
	return e.freeIfUnused(links, referenced)
}

// Forgotten records that the kernel dropped references to the file (its
// FORGET); links is its link count, and referenced whether the kernel
// holds any still (a lookup may have handed it a new one meanwhile).
func (e *Entry) Forgotten(links int, referenced bool) (Action, Reason) {
	return e.freeIfUnused(links, referenced)
}

// AwaitingForget reports whether only the kernel's reference keeps the
// file: it has no name (links is 0) and no handle, is not yet freed, and
// the kernel holds a reference (referenced).
func (e *Entry) AwaitingForget(links int, referenced bool) bool {
	return links == 0 && e.opens == 0 && !e.gone && referenced
}

// freeIfUnused frees a file that has no name, no handle and no kernel
// reference left.
func (e *Entry) freeIfUnused(links int, referenced bool) (Action, Reason) {
	if links > 0 || e.opens > 0 || e.gone || referenced {
		return Nothing, 0
	}
	e.gone = true
	return Free, e.deleteReason()
}

// CanLink reports whether the file may get another name: not once deleted
// (an O_TMPFILE file, which has no name yet, can while it is open).
func (e *Entry) CanLink() bool { return !e.gone }
