package policy

import (
	"fmt"
	"path"
	"strings"
)

// Rule gives the files whose path matches Glob the policy Policy.
//
// Glob is matched against the path relative to the mount root, with "/"
// between names and no leading "/". Within a name, *, ? and [...] work as
// in path.Match (* never crosses a "/"). A name that is exactly ** matches
// any number of names, none included: "**/*.log" matches "a.log" and
// "x/y/a.log", "build/**" matches everything below build. A glob without
// ** matches at one depth only: "*.log" matches "a.log", not "x/a.log".
type Rule struct {
	Glob   string
	Policy Policy
	parts  []string
}

// ParseRule reads a --rule value, "GLOB=POLICY".
func ParseRule(s string) (Rule, error) {
	i := strings.LastIndex(s, "=")
	if i < 0 {
		return Rule{}, fmt.Errorf("rule %q: want GLOB=POLICY, such as '**/*.log=keep'", s)
	}
	glob, name := s[:i], s[i+1:]
	p, err := Parse(name)
	if err != nil {
		return Rule{}, fmt.Errorf("rule %q: %w", s, err)
	}
	return NewRule(glob, p)
}

// NewRule checks glob and returns the rule.
func NewRule(glob string, p Policy) (Rule, error) {
	glob = strings.Trim(glob, "/")
	if glob == "" {
		return Rule{}, fmt.Errorf("rule for %s: empty glob", p)
	}
	parts := strings.Split(glob, "/")
	for _, part := range parts {
		if part == "" {
			return Rule{}, fmt.Errorf("rule %q: empty name between slashes", glob)
		}
		if _, err := path.Match(part, ""); err != nil {
			return Rule{}, fmt.Errorf("rule %q: bad pattern %q: %w", glob, part, err)
		}
	}
	return Rule{Glob: glob, Policy: p, parts: parts}, nil
}

func (r Rule) String() string { return r.Glob + "=" + r.Policy.String() }

// Match reports whether the path (relative to the mount root) matches.
func (r Rule) Match(p string) bool {
	return matchParts(r.parts, strings.Split(strings.Trim(p, "/"), "/"))
}

// matchParts matches glob names against path names. Dynamic programming
// over (glob position, path position), one row at a time, keeps it linear
// in each: trying every split for each ** would take exponential time on a
// deep path, and paths here have no length limit.
func matchParts(glob, names []string) bool {
	m := len(names)
	// next[j]: glob[i+1:] matches names[j:]; for i = len(glob)-1 that is
	// the empty glob, which matches only the empty rest.
	next := make([]bool, m+1)
	next[m] = true
	cur := make([]bool, m+1)
	for i := len(glob) - 1; i >= 0; i-- {
		for j := m; j >= 0; j-- {
			if glob[i] == "**" {
				cur[j] = next[j] || (j < m && cur[j+1])
				continue
			}
			ok := false
			if j < m && next[j+1] {
				ok, _ = path.Match(glob[i], names[j])
			}
			cur[j] = ok
		}
		next, cur = cur, next
	}
	return next[0]
}
