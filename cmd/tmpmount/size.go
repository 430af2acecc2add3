package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/dustin/go-humanize"
)

// Sizes are read as tmpfs's size= and coreutils (dd, head -c, truncate)
// read them: a bare k, m, g, t or p (either case) and the IEC spellings
// KiB, MiB, ... are powers of 1024; kB, MB, GB, ... are powers of 1000; a
// plain number is bytes. go-humanize reads a bare "M" as 10^6, so the
// single letters are rewritten to their IEC names before it parses.
var binaryLetters = map[string]string{
	"k": "KiB", "m": "MiB", "g": "GiB", "t": "TiB", "p": "PiB",
}

const sizeHelp = "a number of bytes with an optional unit: 8M, 8m and 8MiB are 8×2^20; 8MB is 8×10^6; likewise k, G, T"

// parseSize reads a size flag.
func parseSize(s string) (int64, error) {
	text := strings.TrimSpace(s)
	split := strings.IndexFunc(text, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r == '.')
	})
	num, unit := text, ""
	if split >= 0 {
		num, unit = text[:split], strings.TrimSpace(text[split:])
	}
	if num == "" {
		return 0, fmt.Errorf("invalid size %q: %s", s, sizeHelp)
	}
	if iec, ok := binaryLetters[strings.ToLower(unit)]; ok {
		unit = iec
	}
	v, err := humanize.ParseBytes(num + unit)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %s", s, sizeHelp)
	}
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return int64(v), nil
}

// formatSize prints a size in binary units, as the flags' help shows them.
func formatSize(n int64) string {
	if n < 0 {
		return fmt.Sprintf("%d B", n)
	}
	return humanize.IBytes(uint64(n))
}

// sizeFlag is a flag.Value holding a size in bytes.
type sizeFlag struct{ bytes int64 }

func (f *sizeFlag) String() string {
	if f == nil {
		return ""
	}
	return formatSize(f.bytes)
}

func (f *sizeFlag) Set(s string) error {
	v, err := parseSize(s)
	if err != nil {
		return err
	}
	f.bytes = v
	return nil
}
