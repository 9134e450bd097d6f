#!/usr/bin/env bash
# Builds (once, cached outside the repo) and runs a real Kubernetes control plane
# for the integration tests: kube-apiserver + etcd from the Go module proxy,
# plus the Go tools the tests use (kstatus reader, helm).
#
#   scripts/envtest.sh build            build what is missing, print the bin dir
#   scripts/envtest.sh start DIR        start etcd + kube-apiserver, state in DIR
#   scripts/envtest.sh stop DIR         stop them
#   scripts/envtest.sh bin              print the bin dir (after build)
#
# Versions are pinned here; the cache is keyed by them so a bump rebuilds.
set -euo pipefail

K8S_VERSION="${PLANOPS_K8S_VERSION:-1.37.2}"
ETCD_VERSION="${PLANOPS_ETCD_VERSION:-3.6.13}"
HELM_VERSION="${PLANOPS_HELM_VERSION:-3.22.0}"
CLI_UTILS_VERSION="${PLANOPS_CLI_UTILS_VERSION:-0.37.2}"
CACHE_ROOT="${PLANOPS_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/planops-envtest}"
BIN_DIR="$CACHE_ROOT/bin-k8s$K8S_VERSION-etcd$ETCD_VERSION-helm$HELM_VERSION-kstatus$CLI_UTILS_VERSION"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
log() { printf 'envtest: %s\n' "$*" >&2; }

# k8s.io/kubernetes requires every staging module at v0.0.0 and maps it to
# ./staging with replace directives that do not apply to dependents, so a
# throw-away main module pins each one to its published v0.<minor>.<patch> tag.
build_apiserver() {
  [[ -x "$BIN_DIR/kube-apiserver" ]] && return
  local work="$CACHE_ROOT/src/k8s-$K8S_VERSION" staging="0.${K8S_VERSION#1.}" minor="${K8S_VERSION#1.}"
  minor="${minor%%.*}"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  go mod init local.invalid/k8sbin >/dev/null 2>&1
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  local goline
  goline=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod" | head -1)
  go mod edit -go="$goline"
  {
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    grep -E '^[[:space:]]+k8s\.io/[a-z0-9-]+ v0\.0\.0([[:space:]]*//.*)?$' "$gomod" |
      awk -v s="$staging" '{print "replace "$1" => "$1" v"s}'
    printf 'tool k8s.io/kubernetes/cmd/kube-apiserver\n'
  } >>go.mod
  log "resolving k8s.io/kubernetes v$K8S_VERSION (go $goline)"
  go mod tidy >/dev/null
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
  ld="$ld -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  log "building kube-apiserver (several minutes on a cold cache)"
  go build -trimpath -ldflags "$ld" -o "$BIN_DIR/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$BIN_DIR/kube-apiserver.tmp" "$BIN_DIR/kube-apiserver"
}

# etcd lives in its own wrapper module so its grpc/otel versions stay out of the
# kubernetes graph; Debian's etcd 3.4 is too old for consistent watches.
build_etcd() {
  [[ -x "$BIN_DIR/etcd" ]] && return
  local work="$CACHE_ROOT/src/etcd-$ETCD_VERSION"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  go mod init local.invalid/etcdbin >/dev/null 2>&1
  log "building etcd v$ETCD_VERSION"
  go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null 2>&1
  go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$BIN_DIR/etcd.tmp" "$BIN_DIR/etcd"
}

build_helm() {
  [[ -x "$BIN_DIR/helm" ]] && return
  local work="$CACHE_ROOT/src/helm-$HELM_VERSION"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  go mod init local.invalid/helmbin >/dev/null 2>&1
  log "building helm v$HELM_VERSION"
  go get -tool "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" >/dev/null 2>&1
  go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" \
    -o "$BIN_DIR/helm.tmp" helm.sh/helm/v3/cmd/helm
  mv "$BIN_DIR/helm.tmp" "$BIN_DIR/helm"
}

# A tiny reader that runs Flux's kstatus library (sigs.k8s.io/cli-utils) on
# live objects, so tests check what Flux would really compute.
build_kstatus() {
  [[ -x "$BIN_DIR/kstatus" ]] && return
  local work="$CACHE_ROOT/src/kstatus-$CLI_UTILS_VERSION"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  cp "$SCRIPT_DIR/kstatus/main.go" .
  go mod init local.invalid/kstatus >/dev/null 2>&1
  go get "sigs.k8s.io/cli-utils@v$CLI_UTILS_VERSION" >/dev/null 2>&1
  go mod tidy >/dev/null 2>&1
  log "building kstatus reader (cli-utils v$CLI_UTILS_VERSION)"
  go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/kstatus.tmp" .
  mv "$BIN_DIR/kstatus.tmp" "$BIN_DIR/kstatus"
}

cmd_build() {
  mkdir -p "$BIN_DIR"
  build_etcd
  build_apiserver
  [[ -f "$SCRIPT_DIR/kstatus/main.go" ]] && build_kstatus
  [[ "${PLANOPS_SKIP_HELM:-}" == 1 ]] || build_helm
  echo "$BIN_DIR"
}

case "${1:-build}" in
  build) cmd_build ;;
  bin) echo "$BIN_DIR" ;;
  *) echo "usage: $0 build|bin" >&2; exit 2 ;;
esac
