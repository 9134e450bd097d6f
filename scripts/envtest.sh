#!/usr/bin/env bash
# Builds (once, cached outside the repo) and runs a real Kubernetes control plane
# for the integration tests: kube-apiserver + etcd from the Go module proxy,
# kube-controller-manager (only started with --controllers), plus the Go tools
# the tests use (kstatus reader, helm, crane for the image).
#
#   scripts/envtest.sh build                         build what is missing, print the bin dir
#   scripts/envtest.sh bin                           print the bin dir
#   scripts/envtest.sh start DIR [--watch PID] [--ephemeral] [--controllers]
#                                                    start etcd + kube-apiserver, state in DIR,
#                                                    print DIR/kubeconfig
#   scripts/envtest.sh stop DIR                      stop them, remove the etcd data
#   scripts/envtest.sh down DIR [--kill]             stop them but keep the etcd data, the
#                                                    ports and the certificates (--kill: SIGKILL,
#                                                    as a crash would), for `up`
#   scripts/envtest.sh up DIR                        start them again after `down`, on the same
#                                                    ports: the kubeconfig stays valid
#
# start writes DIR/kubeconfig (admin token, the server's self-signed CA),
# DIR/env (export lines for KUBECONFIG, PLANOPS_TEST_KUBECONFIG,
# PLANOPS_ENVTEST_BIN), DIR/*.pid and DIR/*.log.
# --watch PID: a detached watchdog runs `stop DIR` once PID is gone, so a test
#   binary that dies (even by SIGKILL) does not leave a control plane behind.
# --ephemeral: stop removes the whole DIR, not only the etcd data.
# --controllers: also run kube-controller-manager (ServiceAccount and token,
#   ReplicaSet, Deployment, Job, CronJob, namespace and garbage-collector
#   controllers) and the ServiceAccount admission plugin, so workloads get Pods
#   that Pod Security admission judges. No scheduler and no kubelet: Pods stay
#   Pending. Off by default: most tests need neither and it costs a process.
#
# Versions are pinned here; the cache is keyed by them so a bump rebuilds.
set -euo pipefail

K8S_VERSION="${PLANOPS_K8S_VERSION:-1.37.2}"
ETCD_VERSION="${PLANOPS_ETCD_VERSION:-3.6.13}"
HELM_VERSION="${PLANOPS_HELM_VERSION:-3.22.0}"
CLI_UTILS_VERSION="${PLANOPS_CLI_UTILS_VERSION:-0.37.2}"
CRANE_VERSION="${PLANOPS_CRANE_VERSION:-0.22.1}"
# Used only when a module's `go` line is newer than the machine's Go; the Go
# module proxy serves toolchains as modules, no other download source is needed.
FALLBACK_TOOLCHAIN="${PLANOPS_GOTOOLCHAIN:-go1.27.3}"
CACHE_ROOT="${PLANOPS_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/planops-envtest}"
BIN_DIR="$CACHE_ROOT/bin-k8s$K8S_VERSION-etcd$ETCD_VERSION-helm$HELM_VERSION-kstatus$CLI_UTILS_VERSION"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
START_TIMEOUT="${PLANOPS_ENVTEST_START_TIMEOUT:-180}"
STOP_TIMEOUT="${PLANOPS_ENVTEST_STOP_TIMEOUT:-20}"

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
log() { printf 'envtest: %s\n' "$*" >&2; }
die() { printf 'envtest: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- build ----

# Runs a command with its (chatty) output in a log file; shows the tail on failure.
quiet() {
  local logf="$1"; shift
  if ! "$@" >>"$logf" 2>&1; then
    tail -n 40 "$logf" >&2
    die "failed: $* (full log: $logf)"
  fi
}

# The machine's Go is used unless the module needs a newer one. An explicit
# GOTOOLCHAIN from the caller wins.
pick_toolchain() {
  local need="$1" have
  [[ -n "${GOTOOLCHAIN:-}" && -z "${PLANOPS_PICKED_TOOLCHAIN:-}" ]] && return
  have=$(cd / && GOTOOLCHAIN=local go env GOVERSION)
  have="${have#go}"
  if [[ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" == "$need" ]]; then
    export GOTOOLCHAIN=local
  else
    log "module needs go $need, machine has $have: using GOTOOLCHAIN=$FALLBACK_TOOLCHAIN"
    export GOTOOLCHAIN="$FALLBACK_TOOLCHAIN"
  fi
  export PLANOPS_PICKED_TOOLCHAIN=1
}

need_go() { command -v go >/dev/null || die "go is not installed (needed to build $1)"; }

# Prints the go.mod path of a module version, downloading it if needed.
module_gomod() {
  (cd / && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "$1") |
    sed -n 's/.*"GoMod": "\(.*\)",*/\1/p'
}
go_line() { sed -n 's/^go \([0-9.]*\)$/\1/p' "$1" | head -n1; }

# Fresh scratch module dir for a wrapper build.
fresh_work() {
  local work="$CACHE_ROOT/src/$1"
  rm -rf "$work" && mkdir -p "$work"
  echo "$work"
}

# Moves a finished binary into place in one rename, so a crash never leaves a
# half-written binary that a later run would take as built.
install_bin() { mv -f "$1" "$BIN_DIR/$2"; }

# k8s.io/kubernetes requires every staging module at v0.0.0 and maps it to
# ./staging with replace directives that do not apply to dependents, so a
# throw-away main module pins each one to its published v0.<minor>.<patch> tag.
# $1 names a command under k8s.io/kubernetes/cmd; each gets its own wrapper
# module, so adding one never touches a binary that is already built, and the
# Go build cache shares the packages they have in common.
build_k8s_cmd() {
  local name="$1"
  [[ -x "$BIN_DIR/$name" ]] && return
  need_go "$name"
  local started=$SECONDS staging="0.${K8S_VERSION#1.}" minor="${K8S_VERSION#1.}" work gomod goline
  minor="${minor%%.*}"
  work=$(fresh_work "$name-$K8S_VERSION")
  gomod=$(module_gomod "k8s.io/kubernetes@v$K8S_VERSION")
  [[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@v$K8S_VERSION"
  goline=$(go_line "$gomod")
  pick_toolchain "$goline"
  cd "$work"
  quiet build.log go mod init local.invalid/k8sbin
  quiet build.log go mod edit -go="$goline"
  {
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    grep -E '^[[:space:]]+k8s\.io/[a-z0-9-]+ v0\.0\.0([[:space:]]*//.*)?$' "$gomod" |
      awk -v s="$staging" '{print "replace "$1" => "$1" v"s}'
    printf 'tool k8s.io/kubernetes/cmd/%s\n' "$name"
  } >>go.mod
  log "resolving k8s.io/kubernetes v$K8S_VERSION for $name (go $goline)"
  quiet build.log go mod tidy
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
  ld="$ld -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  log "building $name v$K8S_VERSION (many minutes on a cold cache)"
  quiet build.log go build -trimpath -ldflags "$ld" -o "$name" "k8s.io/kubernetes/cmd/$name"
  install_bin "$name" "$name"
  log "$name built in $((SECONDS - started))s"
}

# etcd lives in its own wrapper module so its grpc/otel versions stay out of the
# kubernetes graph; Debian's etcd 3.4 is too old for consistent watches.
build_etcd() {
  [[ -x "$BIN_DIR/etcd" ]] && return
  need_go etcd
  local started=$SECONDS work gomod
  work=$(fresh_work "etcd-$ETCD_VERSION")
  gomod=$(module_gomod "go.etcd.io/etcd/server/v3@v$ETCD_VERSION")
  [[ -f "$gomod" ]] || die "could not download go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  pick_toolchain "$(go_line "$gomod")"
  cd "$work"
  log "building etcd v$ETCD_VERSION"
  quiet build.log go mod init local.invalid/etcdbin
  quiet build.log go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  quiet build.log go build -trimpath -ldflags "-s -w" -o etcd go.etcd.io/etcd/server/v3
  install_bin etcd etcd
  log "etcd built in $((SECONDS - started))s"
}

# helm's version lives in helm.sh/helm/v3/internal/version.version (its
# Makefile's LDFLAGS); without it `helm version` reports the bare "v3.22".
build_helm() {
  [[ -x "$BIN_DIR/helm" ]] && return
  need_go helm
  local started=$SECONDS work gomod
  work=$(fresh_work "helm-$HELM_VERSION")
  gomod=$(module_gomod "helm.sh/helm/v3@v$HELM_VERSION")
  [[ -f "$gomod" ]] || die "could not download helm.sh/helm/v3@v$HELM_VERSION"
  pick_toolchain "$(go_line "$gomod")"
  cd "$work"
  log "building helm v$HELM_VERSION"
  quiet build.log go mod init local.invalid/helmbin
  quiet build.log go get -tool "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  quiet build.log go build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    -o helm helm.sh/helm/v3/cmd/helm
  install_bin helm helm
  log "helm built in $((SECONDS - started))s"
}

# A tiny reader that runs the real kstatus library (sigs.k8s.io/cli-utils) on
# live objects. Its module (go.mod/go.sum) is committed in scripts/kstatus, so
# the build is reproducible; the binary is rebuilt when those sources change.
build_kstatus() {
  local src="$SCRIPT_DIR/kstatus" sum started=$SECONDS work
  sum=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -d' ' -f1)
  [[ -x "$BIN_DIR/kstatus" && "$(cat "$BIN_DIR/kstatus.sha256" 2>/dev/null)" == "$sum" ]] && return
  need_go kstatus
  work=$(fresh_work "kstatus")
  cp "$src/go.mod" "$src/go.sum" "$src/main.go" "$work/"
  pick_toolchain "$(go_line "$work/go.mod")"
  cd "$work"
  log "building kstatus reader (cli-utils v$CLI_UTILS_VERSION)"
  quiet build.log env GOFLAGS="$GOFLAGS -mod=readonly" go build -trimpath -ldflags "-s -w" -o kstatus .
  install_bin kstatus kstatus
  echo "$sum" >"$BIN_DIR/kstatus.sha256"
  log "kstatus built in $((SECONDS - started))s"
}

# go-containerregistry's crane, which scripts/image.sh assembles the container
# image with. Its version is stamped beside it rather than in BIN_DIR's name,
# so a crane bump does not rebuild the control plane.
build_crane() {
  [[ -x "$BIN_DIR/crane" && "$(cat "$BIN_DIR/crane.version" 2>/dev/null)" == "$CRANE_VERSION" ]] && return
  need_go crane
  local started=$SECONDS work gomod
  work=$(fresh_work "crane-$CRANE_VERSION")
  gomod=$(module_gomod "github.com/google/go-containerregistry@v$CRANE_VERSION")
  [[ -f "$gomod" ]] || die "could not download github.com/google/go-containerregistry@v$CRANE_VERSION"
  pick_toolchain "$(go_line "$gomod")"
  cd "$work"
  log "building crane v$CRANE_VERSION"
  quiet build.log go mod init local.invalid/cranebin
  quiet build.log go get -tool "github.com/google/go-containerregistry/cmd/crane@v$CRANE_VERSION"
  quiet build.log go build -trimpath -ldflags "-s -w" -o crane github.com/google/go-containerregistry/cmd/crane
  install_bin crane crane
  echo "$CRANE_VERSION" >"$BIN_DIR/crane.version"
  log "crane built in $((SECONDS - started))s"
}

cmd_build() {
  mkdir -p "$BIN_DIR" "$CACHE_ROOT/src"
  # Two test runs must not build the same binary at once (2 cores, GiBs of RAM).
  exec 9>"$CACHE_ROOT/.build.lock"
  if ! flock -n 9; then
    log "another build holds $CACHE_ROOT/.build.lock; waiting"
    flock 9
  fi
  # Sequential on purpose: one Go build already saturates the machine.
  (build_etcd)
  (build_k8s_cmd kube-apiserver)
  # Only `start --controllers` runs it; built after kube-apiserver so the
  # packages they share come from the Go build cache.
  (build_k8s_cmd kube-controller-manager)
  (build_kstatus)
  [[ "${PLANOPS_SKIP_HELM:-}" == 1 ]] || (build_helm)
  (build_crane)
  echo "$BIN_DIR"
}

# ---------------------------------------------------------------- start ----

port_in_use() {
  if command -v ss >/dev/null; then
    ss -Htan "( sport = :$1 )" | grep -q .
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# Random high ports, checked free; a race with another process is caught by
# the start retry loop.
pick_ports() {
  local picked=() p
  while ((${#picked[@]} < $1)); do
    p=$((20000 + RANDOM % 40000))
    [[ " ${picked[*]} " == *" $p "* ]] && continue
    port_in_use "$p" || picked+=("$p")
  done
  echo "${picked[@]}"
}

# True while PID runs the named program (guards against PID reuse and zombies).
alive() {
  local pid="$1" name="$2" stat
  [[ -n "$pid" && -r "/proc/$pid/comm" ]] || return 1
  # Right after launch the process may still be setsid, about to exec.
  # The kernel keeps only 15 characters of a program's name in comm.
  case "$(cat "/proc/$pid/comm" 2>/dev/null)" in "${name:0:15}" | setsid) ;; *) return 1 ;; esac
  stat=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ "$stat" != Z ]]
}

stop_one() {
  local dir="$1" name="$2" pid i
  pid=$(cat "$dir/$name.pid" 2>/dev/null) || return 0
  if alive "$pid" "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
      alive "$pid" "$name" || break
      sleep 0.1
    done
    if alive "$pid" "$name"; then
      log "$name ($pid) ignored SIGTERM for ${STOP_TIMEOUT}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do alive "$pid" "$name" || break; sleep 0.1; done
    fi
  fi
  rm -f "$dir/$name.pid"
}

show_logs() {
  local dir="$1" f
  for f in "$dir/etcd.log" "$dir/kube-apiserver.log" "$dir/kube-controller-manager.log"; do
    [[ -s "$f" ]] || continue
    printf -- '--- last lines of %s ---\n' "$f" >&2
    tail -n 25 "$f" >&2
  done
}

# Waits until URL answers 200 with the admin token, or the process dies.
wait_ready() {
  local url="$1" pid="$2" name="$3" dir="$4" deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    alive "$pid" "$name" || { log "$name exited during start"; return 1; }
    if curl -fsk --max-time 5 -H "@$dir/auth-header" "$url" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  log "$name not ready after ${START_TIMEOUT}s ($url)"
  return 1
}

launch() {
  local dir="$1" name="$2"; shift 2
  # Own session: a Ctrl-C aimed at the caller does not hit the control plane
  # half-way; stop (or the watchdog) ends it cleanly instead.
  setsid "$@" </dev/null >"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

# etcd on the client port $2 and peer port $3, keeping whatever data DIR holds.
launch_etcd() {
  local dir="$1" ep="$2" pp="$3"
  launch "$dir" etcd "$BIN_DIR/etcd" \
    --name=envtest --data-dir="$dir/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$ep" --advertise-client-urls="http://127.0.0.1:$ep" \
    --listen-peer-urls="http://127.0.0.1:$pp" --initial-advertise-peer-urls="http://127.0.0.1:$pp" \
    --initial-cluster="envtest=http://127.0.0.1:$pp" \
    --unsafe-no-fsync=true --log-level=warn
  wait_ready "http://127.0.0.1:$ep/health" "$(cat "$dir/etcd.pid")" etcd "$dir"
}

# kube-apiserver on port $3 against etcd on $2. Its self-signed certificate is
# generated into DIR/certs once and reused on a later launch, so a kubeconfig
# written for the first launch still verifies the server after `up`.
launch_apiserver() {
  local dir="$1" ep="$2" ap="$3" admission=()
  # Without the ServiceAccount controller no namespace has a "default"
  # ServiceAccount, and the plugin would refuse every Pod that names none.
  controllers_on "$dir" || admission=(--disable-admission-plugins=ServiceAccount)
  # A loopback advertise address keeps the self-signed cert valid for
  # 127.0.0.1; the endpoint reconciler refuses loopback, and nothing needs the
  # kubernetes Service endpoints here, so it is off.
  launch "$dir" kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ep" \
    --cert-dir="$dir/certs" \
    --secure-port="$ap" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --endpoint-reconciler-type=none \
    --service-cluster-ip-range=10.0.0.0/24 \
    --allow-privileged=true \
    "${admission[@]}" \
    --authorization-mode=RBAC \
    --token-auth-file="$dir/tokens.csv" \
    --service-account-issuer="https://127.0.0.1:$ap" \
    --service-account-key-file="$dir/sa.pub" \
    --service-account-signing-key-file="$dir/sa.key"
  wait_ready "https://127.0.0.1:$ap/readyz" "$(cat "$dir/kube-apiserver.pid")" kube-apiserver "$dir"
}

# DIR/controllers-port exists when DIR's control plane runs with --controllers.
controllers_on() { [[ -f "$1/controllers-port" ]]; }

# The controllers a chart install needs to get as far as Pods (and back, for
# uninstall and namespace deletion); the rest (nodes, endpoints, volumes,
# certificates...) would only cost CPU on a machine without nodes.
KCM_CONTROLLERS="serviceaccount-token-controller,serviceaccount-controller"
KCM_CONTROLLERS+=",root-ca-certificate-publisher-controller"
KCM_CONTROLLERS+=",replicaset-controller,deployment-controller,job-controller,cronjob-controller"
KCM_CONTROLLERS+=",namespace-controller,garbage-collector-controller"

# kube-controller-manager against the API server on port $2, serving its
# health on port $3. It signs the ServiceAccount tokens of Secrets with the
# key the API server verifies (DIR/sa.key), and each controller acts as its
# own ServiceAccount with the RBAC the API server bootstraps for it, as in a
# real cluster, not as the admin.
launch_controller_manager() {
  local dir="$1" ap="$2" cp="$3"
  launch "$dir" kube-controller-manager "$BIN_DIR/kube-controller-manager" \
    --kubeconfig="$dir/kubeconfig" \
    --secure-port="$cp" --bind-address=127.0.0.1 --cert-dir="$dir/controller-manager-certs" \
    --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$dir/sa.key" \
    --root-ca-file="$dir/certs/apiserver.crt" \
    --controllers="$KCM_CONTROLLERS"
  # /healthz is always allowed, without authentication.
  wait_ready "https://127.0.0.1:$cp/healthz" "$(cat "$dir/kube-controller-manager.pid")" kube-controller-manager "$dir"
}

# $2: 1 to run kube-controller-manager too.
try_start() {
  local dir="$1" controllers="$2" ep pp ap cp
  read -r ep pp ap cp < <(pick_ports 4)
  rm -rf "$dir/etcd-data"
  if ((controllers)); then echo "$cp" >"$dir/controllers-port"; else rm -f "$dir/controllers-port"; fi
  launch_etcd "$dir" "$ep" "$pp" || return 1
  launch_apiserver "$dir" "$ep" "$ap" || return 1
  echo "$ap" >"$dir/port"
  # For `up`: the same ports again, so clients keep their address.
  echo "$ep $pp $ap" >"$dir/ports"
  write_kubeconfig "$dir"
  if ((controllers)); then
    launch_controller_manager "$dir" "$ap" "$cp" || return 1
  fi
}

# Stops what start and up launch, the controllers first: they act on the API
# server and would only log errors while it goes away.
stop_all() {
  local name
  for name in kube-controller-manager kube-apiserver etcd; do stop_one "$1" "$name"; done
}

write_kubeconfig() {
  local dir="$1" port token ca
  port=$(cat "$dir/port")
  token=$(cut -d, -f1 "$dir/tokens.csv")
  # kube-apiserver self-signs into --cert-dir: apiserver.crt holds the serving
  # cert followed by its CA; trusting the bundle verifies the server properly.
  ca=$(base64 -w0 "$dir/certs/apiserver.crt")
  umask 077
  cat >"$dir/kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $ca
users:
- name: admin
  user:
    token: $token
contexts:
- name: envtest
  context:
    cluster: envtest
    user: admin
    namespace: default
current-context: envtest
EOF
  mv -f "$dir/kubeconfig.tmp" "$dir/kubeconfig"
  cat >"$dir/env" <<EOF
export KUBECONFIG='$dir/kubeconfig'
export PLANOPS_TEST_KUBECONFIG='$dir/kubeconfig'
export PLANOPS_ENVTEST_BIN='$BIN_DIR'
EOF
}

cmd_start() {
  local dir="" watch="" ephemeral=0 controllers=0 attempt started=$SECONDS
  while (($#)); do
    case "$1" in
      --watch) watch="${2:?--watch needs a PID}"; shift 2 ;;
      --ephemeral) ephemeral=1; shift ;;
      --controllers) controllers=1; shift ;;
      -*) die "unknown option $1" ;;
      *) [[ -z "$dir" ]] || die "one DIR only"; dir="$1"; shift ;;
    esac
  done
  [[ -n "$dir" ]] || die "usage: $0 start DIR [--watch PID] [--ephemeral] [--controllers]"
  [[ -x "$BIN_DIR/etcd" && -x "$BIN_DIR/kube-apiserver" ]] ||
    die "control-plane binaries missing in $BIN_DIR; run: $SELF build"
  ((controllers == 0)) || [[ -x "$BIN_DIR/kube-controller-manager" ]] ||
    die "kube-controller-manager missing in $BIN_DIR; run: $SELF build"
  for tool in curl openssl setsid; do
    command -v "$tool" >/dev/null || die "$tool is required to start the control plane"
  done
  mkdir -p "$dir" && dir="$(cd "$dir" && pwd)"
  if alive "$(cat "$dir/kube-apiserver.pid" 2>/dev/null)" kube-apiserver ||
    alive "$(cat "$dir/etcd.pid" 2>/dev/null)" etcd; then
    die "a control plane is already running in $dir (stop it first)"
  fi
  ((ephemeral)) && : >"$dir/.ephemeral"
  mkdir -p "$dir/certs"
  (
    umask 077
    openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
    openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
    printf '%s,admin,admin,"system:masters"\n' "$(openssl rand -hex 32)" >"$dir/tokens.csv"
    printf 'Authorization: Bearer %s\n' "$(cut -d, -f1 "$dir/tokens.csv")" >"$dir/auth-header"
  )
  for attempt in 1 2 3; do
    if try_start "$dir" "$controllers"; then
      if [[ -n "$watch" ]]; then
        # Detached, so it outlives the caller; ends itself after a normal stop.
        setsid bash -c '
          running() { [[ -f "$2/kube-apiserver.pid" || -f "$2/.down" ]]; }
          while kill -0 "$1" 2>/dev/null && running "$@"; do sleep 1; done
          running "$@" && exec "$3" stop "$2"' \
          envtest-watchdog "$watch" "$dir" "$SELF" </dev/null >>"$dir/watchdog.log" 2>&1 &
        echo $! >"$dir/watchdog.pid"
      fi
      log "control plane up in $((SECONDS - started))s: $(cat "$dir/port") (source $dir/env)"
      echo "$dir/kubeconfig"
      return 0
    fi
    show_logs "$dir"
    stop_all "$dir"
    log "start attempt $attempt failed"
  done
  die "control plane did not start; logs in $dir"
}

cmd_stop() {
  local dir="${1:?usage: $0 stop DIR}" wpid
  [[ -d "$dir" ]] || return 0
  wpid=$(cat "$dir/watchdog.pid" 2>/dev/null || true)
  if [[ -n "$wpid" && "$wpid" != "$$" ]] && alive "$wpid" bash; then
    kill -TERM "$wpid" 2>/dev/null || true
  fi
  rm -f "$dir/watchdog.pid"
  stop_all "$dir"
  rm -rf "$dir/etcd-data" "$dir/.down"
  if [[ -f "$dir/.ephemeral" ]]; then
    rm -rf "$dir"
  fi
}

# Stops the control plane of DIR but keeps what `up` needs: the etcd data, the
# ports, the certificates and the tokens. `.down` tells the watchdog (and a
# later `stop`) that the control plane is still there to clean up.
cmd_down() {
  local dir="" kill=0 name pid i
  while (($#)); do
    case "$1" in
      --kill) kill=1; shift ;;
      -*) die "unknown option $1" ;;
      *) [[ -z "$dir" ]] || die "one DIR only"; dir="$1"; shift ;;
    esac
  done
  [[ -n "$dir" && -f "$dir/ports" ]] || die "usage: $0 down DIR [--kill] (DIR started by this script)"
  : >"$dir/.down"
  for name in kube-controller-manager kube-apiserver etcd; do
    if ((kill)); then
      pid=$(cat "$dir/$name.pid" 2>/dev/null) || continue
      alive "$pid" "$name" && kill -KILL "$pid" 2>/dev/null
      for ((i = 0; i < 50; i++)); do alive "$pid" "$name" || break; sleep 0.1; done
      rm -f "$dir/$name.pid"
    else
      stop_one "$dir" "$name"
    fi
  done
}

cmd_up() {
  local dir="${1:?usage: $0 up DIR}" ep pp ap started=$SECONDS
  [[ -f "$dir/ports" ]] || die "$dir has no saved ports (start it with this script first)"
  if alive "$(cat "$dir/kube-apiserver.pid" 2>/dev/null)" kube-apiserver ||
    alive "$(cat "$dir/etcd.pid" 2>/dev/null)" etcd; then
    die "the control plane in $dir is already running"
  fi
  read -r ep pp ap <"$dir/ports"
  if ! launch_etcd "$dir" "$ep" "$pp" || ! launch_apiserver "$dir" "$ep" "$ap" ||
    { controllers_on "$dir" && ! launch_controller_manager "$dir" "$ap" "$(cat "$dir/controllers-port")"; }; then
    show_logs "$dir"
    die "control plane did not come back up; logs in $dir"
  fi
  rm -f "$dir/.down"
  log "control plane back up in $((SECONDS - started))s: $ap"
}

main() {
  case "${1:-build}" in
    build) cmd_build ;;
    bin) echo "$BIN_DIR" ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    down) shift; cmd_down "$@" ;;
    up) shift; cmd_up "$@" ;;
    *) echo "usage: $0 build|bin|start DIR [--watch PID] [--ephemeral] [--controllers]|stop DIR|down DIR [--kill]|up DIR" >&2; exit 2 ;;
  esac
}

# One line, parsed whole before it runs: editing this file (git checkout)
# while a long build runs cannot make bash execute a half-read script.
main "$@"; exit
