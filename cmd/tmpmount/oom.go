package main

import (
	"errors"
	"log"
	"os"
	"strconv"
	"strings"
)

// daemonOOMScoreAdj is the daemon's oom_score_adj when it may lower it
// (root): it holds the data of every file on the mount, so under memory
// pressure the kernel should kill a job that uses the mount before the
// mount itself. Not -1000: a daemon that runs away should still be killable.
const daemonOOMScoreAdj = -900

const oomScoreAdjFile = "/proc/self/oom_score_adj"

// readOOMScoreAdj returns this process's oom_score_adj ("" if unknown).
func readOOMScoreAdj() string {
	data, err := os.ReadFile(oomScoreAdjFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// lowerOOMScore lowers the daemon's oom_score_adj to daemonOOMScoreAdj
// where it may (root with CAP_SYS_RESOURCE); elsewhere it stays as it was.
func lowerOOMScore(logger *log.Logger) {
	if os.Geteuid() != 0 {
		return
	}
	if cur, err := strconv.Atoi(readOOMScoreAdj()); err != nil || cur <= daemonOOMScoreAdj {
		return
	}
	err := os.WriteFile(oomScoreAdjFile, []byte(strconv.Itoa(daemonOOMScoreAdj)), 0)
	if err != nil && !errors.Is(err, os.ErrPermission) {
		// Lowering takes CAP_SYS_RESOURCE, which root in a container or
		// sandbox may lack: then the score stays, without a word.
		logger.Printf("cannot lower the daemon's OOM score (oom_score_adj): %v", err)
	}
}
