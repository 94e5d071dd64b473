package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkColdStart measures how long the server binary takes from exec to
// its "kiln ready" log line on a fresh, empty SQLite data directory: process
// start, Go runtime init, creating the database file, applying every
// migration, building the GraphQL schema and listening. Only that span is
// timed; building the binary (once), making the directory and stopping the
// server (SIGTERM, wait) are not.
//
// Metrics: ms/ready is the mean timed span (the same as ns/op, in ms);
// ms/startup is the mean of the server's own startup= figure, which starts
// at the top of run() and so excludes exec and runtime init.
func BenchmarkColdStart(b *testing.B) {
	bin := kilnBinary(b)
	base := b.TempDir()
	var ready, startup time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir, err := os.MkdirTemp(base, "data-")
		if err != nil {
			b.Fatal(err)
		}
		env := []string{
			"KILN_DATA_DIR=" + dir,
			"DATABASE_URL=",
			"KILN_LOG_LEVEL=info",
		}
		args := []string{"-addr", "127.0.0.1:0"}
		b.StartTimer()

		t0 := time.Now()
		s, err := startProcess(bin, args, env)
		took := time.Since(t0)

		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		ready += took
		startup += s.Startup
		if err := s.stop(); err != nil {
			b.Fatalf("stop: %v\n%s", err, s.Logs())
		}
		if _, err := os.Stat(filepath.Join(dir, "kiln.db")); err != nil {
			b.Fatalf("server did not create its SQLite file: %v", err)
		}
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(ready.Microseconds())/1e3/n, "ms/ready")
	b.ReportMetric(float64(startup.Microseconds())/1e3/n, "ms/startup")
}
