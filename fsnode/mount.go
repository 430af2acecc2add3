package fsnode

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tmpmount/tmpmount/fsnode/ringfuse"
)

// MountConfig holds the choices of the person mounting; the FUSE settings
// that make tmpmount correct and fast are fixed in Mount.
type MountConfig struct {
	AllowOther    bool   // let other users in
	Debug         bool   // log every request
	NoPassthrough bool   // serve rolled-over files through the daemon even where passthrough works
	ReadOnly      bool   // mount read-only
	NoExec        bool   // mount noexec
	Dev           bool   // device files work (root only; nodev otherwise)
	Suid          bool   // set-user-ID and set-group-ID bits work (root only; nosuid otherwise)
	Source        string // the mount's source, shown in /proc/mounts and by df ("tmpmount" if empty)
	NoACL         bool   // offer no POSIX ACLs
	// Atime is shown as mount flags (as Config.Atime, which the daemon
	// acts on).
	Atime Atime

	// FD, if not 0, is a /dev/fuse descriptor that another process has
	// already mounted with KernelMountArgs (tmpmount run does, in the
	// command's mount namespace); Mount then serves it and mounts nothing.
	FD      int
	NoURing bool // serve /dev/fuse only, even where the kernel offers FUSE over io_uring
}

// KernelMountArgs returns what mount(2) takes to mount the /dev/fuse
// descriptor fd (a number in the mounting process) on a directory with the
// settings Mount uses, for a process that mounts on the daemon's behalf.
func KernelMountArgs(mc MountConfig, fd int) (source, fstype string, flags uintptr, data string) {
	flags = unix.MS_NOSUID | unix.MS_NODEV | mc.Atime.mountFlags()
	if mc.Dev {
		flags &^= unix.MS_NODEV
	}
	if mc.Suid {
		flags &^= unix.MS_NOSUID
	}
	if mc.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if mc.NoExec {
		flags |= unix.MS_NOEXEC
	}
	opts := []string{
		fmt.Sprintf("fd=%d", fd),
		fmt.Sprintf("rootmode=%o", unix.S_IFDIR),
		fmt.Sprintf("user_id=%d", os.Geteuid()),
		fmt.Sprintf("group_id=%d", os.Getegid()),
		fmt.Sprintf("max_read=%d", maxWrite),
		defaultPermissions,
	}
	if mc.AllowOther {
		opts = append(opts, "allow_other")
	}
	return mc.source(), "fuse.tmpmount", flags, strings.Join(opts, ",")
}

// source is the mount's source: as given, else "tmpmount".
func (mc MountConfig) source() string {
	if mc.Source == "" {
		return "tmpmount"
	}
	return mc.Source
}

// defaultPermissions: the kernel checks modes, owners and the sticky bit,
// as it does for tmpfs.
const defaultPermissions = "default_permissions"

// cacheTimeout is how long the kernel may trust entries, negative entries
// and attributes. The daemon is the only writer and every change but its
// own policy deletes passes through the kernel, which invalidates what a
// change touches; the daemon notifies the kernel of the rest.
const cacheTimeout = time.Hour

// maxWrite is the largest READ and WRITE request: 1 MiB (the kernel's
// default max_pages_limit) halves the round trips of large I/O compared
// with go-fuse's 128 KiB default.
const maxWrite = 1 << 20

// Mount mounts the tree at mountpoint and starts serving it. It returns
// once the kernel has the mount.
func (r *Root) Mount(mountpoint string, mc MountConfig) (*fuse.Server, error) {
	timeout := cacheTimeout
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:  mc.AllowOther,
			Options:     []string{defaultPermissions},
			FsName:      mc.source(),
			Name:        "tmpmount",
			MaxWrite:    maxWrite,
			DirectMount: os.Geteuid() == 0,
			Debug:       mc.Debug,
			// The daemon is the only writer, so the kernel need not drop a
			// file's cached pages when it sees a new mtime: reads of
			// recently written files stay at page-cache speed.
			ExplicitDataCacheControl: true,
			Logger:                   r.log,
			// HANDLE_KILLPRIV_V2: without it the kernel asks for
			// security.capability before every write (see rawFS).
			// ATOMIC_O_TRUNC: open(O_TRUNC) is one request, not two.
			// EXPORT_SUPPORT: file handles outlive the kernel's inodes
			// (export.go).
			ExtraCapabilities: fuse.CAP_HANDLE_KILLPRIV_V2 | fuse.CAP_ATOMIC_O_TRUNC | fuse.CAP_EXPORT_SUPPORT,
		},
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		// Node ids are inode numbers: the raw wrapper finds files by them,
		// and inode numbers are never reused within a mount.
		ExternalNodeID:  true,
		RootStableAttr:  &fs.StableAttr{Ino: rootIno},
		NullPermissions: true, // a mode of 0000 is a mode, not a default
		Logger:          r.log,
	}
	r.noACL = mc.NoACL
	if !mc.NoACL {
		// POSIX ACLs, enforced by the kernel as on tmpfs (acl.go).
		// DONT_MASK and SETXATTR_EXT: the umask and the ACL setter's
		// right to the set-group-ID bit reach the daemon.
		opts.MountOptions.EnableAcl = true
		opts.MountOptions.ExtraCapabilities |= fuse.CAP_DONT_MASK | fuse.CAP_SETXATTR_EXT
	}
	if mc.NoExec {
		opts.MountOptions.Options = append(opts.MountOptions.Options, "noexec")
	}
	// nodev and nosuid are the default (go-fuse's direct mount, and
	// fusermount3 for every user); root may lift them, as with tmpfs.
	if mc.Dev {
		opts.MountOptions.Options = append(opts.MountOptions.Options, "dev")
	}
	if mc.Suid {
		opts.MountOptions.Options = append(opts.MountOptions.Options, "suid")
	}
	// A direct mount takes ro and the atime settings as flags;
	// fusermount3, as options.
	opts.MountOptions.DirectMountFlags = syscall.MS_NOSUID | syscall.MS_NODEV | mc.Atime.mountFlags()
	if os.Geteuid() != 0 {
		opts.MountOptions.Options = append(opts.MountOptions.Options, mc.Atime.mountOptions()...)
	}
	if mc.ReadOnly {
		opts.MountOptions.DirectMountFlags |= syscall.MS_RDONLY
		if os.Geteuid() != 0 {
			opts.MountOptions.Options = append(opts.MountOptions.Options, "ro")
		}
	}
	target := mountpoint
	if mc.FD != 0 {
		// go-fuse serves an already mounted descriptor given as /dev/fd/N;
		// a direct mount would try to mount on that path first.
		target = fmt.Sprintf("/dev/fd/%d", mc.FD)
		opts.MountOptions.DirectMount = false
	}
	raw := &rawFS{RawFileSystem: fs.NewNodeFS(r.dir, opts), root: r}
	r.devFuse = &ringfuse.DevCounter{RawFileSystem: raw}
	ring := r.prepareRing(raw, mc)
	if ring != nil {
		opts.MountOptions.ExtraCapabilities |= fuse.CAP_OVER_IO_URING
	}
	fdsBefore := ringfuse.FuseFds()
	server, err := fuse.NewServer(r.devFuse, target, &opts.MountOptions)
	if err != nil {
		if ring != nil {
			ring.Close()
		}
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	if err := r.startRing(server, ring, fdsBefore, mc.FD); err != nil {
		go server.Serve()
		server.Unmount()
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	if ring, _ := r.transport(); ring != nil {
		// go-fuse's loop takes over /dev/fuse once the connection is gone,
		// to end the server as usual.
		go func() {
			ring.ServeDev(r.devFuse, maxWrite)
			server.Serve()
		}()
	} else {
		go server.Serve()
	}
	if err := server.WaitMount(); err != nil {
		server.Unmount()
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	whyNot := ""
	if mc.NoPassthrough {
		whyNot = "--no-passthrough"
	} else if err := r.probePassthrough(server); err != nil {
		whyNot = err.Error()
	}
	r.initPassthrough(whyNot) // and off while there is a capacity
	return server, nil
}

// probePassthrough checks that the kernel takes a backing file from the
// spill directory for FUSE passthrough (Linux 6.9+, CAP_SYS_ADMIN, a spill
// filesystem that can be stacked on).
func (r *Root) probePassthrough(server *fuse.Server) error {
	if server.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH == 0 {
		return errors.New("the kernel does not offer it")
	}
	fd, err := r.store.ProbeFd()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	id, errno := server.RegisterBackingFd(&fuse.BackingMap{Fd: int32(fd)})
	if errno != 0 {
		if errno == syscall.EPERM {
			return errors.New("needs root")
		}
		return fmt.Errorf("the kernel refuses backing files: %v", errno)
	}
	server.UnregisterBackingFd(id)
	return nil
}
