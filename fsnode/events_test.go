package fsnode

import (
	"encoding/json"
	"strconv"
	"testing"
	"unicode/utf8"
)

// decodeFSName undoes fsName's JSON as Python's json.loads plus
// os.fsencode would: \udcXX is the byte XX, other escapes their rune.
func decodeFSName(t *testing.T, js string) string {
	t.Helper()
	if len(js) < 2 || js[0] != '"' || js[len(js)-1] != '"' {
		t.Fatalf("not a JSON string: %s", js)
	}
	var out []byte
	s := js[1 : len(js)-1]
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		i++
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'u':
			v, err := strconv.ParseUint(s[i+1:i+5], 16, 16)
			if err != nil {
				t.Fatalf("bad escape in %s", js)
			}
			i += 4
			if v >= 0xdc80 && v <= 0xdcff {
				out = append(out, byte(v-0xdc00))
			} else {
				out = utf8.AppendRune(out, rune(v))
			}
		default:
			t.Fatalf("unexpected escape \\%c in %s", s[i], js)
		}
	}
	return string(out)
}

func TestFSNameJSON(t *testing.T) {
	tests := []struct {
		name, want string
	}{
		{"plain/path.txt", `"plain/path.txt"`},
		{"", `""`},
		{"bad\xff\xfe", `"bad\udcff\udcfe"`},
		{"bad\xef\xbf\xbd", "\"bad\ufffd\""}, // U+FFFD itself, valid UTF-8
		{"quote\"back\\slash", `"quote\"back\\slash"`},
		{"tab\tnl\ndel\x7f", `"tab\u0009nl\u000adel\u007f"`},
		{"caf\xc3\xa9 \xf0\x9f\x98\x80", "\"caf\u00e9 \U0001F600\""},
		{"trunc\xe2\x82", `"trunc\udce2\udc82"`},                   // a cut 3-byte sequence
		{"surrogate\xed\xa0\x80", `"surrogate\udced\udca0\udc80"`}, // UTF-8 cannot hold surrogates
		{"overlong\xc0\xaf", `"overlong\udcc0\udcaf"`},
		{"sep\u2028", `"sep\u2028"`},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got, err := json.Marshal(event{Path: fsName(tt.name)})
		if err != nil {
			t.Fatalf("%q: %v", tt.name, err)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(got, &fields); err != nil {
			t.Fatalf("%q: the line is not JSON: %v: %s", tt.name, err, got)
		}
		js := string(fields["path"])
		if js != tt.want {
			t.Errorf("%q: got %s, want %s", tt.name, js, tt.want)
		}
		if back := decodeFSName(t, js); back != tt.name {
			t.Errorf("%q: written as %s, which decodes to %q", tt.name, js, back)
		}
		if other, ok := seen[js]; ok {
			t.Errorf("%q and %q are both written %s", tt.name, other, js)
		}
		seen[js] = tt.name
	}
	// An empty dest is left out, as before.
	got, _ := json.Marshal(event{Event: "delete"})
	var fields map[string]json.RawMessage
	json.Unmarshal(got, &fields)
	if _, ok := fields["dest"]; ok {
		t.Errorf("an event without a dest has one: %s", got)
	}
}
