package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's layout. The Dockerfile at the repository root produces the
// same one; keep them in step (TestDockerfileMatchesImage checks it).
const (
	// EntrypointPath is where the server binary lives in the image.
	EntrypointPath = "/usr/local/bin/kiln-server"
	// DataDir is the image's KILN_DATA_DIR and its only volume.
	DataDir = "/data"
	// UID and GID of the non-root user the server runs as (distroless's
	// "nonroot").
	UID = 65532
	GID = 65532
	// Port the server listens on (KILN_ADDR's default, :8080).
	Port = "8080/tcp"
	// CAPath is where Go's crypto/x509 looks first for the CA bundle on
	// Linux; S3 and PostgreSQL over TLS need it.
	CAPath = "/etc/ssl/certs/ca-certificates.crt"
	// VersionVar is the variable the release builds stamp with
	// -ldflags "-X VersionVar=v1.2.3". The linker ignores -X for a
	// variable that does not exist, so a missing one only loses the stamp.
	VersionVar = "kiln/server.Version"
)

// passwd and group give the non-root user a name (some libraries look up
// the current user) and a home.
var (
	passwd = fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)
	group  = fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)
)

// caCandidates are the CA bundles of common build hosts, as Go's
// crypto/x509 lists them.
var caCandidates = []string{
	"/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Arch, Alpine
	"/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
	"/etc/ssl/ca-bundle.pem",             // openSUSE
	"/etc/ssl/cert.pem",                  // macOS, Alpine
}

// FindCABundle returns the first CA bundle found on this host.
func FindCABundle() (string, error) {
	for _, p := range caCandidates {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("no CA bundle found (looked at %s): install ca-certificates or pass -ca", strings.Join(caCandidates, ", "))
}

// BuildOptions says how to compile the server binary.
type BuildOptions struct {
	Dir     string // module directory holding the main package (the repository root)
	Pkg     string // package to build, relative to Dir ("." for the example app's server)
	GOARCH  string // target architecture; GOOS is always linux
	Version string // stamped into VersionVar
	Out     string // output file
}

// BuildBinary compiles a static Linux binary the way the Dockerfile and
// .goreleaser.yaml do: CGO_ENABLED=0, -trimpath, stripped, version-stamped.
// -trimpath also makes the build cache independent of the checkout's
// path, so fresh clones reuse it.
func BuildBinary(ctx context.Context, o BuildOptions) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X "+VersionVar+"="+o.Version, "-o", o.Out, o.Pkg)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s (GOOS=linux GOARCH=%s): %v\n%s", o.Pkg, o.GOARCH, err, out)
	}
	return nil
}

// Options describe the image to assemble.
type Options struct {
	Binary  string    // a static linux binary (see BuildBinary)
	CA      string    // CA bundle to copy in (see FindCABundle)
	Version string    // org.opencontainers.image.version
	Created time.Time // every timestamp in the image (reproducible builds: SOURCE_DATE_EPOCH)
}

// Image assembles the image on an empty base, without a daemon or a
// registry: one layer with the root filesystem (passwd, group, CA bundle,
// /data owned by the non-root user, /tmp), one with the binary, and the
// config (entrypoint, user, port, volume, environment, labels).
func Image(o Options) (v1.Image, error) {
	arch, err := StaticArch(o.Binary)
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(o.CA)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	base := []entry{
		dir("etc/", 0o755, 0, 0),
		file("etc/passwd", 0o644, []byte(passwd)),
		file("etc/group", 0o644, []byte(group)),
		file("etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n")),
		dir("etc/ssl/", 0o755, 0, 0),
		dir("etc/ssl/certs/", 0o755, 0, 0),
		file(strings.TrimPrefix(CAPath, "/"), 0o644, ca),
		dir("home/", 0o755, 0, 0),
		dir("home/nonroot/", 0o700, UID, GID),
		// Multipart uploads spool to os.TempDir().
		dir("tmp/", 0o1777, 0, 0),
		// The volume: a new named volume takes this owner and mode.
		dir(strings.TrimPrefix(DataDir, "/")+"/", 0o700, UID, GID),
	}
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, err
	}
	app := []entry{
		dir("usr/", 0o755, 0, 0),
		dir("usr/local/", 0o755, 0, 0),
		dir("usr/local/bin/", 0o755, 0, 0),
		file(strings.TrimPrefix(EntrypointPath, "/"), 0o755, bin),
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range []struct {
		entries []entry
		what    string
	}{
		{base, "root filesystem: passwd, group, CA certificates, /tmp, " + DataDir},
		{app, "server binary " + EntrypointPath},
	} {
		layer, err := tarLayer(l.entries, o.Created)
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
			History: v1.History{CreatedBy: "kiln-image: " + l.what, Created: v1.Time{Time: o.Created}}})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = Config(o.Version)
	return mutate.ConfigFile(img, cf)
}

// Config is the image's runtime configuration (the Dockerfile's final
// stage says the same).
func Config(version string) v1.Config {
	return v1.Config{
		Entrypoint:   []string{EntrypointPath},
		User:         fmt.Sprintf("%d:%d", UID, GID),
		WorkingDir:   DataDir,
		ExposedPorts: map[string]struct{}{Port: {}},
		Volumes:      map[string]struct{}{DataDir: {}},
		Env:          []string{"PATH=/usr/local/bin", "KILN_DATA_DIR=" + DataDir},
		StopSignal:   "SIGTERM",
		Labels: map[string]string{
			"org.opencontainers.image.title":       "kiln",
			"org.opencontainers.image.description": "Kiln GraphQL backend: the example app's server",
			"org.opencontainers.image.version":     version,
		},
	}
}

// StaticArch checks that path is a statically linked Linux executable (no
// program interpreter, no shared libraries: it runs on an empty base) and
// returns its GOARCH.
func StaticArch(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: not a Linux executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked (it has a program interpreter): build it with CGO_ENABLED=0", path)
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		return "", fmt.Errorf("%s needs shared libraries %v: build it with CGO_ENABLED=0", path, libs)
	}
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	case elf.EM_RISCV:
		return "riscv64", nil
	case elf.EM_PPC64:
		return "ppc64le", nil
	case elf.EM_S390:
		return "s390x", nil
	}
	return "", fmt.Errorf("%s: unsupported machine %v", path, f.Machine)
}

type entry struct {
	hdr  tar.Header
	body []byte
}

func dir(name string, mode int64, uid, gid int) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: gid}}
}

func file(name string, mode int64, body []byte) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body: body}
}

// tarLayer writes entries in order with fixed timestamps and owners, so the
// same inputs give the same layer digest.
func tarLayer(entries []entry, created time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.ModTime, h.Format = created, tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

// Write saves img as a docker-archive tarball (docker load, podman load,
// crane push, skopeo copy docker-archive:) tagged ref, and, when layoutDir
// is set, as an OCI image layout (skopeo copy oci:, crane push, regctl).
func Write(img v1.Image, ref, tarPath, layoutDir string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image name %q: %w", ref, err)
	}
	if err := os.MkdirAll(filepath.Dir(tarPath), 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
		return err
	}
	if layoutDir == "" {
		return nil
	}
	p, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag.TagStr(),
	}))
}
