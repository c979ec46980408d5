package loadgen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// procSample is one reading of a process's CPU time and resident memory.
type procSample struct {
	cpu time.Duration // utime + stime
	rss int64         // VmRSS in bytes
}

// sampleProc reads /proc/PID/stat and /proc/PID/status. Linux only, which is
// where the performance bars are measured.
func sampleProc(pid int) (procSample, error) {
	cpu, err := procCPU(pid)
	if err != nil {
		return procSample{}, err
	}
	rss, err := procRSS(pid)
	if err != nil {
		return procSample{}, err
	}
	return procSample{cpu: cpu, rss: rss}, nil
}

// procCPU returns utime+stime of pid. The counters are in clock ticks, so the
// resolution is 1/CLK_TCK (10 ms at the usual 100 Hz): a measuring window of
// a few seconds keeps that error well under 1%.
func procCPU(pid int) (time.Duration, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("loadgen: read server cpu: %w", err)
	}
	// The command name (field 2) is in parentheses and may itself contain
	// spaces and parentheses, so fields are counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("loadgen: parse %s: no command name", path)
	}
	f := bytes.Fields(b[i+1:])
	// After the name: state(3) ppid(4) ... utime(14) stime(15).
	if len(f) < 13 {
		return 0, fmt.Errorf("loadgen: parse %s: %d fields", path, len(f))
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("loadgen: parse %s: bad utime/stime", path)
	}
	return time.Duration(utime+stime) * time.Second / time.Duration(clockTicks()), nil
}

// procRSS returns the resident set size of pid in bytes.
func procRSS(pid int) (int64, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("loadgen: read server rss: %w", err)
	}
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest) // "12345 kB"
		if len(f) != 2 || string(f[1]) != "kB" {
			break
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			break
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("loadgen: parse %s: no VmRSS", path)
}

// clockTicks is sysconf(_SC_CLK_TCK), the unit of /proc/PID/stat times.
// Without cgo there is no sysconf, but glibc answers it from the AT_CLKTCK
// entry of the auxiliary vector the kernel hands every process, and that
// vector is readable at /proc/self/auxv. 100 (USER_HZ on every mainstream
// architecture) is the fallback.
var clockTicks = sync.OnceValue(func() int64 {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	// Pairs of native words; 64-bit little endian is what Ferry ships for.
	for ; len(b) >= 16; b = b[16:] {
		key, val := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
		if key == atClkTck && val > 0 && val < 1e6 {
			return int64(val)
		}
	}
	return 100
})

// selfCPU returns this process's user+system CPU time. getrusage counts in
// microseconds, finer than /proc's clock ticks.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// raiseNoFile lifts RLIMIT_NOFILE to its hard limit, since every connection
// is a file descriptor and the default soft limit (1024) is far below the
// 19,000 connections the bars ask for.
func raiseNoFile() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("loadgen: get open-file limit: %w", err)
	}
	if lim.Cur >= lim.Max {
		return nil
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("loadgen: raise open-file limit to %d: %w", lim.Max, err)
	}
	return nil
}
