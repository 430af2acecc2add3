package ringfuse

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newTestQueue makes a queue whose ring the calling thread submits to. It
// needs io_uring, not FUSE: nothing is registered.
func newTestQueue(t *testing.T) *queue {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	q, err := newQueue(&Transport{}, 0, 1, 4096)
	if err != nil {
		if os.Getenv("CI") != "true" && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS)) {
			t.Skipf("io_uring unavailable here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { q.close(); q.closeWake() })
	if err := q.ring.enable(); err != nil {
		t.Fatal(err)
	}
	return q
}

// A queue waits for requests without a timeout; Stop must be able to end
// that wait through the queue's eventfd.
func TestWakeEndsUntimedWait(t *testing.T) {
	q := newTestQueue(t)
	if err := q.prepWake(); err != nil {
		t.Fatal(err)
	}
	// Submit the read first (the timed wait ends without a completion), so
	// that the wake below finds it pending.
	if err := waitRetrying(q, 10*time.Millisecond); err != nil && !errors.Is(err, unix.ETIME) {
		t.Fatalf("submitting the wake read: %v", err)
	}
	if n := q.ring.completions(func(ud uint64, res int32) {}); n != 0 {
		t.Fatalf("%d completions before the wake, want the read pending", n)
	}
	// With nothing submitted, a timed wait reports its timeout.
	if err := waitRetrying(q, 10*time.Millisecond); !errors.Is(err, unix.ETIME) {
		t.Fatalf("timed wait with nothing to complete: %v, want ETIME", err)
	}
	woken := make(chan struct{})
	start := time.Now()
	time.AfterFunc(50*time.Millisecond, func() { q.wake(); close(woken) })
	err := waitRetrying(q, 0)
	<-woken
	if err != nil {
		t.Fatalf("untimed wait: %v", err)
	}
	var got []int32
	q.ring.completions(func(ud uint64, res int32) {
		if ud != wakeData {
			t.Errorf("completion with user_data %#x, want only the wake read", ud)
		}
		got = append(got, res)
	})
	if len(got) != 1 || got[0] != 8 {
		t.Fatalf("wake read completed with %v, want one read of 8 bytes", got)
	}
	if waited := time.Since(start); waited < 40*time.Millisecond {
		t.Fatalf("untimed wait returned after %v, before the wake", waited)
	}
}

// waitRetrying is submitAndWait retried after a signal, as the queue's
// serve loop does.
func waitRetrying(q *queue, timeout time.Duration) error {
	for {
		if err := q.ring.submitAndWait(timeout); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
