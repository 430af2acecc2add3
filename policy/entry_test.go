package policy

import (
	"errors"
	"fmt"
	"testing"
)

type stepOp int

const (
	opOpen         stepOp = iota // Entry.Open
	opClose                      // Entry.Close(links, referenced)
	opUnlink                     // Entry.Unlinked(links, referenced)
	opSetOwn                     // Entry.SetOwn(resolver, own, path)
	opReresolve                  // Entry.Reresolve(resolver, path)
	opForget                     // one reference less, then Entry.Forgotten(links, referenced)
	opLookedUp                   // one reference more (the filesystem counts them)
	opNamesRemoved               // Entry.NamesRemoved(referenced)
)

// errAny stands for "some error" in a step's wantErr.
var errAny = errors.New("any error")

// step is one event on an Entry and the state expected after it.
type step struct {
	op    stepOp
	links int    // for close and unlink: the link count passed in
	own   Policy // for set-own
	path  string // for set-own and reresolve

	wantAction Action
	wantReason Reason // checked only when wantAction is not Nothing
	wantErr    error  // nil, ErrGone, or errAny
	wantOpens  int
	wantGone   bool
	wantPolicy Policy // Unset: not checked
	wantSource Source // checked only when wantPolicy is set
}

func (s step) String() string {
	switch s.op {
	case opOpen:
		return "open"
	case opClose:
		return fmt.Sprintf("close(links=%d)", s.links)
	case opUnlink:
		return fmt.Sprintf("unlink(links=%d)", s.links)
	case opSetOwn:
		return fmt.Sprintf("set-own(%v, %q)", s.own, s.path)
	case opReresolve:
		return fmt.Sprintf("reresolve(%q)", s.path)
	case opForget:
		return fmt.Sprintf("forget(links=%d)", s.links)
	case opLookedUp:
		return "looked-up"
	case opNamesRemoved:
		return "names-removed"
	}
	return "?"
}

func TestEntryLifecycle(t *testing.T) {
	tests := []struct {
		name      string
		rules     []string
		def       Policy
		path      string // the path the file is made at; "" for O_TMPFILE
		inherited Policy

		wantPolicy Policy
		wantSource Source
		steps      []step
	}{
		{
			name: "reopen while open, unmount policy",
			def:  Unmount, path: "a",
			wantPolicy: Unmount, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opOpen, wantOpens: 2},
				{op: opClose, links: 1, wantOpens: 1},
				{op: opOpen, wantOpens: 2},
				{op: opClose, links: 1, wantOpens: 1},
				{op: opClose, links: 1, wantOpens: 0},
				{op: opOpen, wantOpens: 1},
				{op: opClose, links: 1, wantOpens: 0},
			},
		},
		{
			name: "reopen while open postpones the close policy",
			def:  Close, path: "a",
			wantPolicy: Close, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opOpen, wantOpens: 2},
				{op: opClose, links: 1, wantOpens: 1},
				{op: opOpen, wantOpens: 2},
				{op: opClose, links: 1, wantOpens: 1},
				{op: opClose, links: 1, wantOpens: 0, wantAction: RemoveNames, wantReason: ByClose},
				{op: opNamesRemoved},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByClose, wantGone: true},
			},
		},
		{
			// The open looked the name up before the last close removed
			// it: it gets the old file, which goes with its own close.
			name: "an open racing with the close policy's removal opens the old file",
			def:  Close, path: "a",
			wantPolicy: Close, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opClose, links: 1, wantAction: RemoveNames, wantReason: ByClose},
				{op: opOpen, wantOpens: 1},
				{op: opNamesRemoved, wantOpens: 1},
				{op: opClose, links: 0},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByClose, wantGone: true},
			},
		},
		{
			name: "close policy: forgotten before the names went, freed when they go",
			def:  Close, path: "a",
			wantPolicy: Close, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opClose, links: 1, wantAction: RemoveNames, wantReason: ByClose},
				{op: opForget, links: 1},
				{op: opNamesRemoved, wantAction: Free, wantReason: ByClose, wantGone: true},
			},
		},
		{
			// A LOOKUP answered while the kernel's FORGET of the file's
			// first reference was on its way: the kernel holds the new
			// one, and may open the file by it after its names went.
			name: "a lookup racing with a forget keeps the file until the next forget",
			def:  Close, path: "a",
			wantPolicy: Close, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opLookedUp, wantOpens: 1},
				{op: opForget, links: 1, wantOpens: 1},
				{op: opClose, links: 1, wantAction: RemoveNames, wantReason: ByClose},
				{op: opNamesRemoved},
				{op: opOpen, wantOpens: 1},
				{op: opClose, links: 0},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByClose, wantGone: true},
			},
		},
		{
			name: "unlink while open frees at the forget after the last close",
			def:  Unmount, path: "a",
			wantPolicy: Unmount, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opOpen, wantOpens: 2},
				{op: opUnlink, links: 0, wantOpens: 2},
				{op: opClose, links: 0, wantOpens: 1},
				{op: opClose, links: 0, wantOpens: 0},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByUnlink, wantGone: true},
			},
		},
		{
			name: "unlink with no handle frees at the kernel's forget",
			def:  Unmount, path: "a",
			wantPolicy: Unmount, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opClose, links: 1, wantOpens: 0},
				{op: opUnlink, links: 0},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByUnlink, wantGone: true},
			},
		},
		{
			// The kernel can evict a named file's inode and look it up
			// again; only a forget after the last name counts.
			name: "forgotten while named, looked up again, unlinked: freed at the next forget",
			def:  Unmount, path: "a",
			wantPolicy: Unmount, wantSource: FromDefault,
			steps: []step{
				{op: opForget, links: 1},
				{op: opLookedUp},
				{op: opUnlink, links: 0},
				{op: opOpen, wantOpens: 1}, // an open that raced with the unlink
				{op: opClose, links: 0},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByUnlink, wantGone: true},
			},
		},
		{
			name: "forgotten while named and never looked up again: the unlink frees",
			def:  Unmount, path: "a",
			wantPolicy: Unmount, wantSource: FromDefault,
			steps: []step{
				{op: opForget, links: 1},
				{op: opUnlink, links: 0, wantAction: Free, wantReason: ByUnlink, wantGone: true},
				{op: opForget, links: 0, wantGone: true},
			},
		},
		{
			name:  "close policy with two handles removes names only at the second close",
			rules: []string{"*.tmp=close"}, def: Unmount, path: "a.tmp",
			wantPolicy: Close, wantSource: FromRule,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opOpen, wantOpens: 2},
				{op: opClose, links: 1, wantOpens: 1},
				{op: opClose, links: 1, wantOpens: 0, wantAction: RemoveNames, wantReason: ByClose},
				// The filesystem now removes the name; the kernel forgets.
				{op: opNamesRemoved},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByClose, wantGone: true},
			},
		},
		{
			name: "close policy unlinked while open frees by unlink",
			def:  Close, path: "a",
			wantPolicy: Close, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opOpen, wantOpens: 2},
				{op: opUnlink, links: 0, wantOpens: 2},
				{op: opClose, links: 0, wantOpens: 1},
				{op: opClose, links: 0, wantOpens: 0},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByUnlink, wantGone: true},
			},
		},
		{
			name: "close policy never opened, unlinked",
			def:  Close, path: "a",
			wantPolicy: Close, wantSource: FromDefault,
			steps: []step{
				{op: opUnlink, links: 0},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByUnlink, wantGone: true},
			},
		},
		{
			name: "hard links: unlink one of two names does nothing",
			def:  Unmount, path: "a",
			wantPolicy: Unmount, wantSource: FromDefault,
			steps: []step{
				{op: opUnlink, links: 1},
				{op: opOpen, wantOpens: 1},
				{op: opClose, links: 1},
				{op: opUnlink, links: 0},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByUnlink, wantGone: true},
			},
		},
		{
			name: "hard links with close policy: last close removes every name",
			def:  Close, path: "a",
			wantPolicy: Close, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opUnlink, links: 2, wantOpens: 1},
				{op: opClose, links: 2, wantAction: RemoveNames, wantReason: ByClose},
				// The filesystem removes both names.
				{op: opNamesRemoved},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByClose, wantGone: true},
			},
		},
		{
			name:  "rename of an open close-policy file into an unmount rule",
			rules: []string{"*.tmp=close", "done/**=unmount"}, def: Close, path: "a.tmp",
			wantPolicy: Close, wantSource: FromRule,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opReresolve, path: "done/a.tmp", wantOpens: 1, wantPolicy: Unmount, wantSource: FromRule},
				{op: opClose, links: 1, wantOpens: 0},
			},
		},
		{
			name:  "rename of an open unmount file into a close rule",
			rules: []string{"trash/**=close"}, def: Unmount, path: "a",
			wantPolicy: Unmount, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opReresolve, path: "trash/a", wantOpens: 1, wantPolicy: Close, wantSource: FromRule},
				{op: opClose, links: 1, wantAction: RemoveNames, wantReason: ByClose},
			},
		},
		{
			name:  "rename out of a rule falls back to the inherited setting",
			rules: []string{"d/*.tmp=close"}, def: Unmount, path: "d/a.tmp", inherited: Keep,
			wantPolicy: Close, wantSource: FromRule,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opReresolve, path: "d/x/a.tmp", wantOpens: 1, wantPolicy: Keep, wantSource: FromInherited},
				{op: opClose, links: 1},
			},
		},
		{
			name: "keep never acts at close",
			def:  Keep, path: "a",
			wantPolicy: Keep, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opClose, links: 1},
				{op: opOpen, wantOpens: 1},
				{op: opOpen, wantOpens: 2},
				{op: opClose, links: 3, wantOpens: 1},
				{op: opClose, links: 3},
			},
		},
		{
			name: "unmount never acts at close",
			def:  Unmount, path: "a",
			wantPolicy: Unmount, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opClose, links: 1},
				{op: opOpen, wantOpens: 1},
				{op: opClose, links: 2},
			},
		},
		{
			name: "keep unlinked while open frees by unlink",
			def:  Keep, path: "a",
			wantPolicy: Keep, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opUnlink, links: 0, wantOpens: 1},
				{op: opClose, links: 0},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByUnlink, wantGone: true},
			},
		},
		{
			name: "open after unlink gone gives ErrGone",
			def:  Unmount, path: "a",
			wantPolicy: Unmount, wantSource: FromDefault,
			steps: []step{
				{op: opUnlink, links: 0},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByUnlink, wantGone: true},
				{op: opOpen, wantErr: ErrGone, wantGone: true},
				{op: opOpen, wantErr: ErrGone, wantGone: true},
			},
		},
		{
			name: "open after the close policy's deletion gives ErrGone",
			def:  Close, path: "a",
			wantPolicy: Close, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opClose, links: 1, wantAction: RemoveNames, wantReason: ByClose},
				{op: opNamesRemoved},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByClose, wantGone: true},
				{op: opOpen, wantErr: ErrGone, wantGone: true},
			},
		},
		{
			name: "close with no open handle is an error and changes nothing",
			def:  Close, path: "a",
			wantPolicy: Close, wantSource: FromDefault,
			steps: []step{
				{op: opClose, links: 1, wantErr: errAny},
				{op: opClose, links: 0, wantErr: errAny},
				// Still alive and counting from zero.
				{op: opOpen, wantOpens: 1},
				{op: opClose, links: 1, wantAction: RemoveNames, wantReason: ByClose},
				{op: opClose, links: 0, wantErr: errAny},
			},
		},
		{
			name: "extra close after the last close is an error",
			def:  Unmount, path: "a",
			wantPolicy: Unmount, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opClose, links: 1},
				{op: opClose, links: 1, wantErr: errAny},
				{op: opUnlink, links: 0},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByUnlink, wantGone: true},
				{op: opClose, links: 0, wantErr: errAny, wantGone: true},
			},
		},
		{
			name:  "O_TMPFILE file gets its first name later",
			rules: []string{"**=close"}, def: Unmount, path: "",
			// A file without a name matches no rule, not even "**".
			wantPolicy: Unmount, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opReresolve, path: "a", wantOpens: 1, wantPolicy: Close, wantSource: FromRule},
				{op: opClose, links: 1, wantAction: RemoveNames, wantReason: ByClose},
			},
		},
		{
			name:  "O_TMPFILE file inherits until named",
			rules: []string{"**/*.log=close"}, def: Unmount, path: "", inherited: Keep,
			wantPolicy: Keep, wantSource: FromInherited,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opReresolve, path: "d/out.log", wantOpens: 1, wantPolicy: Close, wantSource: FromRule},
				{op: opReresolve, path: "d/out.txt", wantOpens: 1, wantPolicy: Keep, wantSource: FromInherited},
				{op: opClose, links: 1},
			},
		},
		{
			name:  "O_TMPFILE file never named is freed at close",
			rules: []string{"**=keep"}, def: Unmount, path: "",
			wantPolicy: Unmount, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opClose, links: 0},
				{op: opForget, links: 0, wantAction: Free, wantReason: ByUnlink, wantGone: true},
				{op: opOpen, wantErr: ErrGone, wantGone: true},
			},
		},
		{
			name:  "own xattr keep overrides a close rule",
			rules: []string{"*.tmp=close"}, def: Unmount, path: "a.tmp",
			wantPolicy: Close, wantSource: FromRule,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opSetOwn, own: Keep, path: "a.tmp", wantOpens: 1, wantPolicy: Keep, wantSource: FromXattr},
				{op: opClose, links: 1},
			},
		},
		{
			name:  "own xattr survives a rename into another rule",
			rules: []string{"*.tmp=keep", "x/**=unmount"}, def: Unmount, path: "a.tmp",
			wantPolicy: Keep, wantSource: FromRule,
			steps: []step{
				{op: opSetOwn, own: Close, path: "a.tmp", wantPolicy: Close, wantSource: FromXattr},
				{op: opOpen, wantOpens: 1},
				{op: opReresolve, path: "x/a.tmp", wantOpens: 1, wantPolicy: Close, wantSource: FromXattr},
				{op: opClose, links: 1, wantAction: RemoveNames, wantReason: ByClose},
			},
		},
		{
			name:  "clearing the own xattr goes back to the rule",
			rules: []string{"*.tmp=close"}, def: Unmount, path: "a.tmp",
			wantPolicy: Close, wantSource: FromRule,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opSetOwn, own: Unmount, path: "a.tmp", wantOpens: 1, wantPolicy: Unmount, wantSource: FromXattr},
				{op: opSetOwn, own: Unset, path: "a.tmp", wantOpens: 1, wantPolicy: Close, wantSource: FromRule},
				{op: opClose, links: 1, wantAction: RemoveNames, wantReason: ByClose},
			},
		},
		{
			name: "own close xattr on a nameless file",
			def:  Unmount, path: "",
			wantPolicy: Unmount, wantSource: FromDefault,
			steps: []step{
				{op: opOpen, wantOpens: 1},
				{op: opSetOwn, own: Close, path: "", wantOpens: 1, wantPolicy: Close, wantSource: FromXattr},
				{op: opReresolve, path: "a", wantOpens: 1, wantPolicy: Close, wantSource: FromXattr},
				{op: opClose, links: 1, wantAction: RemoveNames, wantReason: ByClose},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Resolver{Rules: rules(t, tt.rules...), Default: tt.def}
			e := NewEntry(r, tt.path, tt.inherited)
			if e.Policy() != tt.wantPolicy || e.Source() != tt.wantSource {
				t.Fatalf("NewEntry(path=%q, inherited=%v): got %v from %v, want %v from %v",
					tt.path, tt.inherited, e.Policy(), e.Source(), tt.wantPolicy, tt.wantSource)
			}
			if e.Opens() != 0 || e.Gone() || !e.CanLink() || e.Own() != Unset {
				t.Fatalf("NewEntry: got opens=%d gone=%v canLink=%v own=%v, want 0, false, true, unset",
					e.Opens(), e.Gone(), e.CanLink(), e.Own())
			}
			refs := 1 // the create's reply handed the kernel one
			for i, s := range tt.steps {
				var (
					action Action
					reason Reason
					err    error
				)
				switch s.op {
				case opOpen:
					err = e.Open()
				case opClose:
					action, reason, err = e.Close(s.links, refs > 0)
				case opUnlink:
					action, reason = e.Unlinked(s.links, refs > 0)
				case opSetOwn:
					e.SetOwn(r, s.own, s.path)
				case opReresolve:
					e.Reresolve(r, s.path)
				case opForget:
					refs--
					action, reason = e.Forgotten(s.links, refs > 0)
				case opLookedUp:
					refs++
				case opNamesRemoved:
					action, reason = e.NamesRemoved(refs > 0)
				default:
					t.Fatalf("step %d: unknown op %d", i, s.op)
				}
				where := fmt.Sprintf("step %d %v", i, s)

				switch {
				case s.wantErr == nil && err != nil:
					t.Errorf("%s: got error %v, want none", where, err)
				case s.wantErr == errAny && err == nil:
					t.Errorf("%s: got no error, want one", where)
				case s.wantErr != nil && s.wantErr != errAny && !errors.Is(err, s.wantErr):
					t.Errorf("%s: got error %v, want %v", where, err, s.wantErr)
				}
				if action != s.wantAction {
					t.Errorf("%s: got action %v, want %v", where, action, s.wantAction)
				} else if action != Nothing && reason != s.wantReason {
					t.Errorf("%s: got %v for reason %v, want reason %v", where, action, reason, s.wantReason)
				}
				if got := e.Opens(); got != s.wantOpens {
					t.Errorf("%s: got %d open handles, want %d", where, got, s.wantOpens)
				}
				if got := e.Gone(); got != s.wantGone {
					t.Errorf("%s: got gone=%v, want %v", where, got, s.wantGone)
				}
				if got := e.CanLink(); got != !s.wantGone {
					t.Errorf("%s: got CanLink()=%v, want %v (gone=%v)", where, got, !s.wantGone, s.wantGone)
				}
				if s.wantPolicy != Unset && (e.Policy() != s.wantPolicy || e.Source() != s.wantSource) {
					t.Errorf("%s: got policy %v from %v, want %v from %v", where, e.Policy(), e.Source(), s.wantPolicy, s.wantSource)
				}
				if s.op == opSetOwn && e.Own() != s.own {
					t.Errorf("%s: got Own()=%v, want %v", where, e.Own(), s.own)
				}
			}
		})
	}
}

// TestEntryCloseErrorKeepsState: a close with no open handle reports an
// error, acts on nothing, and leaves every observable field as it was.
func TestEntryCloseErrorKeepsState(t *testing.T) {
	for _, p := range []Policy{Close, Unmount, Keep} {
		for _, links := range []int{0, 1, 2} {
			t.Run(fmt.Sprintf("%v/links=%d", p, links), func(t *testing.T) {
				r := &Resolver{Default: p}
				e := NewEntry(r, "a", Unset)
				before := e
				action, _, err := e.Close(links, true)
				if err == nil {
					t.Errorf("Close(%d) with no open handle: got no error, want one", links)
				}
				if action != Nothing {
					t.Errorf("Close(%d) with no open handle: got action %v, want nothing", links, action)
				}
				if e != before {
					t.Errorf("Close(%d) with no open handle changed the entry: got %+v, want %+v", links, e, before)
				}
			})
		}
	}
}

// TestEntryFreedOnce: whatever the order of the last unlink and the last
// close, followed by the kernel's forget, the data is freed exactly once
// (and a close-policy file's names removed at most once before).
func TestEntryFreedOnce(t *testing.T) {
	for _, p := range []Policy{Close, Unmount, Keep} {
		for _, opens := range []int{0, 1, 3} {
			for _, unlinkAfter := range []int{0, 1, 2, 3} { // closes done before the unlink
				if unlinkAfter > opens {
					continue
				}
				name := fmt.Sprintf("%v/opens=%d/unlink-after-%d-closes", p, opens, unlinkAfter)
				t.Run(name, func(t *testing.T) {
					r := &Resolver{Default: p}
					e := NewEntry(r, "a", Unset)
					for i := 0; i < opens; i++ {
						if err := e.Open(); err != nil {
							t.Fatalf("open %d: %v", i, err)
						}
					}
					links := 1
					deletions, removals := 0, 0
					var count func(what string, a Action)
					count = func(what string, a Action) {
						switch a {
						case Free:
							deletions++
							if deletions > 1 {
								t.Errorf("%s: got a second deletion (%v)", what, a)
							}
						case RemoveNames:
							removals++
							if removals > 1 || deletions > 0 {
								t.Errorf("%s: got names removed again, or after the data went", what)
							}
							links = 0
							a, _ := e.NamesRemoved(true)
							count(what+", names removed", a)
						}
					}
					for i := 0; i < opens; i++ {
						if i == unlinkAfter {
							links = 0
							a, _ := e.Unlinked(links, true)
							count("unlink", a)
						}
						a, _, err := e.Close(links, true)
						if err != nil {
							t.Fatalf("close %d: %v", i, err)
						}
						count(fmt.Sprintf("close %d", i), a)
					}
					if links == 1 {
						a, _ := e.Unlinked(0, true)
						count("unlink after the closes", a)
					}
					a, _ := e.Forgotten(0, false)
					count("forget", a)
					if deletions != 1 {
						t.Errorf("got %d deletions, want 1", deletions)
					}
					if !e.Gone() || e.CanLink() {
						t.Errorf("at the end: got gone=%v canLink=%v, want true, false", e.Gone(), e.CanLink())
					}
				})
			}
		}
	}
}

// TestEntryAwaitingForget: only a file with no name, no handle and no
// deletion yet waits for the kernel's forget, and stops at it.
func TestEntryAwaitingForget(t *testing.T) {
	r := &Resolver{Default: Unmount}
	e := NewEntry(r, "a", Unset)
	check := func(what string, links int, want bool) {
		t.Helper()
		if got := e.AwaitingForget(links, true); got != want {
			t.Errorf("%s: AwaitingForget(%d) = %v, want %v", what, links, got, want)
		}
	}
	check("named", 1, false)
	if err := e.Open(); err != nil {
		t.Fatal(err)
	}
	e.Unlinked(0, true)
	check("unlinked while open", 0, false)
	if a, _, _ := e.Close(0, true); a != Nothing {
		t.Fatalf("last close before the forget: action %v, want nothing", a)
	}
	check("unlinked and closed", 0, true)
	if a, _ := e.Forgotten(0, true); a != Nothing {
		t.Fatalf("forget of one of two references: action %v, want nothing", a)
	}
	check("one reference left", 0, true)
	if a, _ := e.Forgotten(0, false); a != Free {
		t.Fatalf("forget: action %v, want free", a)
	}
	check("freed", 0, false)
	if e.AwaitingForget(0, false) {
		t.Errorf("no reference left: AwaitingForget(0, false) = true, want false")
	}
}
