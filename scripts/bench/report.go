package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// result is one workload on one target in one run: the raw data.
type result struct {
	Run           int         `json:"run"`      // 1-based
	Position      int         `json:"position"` // 1-based place of the target in this run's order
	Target        string      `json:"target"`
	Kind          string      `json:"kind"`
	Workload      string      `json:"workload"`
	Unit          string      `json:"unit"`
	Value         float64     `json:"value"`
	ElapsedNS     int64       `json:"elapsed_ns"`
	Bytes         int64       `json:"bytes,omitempty"`
	Ops           int64       `json:"ops,omitempty"`
	Residency     string      `json:"residency,omitempty"`
	CachesDropped bool        `json:"caches_dropped"`
	Mount         *mountEntry `json:"mount,omitempty"`
	// Passthrough: tmpmount's FUSE passthrough state in this run, from
	// its daemon's "serving" line.
	Passthrough string `json:"passthrough,omitempty"`
	// DaemonIO: bytes the daemon read and wrote (rchar + wchar) during
	// the workload, setup included; tmpmount targets only.
	DaemonIO *int64 `json:"daemon_io_bytes,omitempty"`
	// Requests: FUSE requests the daemon served during the workload, every
	// transport and FORGETs included (its user.tmpmount.stats); DaemonCPUNS
	// its CPU time (all threads, /proc/PID/task/*/schedstat). tmpmount
	// targets only.
	Requests    *int64 `json:"requests,omitempty"`
	DaemonCPUNS *int64 `json:"daemon_cpu_ns,omitempty"`
	CountedOps  int64  `json:"counted_ops,omitempty"` // the operations Requests covers (warm-up included)
}

// summaryRow is the median of one workload on one target over the runs.
type summaryRow struct {
	Workload  string    `json:"workload"`
	Target    string    `json:"target"`
	Kind      string    `json:"kind"`
	Unit      string    `json:"unit"`
	Median    float64   `json:"median"`
	Values    []float64 `json:"values"`
	VsTmpfs   float64   `json:"vs_tmpfs,omitempty"`   // median / tmpfs median
	VsDisk    float64   `json:"vs_disk,omitempty"`    // median / disk median, for data on the spill disk and big-* rows
	BelowGoal bool      `json:"below_goal,omitempty"` // VsDisk is below the workload's spillGoal
	Residency string    `json:"residency,omitempty"`
	DaemonIO  *float64  `json:"daemon_io_bytes,omitempty"` // median over the runs
}

// summarize takes medians per workload and target, in workload and target
// order, and the ratios: every value is higher-is-better, so a ratio
// above 1 means faster than the reference.
func summarize(targets []*target, wls []workload, results []result) []summaryRow {
	var rows []summaryRow
	for _, wl := range wls {
		medians := map[string]float64{}
		start := len(rows)
		for _, t := range targets {
			row := summaryRow{Workload: wl.name, Target: t.name, Kind: t.kind, Unit: wl.unit}
			var where []string
			var moved []float64
			for _, r := range results {
				if r.Workload == wl.name && r.Target == t.name {
					row.Values = append(row.Values, r.Value)
					if r.Residency != "" && !slices.Contains(where, r.Residency) {
						where = append(where, r.Residency)
					}
					if r.DaemonIO != nil {
						moved = append(moved, float64(*r.DaemonIO))
					}
				}
			}
			if len(row.Values) == 0 {
				continue
			}
			row.Median = median(row.Values)
			if len(moved) > 0 {
				m := median(moved)
				row.DaemonIO = &m
			}
			row.Residency = strings.Join(where, "+")
			medians[t.name] = row.Median
			rows = append(rows, row)
		}
		for i := start; i < len(rows); i++ {
			rows[i].VsTmpfs = ratio(rows[i].Median, medians["tmpfs"])
			// The disk ratio matters where tmpmount's data is on the
			// spill disk: there it should not be worse than the disk. The
			// big-* workloads show it everywhere (tmpfs and RAM for scale)
			// and flag what falls short of the goal.
			if rows[i].Kind == kindTmpmount && strings.Contains(rows[i].Residency, "disk") || wl.spillGoal > 0 && rows[i].Kind != kindDisk {
				rows[i].VsDisk = ratio(rows[i].Median, medians["disk"])
				// The goal is tmpmount's, with its data on the spill disk.
				rows[i].BelowGoal = wl.spillGoal > 0 && rows[i].Kind == kindTmpmount && strings.Contains(rows[i].Residency, "disk") &&
					rows[i].VsDisk > 0 && rows[i].VsDisk < wl.spillGoal
			}
		}
	}
	return rows
}

func median(values []float64) float64 {
	s := slices.Clone(values)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// printTable prints the summary as aligned columns, one block per workload.
func printTable(w io.Writer, rows []summaryRow, cfg *config) {
	fmt.Fprintf(w, "\nresults: median of %d run(s); MB/s and ops/s: higher is better; s, MiB and B/file: lower is better; ×tmpfs = median/tmpfs median, ×disk = median/disk median (tmpmount rows whose data was on the spill disk, and every big-* row), in the row's unit: for s, × the reference's time\n", cfg.runs)
	if tmpmountOnly(cfg.workloads) {
		fmt.Fprintln(w, "run-true and rss-* measure tmpmount itself: no tmpfs or disk rows, so no ratios")
	}
	fmt.Fprintln(w, "daemon I/O: median bytes the tmpmount daemon read + wrote during the workload (rchar+wchar: /dev/fuse and spill files); near 0 where the kernel served it (passthrough, page cache)")
	if goal := goalOf(cfg.workloads); goal > 0 {
		fmt.Fprintf(w, "goal: tmpmount's big-* rows should reach %.1f×disk (the spill filesystem) for sequential and mmap I/O with passthrough; tmpmount rows with their data on the spill disk that fall below are flagged <%.1f (no assertion)\n", goal, goal)
	}
	fmt.Fprintln(w)
	table := [][]string{{"workload", "target", "median", "unit", "×tmpfs", "×disk", "runs", "tmpmount data in", "daemon I/O", "goal"}}
	prev := ""
	for _, r := range rows {
		name := r.Workload
		if name == prev {
			name = ""
		}
		prev = r.Workload
		moved, flag := "", ""
		if r.DaemonIO != nil {
			moved = formatMB(*r.DaemonIO)
		}
		if r.BelowGoal {
			flag = fmt.Sprintf("<%.1f", goalOf(cfg.workloads))
		}
		table = append(table, []string{
			name, r.Target, formatValue(r.Median), r.Unit,
			formatRatio(r.VsTmpfs), formatRatio(r.VsDisk), formatValues(r.Values), r.Residency,
			moved, flag,
		})
	}
	writeAligned(w, table, []bool{false, false, true, false, true, true, false, false, true, false})
}

// goalOf returns the spill goal of the workloads (they share one), or 0.
func goalOf(wls []workload) float64 {
	for _, wl := range wls {
		if wl.spillGoal > 0 {
			return wl.spillGoal
		}
	}
	return 0
}

// formatMB formats a byte count in decimal megabytes, like MB/s.
func formatMB(n float64) string {
	if n < 0.05e6 {
		return "0 MB"
	}
	if n >= 100e6 {
		return fmt.Sprintf("%.0f MB", n/1e6)
	}
	return fmt.Sprintf("%.1f MB", n/1e6)
}

func formatValue(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1 || v == 0:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3f", v) // sub-second times
}

// tmpmountOnly says whether any of the workloads runs on tmpmount only.
func tmpmountOnly(wls []workload) bool {
	for _, wl := range wls {
		if wl.tmpmountOnly {
			return true
		}
	}
	return false
}

func formatRatio(v float64) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", v)
}

func formatValues(vs []float64) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = formatValue(v)
	}
	return strings.Join(parts, " ")
}

// writeAligned pads every column to its widest cell; right[i] right-aligns
// column i (numbers). Widths count runes, for the × signs.
func writeAligned(w io.Writer, table [][]string, right []bool) {
	widths := make([]int, len(table[0]))
	for _, row := range table {
		for i, cell := range row {
			widths[i] = max(widths[i], len([]rune(cell)))
		}
	}
	for _, row := range table {
		var b strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", widths[i]-len([]rune(cell)))
			if right[i] {
				b.WriteString(pad + cell)
			} else {
				b.WriteString(cell + pad)
			}
			if i < len(row)-1 {
				b.WriteString("  ")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// checkMounts compares the mount of every run with the probe's: the header
// shows the probe's options, and this says whether they held throughout.
func checkMounts(w io.Writer, targets []*target, results []result) {
	for _, t := range targets {
		if t.kind != kindTmpmount || t.probed == nil {
			continue
		}
		seen := map[int]bool{}
		var differ []string
		for _, r := range results {
			if r.Target != t.name || r.Mount == nil || seen[r.Run] {
				continue
			}
			seen[r.Run] = true
			if r.Mount.Options != t.probed.Options || r.Mount.SuperOpts != t.probed.SuperOpts {
				differ = append(differ, fmt.Sprintf("run %d: %s", r.Run, r.Mount))
			}
			if r.Passthrough != t.passthrough {
				differ = append(differ, fmt.Sprintf("run %d: passthrough %s", r.Run, r.Passthrough))
			}
		}
		if len(differ) == 0 {
			fmt.Fprintf(w, "%s: the mount options and passthrough state of all %d run mount(s) were those shown in the header\n", t.name, len(seen))
			continue
		}
		fmt.Fprintf(w, "%s: mount options or passthrough state differed from the header's: %s\n", t.name, strings.Join(differ, "; "))
	}
}

// writeJSON writes everything measured, for later comparison.
func writeJSON(path string, hdr *header, results []result, rows []summaryRow) error {
	data, err := json.MarshalIndent(struct {
		Header  *header      `json:"header"`
		Results []result     `json:"results"`
		Summary []summaryRow `json:"summary"`
	}{hdr, results, rows}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write -json file: %w", err)
	}
	return nil
}
