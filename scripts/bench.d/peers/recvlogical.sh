#!/usr/bin/env bash
# Decode ceiling: pg_recvlogical draining the backlog to /dev/null, once with pgoutput (the plugin
# rowbridge reads; proto_version 1, text tuples) and once with test_decoding. Both slots are created
# before the backlog; each drain runs alone, timed from START_REPLICATION until pg_recvlogical exits
# at --endpos (the source's WAL position after the backlog). Prints one JSON line per plugin.
#   CHANGES=100000 SEED_ROWS=50000 scripts/bench.d/peers/recvlogical.sh
set -euo pipefail
PEER=recvlogical DIRECTION=pg-\>/dev/null
source "$(dirname "$0")/../lib.sh"
bench_init

SRC=$(free_port); start_pg "$WORK/src" "$SRC"
log "source PG on $SRC"
pg_create "$SRC" bench; pg_seed "$SRC" bench
pgv "$SRC" bench -c "CREATE PUBLICATION bench_pub FOR TABLE customer"
for plugin in pgoutput test_decoding; do
    "$PG_BIN/pg_recvlogical" -h 127.0.0.1 -p "$SRC" -U postgres -d bench --slot "bench_$plugin" \
        --create-slot -P "$plugin"
done

gen_backlog pg >/dev/null
log "loading the backlog into the source"
t=$(now); pg_backlog "$SRC" bench; load_s=$(secs "$t" "$(now)")
# The insert position, not pg_current_wal_lsn(): with synchronous_commit=off the write position
# can lag the last commit, and --endpos there cuts off the backlog's last transaction.
END_LSN=$(pgv "$SRC" bench -c "SELECT pg_current_wal_insert_lsn()")
log "backlog committed in ${load_s}s, end LSN $END_LSN"

for plugin in pgoutput test_decoding; do
    opts=()
    [ "$plugin" = pgoutput ] && opts=(-o proto_version=1 -o publication_names=bench_pub)
    [ "$plugin" = test_decoding ] && opts=(-o skip-empty-xacts=1)
    cpu0=$(cpu_ticks "${DB_PIDS[@]}")
    LOAD0=$(loadavg); T0=$(now)
    # --no-loop: exit instead of reconnecting; -s 1: feedback once a second (as a daemon would)
    timeout "$DEADLINE" "$PG_BIN/pg_recvlogical" -h 127.0.0.1 -p "$SRC" -U postgres -d bench \
        --slot "bench_$plugin" --start --endpos "$END_LSN" --no-loop -s 1 -f /dev/null "${opts[@]}" \
        2>"$WORK/recvlogical-$plugin.log" \
        || fail_json 1 "pg_recvlogical ($plugin) failed or timed out" "$WORK/recvlogical-$plugin.log"
    T1=$(now)
    cpu1=$(cpu_ticks "${DB_PIDS[@]}")
    S=$(secs "$T0" "$T1")
    log "$plugin drained in ${S}s"
    json peer="recvlogical-$plugin" direction="pg->/dev/null" changes:="$CHANGES" seconds:="$S" \
        changes_per_s:="$(rate "$CHANGES" "$S")" version="$("$PG_BIN/pg_recvlogical" --version)" \
        seed_rows:="$SEED_ROWS" batch:="$BATCH" source_load_s:="$load_s" \
        loadavg_before="$LOAD0" server_cpu_s:="$(ticks_to_s "$cpu0" "$cpu1")" \
        notes="decode ceiling: walsender decoding with $plugin ${opts[*]} to pg_recvlogical -f /dev/null, timed from start until exit at --endpos $END_LSN; server_cpu_s = the PG cluster (walsender) during the drain, pg_recvlogical itself not counted"
done
