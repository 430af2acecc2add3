package fsnode

import (
	"context"
	"encoding/json"
	"syscall"
	"time"

	"github.com/tmpmount/tmpmount/policy"
)

// user.tmpmount.stats (read-only, not listed) carries JSON for scripts and
// for `tmpmount stat`: on the mount's root directory, the mount's totals
// and limits; on a regular file, where its data lives and what its policy
// is. It is read through the mount itself, so no socket or state file is
// needed.
const xattrStats = xattrPrefix + "stats"

// MountStats is what user.tmpmount.stats says of the root directory.
type MountStats struct {
	Files         int64          `json:"files"`  // regular files whose data is held
	Inodes        int64          `json:"inodes"` // nodes in use
	RAMBytes      int64          `json:"ram_bytes"`
	DiskFiles     int64          `json:"disk_files"`
	DiskBytes     int64          `json:"disk_bytes"`  // disk use of the backing files
	MetaBytes     int64          `json:"meta_bytes"`  // names, xattrs and symlink targets, charged to size and memory
	MetaMemory    int64          `json:"meta_memory"` // those and the nodes themselves: what metadata takes of the memory budget
	Rollovers     int64          `json:"rollovers"`
	Deletes       Deletes        `json:"deletes"`
	MaxSize       int64          `json:"max_size"`
	MemLimit      int64          `json:"mem_limit"`
	SizeLimit     int64          `json:"size_limit"`    // 0: none
	MaxInodes     int64          `json:"max_inodes"`    // 0: none
	SpillReserve  int64          `json:"spill_reserve"` // of the spill disk, kept free while there is no size limit
	Passthrough   string         `json:"passthrough"`
	SpillDir      string         `json:"spill_dir"`
	KeepDir       string         `json:"keep_dir,omitempty"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	DefaultPolicy string         `json:"default_policy"`
	Rules         []string       `json:"rules,omitempty"`
	Requests      TransportStats `json:"requests"`
}

// Deletes counts files deleted, by reason.
type Deletes struct {
	Close   int64 `json:"close"`
	Unlink  int64 `json:"unlink"`
	Unmount int64 `json:"unmount"`
}

// FileStats is what user.tmpmount.stats says of a regular file.
type FileStats struct {
	Size         int64  `json:"size"`
	Blocks       int64  `json:"blocks"`
	Residency    string `json:"residency"`
	Policy       string `json:"policy"`
	PolicySource string `json:"policy_source"`
	Opens        int    `json:"opens"`
	Passthrough  bool   `json:"passthrough"` // some handle is served by FUSE passthrough
}

func (r *Root) mountStats() MountStats {
	st := r.store.Stats()
	memLimit, sizeLimit := r.store.Limits()
	r.filesMu.Lock()
	files := int64(len(r.files))
	r.filesMu.Unlock()
	diskBytes := st.DiskBytes
	if sizeLimit == 0 {
		diskBytes = r.store.DiskUse() // (tracked only with a capacity)
	}
	ms := MountStats{
		Files: files, Inodes: r.Inodes(),
		RAMBytes: st.RAMBytes, DiskFiles: st.DiskFiles, DiskBytes: diskBytes, MetaBytes: st.MetaBytes,
		MetaMemory: st.MetaBytes + r.nodeMemory(),
		Rollovers:  st.Rollovers,
		Deletes: Deletes{
			Close: r.deletes[policy.ByClose].Load(), Unlink: r.deletes[policy.ByUnlink].Load(),
			Unmount: r.deletes[policy.ByUnmount].Load(),
		},
		MaxSize: r.store.MaxSize(), MemLimit: memLimit, SizeLimit: sizeLimit, MaxInodes: r.maxInodes.Load(),
		SpillReserve: r.store.SpillReserve(),
		Passthrough:  r.Passthrough(), SpillDir: r.store.Dir(), KeepDir: r.keepDir,
		UptimeSeconds: time.Since(r.started).Seconds(),
		DefaultPolicy: r.resolver.Default.String(),
		Requests:      r.transportStats(),
	}
	if r.resolver.Default == policy.Unset {
		ms.DefaultPolicy = policy.Unmount.String()
	}
	for _, rule := range r.resolver.Rules {
		ms.Rules = append(ms.Rules, rule.String())
	}
	return ms
}

func (f *File) stats() (FileStats, error) {
	st, err := f.data.Stat()
	if err != nil {
		return FileStats{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return FileStats{
		Size: st.Size, Blocks: st.Blocks, Residency: st.Residency.String(),
		Policy: f.life.Policy().String(), PolicySource: f.life.Source().String(),
		Opens: f.life.Opens(), Passthrough: f.passthroughOpens > 0,
	}, nil
}

func statsXattr(dest []byte, v any) (uint32, syscall.Errno) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, syscall.EIO
	}
	return copyXattr(dest, data)
}

// getStatsXattr answers user.tmpmount.stats on the root directory; ok is
// false for other directories.
func (d *Dir) getStatsXattr(ctx context.Context, dest []byte) (uint32, syscall.Errno, bool) {
	if d != d.root.dir {
		return 0, 0, false
	}
	n, errno := statsXattr(dest, d.root.mountStats())
	return n, errno, true
}
