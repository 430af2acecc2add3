package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
)

// The command line is read in GNU style against a flag.FlagSet, which stays
// the one place a flag is declared (newFlagSet): --name VALUE,
// --name=VALUE, a bare --name for a boolean, -h/--help, "--" to end the
// flags, and -o a,b=c for mount(8). A single dash (-name) is taken as two,
// as Go's flag package did, but messages always spell flags with two.
// Errors are one line that names the flag or -o option as it was typed,
// suggests the closest known one, and says where the help is.

// errHelp is returned when -h or --help was given.
var errHelp = flag.ErrHelp

// commandLine describes how one command reads its arguments.
type commandLine struct {
	name string        // "tmpmount", "tmpmount run": for messages
	fs   *flag.FlagSet // the flags it takes
	// interleaved: flags may follow positional arguments (a mount point);
	// otherwise the first positional argument ends the flags (run's CMD).
	interleaved bool
	// mountOptions: -o lists are read as flags (mount(8)'s convention).
	mountOptions bool
	// rejected names flags declared in fs that this command does not take,
	// with the reason.
	rejected map[string]string
}

// parsedArgs is what a command line said besides its flags.
type parsedArgs struct {
	positional []string
	viaMount   bool // there was a -o: tmpmount was started as mount(8) does
}

// usageError is a command-line error: one line that ends by saying where
// the help is. Commands exit with status 2 for it.
func (c commandLine) usageError(format string, args ...any) error {
	return fmt.Errorf("%s (see %s --help)", fmt.Sprintf(format, args...), c.name)
}

// parse sets the flags in args and returns the rest.
func (c commandLine) parse(args []string) (parsedArgs, error) {
	var p parsedArgs
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			p.positional = append(p.positional, args[i+1:]...)
			return p, nil
		case a == "-h" || a == "--help" || a == "-help":
			return p, errHelp
		case a == "-o" || strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--"):
			if !c.mountOptions {
				return p, c.usageError("-o options are for mount(8) and tmpmount MOUNTPOINT; give %s its flags as --name=value", c.name)
			}
			list := strings.TrimPrefix(a, "-o")
			if a == "-o" {
				if i+1 >= len(args) {
					return p, c.usageError("-o needs a list of options, e.g. -o max_size=8M,mode=1777")
				}
				i++
				list = args[i]
			}
			p.viaMount = true
			if err := c.setMountOptions(list); err != nil {
				return p, err
			}
		case len(a) > 1 && a[0] == '-':
			used, err := c.setFlag(a, args[i+1:])
			if err != nil {
				return p, err
			}
			i += used
		default:
			if !c.interleaved {
				p.positional = append(p.positional, args[i:]...)
				return p, nil
			}
			p.positional = append(p.positional, a)
		}
	}
	return p, nil
}

// setFlag sets the flag arg ("--name", "--name=value", "-name") and returns
// how many of the following arguments it took as its value.
func (c commandLine) setFlag(arg string, rest []string) (used int, err error) {
	name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	typed := "--" + name
	f := c.fs.Lookup(name)
	if f == nil || name == "" {
		if s := closest(name, flagNames(c.fs, c.rejected)); s != "" {
			return 0, c.usageError("unknown flag %s: did you mean --%s?", typed, s)
		}
		return 0, c.usageError("unknown flag %s", typed)
	}
	if why, ok := c.rejected[name]; ok {
		return 0, c.usageError("%s %s", typed, why)
	}
	if isBoolFlag(f) {
		if !hasValue {
			value = "true"
		}
		if _, err := strconv.ParseBool(value); err != nil {
			return 0, c.usageError("%s=%s: give true or false, or just %s", typed, value, typed)
		}
	} else if !hasValue {
		if len(rest) == 0 {
			return 0, c.usageError("%s needs a value: %s %s", typed, typed, valueName(f))
		}
		value, used = rest[0], 1
	}
	if err := f.Value.Set(value); err != nil {
		return 0, c.usageError("%s: %v", typed, err)
	}
	return used, nil
}

// setMountOptions sets the flags a -o list names. Options are reported as
// they were typed (max_size=8Q, not --max-size).
func (c commandLine) setMountOptions(list string) error {
	for _, opt := range strings.Split(list, ",") {
		if opt == "" {
			continue
		}
		m, err := parseMountOption(opt)
		if err != nil {
			return c.usageError("%v", err)
		}
		if m.ignored {
			continue
		}
		typedName, name, value, hasValue := m.typed, m.flag, m.value, m.hasValue
		f := c.fs.Lookup(name)
		if f == nil {
			if s := closest(name, mountOptionNames(c.fs)); s != "" {
				if strings.Contains(typedName, "_") || !strings.Contains(typedName, "-") {
					s = strings.ReplaceAll(s, "-", "_")
				}
				return c.usageError("unknown -o option %s: did you mean %s?", typedName, s)
			}
			return c.usageError("unknown -o option %s", typedName)
		}
		if why, ok := c.rejected[name]; ok {
			return c.usageError("-o %s: %s", typedName, why)
		}
		switch {
		case isBoolFlag(f) && !hasValue:
			value = "true"
		case !hasValue:
			return c.usageError("-o %s needs a value: %s=%s", typedName, typedName, valueName(f))
		}
		if err := f.Value.Set(value); err != nil {
			return c.usageError("-o %s: %v", typedName, err)
		}
	}
	return nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// valueName is the placeholder of a flag's value in its usage (SIZE, DIR).
func valueName(f *flag.Flag) string {
	name, _ := flag.UnquoteUsage(f)
	if name == "" || name == "value" {
		return "VALUE"
	}
	return name
}

// flagNames lists the flags a command takes.
func flagNames(fs *flag.FlagSet, rejected map[string]string) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := rejected[f.Name]; !ok {
			names = append(names, f.Name)
		}
	})
	return append(names, "help")
}

// mountOptionNames lists what -o accepts: the flags, and the names of
// mountOptionFlags (tmpfs's spellings).
func mountOptionNames(fs *flag.FlagSet) []string {
	names := flagNames(fs, nil)
	for name := range mountOptionFlags {
		names = append(names, name)
	}
	return names
}

// closest returns the name in names nearest to typed, if one is near
// enough to be what was meant: a few edits away, or the only name that
// starts with it.
func closest(typed string, names []string) string {
	best, bestDist, prefixed := "", -1, 0
	var prefix string
	for _, n := range names {
		if typed != "" && strings.HasPrefix(n, typed) {
			prefixed++
			prefix = n
		}
		d := editDistance(typed, n)
		if bestDist < 0 || d < bestDist || d == bestDist && n < best {
			best, bestDist = n, d
		}
	}
	if bestDist >= 0 && bestDist <= max(1, len(typed)/3) {
		return best
	}
	if prefixed == 1 {
		return prefix
	}
	return ""
}

// editDistance is the Damerau–Levenshtein distance (with adjacent
// transpositions) between a and b.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
