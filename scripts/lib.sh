# Shared by scripts/dev, scripts/test and the benchmarks: bring up Postgres and Redis.
#
# DATABASE_URL / REDIS_URL are used when given and reachable. Otherwise a private
# Postgres (port 55432) and Redis (port 56379) are started under .data/, installing the
# Debian packages first when the binaries are missing. Services this shell started are
# stopped by `tally_stop_services` (call it from an EXIT trap).

TALLY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TALLY_DATA=${TALLY_DATA:-$TALLY_ROOT/.data}
PG_PORT=${TALLY_PG_PORT:-55432}
REDIS_PORT=${TALLY_REDIS_PORT:-56379}
TALLY_STARTED=()

log() { printf '\033[1m[tally]\033[0m %s\n' "$*" >&2 2>/dev/null || true; }

apt_install() {
  log "installing Debian packages: $*"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

pg_reachable() { # url
  command -v psql >/dev/null && psql "$1" -Atqc 'select 1' >/dev/null 2>&1
}

redis_reachable() { # url
  command -v redis-cli >/dev/null && [ "$(redis-cli -u "$1" ping 2>/dev/null)" = "PONG" ]
}

# Postgres refuses to run as root: run it as an unprivileged user.
pg_user() {
  if [ "$(id -u)" -ne 0 ]; then id -un; return; fi
  id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  echo postgres
}

as_pg_user() {
  local user; user=$(pg_user)
  if [ "$(id -un)" = "$user" ]; then "$@"; else runuser -u "$user" -- "$@"; fi
}

tally_ensure_postgres() {
  if [ -n "${DATABASE_URL:-}" ] && pg_reachable "$DATABASE_URL"; then
    log "using Postgres at DATABASE_URL"
    return
  fi
  [ -n "$(pg_bindir)" ] && command -v psql >/dev/null || apt_install postgresql postgresql-client
  local bin dir; bin=$(pg_bindir); dir="$TALLY_DATA/pg"
  mkdir -p "$TALLY_DATA"
  if [ "$(id -u)" -eq 0 ] && ! runuser -u "$(pg_user)" -- test -x "$TALLY_DATA"; then
    # The checkout is not reachable by the unprivileged server user: keep the cluster
    # in a private folder of its own instead.
    dir="/tmp/tally-pg-$(printf '%s' "$TALLY_ROOT" | md5sum | cut -c1-8)"
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/tally"
  local admin="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  if ! pg_reachable "$admin"; then
    if [ ! -f "$dir/PG_VERSION" ]; then
      log "initialising a private Postgres in $dir"
      mkdir -p "$dir"; chown "$(pg_user)" "$dir"; chmod 700 "$dir"
      as_pg_user "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    mkdir -p "$dir/sock"; chown "$(pg_user)" "$dir/sock"
    log "starting Postgres on 127.0.0.1:$PG_PORT"
    as_pg_user "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start -o \
      "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $dir/sock -c max_connections=400 \
       -c shared_buffers=256MB -c fsync=${TALLY_PG_FSYNC:-on} \
       -c synchronous_commit=${TALLY_PG_SYNC_COMMIT:-on} -c full_page_writes=${TALLY_PG_FSYNC:-on}" >/dev/null
    TALLY_STARTED+=("pg:$bin:$dir")
  fi
  psql "$admin" -Atqc "select 1 from pg_database where datname='tally'" | grep -q 1 \
    || psql "$admin" -qc "create database tally" >/dev/null
}

tally_ensure_redis() {
  if [ -n "${REDIS_URL:-}" ] && redis_reachable "$REDIS_URL"; then
    log "using Redis at REDIS_URL"
    return
  fi
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  if ! redis_reachable "$REDIS_URL"; then
    mkdir -p "$TALLY_DATA/redis"
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TALLY_DATA/redis" \
      --daemonize yes --pidfile "$TALLY_DATA/redis/redis.pid" --logfile "$TALLY_DATA/redis/redis.log" \
      --save "" --appendonly no --maxmemory "${TALLY_REDIS_MAXMEMORY:-256mb}" \
      --maxmemory-policy allkeys-lru >/dev/null
    for _ in $(seq 50); do redis_reachable "$REDIS_URL" && break; sleep 0.1; done
    TALLY_STARTED+=("redis")
  fi
}

# A streaming hot standby of the Postgres at DATABASE_URL, made as an operator would
# (`pg_basebackup -R`), on port PG_PORT+2; sets TALLY_REPLICA_URL (database tally) or
# returns 1 when the primary refuses replication connections.
tally_start_replica() {
  local bin dir port admin
  bin=$(pg_bindir); port=$((PG_PORT + 2))
  dir="/tmp/tally-replica-$(printf '%s' "$TALLY_ROOT" | md5sum | cut -c1-8)"
  admin=$(echo "$DATABASE_URL" | sed -E 's#/[^/?]+(\?|$)#/postgres\1#')
  rm -rf "$dir"; mkdir -p "$dir"; chown "$(pg_user)" "$dir"; chmod 700 "$dir"
  as_pg_user "$bin/pg_basebackup" -d "$admin" -D "$dir" -R -X stream -c fast >/dev/null 2>&1 || return 1
  mkdir -p "$dir/sock"; chown "$(pg_user)" "$dir/sock"
  log "starting a streaming replica on 127.0.0.1:$port"
  as_pg_user "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start -o \
    "-p $port -c listen_addresses=127.0.0.1 -k $dir/sock -c max_connections=400 -c shared_buffers=256MB" >/dev/null
  TALLY_STARTED+=("pg:$bin:$dir")
  TALLY_REPLICA_URL=$(echo "$DATABASE_URL" | sed -E "s#@[^/]+/#@127.0.0.1:$port/#")
}

tally_stop_services() {
  local s
  for s in "${TALLY_STARTED[@]}"; do
    case "$s" in
      pg:*)
        IFS=: read -r _ bin dir <<<"$s"
        log "stopping Postgres"
        as_pg_user "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true ;;
      redis)
        log "stopping Redis"
        redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true ;;
    esac
  done
  TALLY_STARTED=()
}

# A Python virtualenv under .data/ with the independent checkers scripts/test uses (an
# RFC 8785 implementation for the hash chains, an OpenAPI validator, the schemathesis
# fuzzer). Prints the interpreter's path.
tally_python_tools() {
  local venv=$TALLY_DATA/venv
  if ! "$venv/bin/python" -c 'import rfc8785, openapi_spec_validator, schemathesis' >/dev/null 2>&1; then
    command -v python3 >/dev/null || apt_install python3 python3-venv
    python3 -m venv "$venv" >/dev/null 2>&1 || { apt_install python3-venv && python3 -m venv "$venv"; }
    log "installing the Python checkers (rfc8785, openapi-spec-validator, schemathesis) into $venv"
    # Pinned: the versions these checks were written and run against.
    "$venv/bin/pip" install -q --disable-pip-version-check \
      rfc8785==0.1.4 openapi-spec-validator==0.9.0 schemathesis==4.32.5 >&2
  fi
  echo "$venv/bin/python"
}
