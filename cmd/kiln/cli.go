package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"syscall"

	"golang.org/x/mod/modfile"
)

// appCommand runs the app of a directory: kiln serve and kiln migrate.
type appCommand struct {
	// Dir is the app's module root (holding go.mod and its main package).
	Dir string
	// Env is the app's environment; nil: kiln's own.
	Env []string
	// Stdin is attached to the app.
	Stdin io.Reader
}

// run builds the app's main package into a temporary binary, runs it with
// args, standard streams attached, passes SIGINT and SIGTERM on (and
// SIGTERM when ctx ends), and returns its exit status. With help set,
// a directory without go.mod is no error: the help kiln printed stands
// alone.
func (app appCommand) run(ctx context.Context, args []string, stdout, stderr io.Writer, help bool) int {
	gomod, err := os.ReadFile(filepath.Join(app.Dir, "go.mod"))
	if err != nil {
		if help {
			fmt.Fprintln(stdout, "\n(run it in an app's directory, next to its go.mod, to list the app's settings)")
			return 0
		}
		fmt.Fprintf(stderr, "kiln: %s is not an app's directory (no go.mod): run kiln %s where the app's main.go is, or create an app with kiln new\n", app.Dir, args[0])
		return 1
	}
	name := "app"
	if mod := modfile.ModulePath(gomod); mod != "" {
		name = path.Base(mod)
	}
	tmp, err := os.MkdirTemp("", "kiln-app-")
	if err != nil {
		fmt.Fprintf(stderr, "kiln: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, name)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir, build.Env, build.Stdout, build.Stderr = app.Dir, app.Env, stderr, stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(stderr, "kiln: build the app in %s: %v\n", app.Dir, err)
		return 1
	}

	// Signals go to the app, which decides when to stop; kiln waits for it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = app.Dir, app.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = app.Stdin, stdout, stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "kiln: run the app: %v\n", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := ctx.Done()
	for {
		select {
		case err := <-done:
			return exitStatus(err, stderr)
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case <-stop:
			stop = nil
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
	}
}

// exitStatus is the status a finished app exited with (1 when a signal
// ended it).
func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if code := ee.ExitCode(); code > 0 {
			return code
		}
		fmt.Fprintf(stderr, "kiln: the app %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "kiln: %v\n", err)
	return 1
}
