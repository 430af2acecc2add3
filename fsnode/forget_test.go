package fsnode

import (
	"testing"
	"time"
)

func TestPendingForgetsWait(t *testing.T) {
	var p pendingForgets
	if p.wait(time.Minute) {
		t.Fatal("wait with nothing pending reported a pending file")
	}

	// A wait ends when the last pending file is forgotten, long before
	// its deadline (the test would time out otherwise).
	p.add()
	p.add()
	go func() {
		p.remove()
		p.remove()
	}()
	p.wait(time.Hour)
	p.mu.Lock()
	count := p.count
	p.mu.Unlock()
	if count != 0 {
		t.Fatalf("wait returned with %d files pending, before its deadline", count)
	}

	// A file never forgotten bounds the wait by the deadline.
	p.add()
	const d = 20 * time.Millisecond
	start := time.Now()
	if !p.wait(d) {
		t.Error("wait with a file pending reported none")
	}
	if elapsed := time.Since(start); elapsed < d {
		t.Errorf("wait returned after %v with a file still pending, before its %v deadline", elapsed, d)
	}
	p.remove()
	if p.wait(time.Minute) {
		t.Error("wait after the last remove reported a pending file")
	}
}
