package policy

import (
	"testing"
)

func TestPolicyParseStringRoundTrip(t *testing.T) {
	tests := []struct {
		policy Policy
		name   string
	}{
		{policy: Close, name: "close"},
		{policy: Unmount, name: "unmount"},
		{policy: Keep, name: "keep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.String(); got != tt.name {
				t.Errorf("Policy(%d).String(): got %q, want %q", tt.policy, got, tt.name)
			}
			got, err := Parse(tt.name)
			if err != nil {
				t.Fatalf("Parse(%q): got error %v, want none", tt.name, err)
			}
			if got != tt.policy {
				t.Errorf("Parse(%q): got %v, want %v", tt.name, got, tt.policy)
			}
			back, err := Parse(got.String())
			if err != nil || back != tt.policy {
				t.Errorf("Parse(Parse(%q).String()): got %v, %v; want %v, nil", tt.name, back, err, tt.policy)
			}
		})
	}
}

func TestPolicyUnsetString(t *testing.T) {
	if got := Unset.String(); got != "unset" {
		t.Errorf("Unset.String(): got %q, want %q", got, "unset")
	}
	// Unset is not a name a user may give.
	if p, err := Parse(Unset.String()); err == nil {
		t.Errorf("Parse(%q): got %v, nil; want an error", Unset.String(), p)
	}
}

func TestParseInvalid(t *testing.T) {
	for _, s := range []string{"", "Close", "KEEP", " keep", "keep ", "delete", "true", "0", "unset", "close\x00"} {
		t.Run(s, func(t *testing.T) {
			p, err := Parse(s)
			if err == nil {
				t.Fatalf("Parse(%q): got %v, nil; want an error", s, p)
			}
			if p != Unset {
				t.Errorf("Parse(%q) with error: got policy %v, want unset", s, p)
			}
		})
	}
}

func TestSourceString(t *testing.T) {
	tests := []struct {
		source Source
		want   string
	}{
		{source: FromDefault, want: "default"},
		{source: FromInherited, want: "inherited"},
		{source: FromRule, want: "rule"},
		{source: FromXattr, want: "xattr"},
	}
	seen := map[string]Source{}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := tt.source.String()
			if got != tt.want {
				t.Errorf("Source(%d).String(): got %q, want %q", tt.source, got, tt.want)
			}
			if other, dup := seen[got]; dup {
				t.Errorf("Source(%d) and Source(%d) both print %q", other, tt.source, got)
			}
			seen[got] = tt.source
		})
	}
}

func TestActionAndReasonString(t *testing.T) {
	actions := []struct {
		action Action
		want   string
	}{
		{action: Nothing, want: "nothing"},
		{action: Free, want: "free"},
		{action: RemoveNames, want: "remove-names"},
	}
	for _, tt := range actions {
		if got := tt.action.String(); got != tt.want {
			t.Errorf("Action(%d).String(): got %q, want %q", tt.action, got, tt.want)
		}
	}
	reasons := []struct {
		reason Reason
		want   string
	}{
		{reason: ByUnlink, want: "unlink"},
		{reason: ByClose, want: "close"},
		{reason: ByUnmount, want: "unmount"},
	}
	for _, tt := range reasons {
		if got := tt.reason.String(); got != tt.want {
			t.Errorf("Reason(%d).String(): got %q, want %q", tt.reason, got, tt.want)
		}
	}
}

// rules parses GLOB=POLICY strings, failing the test on a bad one.
func rules(t *testing.T, specs ...string) []Rule {
	t.Helper()
	var rs []Rule
	for _, s := range specs {
		r, err := ParseRule(s)
		if err != nil {
			t.Fatalf("ParseRule(%q): %v", s, err)
		}
		rs = append(rs, r)
	}
	return rs
}

func TestResolvePrecedence(t *testing.T) {
	tests := []struct {
		name       string
		rules      []string
		def        Policy
		own        Policy
		path       string
		inherited  Policy
		wantPolicy Policy
		wantSource Source
	}{
		{
			name:  "own xattr beats rule, inherited and default",
			rules: []string{"**=close"}, def: Unmount,
			own: Keep, path: "a", inherited: Close,
			wantPolicy: Keep, wantSource: FromXattr,
		},
		{
			name: "own xattr equal to default still reports xattr",
			def:  Unmount, own: Unmount, path: "a",
			wantPolicy: Unmount, wantSource: FromXattr,
		},
		{
			name:  "rule beats inherited and default",
			rules: []string{"*.log=keep"}, def: Close,
			path: "a.log", inherited: Unmount,
			wantPolicy: Keep, wantSource: FromRule,
		},
		{
			name:  "non matching rule falls through to inherited",
			rules: []string{"*.log=keep"}, def: Close,
			path: "a.txt", inherited: Unmount,
			wantPolicy: Unmount, wantSource: FromInherited,
		},
		{
			name: "inherited beats default",
			def:  Close, path: "d/a", inherited: Keep,
			wantPolicy: Keep, wantSource: FromInherited,
		},
		{
			name: "default when nothing else is set",
			def:  Close, path: "a",
			wantPolicy: Close, wantSource: FromDefault,
		},
		{
			name: "default keep",
			def:  Keep, path: "a",
			wantPolicy: Keep, wantSource: FromDefault,
		},
		{
			name: "default unset gives unmount",
			def:  Unset, path: "a",
			wantPolicy: Unmount, wantSource: FromDefault,
		},
		{
			name:  "default unset gives unmount when no rule matches",
			rules: []string{"*.log=close"}, def: Unset, path: "a",
			wantPolicy: Unmount, wantSource: FromDefault,
		},
		{
			name:  "first matching rule wins over a later one",
			rules: []string{"**/*.log=keep", "**=close"}, def: Unmount,
			path:       "x/a.log",
			wantPolicy: Keep, wantSource: FromRule,
		},
		{
			name:  "first matching rule wins, order reversed",
			rules: []string{"**=close", "**/*.log=keep"}, def: Unmount,
			path:       "x/a.log",
			wantPolicy: Close, wantSource: FromRule,
		},
		{
			name:  "earlier non matching rule is skipped",
			rules: []string{"build/**=close", "*.log=keep"}, def: Unmount,
			path:       "a.log",
			wantPolicy: Keep, wantSource: FromRule,
		},
		{
			name:  "rule that says the default still reports rule",
			rules: []string{"*=unmount"}, def: Unmount, path: "a",
			wantPolicy: Unmount, wantSource: FromRule,
		},
		{
			name:  "nameless file matches no rule, double star",
			rules: []string{"**=close"}, def: Unmount, path: "",
			wantPolicy: Unmount, wantSource: FromDefault,
		},
		{
			name:  "nameless file matches no rule, star",
			rules: []string{"*=keep"}, def: Close, path: "",
			wantPolicy: Close, wantSource: FromDefault,
		},
		{
			name:  "nameless file matches no rule, double star then name",
			rules: []string{"**/*=close", "**/**=keep"}, def: Unset, path: "",
			wantPolicy: Unmount, wantSource: FromDefault,
		},
		{
			name:  "nameless file falls back to inherited",
			rules: []string{"**=close"}, def: Unmount, path: "", inherited: Keep,
			wantPolicy: Keep, wantSource: FromInherited,
		},
		{
			name:  "nameless file with own xattr",
			rules: []string{"**=keep"}, def: Unmount, own: Close, path: "",
			wantPolicy: Close, wantSource: FromXattr,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Resolver{Rules: rules(t, tt.rules...), Default: tt.def}
			gotPolicy, gotSource := r.Resolve(tt.own, tt.path, tt.inherited)
			if gotPolicy != tt.wantPolicy || gotSource != tt.wantSource {
				t.Errorf("Resolve(own=%v, path=%q, inherited=%v) with rules %q, default %v: got %v from %v, want %v from %v",
					tt.own, tt.path, tt.inherited, tt.rules, tt.def, gotPolicy, gotSource, tt.wantPolicy, tt.wantSource)
			}
		})
	}
}

// TestResolveNeverUnset: whatever the inputs, Resolve gives a real policy.
func TestResolveNeverUnset(t *testing.T) {
	all := []Policy{Unset, Close, Unmount, Keep}
	for _, def := range all {
		for _, own := range all {
			for _, inherited := range all {
				for _, p := range []string{"", "a", "a.log", "x/a.log"} {
					r := &Resolver{Rules: rules(t, "*.log=keep"), Default: def}
					got, src := r.Resolve(own, p, inherited)
					if got == Unset {
						t.Errorf("Resolve(own=%v, path=%q, inherited=%v), default %v: got unset from %v", own, p, inherited, def, src)
					}
				}
			}
		}
	}
}

func TestResolverUses(t *testing.T) {
	tests := []struct {
		name  string
		rules []string
		def   Policy
		p     Policy
		want  bool
	}{
		{name: "default keep uses keep", def: Keep, p: Keep, want: true},
		{name: "default unmount does not use keep", def: Unmount, p: Keep, want: false},
		{name: "rule uses keep", rules: []string{"*.log=keep"}, def: Unmount, p: Keep, want: true},
		{name: "later rule uses keep", rules: []string{"*.tmp=close", "*.log=keep"}, def: Unmount, p: Keep, want: true},
		{name: "rules without keep", rules: []string{"*.tmp=close", "*.o=unmount"}, def: Close, p: Keep, want: false},
		{name: "rule uses close", rules: []string{"*.tmp=close"}, def: Unmount, p: Close, want: true},
		{name: "default close uses close", def: Close, p: Close, want: true},
		{name: "no rules default unmount does not use close", def: Unmount, p: Close, want: false},
		{name: "default unmount uses unmount", def: Unmount, p: Unmount, want: true},
		{name: "unset default uses no keep", def: Unset, p: Keep, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Resolver{Rules: rules(t, tt.rules...), Default: tt.def}
			if got := r.Uses(tt.p); got != tt.want {
				t.Errorf("Resolver{rules %q, default %v}.Uses(%v): got %v, want %v", tt.rules, tt.def, tt.p, got, tt.want)
			}
		})
	}
}
