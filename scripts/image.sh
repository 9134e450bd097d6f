#!/usr/bin/env bash
# Builds the PlanOps container image on a machine without a Docker engine: the
# image the Dockerfile describes, assembled with crane (go-containerregistry)
# and written as an OCI image layout.
#
#   scripts/image.sh [--binary PATH] [--output DIR] [--tag TAG]
#
#   --binary PATH  the planops binary to pack (default: build it with
#                  cargo build --release --locked --no-default-features --bin planops,
#                  as the Dockerfile does)
#   --output DIR   the OCI image layout to write, replaced if it exists
#                  (default: target/image/planops-TAG)
#   --tag TAG      the image's version label (default: the chart's appVersion,
#                  which is the tag the chart deploys)
#
# Prints the layout directory on stdout. Push it with
#   crane push DIR ghcr.io/planops/planops:TAG
#
# What goes in, mirroring gcr.io/distroless/cc-debian12:nonroot plus the
# Dockerfile's COPY: the binary at /usr/local/bin/planops; the shared libraries
# `ldd` lists for it (glibc, libgcc_s; none for a static binary), from this
# machine; /etc/passwd and /etc/group with root and nonroot (65532);
# nsswitch.conf; the CA bundle (for a kubeconfig without a CA, which kube-rs
# checks against the system store); /tmp and /home/nonroot. The config: user
# 65532:65532, entrypoint the binary, no cmd, PATH and SSL_CERT_FILE as
# distroless sets them, the OCI labels, and the binary's os/architecture.
#
# crane is $CRANE, else the one `scripts/envtest.sh build` caches
# ($PLANOPS_ENVTEST_BIN or `scripts/envtest.sh bin`). crane edits images in a
# registry, so a private one runs on 127.0.0.1 for the length of the build.
#
# Layer contents are owned by root, dated SOURCE_DATE_EPOCH (default: the
# commit's date) and sorted, so the same binary gives the same image digest.
set -euo pipefail
umask 022

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENTRYPOINT=/usr/local/bin/planops
NONROOT=65532
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SOURCE_URL="${PLANOPS_IMAGE_SOURCE:-https://github.com/planops/planops}"

log() { printf 'image: %s\n' "$*" >&2; }
die() { printf 'image: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '6,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# The first `key: value` / `key = "value"` of a file, unquoted.
field() { sed -n "s/^$2[[:space:]]*[:=][[:space:]]*\"\{0,1\}\([^\"]*\)\"\{0,1\}[[:space:]]*\$/\1/p" "$1" | head -n1; }

find_crane() {
  if [[ -n "${CRANE:-}" ]]; then
    echo "$CRANE"
    return
  fi
  local bin_dir="${PLANOPS_ENVTEST_BIN:-$("$ROOT/scripts/envtest.sh" bin)}"
  [[ -x "$bin_dir/crane" ]] || die "no crane in $bin_dir: run scripts/envtest.sh build (or set CRANE)"
  echo "$bin_dir/crane"
}

# The image architecture of an ELF binary, from its e_machine field.
elf_arch() {
  local magic machine
  magic=$(od -An -tx1 -N4 "$1" | tr -d ' \n')
  [[ "$magic" == 7f454c46 ]] || die "$1 is not an ELF binary"
  machine=$(od -An -tx1 -j18 -N2 "$1" | tr -d ' \n')
  case "$machine" in
    3e00) echo amd64 ;;
    b700) echo arm64 ;;
    *) die "$1: unsupported ELF machine $machine" ;;
  esac
}

host_arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) uname -m ;;
  esac
}

# The dynamic loader an ELF binary names (its PT_INTERP, which the linker puts
# in the first page), empty for a static one. For a binary ldd cannot run.
elf_interpreter() {
  LC_ALL=C head -c 4096 "$1" | tr '\0' '\n' | grep -m1 -aE '^/lib(64)?/ld-' || true
}

# The absolute paths of the shared libraries and loader the binary needs; none
# for a static binary.
shared_libraries() {
  local out
  if ! out=$(LC_ALL=C ldd "$1" 2>&1); then
    [[ "$out" == *"not a dynamic executable"* ]] && return 0
    die "ldd $1: $out"
  fi
  [[ "$out" == *"statically linked"* ]] && return 0
  [[ "$out" != *"not found"* ]] || die "$1 needs libraries this machine lacks: $out"
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

# The root filesystem of the image in $1, the binary from $2.
assemble_rootfs() {
  local rootfs="$1" binary="$2" libs lib
  install -D -m 0755 "$binary" "$rootfs$ENTRYPOINT"
  # Not in a process substitution: a failing ldd must stop the build.
  libs=$(shared_libraries "$binary")
  for lib in $libs; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
    chmod 0755 "$rootfs$lib"
  done
  mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/home/nonroot" "$rootfs/tmp"
  [[ -s "$CA_BUNDLE" ]] || die "no CA bundle at $CA_BUNDLE (apt-get install ca-certificates)"
  install -m 0644 "$CA_BUNDLE" "$rootfs$CA_BUNDLE"
  cat >"$rootfs/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:$NONROOT:$NONROOT:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$rootfs/etc/group" <<EOF
root:x:0:
nogroup:x:65534:
nonroot:x:$NONROOT:
EOF
  echo 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"
  chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"
  chmod 1777 "$rootfs/tmp"
  chmod 0700 "$rootfs/home/nonroot"
}

# One uncompressed layer tarball of the rootfs: everything root's but the
# nonroot home. crane compresses it when it uploads.
layer_tar() {
  local rootfs="$1" out="$2" epoch="$3" entries
  local common=(--format=gnu --sort=name --numeric-owner "--mtime=@$epoch" -C "$rootfs")
  mapfile -t entries < <(cd "$rootfs" && ls -A)
  tar --create --file "$out" "${common[@]}" --owner=0 --group=0 \
    --exclude=home/nonroot "${entries[@]}"
  tar --append --file "$out" "${common[@]}" --owner="$NONROOT" --group="$NONROOT" home/nonroot
}

# Starts crane's registry on a free loopback port with its blobs in $1/blobs;
# prints the port.
start_registry() {
  local dir="$1" port="" i
  mkdir -p "$dir/blobs"
  "$CRANE_BIN" registry serve --address 127.0.0.1:0 --disk "$dir/blobs" \
    </dev/null >"$dir/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for ((i = 0; i < 100; i++)); do
    port=$(sed -n 's/.*serving on port \([0-9]*\).*/\1/p' "$dir/registry.log")
    [[ -n "$port" ]] && break
    kill -0 "$REGISTRY_PID" 2>/dev/null || die "crane registry exited: $(cat "$dir/registry.log")"
    sleep 0.1
  done
  [[ -n "$port" ]] || die "crane registry did not start: $(cat "$dir/registry.log")"
  echo "$port"
}

# crane with its chatter in the work dir's log, shown when it fails.
crane_quiet() {
  if ! "$CRANE_BIN" "$@" 2>>"$WORK/crane.log"; then
    tail -n 20 "$WORK/crane.log" >&2
    die "failed: crane $1"
  fi
}

main() {
  local binary="" output="" tag="" arch revision epoch description license port ref
  while (($#)); do
    case "$1" in
      --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
      --output) output="${2:?--output needs a directory}"; shift 2 ;;
      --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
      -h | --help) usage ;;
      *) die "unknown argument $1 (see --help)" ;;
    esac
  done
  tag="${tag:-$(field "$ROOT/charts/planops/Chart.yaml" appVersion)}"
  [[ -n "$tag" ]] || die "no appVersion in charts/planops/Chart.yaml"
  output="${output:-$ROOT/target/image/planops-$tag}"
  CRANE_BIN=$(find_crane)

  if [[ -z "$binary" ]]; then
    log "cargo build --release --locked --no-default-features --bin planops"
    (cd "$ROOT" && cargo build --release --locked --no-default-features --bin planops) >&2
    binary="$ROOT/target/release/planops"
  fi
  [[ -f "$binary" && -x "$binary" ]] || die "$binary is not an executable file"
  arch=$(elf_arch "$binary")
  # ldd runs the binary's loader, which only works for this machine's architecture.
  if [[ "$arch" != "$(host_arch)" && -n "$(elf_interpreter "$binary")" ]]; then
    die "$binary is a dynamically linked $arch binary; build its image on an $arch machine (or with the Dockerfile)"
  fi

  revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo "${PLANOPS_GIT_COMMIT:-unknown}")
  epoch="${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}"
  description=$(field "$ROOT/Cargo.toml" description)
  license=$(field "$ROOT/Cargo.toml" license)

  WORK=$(mktemp -d "${TMPDIR:-/tmp}/planops-image-XXXXXX")
  REGISTRY_PID=""
  trap '[[ -n "$REGISTRY_PID" ]] && kill "$REGISTRY_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

  log "packing $binary ($arch) as planops:$tag"
  assemble_rootfs "$WORK/rootfs" "$binary"
  layer_tar "$WORK/rootfs" "$WORK/layer.tar" "$epoch"

  port=$(start_registry "$WORK")
  ref="127.0.0.1:$port/planops:$tag"
  crane_quiet append --oci-empty-base --new_layer "$WORK/layer.tar" --new_tag "$ref" >/dev/null
  crane_quiet mutate "$ref" --tag "$ref" \
    --set-platform "linux/$arch" \
    --entrypoint "$ENTRYPOINT" \
    --user "$NONROOT:$NONROOT" \
    --workdir /home/nonroot \
    --env "PATH=$IMAGE_PATH" \
    --env "SSL_CERT_FILE=$CA_BUNDLE" \
    --label "org.opencontainers.image.title=planops" \
    --label "org.opencontainers.image.description=$description" \
    --label "org.opencontainers.image.licenses=$license" \
    --label "org.opencontainers.image.source=$SOURCE_URL" \
    --label "org.opencontainers.image.version=$tag" \
    --label "org.opencontainers.image.revision=$revision" >/dev/null
  mkdir -p "$(dirname "$output")"
  rm -rf "$output"
  crane_quiet pull --format oci "$ref" "$output"
  log "wrote $output ($("$CRANE_BIN" digest "$ref" 2>/dev/null || echo "digest unknown"))"
  echo "$output"
}

main "$@"; exit
