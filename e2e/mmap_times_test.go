package e2e

import (
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMmapSharedWriteTimes: writes through a shared mapping, made durable
// with msync, move mtime and ctime, as on tmpfs, for a file on disk opened
// with passthrough too (whose mapping is the backing file's: the daemon
// never sees the write) and without. Each round writes and then stats:
// the stat must show that round's write, however recently the kernel last
// fetched the attributes.
func TestMmapSharedWriteTimes(t *testing.T) {
	targets := []struct {
		name string
		kind *mmKind // nil: the reference tmpfs
	}{
		{name: "tmpfs"},
		{name: "passthrough", kind: &mmPassthroughKinds[0]},
		{name: "no-passthrough", kind: &mmPassthroughKinds[1]},
	}
	const size = 2 << 20
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			var dir string
			if tg.kind == nil {
				dir = mmMountTmpfs(t)
			} else {
				dir = mmStart(t, *tg.kind).Dir
			}
			path := filepath.Join(dir, "mapped")
			mmWriteFile(t, path, mmBytes("mapped", size))
			if tg.kind != nil {
				mmWantResidency(t, path, "disk")
			}
			prev := mmStat(t, path) // the kernel caches these attributes
			fd := mmOpen(t, path, unix.O_RDWR)
			defer mmClose(t, fd)
			m := mmMap(t, fd, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			for round, off := range []int{100, 1 << 20, 3 << 19} {
				mmNextTick()
				copy(m[off:], "written through the mapping")
				mmMsync(t, m)
				// statx asking for the times alone, which the kernel may
				// answer from what it kept even when atime is out of date.
				var stx unix.Statx_t
				if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_MTIME|unix.STATX_CTIME, &stx); err != nil {
					t.Fatalf("statx: %v", err)
				}
				xm := unix.Timespec{Sec: stx.Mtime.Sec, Nsec: int64(stx.Mtime.Nsec)}
				xc := unix.Timespec{Sec: stx.Ctime.Sec, Nsec: int64(stx.Ctime.Nsec)}
				if !mmTsAfter(xm, prev.Mtim) || !mmTsAfter(xc, prev.Ctim) {
					t.Errorf("round %d: after a write through the mapping and msync, statx(STATX_MTIME|STATX_CTIME) shows mtime %s -> %s, ctime %s -> %s; want both later",
						round+1, mmTs(prev.Mtim), mmTs(xm), mmTs(prev.Ctim), mmTs(xc))
				}
				st, fst := mmStat(t, path), mmFstat(t, fd)
				if !mmTsAfter(st.Mtim, prev.Mtim) || !mmTsAfter(st.Ctim, prev.Ctim) {
					t.Errorf("round %d: after a write through the mapping and msync, stat shows mtime %s -> %s, ctime %s -> %s; want both later",
						round+1, mmTs(prev.Mtim), mmTs(st.Mtim), mmTs(prev.Ctim), mmTs(st.Ctim))
				}
				if fst.Mtim != st.Mtim || fst.Ctim != st.Ctim {
					t.Errorf("round %d: fstat (mtime %s, ctime %s) disagrees with stat (%s, %s)", round+1, mmTs(fst.Mtim), mmTs(fst.Ctim), mmTs(st.Mtim), mmTs(st.Ctim))
				}
				prev = st
			}
			mmUnmap(t, m)
			if got := mmStat(t, path); got.Mtim != prev.Mtim || got.Ctim != prev.Ctim || got.Size != size {
				t.Errorf("after munmap: mtime %s ctime %s size %d, want %s %s %d", mmTs(got.Mtim), mmTs(got.Ctim), got.Size, mmTs(prev.Mtim), mmTs(prev.Ctim), size)
			}
		})
	}
}
