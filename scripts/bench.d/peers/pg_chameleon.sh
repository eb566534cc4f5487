#!/usr/bin/env bash
# Peer: pg_chameleon (PyPI), MariaDB -> PostgreSQL. The MariaDB source gets the seed rows;
# `init_replica` copies them into PostgreSQL (schema "bench", timed separately) and records the
# binlog position; the backlog is committed on MariaDB while the replica is stopped; then
# `start_replica` (foreground, log_dest stdout) starts the timed drain. pg_chameleon runs two
# processes: "read" decodes the binlog (python-mysql-replication) into log tables in the
# sch_chameleon schema, "replay" applies them with the PL/pgSQL function fn_replay_mysql.
# Needs: python3 with venv; pins below. A MariaDB user with REPLICATION SLAVE (binlog stream),
# REPLICATION CLIENT/BINLOG MONITOR (SHOW MASTER STATUS), RELOAD (FLUSH TABLES WITH READ LOCK in
# init_replica), SELECT and LOCK TABLES (init_replica's LOCK TABLES ... READ) on the schema; binlog_format=ROW and binlog_row_image=FULL (checked).
#   CHANGES=100000 SEED_ROWS=50000 scripts/bench.d/peers/pg_chameleon.sh
set -euo pipefail
PEER=pg_chameleon DIRECTION=mariadb-\>pg
source "$(dirname "$0")/../lib.sh"
bench_init

# ---- install into a venv (kept between runs; versions pinned) ----------------------------------
VENV=${CHAMELEON_VENV:-/tmp/rowbridge-bench-pg_chameleon-venv}
PINS=(pg_chameleon==2.0.21 mysql-replication==1.0.17 PyMySQL==1.2.4 psycopg2-binary==2.9.13
      PyYAML==6.0.4 daemonize==2.5.0 tabulate==0.10.0 rollbar==1.5.0 parsy==2.2 setuptools==75.8.0)
# The venv is built on /usr/bin/python3: pg_chameleon refuses to run as root, and an interpreter
# under /root (pyenv) cannot be executed by the unprivileged user that runs it.
as_nobody() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
if ! as_nobody "$VENV/bin/python" -m pip freeze 2>/dev/null | grep -qx 'pg_chameleon==2.0.21'; then
    log "installing ${PINS[*]} into $VENV"
    /usr/bin/python3 -m venv -h >/dev/null 2>&1 || apt-get install -y python3-venv >"$WORK/apt.log" 2>&1 || true
    { rm -rf "$VENV" && /usr/bin/python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "${PINS[@]}"; } >"$WORK/pip.log" 2>&1 \
        || fail_json 2 "cannot install pg_chameleon into $VENV" "$WORK/pip.log" "$WORK/apt.log"
fi
VERSION="$(PYTHONWARNINGS=ignore "$VENV/bin/chameleon" --version 2>&1), $("$VENV/bin/python" -m pip freeze | grep -E '^(mysql-replication|PyMySQL|psycopg2-binary)==' | tr '\n' ' ')"

# ---- servers and data --------------------------------------------------------------------------
SRC=$(free_port); start_mariadb "$WORK/src" "$SRC"
DST=$(free_port); start_pg "$WORK/dst" "$DST"
log "source MariaDB on $SRC, target PG on $DST; $VERSION"
my_create "$SRC" bench; my_seed "$SRC" bench
myq "$SRC" -e "CREATE USER usr_replica@'127.0.0.1' IDENTIFIED BY 'replica';
    GRANT RELOAD, REPLICATION CLIENT, REPLICATION SLAVE ON *.* TO usr_replica@'127.0.0.1';
    GRANT SELECT, LOCK TABLES ON bench.* TO usr_replica@'127.0.0.1';"
pgv "$DST" postgres -c "CREATE DATABASE bench"

# pg_chameleon refuses to run as root ("pg_chameleon cannot be run as root"): run it as nobody.
CH_HOME=$WORK/home
mkdir -p "$CH_HOME/.pg_chameleon/configuration" "$CH_HOME/.pg_chameleon/pid" "$CH_HOME/.pg_chameleon/logs" "$WORK/out"
cat > "$CH_HOME/.pg_chameleon/configuration/default.yml" <<YML
---
pid_dir: '~/.pg_chameleon/pid/'
log_dir: '~/.pg_chameleon/logs/'
log_dest: stdout
log_level: info
log_days_keep: 1
rollbar_key: ''
rollbar_env: ''
type_override: {}
pg_conn:
  host: "127.0.0.1"
  port: "$DST"
  user: "postgres"
  password: "postgres"
  database: "bench"
  charset: "utf8"
sources:
  mysql:
    db_conn:
      host: "127.0.0.1"
      port: "$SRC"
      user: "usr_replica"
      password: "replica"
      charset: 'utf8'  # pg_chameleon also uses it as a python codec name: utf8mb4 fails (LookupError)
      connect_timeout: 10
    schema_mappings:
      bench: bench
    limit_tables:
    skip_tables:
    grant_select_to:
    lock_timeout: "120s"
    my_server_id: 100
    replica_batch_size: ${CHAMELEON_BATCH:-10000}
    replay_max_rows: ${CHAMELEON_REPLAY_ROWS:-10000}
    batch_retention: '1 day'
    copy_max_memory: "300M"
    copy_mode: 'file'
    out_dir: $WORK/out
    sleep_loop: 1
    on_error_replay: exit
    on_error_read: exit
    auto_maintenance: "disabled"
    gtid_enable: false
    type: mysql
    skip_events:
      insert:
      delete:
      update:
    keep_existing_schema: No
    net_read_timeout: 600
YML
[ "$(id -u)" = 0 ] && chown -R nobody:nogroup "$CH_HOME" "$WORK/out"
CH_RUN=(env HOME="$CH_HOME" PYTHONWARNINGS=ignore "$VENV/bin/chameleon")
[ "$(id -u)" = 0 ] && CH_RUN=(runuser -u nobody -- "${CH_RUN[@]}")
ch() { "${CH_RUN[@]}" "$1" --config default "${@:2}"; }
# chameleon prints errors and exits 0 on many failures: check the catalogue, not the exit code.
{
    ch create_replica_schema
    ch add_source --source mysql
} >"$WORK/setup.log" 2>&1 || fail_json 2 "pg_chameleon create_replica_schema/add_source failed" "$WORK/setup.log"
t=$(now)
ch init_replica --source mysql >"$WORK/init.log" 2>&1 || fail_json 2 "pg_chameleon init_replica failed" "$WORK/init.log"
init_s=$(secs "$t" "$(now)")
STATUS=$(pgv "$DST" bench -c "SELECT enm_status FROM sch_chameleon.t_sources WHERE t_source = 'mysql'" 2>&1 || true)
[ "$(pg_checksum "$DST" bench bench 2>&1)" = "$(my_checksum "$SRC" bench)" ] \
    || fail_json 2 "init_replica did not copy the seed rows (source status: $STATUS)" "$WORK/init.log"
log "init_replica copied $SEED_ROWS rows in ${init_s}s (status $STATUS)"

# ---- backlog on the source while the replica is stopped ----------------------------------------
gen_backlog mariadb >/dev/null
log "loading the backlog into the source"
t=$(now); my_backlog "$SRC" bench; load_s=$(secs "$t" "$(now)")
WANT_PROBE=$(my_probe "$SRC" bench); WANT_SUM=$(my_checksum "$SRC" bench)
log "backlog committed in ${load_s}s; source: $WANT_PROBE"

# ---- timed drain -------------------------------------------------------------------------------
CH_PID=
stop_chameleon() { # SIGINT to the main process (its graceful stop; read/replay children are daemonic)
    [ -n "$CH_PID" ] || return 0
    local pid
    pid=$(head -n1 "$CH_HOME/.pg_chameleon/pid/mysql.pid" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] && kill -INT "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$CH_PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$CH_PID" 2>/dev/null; then
        [[ $pid =~ ^[0-9]+$ ]] && kill -KILL "$pid" 2>/dev/null; kill "$CH_PID" 2>/dev/null
    fi
    CH_PID=
}
PEER_CLEANUP=stop_chameleon
cpu0=$(cpu_ticks "${DB_PIDS[@]}")
LOAD0=$(loadavg); T0=$(now)
"${CH_RUN[@]}" start_replica --config default --source mysql >"$WORK/replica.log" 2>&1 &
CH_PID=$!  # runuser (or chameleon itself when not root)
ok=1
wait_converged "$T0" "$WANT_PROBE" "$WANT_SUM" pg_probe "$DST" bench bench -- pg_checksum "$DST" bench bench || ok=0
cpu1=$(cpu_ticks "${DB_PIDS[@]}")
CH_CPU=$(ticks_to_s 0 "$(cpu_ticks "$CH_PID")")
[ "$ok" = 1 ] || fail_json 1 "target did not converge within ${DEADLINE}s (target probe: $LAST_PROBE, want $WANT_PROBE)" "$WORK/replica.log"
S=$(secs "$T0" "$CONVERGED_AT")
log "converged after ${S}s"
json peer=pg_chameleon direction="mariadb->pg" changes:="$CHANGES" seconds:="$S" changes_per_s:="$(rate "$CHANGES" "$S")" \
    version="$VERSION" seed_rows:="$SEED_ROWS" batch:="$BATCH" source_load_s:="$load_s" init_replica_s:="$init_s" \
    loadavg_before="$LOAD0" server_cpu_s:="$(ticks_to_s "$cpu0" "$cpu1")" chameleon_cpu_s:="$CH_CPU" \
    notes="binlog file/position (gtid_enable false), replica_batch_size ${CHAMELEON_BATCH:-10000}, replay_max_rows ${CHAMELEON_REPLAY_ROWS:-10000}, sleep_loop 1; time from start_replica (process startup included) to target checksum = source checksum; init_replica (copy of the seed rows) not included; server_cpu_s = MariaDB + PG during the drain, chameleon_cpu_s = the chameleon processes"
