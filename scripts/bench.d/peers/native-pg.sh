#!/usr/bin/env bash
# Peer: native PostgreSQL 15 logical replication (publication + subscription), PG -> PG: the
# reference apply rate. Two throwaway PG 15 clusters; both get the same seed rows; the subscription
# is created with copy_data=false and enabled=false, which creates its slot before the backlog;
# the backlog is committed on the source; then ENABLE starts the timed drain.
#   CHANGES=100000 SEED_ROWS=50000 scripts/bench.d/peers/native-pg.sh
set -euo pipefail
PEER=native-pg DIRECTION=pg-\>pg
source "$(dirname "$0")/../lib.sh"
bench_init

SRC=$(free_port); start_pg "$WORK/src" "$SRC"
DST=$(free_port); start_pg "$WORK/dst" "$DST"
log "source PG on $SRC, target PG on $DST"
for p in $SRC $DST; do pg_create "$p" bench; pg_seed "$p" bench; done
[ "$(pg_checksum "$SRC" bench)" = "$(pg_checksum "$DST" bench)" ] || fail_json 1 "seeded tables differ"

pgv "$SRC" bench -c "CREATE PUBLICATION bench_pub FOR TABLE customer"
pgv "$DST" bench -c "CREATE SUBSCRIPTION bench_sub CONNECTION 'host=127.0.0.1 port=$SRC user=postgres password=postgres dbname=bench' PUBLICATION bench_pub WITH (copy_data = false, enabled = false)"

gen_backlog pg >/dev/null
log "loading the backlog into the source"
t=$(now); pg_backlog "$SRC" bench; load_s=$(secs "$t" "$(now)")
WANT_PROBE=$(pg_probe "$SRC" bench); WANT_SUM=$(pg_checksum "$SRC" bench)
END_LSN=$(pgv "$SRC" bench -c "SELECT pg_current_wal_insert_lsn()")
log "backlog committed in ${load_s}s (end LSN $END_LSN); source: $WANT_PROBE"

cpu0=$(cpu_ticks "${DB_PIDS[@]}")
LOAD0=$(loadavg); T0=$(now)
pgv "$DST" bench -c "ALTER SUBSCRIPTION bench_sub ENABLE"
if ! wait_converged "$T0" "$WANT_PROBE" "$WANT_SUM" pg_probe "$DST" bench -- pg_checksum "$DST" bench; then
    fail_json 1 "target did not converge within ${DEADLINE}s (target probe: $LAST_PROBE, want $WANT_PROBE)" "$WORK/dst/postgres.log"
fi
cpu1=$(cpu_ticks "${DB_PIDS[@]}")
S=$(secs "$T0" "$CONVERGED_AT")
log "converged after ${S}s"
json peer=native-pg direction="pg->pg" changes:="$CHANGES" seconds:="$S" changes_per_s:="$(rate "$CHANGES" "$S")" \
    version="$("$PG_BIN/postgres" --version)" seed_rows:="$SEED_ROWS" batch:="$BATCH" \
    source_load_s:="$load_s" loadavg_before="$LOAD0" server_cpu_s:="$(ticks_to_s "$cpu0" "$cpu1")" \
    notes="PG 15 built-in pub/sub, one apply worker, streaming=off, binary=false, copy_data=false; both clusters fsync=off synchronous_commit=on (scripts/lib/dbs.sh); time from ALTER SUBSCRIPTION ENABLE to target checksum = source checksum (probe every 0.25 s); server_cpu_s = both clusters (walsender + apply worker + checks) during the drain"
