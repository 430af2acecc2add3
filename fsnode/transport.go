package fsnode

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tmpmount/tmpmount/fsnode/ringfuse"
)

// enableURing is the kernel's switch for FUSE over io_uring.
const enableURing = "/sys/module/fuse/parameters/enable_uring"

// prepareRing makes the io_uring queues before mounting, unless turned
// off or io_uring cannot be used here; nil then, with the reason recorded.
func (r *Root) prepareRing(raw fuse.RawFileSystem, mc MountConfig) *ringfuse.Transport {
	if mc.NoURing {
		r.setTransport(nil, "/dev/fuse (io_uring off: --no-uring)")
		return nil
	}
	t, err := ringfuse.Prepare(ringfuse.Config{FS: raw, PayloadSize: maxWrite, Debug: mc.Debug, Logger: r.log})
	if err != nil {
		r.setTransport(nil, "/dev/fuse (io_uring refused: "+err.Error()+")")
		return nil
	}
	return t
}

// startRing serves the mount over io_uring when INIT negotiated it, and
// otherwise records why /dev/fuse carries everything. Once negotiated,
// the kernel holds every request until all queues are registered: an error
// here means the mount cannot serve and must be given up.
func (r *Root) startRing(server *fuse.Server, t *ringfuse.Transport, fdsBefore map[int]bool, knownFd int) error {
	if t == nil {
		return nil
	}
	if server.KernelSettings().Flags64()&fuse.CAP_OVER_IO_URING == 0 {
		t.Close()
		r.setTransport(nil, "/dev/fuse (io_uring not offered: "+whyNoURing()+")")
		return nil
	}
	// The mount's descriptor: given (tmpmount run's command stage), or the
	// one go-fuse opened.
	fd, err := knownFd, error(nil)
	if fd == 0 {
		fd, err = ringfuse.NewFuseFd(fdsBefore)
	}
	if err == nil {
		err = t.Start(fd)
	} else {
		t.Close()
	}
	if err != nil {
		return fmt.Errorf("the kernel refused FUSE over io_uring (%v): mount with --no-uring", err)
	}
	r.setTransport(t, fmt.Sprintf("io_uring (%d queues)", t.Queues()))
	return nil
}

func (r *Root) setTransport(t *ringfuse.Transport, note string) {
	r.notesMu.Lock()
	r.ring, r.transportNote = t, note
	r.notesMu.Unlock()
}

func (r *Root) transport() (*ringfuse.Transport, string) {
	r.notesMu.Lock()
	defer r.notesMu.Unlock()
	return r.ring, r.transportNote
}

// whyNoURing says why the kernel did not offer FUSE over io_uring.
func whyNoURing() string {
	b, err := os.ReadFile(enableURing)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "this kernel has no FUSE io_uring; it needs Linux 6.14+ with CONFIG_FUSE_IO_URING"
	case err != nil:
		return err.Error()
	case strings.TrimSpace(string(b)) != "Y":
		return "enable_uring is off; as root: echo Y > " + enableURing
	}
	return "the kernel did not offer it"
}

// Transport says which transport serves the mount: io_uring and its
// number of queues, or /dev/fuse and why.
func (r *Root) Transport() string {
	_, note := r.transport()
	return note
}

// StopTransport waits for the io_uring queues to end once the mount is
// gone (after the fuse.Server's Wait), before Shutdown frees the tree.
func (r *Root) StopTransport() {
	if t, _ := r.transport(); t != nil {
		t.Stop()
	}
}

// TransportStats counts requests by transport.
type TransportStats struct {
	Transport string   `json:"transport"`      // as the serving line says
	Queues    int      `json:"queues"`         // io_uring queues (0: /dev/fuse only)
	Ring      []uint64 `json:"ring,omitempty"` // requests served per io_uring queue
	DevFuse   uint64   `json:"dev_fuse"`       // requests served from /dev/fuse, FORGETs aside
	Forgets   uint64   `json:"forgets"`        // FORGETs (always /dev/fuse)
}

func (r *Root) transportStats() TransportStats {
	t, note := r.transport()
	ts := TransportStats{Transport: note}
	if r.devFuse != nil {
		ts.DevFuse, ts.Forgets = r.devFuse.Requests(), r.devFuse.Forgets()
	}
	if t != nil {
		ts.Queues = t.Queues()
		ts.Ring = t.Served()
	}
	return ts
}
