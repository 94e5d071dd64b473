package bench

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// processCPU returns the user+system CPU time a process has used so far,
// from /proc/<pid>/stat (Linux; ok is false elsewhere).
func processCPU(pid int) (d time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is the first, utime the 12th and stime the 13th.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const userHZ = 100 // clock ticks per second (USER_HZ) on Linux
	return time.Duration(utime+stime) * time.Second / userHZ, true
}
