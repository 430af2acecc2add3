package fsnode

import "sync"

// An open can reach the daemon for a close-policy file whose names the
// policy has just taken: the kernel's dentry cache still had the name (it
// learns a moment later, see notifier). Such an open is answered ESTALE,
// and the kernel then looks the name up again and retries once: a plain
// open gets ENOENT, open(O_CREAT) makes a new file, as for a name that is
// gone. The retry can find another such file (a writer re-making the name
// and closing it, in a loop); it is not answered ESTALE a second time,
// which would reach the caller, but opens that file (its data stays while
// the kernel holds a reference to it, kernelrefs.go), as an open racing
// with an unlink opens the unlinked file on tmpfs.
//
// staleOpens tells the retry: the threads (FUSE requests carry the
// caller's thread id) whose last OPEN was answered ESTALE. A thread whose
// retry never reaches OPEN keeps its mark until its next one, which then
// may open such a file too: harmless.
type staleOpens struct {
	mu   sync.Mutex
	pids map[uint32]struct{}
}

// maxStaleMarks bounds the marks kept; past it they are all dropped.
const maxStaleMarks = 4096

func (s *staleOpens) mark(pid uint32) {
	if pid == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pids == nil || len(s.pids) >= maxStaleMarks {
		s.pids = make(map[uint32]struct{})
	}
	s.pids[pid] = struct{}{}
}

// take reports whether pid's last OPEN was answered ESTALE, and forgets it.
func (s *staleOpens) take(pid uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pids[pid]; !ok {
		return false
	}
	delete(s.pids, pid)
	return true
}
