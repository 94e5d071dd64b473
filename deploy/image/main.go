// Command kiln-image builds the server's container image without a Docker
// daemon, a registry or a base image: it compiles the example app's server
// as a static Linux binary (CGO_ENABLED=0, -trimpath, version-stamped) and
// assembles an OCI image on an empty base with go-containerregistry, the
// same layout as the Dockerfile's (non-root user 65532, /data volume for
// KILN_DATA_DIR, CA certificates, port 8080).
//
//	go run ./deploy/image -version v1.2.3        # writes bin/kiln-image.tar
//	podman load -i bin/kiln-image.tar            # or docker load -i ...
//	crane push bin/kiln-image.tar registry.example.com/kiln:v1.2.3
//	go run ./deploy/image -version v1.2.3 -oci bin/kiln-oci
//	skopeo copy oci:bin/kiln-oci docker://registry.example.com/kiln:v1.2.3
//
// The output is a docker-archive tarball, and with -oci an OCI image layout
// too. The same inputs give the same image digest: every timestamp is
// SOURCE_DATE_EPOCH (default 0).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "kiln-image: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiln-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		binary  = fs.String("binary", "", "use this static linux binary instead of building one")
		dir     = fs.String("dir", ".", "module directory to build in (the repository root)")
		pkg     = fs.String("pkg", ".", "package of the server to build, relative to -dir")
		arch    = fs.String("arch", runtime.GOARCH, "GOARCH of the image when building (amd64, arm64, ...)")
		version = fs.String("version", "dev", "version stamped into the binary ("+VersionVar+") and the image's labels")
		tag     = fs.String("tag", "", "image name in the tarball (default kiln:<version>)")
		out     = fs.String("out", "bin/kiln-image.tar", "docker-archive tarball to write")
		oci     = fs.String("oci", "", "also write an OCI image layout to this directory")
		ca      = fs.String("ca", "", "CA bundle to copy in (default: this host's)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	created, err := sourceDate(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	if *ca == "" {
		if *ca, err = FindCABundle(); err != nil {
			return err
		}
	}
	if *tag == "" {
		*tag = "kiln:" + *version
	}
	bin := *binary
	if bin == "" {
		tmp, err := os.MkdirTemp("", "kiln-image-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		bin = filepath.Join(tmp, "kiln-server")
		abs, err := filepath.Abs(*dir)
		if err != nil {
			return err
		}
		if err := BuildBinary(ctx, BuildOptions{Dir: abs, Pkg: *pkg, GOARCH: *arch, Version: *version, Out: bin}); err != nil {
			return err
		}
	}
	img, err := Image(Options{Binary: bin, CA: *ca, Version: *version, Created: created})
	if err != nil {
		return err
	}
	if err := Write(img, *tag, *out, *oci); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s (%s, %s)\n", *out, *tag, digest)
	if *oci != "" {
		fmt.Fprintf(stderr, "wrote OCI layout %s\n", *oci)
	}
	return nil
}

// sourceDate is SOURCE_DATE_EPOCH as a time (the Unix epoch when unset).
func sourceDate(s string) (time.Time, error) {
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH must be seconds since 1970, got %q", s)
	}
	return time.Unix(n, 0).UTC(), nil
}
