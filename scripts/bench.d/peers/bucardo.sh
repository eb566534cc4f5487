#!/usr/bin/env bash
# Peer: Bucardo 5 (Debian package), PostgreSQL -> MariaDB (MariaDB as a target-only "mariadb" db).
# Bucardo is trigger-based: `add sync` installs AFTER INSERT/UPDATE/DELETE row triggers on the
# source table that write each changed primary key to bucardo.delta_public_customer. The sync is
# added (triggers in place) while Bucardo is stopped, the backlog is committed, then `bucardo start`
# + `kick` starts the timed drain. Per sync run Bucardo takes the DISTINCT changed keys, deletes
# them on the target (DELETE ... IN chunks) and re-inserts the source's current rows one prepared
# INSERT at a time, all in one transaction per target.
# Needs: the bucardo, postgresql-plperl-15 (same version as postgresql-15), libdbd-mysql-perl
# packages (DBD::mysql: Bucardo's driver for type mariadb), a PG superuser for `bucardo install`
# (it creates the superuser role "bucardo", database "bucardo" and plperlu).
#   CHANGES=100000 SEED_ROWS=50000 scripts/bench.d/peers/bucardo.sh
set -euo pipefail
PEER=bucardo DIRECTION=pg-\>mariadb
source "$(dirname "$0")/../lib.sh"
bench_init

# ---- install -----------------------------------------------------------------------------------
need=()
command -v bucardo >/dev/null || need+=(bucardo)
dpkg-query -W -f='${Status}' postgresql-plperl-15 2>/dev/null | grep -q 'ok installed' \
    || need+=("postgresql-plperl-15=$(dpkg-query -W -f='${Version}' postgresql-15)")  # must match the server
perl -MDBD::mysql -e1 2>/dev/null || need+=(libdbd-mysql-perl)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"; }
    } >"$WORK/apt.log" 2>&1 || fail_json 2 "cannot install ${need[*]}" "$WORK/apt.log"
fi
VERSION="bucardo $(dpkg-query -W -f='${Version}' bucardo), DBD::mysql $(perl -MDBD::mysql -e 'print $DBD::mysql::VERSION')"

# ---- servers and data --------------------------------------------------------------------------
SRC=$(free_port); start_pg "$WORK/src" "$SRC"
DST=$(free_port); start_mariadb "$WORK/dst" "$DST"
log "source PG on $SRC, target MariaDB on $DST; $VERSION"
pg_create "$SRC" bench; pg_seed "$SRC" bench
my_create "$DST" bench; my_seed "$DST" bench
[ "$(pg_checksum "$SRC" bench)" = "$(my_checksum "$DST" bench)" ] || fail_json 1 "seeded tables differ"

# ---- bucardo setup (control database "bucardo" inside the source cluster) ----------------------
export HOME=$WORK/home  # bucardo install appends to ~/.pgpass; keep it out of root's home
mkdir -p "$HOME" "$WORK/bucardo-run" "$WORK/bucardo-log"
# Pre-create the role with the password libpq already gets from PGPASSWORD (bucardo install would
# pick a random one and write it to ~/.pgpass, which PGPASSWORD overrides).
pgv "$SRC" postgres -c "CREATE USER bucardo SUPERUSER PASSWORD 'postgres'"
cat > "$WORK/bucardorc" <<RC
dbhost = 127.0.0.1
dbport = $SRC
dbname = bucardo
dbuser = bucardo
dbpass = postgres
piddir = $WORK/bucardo-run
logdest = $WORK/bucardo-log
RC
# Run from $WORK: `bucardo stop` writes bucardo.restart.reason.{txt,log} into the current directory.
bc() { (cd "$WORK" && bucardo --bucardorc "$WORK/bucardorc" --quiet "$@"); }
PEER_CLEANUP=bucardo_stop
bucardo_stop() { bc stop >/dev/null 2>&1; sleep 1; pkill_bucardo; }
pkill_bucardo() { # only the processes of this run: their pid files are in our piddir
    local f
    for f in "$WORK"/bucardo-run/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done; true
}
(cd "$WORK" && bucardo --bucardorc "$WORK/bucardorc" install --batch --quiet --dbhost 127.0.0.1 --dbport "$SRC" \
    --dbuser postgres --dbname postgres --pid-dir "$WORK/bucardo-run") >"$WORK/install.log" 2>&1 \
    || fail_json 2 "bucardo install failed" "$WORK/install.log"
bc set "log_conflict_file=$WORK/bucardo-log/conflict.log" "warning_file=$WORK/bucardo-log/warning.log" \
    "reason_file=$WORK/bucardo-log/restart.reason" >"$WORK/setup.log" 2>&1
{
    bc add db src dbname=bench host=127.0.0.1 port="$SRC" user=postgres pass=postgres
    bc add db dst type=mariadb dbname=bench host=127.0.0.1 port="$DST" user=root pass=root
    bc add table public.customer db=src relgroup=bench
    # onetimecopy=0: the target already holds the seed rows; autokick=1 (default) only matters
    # once Bucardo runs; the explicit kick below starts the drain.
    bc add sync bench relgroup=bench dbs=src:source,dst:target onetimecopy=0
} >>"$WORK/setup.log" 2>&1 || fail_json 2 "bucardo add db/table/sync failed" "$WORK/setup.log"
TRIGGERS=$(pgv "$SRC" bench -c "SELECT string_agg(tgname, ',') FROM pg_trigger WHERE tgrelid = 'customer'::regclass")
log "sync added; triggers on the source table: $TRIGGERS"

# ---- backlog (captured by the triggers while Bucardo is stopped) -------------------------------
gen_backlog pg >/dev/null
log "loading the backlog into the source (with Bucardo's triggers)"
t=$(now); pg_backlog "$SRC" bench; load_s=$(secs "$t" "$(now)")
WANT_PROBE=$(pg_probe "$SRC" bench); WANT_SUM=$(pg_checksum "$SRC" bench)
DELTA_ROWS=$(pgv "$SRC" bench -c "SELECT count(*) || ' ' || count(DISTINCT id) FROM bucardo.delta_public_customer")
log "backlog committed in ${load_s}s; delta rows / distinct keys: $DELTA_ROWS; source: $WANT_PROBE"

# ---- timed drain -------------------------------------------------------------------------------
cpu0=$(cpu_ticks "${DB_PIDS[@]}")
LOAD0=$(loadavg); T0=$(now)
bc start "benchmark" >"$WORK/start.log" 2>&1 || fail_json 1 "bucardo start failed" "$WORK/start.log" "$WORK/bucardo-log/log.bucardo"
bc kick bench >>"$WORK/start.log" 2>&1 || true
if ! wait_converged "$T0" "$WANT_PROBE" "$WANT_SUM" my_probe "$DST" bench -- my_checksum "$DST" bench; then
    fail_json 1 "target did not converge within ${DEADLINE}s (target probe: $LAST_PROBE, want $WANT_PROBE)" \
        "$WORK/bucardo-log/log.bucardo" "$WORK/start.log"
fi
cpu1=$(cpu_ticks "${DB_PIDS[@]}")
S=$(secs "$T0" "$CONVERGED_AT")
BUCARDO_CPU=$(ticks_to_s 0 "$(cpu_ticks $(head -qn1 "$WORK"/bucardo-run/bucardo.mcp.pid 2>/dev/null))")
# Bucardo's own record of the run(s): deletes/inserts applied and the apply time without startup
RUNS=$(pgv "$SRC" bucardo -c "SELECT count(*) || ' run(s): ' || sum(deletes) || ' deletes, ' || sum(inserts) || ' inserts, ' || round(extract(epoch FROM max(ended) - min(started))::numeric, 3) || ' s from first start to last end' FROM bucardo.syncrun WHERE sync = 'bench' AND ended IS NOT NULL" 2>/dev/null || true)
APPLIED=$(pgv "$SRC" bucardo -c "SELECT coalesce(sum(deletes + inserts), 0) FROM bucardo.syncrun WHERE sync = 'bench'" 2>/dev/null || echo 0)
log "converged after ${S}s; bucardo.syncrun: $RUNS"
json peer=bucardo direction="pg->mariadb" changes:="$CHANGES" seconds:="$S" changes_per_s:="$(rate "$CHANGES" "$S")" \
    version="$VERSION" seed_rows:="$SEED_ROWS" batch:="$BATCH" source_load_s:="$load_s" \
    loadavg_before="$LOAD0" server_cpu_s:="$(ticks_to_s "$cpu0" "$cpu1")" bucardo_cpu_s:="$BUCARDO_CPU" \
    delta_rows_distinct_keys="$DELTA_ROWS" syncrun="$RUNS" \
    target_row_ops_per_s:="$(rate "$APPLIED" "$S")" source_triggers="$TRIGGERS" \
    notes="trigger-based; time from bucardo start + kick (daemon startup included, ~1-2 s) to target checksum = source checksum; Bucardo collapses the backlog to its distinct changed keys (see delta_rows_distinct_keys; target_row_ops_per_s = its DELETEs + INSERTs per second) and applies them as DELETE ... IN + one INSERT per row in one transaction; the source load also paid for the delta triggers; server_cpu_s = PG + MariaDB during the drain, bucardo_cpu_s = the Bucardo daemons (MCP tree)"
