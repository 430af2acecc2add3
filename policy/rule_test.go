package policy

import (
	"math/rand/v2"
	"path"
	"strings"
	"testing"
	"time"
)

func TestParseRuleValid(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantGlob   string
		wantPolicy Policy
	}{
		{name: "any depth log files keep", in: "**/*.log=keep", wantGlob: "**/*.log", wantPolicy: Keep},
		{name: "everything below build close", in: "build/**=close", wantGlob: "build/**", wantPolicy: Close},
		{name: "plain path unmount", in: "a/b=unmount", wantGlob: "a/b", wantPolicy: Unmount},
		{name: "star within a name", in: "*.tmp=close", wantGlob: "*.tmp", wantPolicy: Close},
		{name: "spaces inside the glob are kept", in: "my dir/a b.txt=keep", wantGlob: "my dir/a b.txt", wantPolicy: Keep},
		{name: "leading and trailing spaces are part of the glob", in: " a =close", wantGlob: " a ", wantPolicy: Close},
		{name: "equals sign inside the glob, last one splits", in: "a=b=keep", wantGlob: "a=b", wantPolicy: Keep},
		{name: "several equals signs", in: "x==y=z=unmount", wantGlob: "x==y=z", wantPolicy: Unmount},
		{name: "leading and trailing slashes are trimmed", in: "/a/b/=close", wantGlob: "a/b", wantPolicy: Close},
		{name: "character class", in: "[abc].txt=keep", wantGlob: "[abc].txt", wantPolicy: Keep},
		{name: "escaped star", in: `\*=close`, wantGlob: `\*`, wantPolicy: Close},
		{name: "double star alone", in: "**=close", wantGlob: "**", wantPolicy: Close},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRule(tt.in)
			if err != nil {
				t.Fatalf("ParseRule(%q): got error %v, want none", tt.in, err)
			}
			if r.Glob != tt.wantGlob {
				t.Errorf("ParseRule(%q).Glob: got %q, want %q", tt.in, r.Glob, tt.wantGlob)
			}
			if r.Policy != tt.wantPolicy {
				t.Errorf("ParseRule(%q).Policy: got %v, want %v", tt.in, r.Policy, tt.wantPolicy)
			}
			wantString := tt.wantGlob + "=" + tt.wantPolicy.String()
			if got := r.String(); got != wantString {
				t.Errorf("ParseRule(%q).String(): got %q, want %q", tt.in, got, wantString)
			}
			// The printed rule reads back as the same rule.
			again, err := ParseRule(r.String())
			if err != nil {
				t.Fatalf("ParseRule(%q) (re-parse of String()): got error %v", r.String(), err)
			}
			if again.Glob != r.Glob || again.Policy != r.Policy {
				t.Errorf("re-parse of %q: got %q/%v, want %q/%v", r.String(), again.Glob, again.Policy, r.Glob, r.Policy)
			}
		})
	}
}

func TestParseRuleInvalid(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		wantErrText string // a substring the error must contain
	}{
		{name: "no equals sign", in: "**/*.log", wantErrText: "GLOB=POLICY"},
		{name: "empty string", in: "", wantErrText: "GLOB=POLICY"},
		{name: "unknown policy", in: "*.log=forever", wantErrText: "unknown delete policy"},
		{name: "empty policy", in: "*.log=", wantErrText: "unknown delete policy"},
		{name: "policy is case sensitive", in: "*.log=Keep", wantErrText: "unknown delete policy"},
		{name: "policy with spaces", in: "*.log= keep", wantErrText: "unknown delete policy"},
		{name: "unset is not a policy name", in: "*.log=unset", wantErrText: "unknown delete policy"},
		{name: "equals sign in glob and unknown policy", in: "a=keep=x", wantErrText: "unknown delete policy"},
		{name: "empty glob", in: "=keep", wantErrText: "empty glob"},
		{name: "glob of slashes only", in: "//=close", wantErrText: "empty glob"},
		{name: "bad pattern open bracket", in: "[=keep", wantErrText: "bad pattern"},
		{name: "bad pattern in a later name", in: "a/b[/c=keep", wantErrText: "bad pattern"},
		{name: "bad pattern trailing backslash", in: `a\=keep`, wantErrText: "bad pattern"},
		{name: "empty name between slashes", in: "a//b=keep", wantErrText: "empty name"},
		{name: "empty name before double star", in: "a//**=close", wantErrText: "empty name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRule(tt.in)
			if err == nil {
				t.Fatalf("ParseRule(%q): got rule %q, want an error containing %q", tt.in, r.String(), tt.wantErrText)
			}
			if !strings.Contains(err.Error(), tt.wantErrText) {
				t.Errorf("ParseRule(%q): got error %q, want it to contain %q", tt.in, err, tt.wantErrText)
			}
		})
	}
}

func TestNewRuleInvalid(t *testing.T) {
	for _, glob := range []string{"", "/", "a//b", "["} {
		t.Run(glob, func(t *testing.T) {
			if r, err := NewRule(glob, Keep); err == nil {
				t.Errorf("NewRule(%q, keep): got rule %q, want an error", glob, r.String())
			}
		})
	}
}

func mustRule(t *testing.T, glob string, p Policy) Rule {
	t.Helper()
	r, err := NewRule(glob, p)
	if err != nil {
		t.Fatalf("NewRule(%q, %v): %v", glob, p, err)
	}
	return r
}

func TestRuleMatch(t *testing.T) {
	longName := strings.Repeat("n", 255)
	deep := strings.Repeat("d/", 1000) + "leaf.log" // 1001 names, 2008 bytes
	longPath := strings.Repeat(longName+"/", 15) + "x.log"

	tests := []struct {
		name string
		glob string
		path string
		want bool
	}{
		// * within a name.
		{name: "star matches suffix", glob: "*.log", path: "a.log", want: true},
		{name: "star matches empty prefix", glob: "*.log", path: ".log", want: true},
		{name: "star does not match other suffix", glob: "*.log", path: "a.txt", want: false},
		{name: "star alone matches a name", glob: "*", path: "anything", want: true},
		{name: "star does not cross a slash", glob: "a*b", path: "a/b", want: false},
		{name: "star in a directory name", glob: "build-*/out", path: "build-1/out", want: true},
		{name: "star in a directory name wrong dir", glob: "build-*/out", path: "src/out", want: false},

		// ? and [abc].
		{name: "question mark matches one char", glob: "a?c", path: "abc", want: true},
		{name: "question mark needs exactly one char", glob: "a?c", path: "ac", want: false},
		{name: "question mark does not match slash", glob: "a?c", path: "a/c", want: false},
		{name: "class matches member", glob: "[abc].txt", path: "b.txt", want: true},
		{name: "class rejects non member", glob: "[abc].txt", path: "d.txt", want: false},
		{name: "negated class", glob: "[^abc].txt", path: "d.txt", want: true},
		{name: "negated class rejects member", glob: "[^abc].txt", path: "a.txt", want: false},
		{name: "class range", glob: "file[0-9]", path: "file7", want: true},

		// ** at the start.
		{name: "double star start zero dirs", glob: "**/*.log", path: "a.log", want: true},
		{name: "double star start one dir", glob: "**/*.log", path: "x/a.log", want: true},
		{name: "double star start many dirs", glob: "**/*.log", path: "x/y/z/a.log", want: true},
		{name: "double star start wrong name", glob: "**/*.log", path: "x/y/a.txt", want: false},
		{name: "double star start dir named like a log", glob: "**/*.log", path: "d.log/a.txt", want: false},

		// ** in the middle.
		{name: "double star middle zero dirs", glob: "a/**/b", path: "a/b", want: true},
		{name: "double star middle one dir", glob: "a/**/b", path: "a/x/b", want: true},
		{name: "double star middle many dirs", glob: "a/**/b", path: "a/x/y/z/b", want: true},
		{name: "double star middle wrong first", glob: "a/**/b", path: "c/x/b", want: false},
		{name: "double star middle wrong last", glob: "a/**/b", path: "a/x/c", want: false},
		{name: "double star middle extra after", glob: "a/**/b", path: "a/x/b/c", want: false},
		{name: "two double stars", glob: "a/**/b/**/c", path: "a/1/b/2/3/c", want: true},
		{name: "two double stars both zero", glob: "a/**/b/**/c", path: "a/b/c", want: true},
		{name: "two double stars missing middle", glob: "a/**/b/**/c", path: "a/1/2/c", want: false},

		// ** at the end.
		{name: "double star end one below", glob: "build/**", path: "build/a.o", want: true},
		{name: "double star end deep below", glob: "build/**", path: "build/x/y/a.o", want: true},
		{name: "double star end zero names matches the dir itself", glob: "build/**", path: "build", want: true},
		{name: "double star end other dir", glob: "build/**", path: "src/a.o", want: false},
		{name: "double star end prefix name", glob: "build/**", path: "builder/a.o", want: false},
		{name: "double star alone one name", glob: "**", path: "a", want: true},
		{name: "double star alone deep", glob: "**", path: "a/b/c", want: true},
		{name: "double star only as whole name", glob: "a**", path: "ab/c", want: false},
		{name: "double star within name acts as star", glob: "a**", path: "abc", want: true},
		{name: "double star double star", glob: "**/**", path: "a/b", want: true},

		// Globs without ** match at one depth only.
		{name: "no double star deeper path", glob: "*.log", path: "x/a.log", want: false},
		{name: "no double star shallower path", glob: "*/*.log", path: "a.log", want: false},
		{name: "no double star same depth", glob: "*/*.log", path: "x/a.log", want: true},
		{name: "no double star two deeper", glob: "*/*.log", path: "x/y/a.log", want: false},
		{name: "plain path exact", glob: "a/b", path: "a/b", want: true},
		{name: "plain path prefix only", glob: "a/b", path: "a/b/c", want: false},
		{name: "plain path longer glob", glob: "a/b/c", path: "a/b", want: false},

		// Leading and trailing slashes in glob and path.
		{name: "leading slash in glob", glob: "/a/b", path: "a/b", want: true},
		{name: "trailing slash in glob", glob: "a/b/", path: "a/b", want: true},
		{name: "leading slash in path", glob: "a/b", path: "/a/b", want: true},
		{name: "trailing slash in path", glob: "a/b", path: "a/b/", want: true},
		{name: "slashes on both", glob: "/**/*.log/", path: "/x/a.log/", want: true},
		{name: "double slash inside path is an empty name", glob: "a/b", path: "a//b", want: false},

		// Names containing special characters.
		{name: "space in name", glob: "my dir/*.txt", path: "my dir/a b.txt", want: true},
		{name: "equals in name", glob: "a=b", path: "a=b", want: true},
		{name: "literal star in path matched by star", glob: "*", path: "*", want: true},
		{name: "escaped star matches only a star", glob: `\*`, path: "*", want: true},
		{name: "escaped star rejects letter", glob: `\*`, path: "a", want: false},
		{name: "escaped bracket", glob: `\[x\]`, path: "[x]", want: true},
		{name: "brackets in path not a class", glob: "a[1]", path: "a[1]", want: false},
		{name: "question mark matches a multibyte rune", glob: "caf?", path: "café", want: true},
		{name: "unicode literal", glob: "**/données.log", path: "x/données.log", want: true},
		{name: "newline in name", glob: "*.log", path: "a\nb.log", want: true},
		{name: "dot names", glob: "**/.hidden", path: "a/.hidden", want: true},
		{name: "star matches a dot file", glob: "*", path: ".hidden", want: true},

		// Very long paths.
		{name: "deep path double star", glob: "**/*.log", path: deep, want: true},
		{name: "deep path fixed depth no match", glob: "d/*.log", path: deep, want: false},
		{name: "deep path double star wrong leaf", glob: "**/*.txt", path: deep, want: false},
		{name: "deep path double star middle", glob: "d/**/d/leaf.log", path: deep, want: true},
		{name: "long names", glob: "**/x.log", path: longPath, want: true},
		{name: "long name exact", glob: longName, path: longName, want: true},
		{name: "long name star", glob: "n*n", path: longName, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRule(t, tt.glob, Close)
			if got := r.Match(tt.path); got != tt.want {
				t.Errorf("Rule(%q).Match(%q): got %v, want %v", tt.glob, tt.path, got, tt.want)
			}
		})
	}
}

// TestRuleMatchZeroValue: a Rule not made by NewRule (no parts) matches
// nothing with a name.
func TestRuleMatchZeroValue(t *testing.T) {
	var r Rule
	if r.Match("a") {
		t.Errorf("Rule{}.Match(%q): got true, want false", "a")
	}
}

// randomPath builds a path of 1 to 8 names from a small set, so that
// names repeat and collide with the globs under test.
func randomPath(rng *rand.Rand) []string {
	names := []string{"a", "b", "a.log", "x y", "é", "[a]", "*", ".h", "long-" + strings.Repeat("z", 40)}
	n := 1 + rng.IntN(8)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = names[rng.IntN(len(names))]
	}
	return parts
}

func TestRuleMatchProperties(t *testing.T) {
	const seed = 20261126
	rng := rand.New(rand.NewPCG(seed, seed))
	all := mustRule(t, "**", Close)
	const leaf = "a.log"
	lastIs := mustRule(t, "**/"+leaf, Close)
	oneLevel := []string{"*", "?", "a", "[ab]", "*.log", "*y", "é"}

	for i := 0; i < 5000; i++ {
		parts := randomPath(rng)
		p := strings.Join(parts, "/")

		if !all.Match(p) {
			t.Errorf("seed %d, case %d: Rule(%q).Match(%q): got false, want true", seed, i, all.Glob, p)
		}
		for _, q := range []string{"/" + p, p + "/"} {
			if !all.Match(q) {
				t.Errorf("seed %d, case %d: Rule(%q).Match(%q): got false, want true", seed, i, all.Glob, q)
			}
		}

		wantLast := parts[len(parts)-1] == leaf
		if got := lastIs.Match(p); got != wantLast {
			t.Errorf("seed %d, case %d: Rule(%q).Match(%q): got %v, want %v (last name %q)",
				seed, i, lastIs.Glob, p, got, wantLast, parts[len(parts)-1])
		}

		// A glob without ** matches exactly the paths of its own depth
		// whose names each match the glob's name at that depth.
		globParts := make([]string, 1+rng.IntN(4))
		for j := range globParts {
			globParts[j] = oneLevel[rng.IntN(len(oneLevel))]
		}
		g := mustRule(t, strings.Join(globParts, "/"), Keep)
		want := len(globParts) == len(parts)
		for j := 0; want && j < len(parts); j++ {
			ok, err := path.Match(globParts[j], parts[j])
			if err != nil {
				t.Fatalf("path.Match(%q, %q): %v", globParts[j], parts[j], err)
			}
			want = ok
		}
		if got := g.Match(p); got != want {
			t.Errorf("seed %d, case %d: Rule(%q).Match(%q): got %v, want %v", seed, i, g.Glob, p, got, want)
		}
	}
}

// TestRuleMatchDeepPathIsFast: a rule with a few ** must not take time
// exponential in their number on a deep path. The path is relative to the
// mount root and not bounded by PATH_MAX (a process can chdir down and go
// on), and rules are checked under the filesystem's tree lock at every
// create and rename, so a slow match stalls the whole mount. A matcher
// that remembers (glob name, path name) pairs does len(glob)*len(path)
// steps: a few thousand here, well under a millisecond.
//
// It runs last in the package: when it fails, the match goes on in the
// background until the test binary exits.
func TestRuleMatchDeepPathIsFast(t *testing.T) {
	const budget = 2 * time.Second
	tests := []struct {
		name string
		glob string
		path string
		want bool
	}{
		{name: "three double stars, no match, 2000 names", glob: "**/a/**/a/**/b", path: strings.Repeat("a/", 2000) + "c", want: false},
		{name: "four double stars, no match, 300 names", glob: "**/a/**/a/**/a/**/b", path: strings.Repeat("a/", 300) + "c", want: false},
		{name: "three double stars, match, 2000 names", glob: "**/a/**/a/**/b", path: strings.Repeat("a/", 2000) + "b", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRule(t, tt.glob, Close)
			done := make(chan bool, 1)
			start := time.Now()
			go func() { done <- r.Match(tt.path) }()
			select {
			case got := <-done:
				if got != tt.want {
					t.Errorf("Rule(%q).Match(%d names): got %v, want %v", tt.glob, strings.Count(tt.path, "/")+1, got, tt.want)
				}
				t.Logf("Rule(%q).Match(%d names) took %v", tt.glob, strings.Count(tt.path, "/")+1, time.Since(start))
			case <-time.After(budget):
				t.Errorf("Rule(%q).Match(path of %d names): still running after %v, want it done well within that (the ** matcher backtracks without memo)",
					tt.glob, strings.Count(tt.path, "/")+1, budget)
			}
		})
	}
}
