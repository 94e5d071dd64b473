# syntax=docker/dockerfile:1
#
# The example app's server as a small, non-root image:
#
#   docker build -t kiln --build-arg VERSION=v1.2.3 .
#   docker run -p 8080:8080 -v kiln-data:/data kiln
#
# The same image without Docker (no daemon, no registry, no base image):
# go run ./deploy/image (see docs/operate/deploy.md). Both give the layout
# below; deploy/image/dockerfile_test.go keeps them in step.

ARG GO_VERSION=1.26

# --- build: a static binary (pure-Go SQLite, so no cgo) ---------------------
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src

# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X kiln/server.Version=${VERSION}" \
      -o /out/rootfs/usr/local/bin/kiln-server .

# The root filesystem of the final stage: the non-root user (65532, as in
# distroless), CA certificates for S3 and PostgreSQL over TLS, /tmp for
# multipart uploads. Apart, to be copied with the user as owner: /data
# (KILN_DATA_DIR; a new named volume inherits its owner) and the user's
# home, each copied as an entry of its parent so that its mode (0700)
# comes along.
RUN mkdir -p /out/rootfs/etc/ssl/certs /out/rootfs/tmp /out/rootfs/home /out/data/data /out/home/nonroot \
 && cp /etc/ssl/certs/ca-certificates.crt /out/rootfs/etc/ssl/certs/ca-certificates.crt \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /out/rootfs/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /out/rootfs/etc/group \
 && printf 'hosts: files dns\n' > /out/rootfs/etc/nsswitch.conf \
 && chmod 1777 /out/rootfs/tmp \
 && chmod 0700 /out/data/data /out/home/nonroot

# --- the image: nothing but the binary and the files above -------------------
FROM scratch
ARG VERSION=dev
COPY --from=build /out/rootfs/ /
COPY --from=build --chown=65532:65532 /out/data/ /
COPY --from=build --chown=65532:65532 /out/home/ /home/
ENV PATH=/usr/local/bin KILN_DATA_DIR=/data
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
USER 65532:65532
LABEL org.opencontainers.image.title="kiln" \
      org.opencontainers.image.description="Kiln GraphQL backend: the example app's server" \
      org.opencontainers.image.version="${VERSION}"
STOPSIGNAL SIGTERM
# No HEALTHCHECK: a scratch image has no shell or curl to run one. Use the
# orchestrator's HTTP probes instead: readiness GET /readyz (503 while the
# database is unreachable), liveness GET /healthz (docs/operate/deploy.md).
ENTRYPOINT ["/usr/local/bin/kiln-server"]
