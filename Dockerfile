# syntax=docker/dockerfile:1
# The PlanOps operator image: `docker build .` from the repository root.
#
#   docker build --build-arg PLANOPS_GIT_COMMIT=$(git rev-parse HEAD) \
#     --build-arg VERSION=0.1.0 -t ghcr.io/planops/planops:0.1.0 .
#
# scripts/image.sh builds the same image without a Docker engine, and
# tests/image.rs holds the two to the same user, entrypoint, env and labels.
# The build context leaves .git out (.dockerignore), so the commit that
# `planops --version` shows comes from PLANOPS_GIT_COMMIT.

# The toolchain the project is built and tested with. Debian 12 in both
# stages: the binary links against the glibc it is built on, and
# distroless/cc-debian12 carries the same one.
ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
ARG TARGETPLATFORM
ARG PLANOPS_GIT_COMMIT=""
WORKDIR /src
COPY . .
# The simulator (feature `simulator`) is a development tool: the release
# binary leaves it out. The caches keep the registry and the target dir
# between builds, one target dir per platform.
RUN --mount=type=cache,id=planops-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=planops-target-${TARGETPLATFORM},target=/src/target \
    cargo build --release --locked --no-default-features --bin planops \
 && install -D -m 0755 target/release/planops /out/usr/local/bin/planops

# glibc, libgcc_s, CA certificates, /etc/passwd with nonroot (65532), /tmp;
# no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG PLANOPS_GIT_COMMIT=unknown
ARG SOURCE=https://github.com/planops/planops
COPY --from=builder /out/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
LABEL org.opencontainers.image.title=planops \
      org.opencontainers.image.description="Kubernetes operator for demand-planning coordination on the Odoo ERP" \
      org.opencontainers.image.licenses=Apache-2.0 \
      org.opencontainers.image.source=${SOURCE} \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.revision=${PLANOPS_GIT_COMMIT}
# Numeric, so a runtime can check runAsNonRoot without reading /etc/passwd.
USER 65532:65532
WORKDIR /home/nonroot
# Writes only to /tmp (an emptyDir in the chart) and the cache volume, so the
# root filesystem can be read-only.
ENTRYPOINT ["/usr/local/bin/planops"]
