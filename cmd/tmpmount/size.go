package main

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"
)

// Sizes are read as tmpfs's size= (the kernel's memparse) and coreutils'
// truncate -s read them, and every spelling either accepts means here what
// it means there:
//
//	N        bytes
//	NL       N × 1024^n, L one of k K m M g G t T p P e E (n = 1 for k, ... 6 for e)
//	NLiB     the same (coreutils), L one of k K m M g G t T P E
//	NLB      N × 1000^n (coreutils; also the obsolete NLD), same letters
//	N%       N percent of physical RAM, rounded up to a page (tmpfs; --size and --mem-limit only)
//
// N is decimal. Spellings the two read differently are refused: a leading
// zero (octal to tmpfs, decimal to coreutils) and 0x (hex to tmpfs), and
// leading white space (coreutils skips it, tmpfs refuses it). What both
// refuse is refused: 8mb, 8 MB, 1.5M, 8B. Sizes above 2^63−1 are too
// large.
const sizeHelp = "a number of bytes with an optional unit: 8M, 8m, 8MiB are 8×2^20; 8MB is 8×10^6; likewise k, G, T, P, E (as tmpfs's size= and truncate -s)"

// unitPowers maps a unit letter to its power of the base. Letters tmpfs
// takes but coreutils does not (p, e) cannot carry iB or B.
var unitPowers = map[byte]int{
	'k': 1, 'K': 1, 'm': 2, 'M': 2, 'g': 3, 'G': 3, 't': 4, 'T': 4,
	'p': 5, 'P': 5, 'e': 6, 'E': 6,
}

var errTooLarge = errors.New("too large: at most 2^63-1 bytes (8E minus one)")

// parseSize reads a size. With percentOK, N% is N percent of RAM. Errors
// say `invalid size "S": why`.
func parseSize(s string, percentOK bool) (int64, error) {
	n, err := sizeValue(s, percentOK)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, err)
	}
	return n, nil
}

func sizeValue(s string, percentOK bool) (int64, error) {
	digits := s[:len(s)-len(strings.TrimLeft(s, "0123456789"))]
	unit := s[len(digits):]
	switch {
	case digits == "":
		return 0, fmt.Errorf("give %s", sizeHelp)
	case len(digits) > 1 && digits[0] == '0':
		return 0, errors.New("a size with a leading 0 is read as octal by tmpfs and as decimal by coreutils: write it without the 0")
	}
	n, err := strconv.ParseUint(digits, 10, 63)
	if err != nil {
		return 0, errTooLarge
	}
	if unit == "%" {
		if !percentOK {
			return 0, errors.New("a percentage of RAM is taken by --size and --mem-limit only: give bytes")
		}
		return percentOfRAM(n)
	}
	if unit == "" {
		return int64(n), nil
	}
	power, ok := unitPowers[unit[0]]
	base := uint64(1024)
	switch rest := unit[1:]; {
	case !ok:
		return 0, fmt.Errorf("unknown unit %q: %s", unit, sizeHelp)
	case rest == "":
	case unit[0] == 'p' || unit[0] == 'e':
		return 0, fmt.Errorf("unknown unit %q: %s", unit, sizeHelp)
	case rest == "iB":
	case rest == "B" || rest == "D":
		base = 1000
	default:
		return 0, fmt.Errorf("unknown unit %q: %s", unit, sizeHelp)
	}
	for range power {
		hi, lo := bits.Mul64(n, base)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, errTooLarge
		}
		n = lo
	}
	return int64(n), nil
}

// percentOfRAM is pct percent of physical RAM, rounded up to a page, as
// tmpfs computes size=N%.
func percentOfRAM(pct uint64) (int64, error) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0, fmt.Errorf("N%% of RAM: cannot read the amount of RAM: %w", err)
	}
	total := uint64(si.Totalram) * uint64(si.Unit)
	hi, lo := bits.Mul64(total, pct)
	if hi >= 100 {
		return 0, errTooLarge
	}
	q, _ := bits.Div64(hi, lo, 100)
	page := uint64(unix.Getpagesize())
	q = (q + page - 1) / page * page
	if q > math.MaxInt64 {
		return 0, errTooLarge
	}
	return int64(q), nil
}

// formatSize prints a size in binary units, as the flags' help shows them.
func formatSize(n int64) string {
	if n < 0 {
		return fmt.Sprintf("%d B", n)
	}
	return humanize.IBytes(uint64(n))
}

// sizeFlag is a flag.Value holding a size in bytes.
type sizeFlag struct {
	bytes     int64
	percentOK bool // N% of RAM is accepted
}

func (f *sizeFlag) String() string {
	if f == nil {
		return ""
	}
	return formatSize(f.bytes)
}

func (f *sizeFlag) Set(s string) error {
	v, err := parseSize(s, f.percentOK)
	if err != nil {
		return err
	}
	f.bytes = v
	return nil
}
