package main

import (
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"

	"golang.org/x/sys/unix"
)

// startProfiles starts a CPU profile into dir/cpu.pprof (--profile). The
// returned stop ends it and writes the allocation profile, at unmount, for
// go tool pprof. SIGUSR1 writes dir/heap.pprof, what is live at that
// moment (the memory per file of a mount holding many, say).
func startProfiles(dir string) (stop func(*log.Logger), err error) {
	if st, err := os.Lstat(dir); err == nil && st.Mode()&os.ModeSymlink != 0 {
		target, _ := filepath.EvalSymlinks(dir)
		return nil, fmt.Errorf("--profile %s is a symlink, which tmpmount does not follow: give the directory itself (%s) if you mean it", dir, target)
	}
	if err := asRealUser(func() error { return os.MkdirAll(dir, 0o700) }); err != nil {
		return nil, fmt.Errorf("--profile: %v", err)
	}
	cpu, err := openOutput("--profile file", filepath.Join(dir, "cpu.pprof"), unix.O_TRUNC)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		return nil, fmt.Errorf("--profile: %v", err)
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			runtime.GC() // the heap profile shows what was live at the last GC
			writeProfile(filepath.Join(dir, "heap.pprof"), "heap")
		}
	}()
	return func(logger *log.Logger) {
		signal.Stop(usr1)
		pprof.StopCPUProfile()
		if err := cpu.Close(); err != nil {
			logger.Printf("--profile: %v", err)
		}
		if err := writeProfile(filepath.Join(dir, "allocs.pprof"), "allocs"); err != nil {
			logger.Printf("--profile: %v", err)
		}
		logger.Printf("profiles written to %s", dir)
	}, nil
}

func writeProfile(path, name string) error {
	f, err := openOutput("--profile file", path, unix.O_TRUNC)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
