# Shared helpers for the peer benchmarks in scripts/bench.d/peers/. Source after `set -euo pipefail`.
# Settings (environment):
#   CHANGES    backlog size, a multiple of 10 (default 1000000)
#   SEED_ROWS  rows present before the backlog, on source and target alike (default 200000)
#   BATCH      changes per source transaction (default 500)
#   SEED       workload seed (default 42)
#   DEADLINE   seconds to wait for the target to converge (default 900)
#   KEEP=1     leave the work directory (logs) behind; servers are always stopped
#   BENCH_CACHE=DIR  keep the generated seed/backlog SQL there for the next run (default: regenerate)
# Contract: progress goes to stderr; stdout gets exactly one JSON line, a result or {"error": ...}.
# Exit 0 = result, 2 = the peer cannot run here (JSON says why), 1 = unexpected failure (JSON too).

BENCH_D=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_D/../.." && pwd)
# shellcheck source=../lib/dbs.sh
source "$REPO/scripts/lib/dbs.sh"

CHANGES=${CHANGES:-1000000}
SEED_ROWS=${SEED_ROWS:-200000}
BATCH=${BATCH:-500}
SEED=${SEED:-42}
DEADLINE=${DEADLINE:-900}
export PGPASSWORD=postgres
PEER=${PEER:-unknown}
DIRECTION=${DIRECTION:-}
WORK=
PEER_CLEANUP=:  # a peer script sets this to a command that stops what it started

log() { printf '[%s %s] %s\n' "$PEER" "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# json key=string key:=raw-json ...  -> one line on stdout
json() {
    python3 - "$@" <<'PY'
import json, sys
out = {}
for a in sys.argv[1:]:
    k, v = a.split("=", 1)
    if k.endswith(":"):
        out[k[:-1]] = json.loads(v)
    else:
        out[k] = v
print(json.dumps(out))
PY
}

# fail_json EXIT WHY [EVIDENCE-FILE...]: print the error line (with the files' last lines) and exit
fail_json() {
    local code=$1 why=$2; shift 2
    local ev="" f
    for f in "$@"; do [ -f "$f" ] && ev+="== $(basename "$f") (last lines)"$'\n'"$(tail -n 25 "$f")"$'\n'; done
    trap - ERR
    json peer="$PEER" direction="$DIRECTION" changes:="$CHANGES" error="$why" evidence="$ev"
    exit "$code"
}

bench_init() { # bench_init: work dir, cleanup trap, error trap
    WORK=$(mktemp -d "/tmp/rb-peer-$PEER.XXXXXX")
    chmod 755 "$WORK"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    trap 'fail_json 1 "unexpected failure at line $LINENO: $BASH_COMMAND" $WORK/*.log $WORK/*/*.log' ERR
    log "work dir $WORK; backlog $CHANGES changes on $SEED_ROWS seed rows, $BATCH per transaction, seed $SEED"
}

bench_cleanup() {
    set +e
    trap - ERR
    $PEER_CLEANUP
    stop_dbs
    stop_leftover_servers
    if [ "${KEEP:-}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}

# dbs.sh's stop_dbs kills the background subshell that start_pg forked, not the runuser/postgres
# beneath it, so a cluster can outlive the script: stop every server of $WORK by its own pid file.
stop_leftover_servers() {
    local f pid pids=()
    for f in "$WORK"/*/data/postmaster.pid "$WORK"/*/mysql.pid; do
        [ -f "$f" ] || continue
        pid=$(head -n1 "$f")
        # SIGINT = PostgreSQL's fast shutdown (SIGTERM would wait for clients); MariaDB: SIGTERM
        [[ $pid =~ ^[0-9]+$ ]] && kill "$([[ $f == *postmaster.pid ]] && echo -INT || echo -TERM)" "$pid" 2>/dev/null \
            && pids+=("$pid")
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
}

# ---- SQL clients -------------------------------------------------------------------------------
pgq() { local port=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
pgv() { local port=$1 db=$2; shift 2; psql -X -qAt -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"; }
myq() { local port=$1; shift; mariadb --default-character-set=utf8mb4 -h 127.0.0.1 -P "$port" -uroot -proot "$@"; }
myv() { local port=$1 db=$2; shift 2; mariadb --default-character-set=utf8mb4 -h 127.0.0.1 -P "$port" -uroot -proot -N -B "$db" "$@"; }

# ---- workload ----------------------------------------------------------------------------------
pg_create() { # pg_create PORT DB
    pgq "$1" -d postgres -c "CREATE DATABASE $2"
    pgq "$1" -d "$2" -f "$BENCH_D/schema-pg.sql"
}
my_create() { # my_create PORT DB
    myq "$1" -e "CREATE DATABASE $2 CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    myq "$1" "$2" < "$BENCH_D/schema-mariadb.sql"
}
gen() { python3 "$BENCH_D/workload.py" "$@" --rows "$SEED_ROWS" --changes "$CHANGES" --batch "$BATCH" --seed "$SEED"; }
# gen_file seed|changes DIALECT -> path of the generated SQL: in $WORK, or in $BENCH_CACHE (if set)
# where the files are kept for the next run with the same settings (1M changes: ~200 MB per dialect).
gen_file() {
    local dir=${BENCH_CACHE:-$WORK} f
    f="$dir/$1.$2.rows$SEED_ROWS.changes$CHANGES.batch$BATCH.seed$SEED.sql"
    if [ "$1" = seed ]; then f="$dir/seed.$2.rows$SEED_ROWS.seed$SEED.sql"; fi
    mkdir -p "$dir"
    [ -s "$f" ] || { gen "$1" --dialect "$2" > "$f.tmp" && mv "$f.tmp" "$f"; }
    echo "$f"
}
pg_seed() { pgq "$1" -d "$2" -o /dev/null -f "$(gen_file seed pg)"; pgq "$1" -d "$2" -c "VACUUM ANALYZE customer"; }
my_seed() { myq "$1" "$2" < "$(gen_file seed mariadb)"; }
# Backlog: generated to a file first so the load rate is the database's, not the generator's.
gen_backlog() { gen_file changes "$1"; }
pg_backlog() { pgq "$1" -d "$2" -o /dev/null -f "$(gen_backlog pg)"; }
my_backlog() { myq "$1" "$2" < "$(gen_backlog mariadb)"; }

# probe/checksum: pg PORT DB [SCHEMA] | my PORT DB
pg_probe() { PGOPTIONS="-c search_path=${3:-public}" pgv "$1" "$2" -f "$BENCH_D/probe-pg.sql"; }
pg_checksum() { PGOPTIONS="-c search_path=${3:-public}" pgv "$1" "$2" -f "$BENCH_D/checksum-pg.sql"; }
my_probe() { myv "$1" "$2" < "$BENCH_D/probe-mariadb.sql"; }
my_checksum() { myv "$1" "$2" < "$BENCH_D/checksum-mariadb.sql"; }

# wait_converged T0 WANT_PROBE WANT_SUM PROBE-CMD... -- SUM-CMD...
# Polls the cheap probe every 0.25 s; when it matches, runs the checksum; sets CONVERGED_AT to the
# moment the matching checksum query started (its snapshot). Fails after DEADLINE seconds from T0.
CONVERGED_AT=
LAST_PROBE=
wait_converged() {
    local t0=$1 want_probe=$2 want_sum=$3; shift 3
    local probe=() sum=() got t
    while [ "$1" != -- ]; do probe+=("$1"); shift; done; shift
    sum=("$@")
    while :; do
        got=$("${probe[@]}" 2>/dev/null || true)
        LAST_PROBE=$got
        if [ "$got" = "$want_probe" ]; then
            t=$(now)
            if [ "$("${sum[@]}" 2>/dev/null || true)" = "$want_sum" ]; then CONVERGED_AT=$t; return 0; fi
        fi
        if python3 -c "import sys; sys.exit(0 if $(now) - $t0 > $DEADLINE else 1)"; then return 1; fi
        sleep 0.25
    done
}

# cpu_ticks PID...: CPU clock ticks used so far by these processes and all their descendants
# (live ones' utime+stime plus cutime+cstime, which holds the reaped ones).
cpu_ticks() {
    python3 - "$@" <<'PY'
import os, sys
kids, ticks = {}, {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        s = open("/proc/%s/stat" % p).read()
    except OSError:
        continue
    f = s[s.rindex(")") + 2:].split()
    kids.setdefault(int(f[1]), []).append(int(p))
    ticks[int(p)] = sum(int(x) for x in f[11:15])
total, todo, seen = 0, [int(a) for a in sys.argv[1:]], set()
while todo:
    p = todo.pop()
    if p in seen:
        continue
    seen.add(p)
    total += ticks.get(p, 0)
    todo += kids.get(p, [])
print(total)
PY
}
CLK_TCK=$(getconf CLK_TCK)
ticks_to_s() { python3 -c "print(round(($2 - $1) / $CLK_TCK, 2))"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }  # other work on the machine skews the numbers: record it
rate() { python3 -c "print(round($1 / $2, 1))"; }
secs() { python3 -c "print(round($2 - $1, 3))"; }
