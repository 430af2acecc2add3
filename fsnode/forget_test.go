package fsnode

import (
	"testing"
	"time"
)

func TestReclaimsWaitSettled(t *testing.T) {
	var r reclaims
	if r.waitSettled(time.Minute) {
		t.Fatal("waitSettled with nothing awaiting its forget reported a file")
	}

	// A wait ends when the last awaited file is forgotten, long before
	// its deadline (the test would time out otherwise).
	r.addAwaiting()
	r.addAwaiting()
	go func() {
		r.removeAwaiting()
		r.removeAwaiting()
	}()
	r.waitSettled(time.Hour)
	r.mu.Lock()
	awaiting := r.awaiting
	r.mu.Unlock()
	if awaiting != 0 {
		t.Fatalf("waitSettled returned with %d files awaiting, before its deadline", awaiting)
	}

	// A file never forgotten bounds the wait by the deadline.
	r.addAwaiting()
	const d = 20 * time.Millisecond
	start := time.Now()
	if !r.waitSettled(d) {
		t.Error("waitSettled with a file awaiting reported none")
	}
	if elapsed := time.Since(start); elapsed < d {
		t.Errorf("waitSettled returned after %v with a file still awaiting, before its %v deadline", elapsed, d)
	}
	r.removeAwaiting()
}

func TestReclaimsWaitFreed(t *testing.T) {
	var r reclaims
	if r.waitFreed(time.Minute) {
		t.Fatal("waitFreed with no file on its way out waited")
	}

	// An unlinked file still open (its RELEASE on its way, say): a wait
	// ends at the next file freed.
	r.setOrphan(true)
	freed := make(chan struct{})
	go func() {
		defer close(freed)
		for {
			r.mu.Lock()
			waiting := r.freed != nil
			r.mu.Unlock()
			if waiting {
				r.setOrphan(false)
				r.fileFreed()
				return
			}
			time.Sleep(time.Millisecond) // polls for the waiter to be there
		}
	}()
	if !r.waitFreed(time.Hour) {
		t.Error("waitFreed with an orphan did not wait")
	}
	<-freed

	// An orphan that is never freed bounds the wait by the deadline.
	r.setOrphan(true)
	const d = 20 * time.Millisecond
	start := time.Now()
	r.waitFreed(d)
	if elapsed := time.Since(start); elapsed < d {
		t.Errorf("waitFreed returned after %v with no file freed, before its %v deadline", elapsed, d)
	}
}
