# Throwaway PostgreSQL 15 and MariaDB servers for the demo and the benchmarks.
# Source this file; call start_pg DIR PORT and start_mariadb DIR PORT; stop_dbs stops both.
# Both listen on 127.0.0.1 only, with the settings CDC needs. fsync is off (throwaway data), but
# PostgreSQL keeps synchronous_commit on: with it off, WAL reaches the walsender only when the
# WAL writer flushes (every 200 ms), which would add up to 200 ms to every change's lag.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DB_PIDS=()
DB_PIDFILES=()

as_pg_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local deadline=$((SECONDS + $1)) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then echo "timed out waiting for $what" >&2; return 1; fi
        sleep 0.2
    done
}

start_pg() { # start_pg DIR PORT  (superuser postgres, password postgres)
    local dir=$1 port=$2
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown nobody:nogroup "$dir" && chmod 700 "$dir"
    echo postgres > "$dir.pw"; chmod 644 "$dir.pw"
    as_pg_user "$PG_BIN/initdb" -D "$dir/data" -U postgres --pwfile="$dir.pw" --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
    as_pg_user "$PG_BIN/postgres" -D "$dir/data" -c listen_addresses=127.0.0.1 -c port="$port" \
        -c unix_socket_directories="$dir" -c wal_level=logical -c max_replication_slots=16 \
        -c max_wal_senders=16 -c wal_sender_timeout=10s -c fsync=off -c synchronous_commit=on \
        -c shared_buffers=256MB >"$dir/postgres.log" 2>&1 &
    DB_PIDS+=($!)
    DB_PIDFILES+=("$dir/data/postmaster.pid")
    wait_for 60 "postgres on port $port" "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$port" -q
}

start_mariadb() { # start_mariadb DIR PORT  (root, password root)
    local dir=$1 port=$2
    mkdir -p "$dir"
    mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
        --user="$(id -un)" >"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; return 1; }
    mariadbd --no-defaults --datadir="$dir/data" --port="$port" --bind-address=127.0.0.1 \
        --socket="$dir/mysql.sock" --pid-file="$dir/mysql.pid" --user="$(id -un)" \
        --log-bin="$dir/binlog" --server-id=1 --binlog-format=ROW --binlog-row-image=FULL \
        --binlog-row-metadata=FULL --log-slave-updates --character-set-server=utf8mb4 \
        --collation-server=utf8mb4_unicode_ci --innodb-flush-log-at-trx-commit=2 \
        --innodb-buffer-pool-size=256M --skip-name-resolve --log-error="$dir/error.log" &
    DB_PIDS+=($!)
    DB_PIDFILES+=("$dir/mysql.pid")
    wait_for 60 "mariadb on port $port" mariadb --socket="$dir/mysql.sock" -uroot -e 'SELECT 1'
    mariadb --socket="$dir/mysql.sock" -uroot -e \
        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY 'root'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
}

stop_dbs() {
    # The servers themselves, by their pid files: $! is the runuser wrapper for PostgreSQL, and
    # killing it would leave the postmaster running. SIGINT = PostgreSQL's fast shutdown.
    local f pid pids=()
    for f in "${DB_PIDFILES[@]}"; do
        pid=$(head -n1 "$f" 2>/dev/null || true)
        [[ $pid =~ ^[0-9]+$ ]] || continue
        if [[ $f == *postmaster.pid ]]; then kill -INT "$pid" 2>/dev/null || true
        else kill -TERM "$pid" 2>/dev/null || true; fi
        pids+=("$pid")
    done
    for pid in "${DB_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${DB_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    local deadline=$((SECONDS + 30))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    DB_PIDS=()
    DB_PIDFILES=()
}
