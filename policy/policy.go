// Package policy decides when tmpmount deletes a file: Python's
// NamedTemporaryFile(delete=..., delete_on_close=...) as a filesystem rule.
//
// It holds the three policies, the rules that pick a file's policy (its own
// xattr, --rule globs, the nearest ancestor directory's xattr, --delete),
// and a small state machine per file (Entry) that turns opens, closes and
// unlinks into actions the filesystem carries out. It does no I/O.
package policy

import (
	"errors"
	"fmt"
)

// Policy is when a file is deleted.
type Policy uint8

const (
	// Unset is no policy: a file or directory without its own setting.
	Unset Policy = iota
	// Close deletes the file when its last open handle is released
	// (delete=True, delete_on_close=True): every name goes, and the data.
	Close
	// Unmount deletes the file when the mount ends (delete=True,
	// delete_on_close=False), as tmpfs does with everything.
	Unmount
	// Keep saves the file into the keep directory at a clean unmount
	// (delete=False).
	Keep
)

// Parse reads a policy name: "close", "unmount" or "keep".
func Parse(s string) (Policy, error) {
	switch s {
	case "close":
		return Close, nil
	case "unmount":
		return Unmount, nil
	case "keep":
		return Keep, nil
	}
	return Unset, fmt.Errorf("unknown delete policy %q: use close, unmount or keep", s)
}

func (p Policy) String() string {
	switch p {
	case Close:
		return "close"
	case Unmount:
		return "unmount"
	case Keep:
		return "keep"
	}
	return "unset"
}

// Source is where a file's policy came from.
type Source uint8

const (
	FromDefault   Source = iota // --delete
	FromInherited               // the nearest ancestor directory's xattr, when the file was made
	FromRule                    // the first --rule matching the file's path
	FromXattr                   // the file's own user.tmpmount.delete
)

func (s Source) String() string {
	switch s {
	case FromInherited:
		return "inherited"
	case FromRule:
		return "rule"
	case FromXattr:
		return "xattr"
	}
	return "default"
}

// Resolver picks policies from the mount's rules and default.
type Resolver struct {
	Rules   []Rule
	Default Policy
}

// Resolve returns a file's policy and its source, first match winning: the
// file's own setting, the first rule matching its path (relative to the
// mount root; a file without a name, path "", matches no rule), the
// setting it inherited from a directory when it was made, the default.
func (r *Resolver) Resolve(own Policy, path string, inherited Policy) (Policy, Source) {
	if own != Unset {
		return own, FromXattr
	}
	for _, rule := range r.Rules {
		if path != "" && rule.Match(path) {
			return rule.Policy, FromRule
		}
	}
	if inherited != Unset {
		return inherited, FromInherited
	}
	if r.Default == Unset {
		return Unmount, FromDefault
	}
	return r.Default, FromDefault
}

// Uses reports whether any setting of the resolver is p.
func (r *Resolver) Uses(p Policy) bool {
	if r.Default == p {
		return true
	}
	for _, rule := range r.Rules {
		if rule.Policy == p {
			return true
		}
	}
	return false
}

// ErrGone is returned for a file whose data has been deleted.
var ErrGone = errors.New("policy: file deleted")
