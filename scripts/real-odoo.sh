#!/usr/bin/env bash
# Runs a real Odoo Community server (17, 18 or 19) from a source tree you point
# it to, for the conformance tests against a real Odoo (docs/real-odoo.md).
# No Odoo source is kept in this repository: check one out anywhere else.
#
#   scripts/real-odoo.sh setup --source DIR --version 17|18|19 [--port P]
#                              [--workdir DIR] [--venv DIR] [--python PY] [--pg-port P]
#                              [--no-start]
#       PostgreSQL from the distribution (apt) if missing, a cluster of its own
#       (odoo<version>, port 54<version>) created and started, role odoo/odoo,
#       a virtualenv with the tree's requirements (adjusted, see
#       adjust_requirements), WORKDIR/odoo.conf, database `planops` initialised
#       with demo data and stock, purchase, base_automation, sale_stock, an API
#       key for admin in WORKDIR/apikey, then the server started.
#       Re-running it adopts what is already there (venv, database, key).
#   scripts/real-odoo.sh start  --version N [--workdir DIR]
#   scripts/real-odoo.sh stop   --version N [--workdir DIR]
#   scripts/real-odoo.sh status --version N [--workdir DIR]
#   scripts/real-odoo.sh env    --version N [--workdir DIR]
#       prints export lines: PLANOPS_ODOO_URL, _DB, _LOGIN, _PASSWORD, _API_KEY,
#       _VERSION (use: eval "$(scripts/real-odoo.sh env --version 19)").
#
# Defaults: WORKDIR=${PLANOPS_ODOO_HOME:-~/.cache/planops-odoo}/<version>,
# venv WORKDIR/venv, port 80<version> (8017, 8018, 8019), HTTP on 127.0.0.1
# only, login admin/admin. The log is WORKDIR/odoo.log, the database init log
# WORKDIR/init.log, measured durations WORKDIR/timings.
#
# Refuses an Enterprise tree (odoo/release.py version ending in +e) and any
# enterprise/ folder in the tree or on the addons path.
set -euo pipefail

DB=planops
LOGIN=admin
PASSWORD=admin
MODULES=stock,purchase,base_automation,sale_stock
DB_USER=odoo
DB_PASSWORD=odoo

die() { printf 'real-odoo.sh: %s\n' "$*" >&2; exit 1; }
note() { printf '==> %s\n' "$*" >&2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

# ---------------------------------------------------------------- arguments
CMD=${1:-}
[ -n "$CMD" ] || usage
case "$CMD" in -h | --help | help) usage 0 ;; esac
shift
SOURCE="" VERSION="" PORT="" WORKDIR="" VENV="" PYTHON="" START=1 PGPORT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --source) SOURCE=${2:?}; shift 2 ;;
    --version) VERSION=${2:?}; shift 2 ;;
    --port) PORT=${2:?}; shift 2 ;;
    --workdir) WORKDIR=${2:?}; shift 2 ;;
    --venv) VENV=${2:?}; shift 2 ;;
    --python) PYTHON=${2:?}; shift 2 ;;
    --pg-port) PGPORT=${2:?}; shift 2 ;;
    --no-start) START=0; shift ;;
    -h | --help) usage 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
case "$VERSION" in
  17 | 18 | 19) ;;
  "") die "--version 17|18|19 is required" ;;
  *) die "unsupported version '$VERSION' (17, 18 or 19)" ;;
esac
WORKDIR=${WORKDIR:-${PLANOPS_ODOO_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/planops-odoo}/$VERSION}
if [ "$CMD" = setup ]; then mkdir -p "$WORKDIR"; fi
[ -d "$WORKDIR" ] || die "$WORKDIR is not set up (run: $0 setup --source DIR --version $VERSION)"
WORKDIR=$(cd "$WORKDIR" && pwd)
PGCLUSTER=odoo$VERSION
STATE=$WORKDIR/state
CONF=$WORKDIR/odoo.conf
LOG=$WORKDIR/odoo.log
PIDFILE=$WORKDIR/odoo.pid
KEYFILE=$WORKDIR/apikey

# state: SOURCE, VENV, PORT of a set-up workdir (plain KEY=VALUE lines)
load_state() {
  [ -f "$STATE" ] || die "$WORKDIR is not set up (run: $0 setup --source DIR --version $VERSION)"
  local k v
  while IFS='=' read -r k v; do
    case "$k" in
      SOURCE) SOURCE=$v ;; VENV) VENV=$v ;; PORT) PORT=${PORT:-$v} ;; PGPORT) PGPORT=$v ;;
    esac
  done <"$STATE"
}

# ---------------------------------------------------------------- the tree
# Prints "<version>" as odoo/release.py computes it.
release_version() {
  "$1" - "$SOURCE/odoo/release.py" <<'PY'
import sys
ns = {}
exec(open(sys.argv[1]).read(), ns)
print(ns["version"], ns["version_info"][0], sep="\t")
PY
}

# Directories of the tree that hold Odoo modules. A tree whose odoo/addons
# already has the business modules (a packaged layout, e.g. some 17/18 trees)
# uses odoo/addons alone: a top-level addons/ beside it may be a stale copy.
addons_dirs() {
  if [ -d "$SOURCE/odoo/addons/stock" ]; then
    printf '%s\n' "$SOURCE/odoo/addons"
  else
    printf '%s\n' "$SOURCE/odoo/addons" "$SOURCE/addons"
  fi
}

check_tree() {
  local py=$1 rel ver major d m
  [ -f "$SOURCE/odoo-bin" ] && [ -f "$SOURCE/odoo/release.py" ] ||
    die "$SOURCE is not an Odoo source tree (no odoo-bin / odoo/release.py)"
  rel=$(release_version "$py") || die "cannot read $SOURCE/odoo/release.py"
  ver=${rel%%$'\t'*}
  major=${rel##*$'\t'}
  case "$ver" in
    *+e*) die "$SOURCE is Odoo Enterprise ($ver): only Community is supported" ;;
  esac
  [ "$major" = "$VERSION" ] || die "$SOURCE is Odoo $ver, not $VERSION"
  for d in "$SOURCE/enterprise" "$SOURCE/odoo/enterprise"; do
    [ ! -e "$d" ] || die "$d exists: remove the Enterprise folder from the tree first"
  done
  ADDONS_PATH=""
  while read -r d; do
    [ -d "$d" ] || die "missing addons directory $d"
    case "/$d/" in */enterprise/*) die "refusing an enterprise folder on the addons path: $d" ;; esac
    for m in web_enterprise account_accountant; do
      [ ! -d "$d/$m" ] || die "$d holds Enterprise module $m: refusing it on the addons path"
    done
    ADDONS_PATH=${ADDONS_PATH:+$ADDONS_PATH,}$d
  done < <(addons_dirs)
  for m in base stock purchase base_automation sale_stock mail; do
    local found=0
    while read -r d; do [ -f "$d/$m/__manifest__.py" ] && found=1; done < <(addons_dirs)
    [ "$found" = 1 ] || die "module $m not found on the addons path $ADDONS_PATH"
  done
  note "Odoo $ver Community at $SOURCE; addons_path=$ADDONS_PATH"
}

# ---------------------------------------------------------------- PostgreSQL
# Each Odoo version gets its own cluster (odoo<version>, port 54<version>), so
# that all of them can have a database named planops side by side.
pg_major() { ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1; }

start_cluster() {
  local major status
  major=$(pg_lsclusters -h | awk -v n="$PGCLUSTER" '$2 == n {print $1; exit}')
  [ -n "$major" ] || die "no PostgreSQL cluster $PGCLUSTER (run setup)"
  status=$(pg_lsclusters -h | awk -v n="$PGCLUSTER" '$2 == n {print $4; exit}')
  if [ "$status" != online ]; then
    note "starting PostgreSQL cluster $major/$PGCLUSTER (port $PGPORT)"
    as_root pg_ctlcluster "$major" "$PGCLUSTER" start
  fi
}

ensure_postgres() {
  local missing=()
  command -v pg_lsclusters >/dev/null 2>&1 || missing+=(postgresql postgresql-client)
  command -v pg_config >/dev/null 2>&1 || missing+=(libpq-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    note "apt-get install ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  local have_port
  have_port=$(pg_lsclusters -h | awk -v n="$PGCLUSTER" '$2 == n {print $3; exit}')
  if [ -z "$have_port" ]; then
    note "creating PostgreSQL cluster $(pg_major)/$PGCLUSTER on port $PGPORT"
    as_root pg_createcluster -p "$PGPORT" "$(pg_major)" "$PGCLUSTER" >/dev/null
  else
    PGPORT=$have_port
  fi
  start_cluster
  if ! as_postgres psql -p "$PGPORT" -tAc "SELECT 1 FROM pg_roles WHERE rolname='$DB_USER'" | grep -q 1; then
    note "creating PostgreSQL role $DB_USER"
    as_postgres psql -p "$PGPORT" -qc \
      "CREATE ROLE $DB_USER LOGIN CREATEDB SUPERUSER PASSWORD '$DB_PASSWORD'"
  fi
}

psql_odoo() {
  PGPASSWORD=$DB_PASSWORD psql -h 127.0.0.1 -p "$PGPORT" -U "$DB_USER" "$@"
}

# ---------------------------------------------------------------- virtualenv
# The tree's pins, with what is needed to install them from wheels:
#  - psycopg2 -> psycopg2-binary (2.9.9 at least: older pins lack wheels for
#    new Pythons; no libpq headers or compiler needed);
#  - python-ldap dropped (needs OpenLDAP headers; Odoo's auth_ldap is not used);
#  - cbor2 5.4.2 -> 5.6.2 (5.4.2 is source-only on PyPI and its build fails).
adjust_requirements() {
  sed -E \
    -e 's/^psycopg2==2\.9\.[0-8]([^0-9]|$)/psycopg2-binary==2.9.9\1/' \
    -e 's/^psycopg2==/psycopg2-binary==/' \
    -e '/^python-ldap/d' \
    -e 's/^cbor2==5\.4\.2/cbor2==5.6.2/' \
    "$SOURCE/requirements.txt"
}

pick_python() {
  if [ -n "$PYTHON" ]; then command -v "$PYTHON" >/dev/null || die "no $PYTHON"; echo "$PYTHON"; return; fi
  local p
  for p in python3.11 python3.12 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import venv' 2>/dev/null; then echo "$p"; return; fi
  done
  die "no python3 with the venv module (apt-get install python3-venv)"
}

ensure_venv() {
  local py=$1 want have=""
  VENV=${VENV:-$WORKDIR/venv}
  adjust_requirements >"$WORKDIR/requirements.txt"
  want=$( (cat "$WORKDIR/requirements.txt"; "$py" -VV) | sha256sum | cut -d' ' -f1)
  [ -f "$VENV/.planops-requirements" ] && have=$(cat "$VENV/.planops-requirements")
  if [ -x "$VENV/bin/python" ] && [ "$want" = "$have" ]; then
    note "virtualenv $VENV is up to date ($("$VENV/bin/python" -V))"
    return
  fi
  note "virtualenv $VENV with $($py -V)"
  [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip 'setuptools<70' wheel
  "$VENV/bin/pip" install -q --prefer-binary --no-build-isolation -r "$WORKDIR/requirements.txt"
  echo "$want" >"$VENV/.planops-requirements"
}

# ---------------------------------------------------------------- config
write_conf() {
  mkdir -p "$WORKDIR/data"
  cat >"$CONF" <<EOF
[options]
addons_path = $ADDONS_PATH
data_dir = $WORKDIR/data
db_host = 127.0.0.1
db_port = $PGPORT
db_user = $DB_USER
db_password = $DB_PASSWORD
http_interface = 127.0.0.1
http_port = $PORT
gevent_port = $((PORT + 1000))
workers = 0
max_cron_threads = 1
list_db = True
EOF
}

odoo() { "$VENV/bin/python" "$SOURCE/odoo-bin" "$@"; }

module_installed() {
  psql_odoo -d "$DB" -tAc "SELECT 1 FROM ir_module_module WHERE name='$1' AND state='installed'" 2>/dev/null | grep -q 1
}

init_db() {
  local all=1 m t0 t1 demo=()
  for m in ${MODULES//,/ }; do module_installed "$m" || all=0; done
  if [ "$all" = 1 ]; then
    note "database $DB already has $MODULES: adopting it"
    return
  fi
  [ "$VERSION" -ge 19 ] && demo=(--with-demo) # 17/18 load demo data unless --without-demo
  note "initialising database $DB with demo data and $MODULES (log: $WORKDIR/init.log)"
  t0=$(date +%s)
  odoo -c "$CONF" -d "$DB" -i "$MODULES" "${demo[@]}" --stop-after-init --no-http \
    >"$WORKDIR/init.log" 2>&1 || { tail -30 "$WORKDIR/init.log" >&2; die "database init failed"; }
  t1=$(date +%s)
  for m in ${MODULES//,/ }; do module_installed "$m" || die "module $m not installed (see init.log)"; done
  psql_odoo -d "$DB" -tAc "SELECT demo FROM ir_module_module WHERE name='base'" | grep -q t ||
    die "database $DB has no demo data"
  echo "init_seconds=$((t1 - t0))" >>"$WORKDIR/timings"
  note "database initialised in $((t1 - t0)) s"
  rm -f "$KEYFILE" # a key of an earlier database is no good
}

# Keeps WORKDIR/apikey if the database accepts it, else makes a new RPC key
# for admin (Odoo 18+ takes an expiration date: none = persistent).
ensure_apikey() {
  local old="" out
  [ -s "$KEYFILE" ] && old=$(cat "$KEYFILE")
  out=$(OLD_KEY=$old odoo shell -c "$CONF" -d "$DB" --no-http --log-level=warn 2>&1 <<'PY'
import inspect, os
Keys = env['res.users.apikeys']
old = os.environ.get('OLD_KEY') or ''
uid = old and Keys._check_credentials(scope='rpc', key=old)
if uid == 2:
    print('PLANOPS_KEY_KEPT')
else:
    admin = Keys.with_user(2).sudo()
    args = ['rpc', 'planops']
    if 'expiration_date' in inspect.signature(type(Keys)._generate).parameters:
        args.append(False)
    print('PLANOPS_KEY=' + admin._generate(*args))
    env.cr.commit()
PY
  ) || { printf '%s\n' "$out" | tail -20 >&2; die "odoo shell failed"; }
  if printf '%s\n' "$out" | grep -q '^PLANOPS_KEY_KEPT'; then
    note "API key in $KEYFILE still valid"
  else
    printf '%s\n' "$out" | sed -n 's/^PLANOPS_KEY=//p' | head -1 >"$KEYFILE.new"
    [ -s "$KEYFILE.new" ] || { printf '%s\n' "$out" | tail -20 >&2; die "no API key generated"; }
    chmod 600 "$KEYFILE.new"
    mv "$KEYFILE.new" "$KEYFILE"
    note "new API key in $KEYFILE"
  fi
}

# ---------------------------------------------------------------- server
pid_alive() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q odoo-bin "/proc/$pid/cmdline" 2>/dev/null
}

server_version() {
  python3 - "$PORT" <<'PY' 2>/dev/null
import sys, xmlrpc.client
v = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{sys.argv[1]}/xmlrpc/2/common").version()
print(v["server_version"])
PY
}

cmd_start() {
  load_state
  if pid_alive; then note "already running (pid $(cat "$PIDFILE"), port $PORT)"; return; fi
  start_cluster
  if server_version >/dev/null; then die "port $PORT already answers, but not from $PIDFILE"; fi
  note "starting Odoo $VERSION on 127.0.0.1:$PORT (log: $LOG)"
  setsid nohup "$VENV/bin/python" "$SOURCE/odoo-bin" -c "$CONF" -d "$DB" --db-filter "^$DB\$" \
    >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local i
  for i in $(seq 1 120); do
    if server_version >/dev/null; then
      note "Odoo $(server_version) up (pid $(cat "$PIDFILE"))"
      return
    fi
    pid_alive || { tail -20 "$LOG" >&2; die "Odoo exited"; }
    sleep 1
  done
  die "Odoo did not answer on port $PORT within 120 s (see $LOG)"
}

cmd_stop() {
  load_state
  if ! pid_alive; then note "not running"; rm -f "$PIDFILE"; return; fi
  local pid i
  pid=$(cat "$PIDFILE")
  kill "$pid"
  for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$PIDFILE"
  note "stopped (pid $pid)"
}

cmd_status() {
  load_state
  local v
  if pid_alive && v=$(server_version); then
    echo "running: Odoo $v, pid $(cat "$PIDFILE"), http://127.0.0.1:$PORT, db $DB, source $SOURCE, log $LOG"
  elif pid_alive; then
    echo "starting or not answering: pid $(cat "$PIDFILE"), port $PORT, log $LOG"
    return 1
  else
    echo "stopped (workdir $WORKDIR)"
    return 3
  fi
}

cmd_env() {
  load_state
  [ -s "$KEYFILE" ] || die "no API key in $KEYFILE (run setup)"
  cat <<EOF
export PLANOPS_ODOO_URL=http://127.0.0.1:$PORT
export PLANOPS_ODOO_DB=$DB
export PLANOPS_ODOO_LOGIN=$LOGIN
export PLANOPS_ODOO_PASSWORD=$PASSWORD
export PLANOPS_ODOO_API_KEY=$(cat "$KEYFILE")
export PLANOPS_ODOO_VERSION=$VERSION
EOF
}

cmd_setup() {
  [ -n "$SOURCE" ] || die "setup needs --source DIR (an Odoo Community checkout)"
  SOURCE=$(cd "$SOURCE" && pwd)
  if [ -f "$STATE" ]; then # keep the venv and port of an earlier setup unless given
    VENV=${VENV:-$(sed -n 's/^VENV=//p' "$STATE")}
    PORT=${PORT:-$(sed -n 's/^PORT=//p' "$STATE")}
  fi
  PORT=${PORT:-80$VERSION}
  PGPORT=${PGPORT:-54$VERSION}
  local t0 py
  t0=$(date +%s)
  py=$(pick_python)
  check_tree "$py"
  ensure_postgres
  ensure_venv "$py"
  printf 'SOURCE=%s\nVENV=%s\nPORT=%s\nPGPORT=%s\n' "$SOURCE" "$VENV" "$PORT" "$PGPORT" >"$STATE"
  if pid_alive; then cmd_stop; fi
  write_conf
  init_db
  ensure_apikey
  echo "setup_seconds=$(($(date +%s) - t0)) ($(date -u +%FT%TZ))" >>"$WORKDIR/timings"
  note "setup done in $(($(date +%s) - t0)) s"
  if [ "$START" = 1 ]; then cmd_start; fi
}

case "$CMD" in
  setup) cmd_setup ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  -h | --help | help) usage 0 ;;
  *) die "unknown command: $CMD (see --help)" ;;
esac
