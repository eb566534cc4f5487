#!/usr/bin/env python3
"""rowbridge's side of scripts/bench: drain throughput, lag under load, online resync, checkpoint
overhead and recovery after SIGKILL, against throwaway PostgreSQL (CRM) and MariaDB (ERP) servers
already started by scripts/bench. Standard library only; SQL goes through psql and mariadb.

Prints one JSON object per scenario on stdout (and writes them all to --out).
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")

# A customer-like row of 12 columns, about 300 bytes.
PG_TABLE = """
CREATE TABLE {t} (
  id bigint PRIMARY KEY, name text NOT NULL, email text, phone text, street text, city text,
  postcode text, country text, status text, credit_limit numeric(12,2),
  created_at timestamp, updated_at timestamp);
"""
MY_TABLE = """
CREATE TABLE {t} (
  id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(120), phone VARCHAR(40),
  street VARCHAR(120), city VARCHAR(80), postcode VARCHAR(16), country VARCHAR(2),
  status VARCHAR(16), credit_limit DECIMAL(12,2), created_at DATETIME(6), updated_at DATETIME(6));
"""
COLUMNS = ["id", "name", "email", "phone", "street", "city", "postcode", "country", "status",
           "credit_limit", "created_at", "updated_at"]

# Row i of the seed, the same on both servers (deterministic, no random()).
PG_ROW = """({i}, 'Customer ' || {i} || ' Holding GmbH & Co. KG', 'customer' || {i} || '@example-company.com',
  '+49 30 ' || lpad(({i} % 10000000)::text, 8, '0'), 'Industriestrasse ' || ({i} % 500) || ', Gebaeude ' || ({i} % 7),
  'City ' || ({i} % 997), lpad(({i} % 99999)::text, 5, '0'), 'DE', 'active', ({i} % 100000)::numeric + 0.5,
  timestamp '2024-01-01' + ({i} % 86400) * interval '1 second', timestamp '2024-06-01')"""
MY_ROW = """({i}, CONCAT('Customer ', {i}, ' Holding GmbH & Co. KG'), CONCAT('customer', {i}, '@example-company.com'),
  CONCAT('+49 30 ', LPAD({i} % 10000000, 8, '0')), CONCAT('Industriestrasse ', {i} % 500, ', Gebaeude ', {i} % 7),
  CONCAT('City ', {i} % 997), LPAD({i} % 99999, 5, '0'), 'DE', 'active', ({i} % 100000) + 0.5,
  TIMESTAMP '2024-01-01 00:00:00' + INTERVAL ({i} % 86400) SECOND, TIMESTAMP '2024-06-01 00:00:00')"""


HERE = os.path.dirname(os.path.abspath(__file__))


def workload_sql(kind, dialect, rows, changes, table, cache):
    """The shared workload (workload.py, the same the peers run) for `table`, cached as a file."""
    path = os.path.join(cache, f"{kind}-{dialect}-{rows}-{changes}-{table}.sql")
    if not os.path.exists(path):
        args = [sys.executable, os.path.join(HERE, "workload.py"), kind, "--dialect", dialect,
                "--rows", str(rows)]
        if kind == "changes":
            args += ["--changes", str(changes)]
        text = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        with open(path + ".tmp", "w") as f:
            f.write(re.sub(r"\bcustomer\b", table, text))
        os.rename(path + ".tmp", path)
    return path


class Env:
    def __init__(self, args):
        self.args = args
        self.bin = args.bin
        self.work = tempfile.mkdtemp(prefix="rowbridge-bench-", dir=args.work)
        os.chmod(self.work, 0o755)
        self.http = args.http_port
        self.cache = args.cache or os.path.join(self.work, "cache")
        os.makedirs(self.cache, exist_ok=True)

    # -- SQL ---------------------------------------------------------------------------------
    def pg(self, sql, db="crm"):
        out = subprocess.run(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
             str(self.args.pg_port), "-U", "postgres", "-d", db],
            input=sql, capture_output=True, text=True, env={**os.environ, "PGPASSWORD": "postgres"})
        if out.returncode != 0:
            raise RuntimeError(f"psql: {out.stderr.strip()[:2000]}")
        return out.stdout.strip()

    def my(self, sql, db="erp"):
        out = subprocess.run(
            ["mariadb", "-h", "127.0.0.1", "-P", str(self.args.my_port), "-uroot", "-proot", "-N",
             "-B", "--local-infile=1", db],
            input=sql, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"mariadb: {out.stderr.strip()[:2000]}")
        return out.stdout.strip()

    def pg_pipe(self, db="crm"):
        return subprocess.Popen(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
             str(self.args.pg_port), "-U", "postgres", "-d", db],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
            env={**os.environ, "PGPASSWORD": "postgres"})

    def my_pipe(self, db="erp"):
        return subprocess.Popen(
            ["mariadb", "-h", "127.0.0.1", "-P", str(self.args.my_port), "-uroot", "-proot", db],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)

    def fresh_databases(self):
        self.pg("DROP DATABASE IF EXISTS crm WITH (FORCE); CREATE DATABASE crm;", db="postgres")
        for slot in self.pg("SELECT slot_name FROM pg_replication_slots", db="postgres").split():
            self.pg(f"SELECT pg_drop_replication_slot('{slot}')", db="postgres")
        self.my("DROP DATABASE IF EXISTS erp; CREATE DATABASE erp CHARACTER SET utf8mb4 "
                "COLLATE utf8mb4_unicode_ci;", db="")
        # probe_<source>: rows written on the source, stamped on the target by a trigger in the
        # applying transaction. A probe committed after a backlog marks its end: the flow
        # applies in commit order, so when it arrives, everything before it has.
        for src in ("crm", "erp"):
            self.pg(f"CREATE TABLE probe_{src} (id bigint PRIMARY KEY, src_ts timestamp(6), "
                    f"applied_ts timestamp(6));")
            self.my(f"CREATE TABLE probe_{src} (id BIGINT PRIMARY KEY, src_ts DATETIME(6), "
                    f"applied_ts DATETIME(6));")
        self.my("CREATE TRIGGER probe_crm_applied BEFORE INSERT ON probe_crm FOR EACH ROW "
                "SET NEW.applied_ts = UTC_TIMESTAMP(6)")
        self.pg("CREATE FUNCTION probe_applied() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "NEW.applied_ts := clock_timestamp() AT TIME ZONE 'UTC'; RETURN NEW; END $$; "
                "CREATE TRIGGER probe_erp_applied BEFORE INSERT ON probe_erp FOR EACH ROW "
                "EXECUTE FUNCTION probe_applied();")
        self.probe_ids = {"crm": 0, "erp": 0}

    def probe_sql(self, side):
        """An INSERT of the next probe row of `side` (the caller commits it)."""
        self.probe_ids[side] += 1
        now = "(clock_timestamp() AT TIME ZONE 'UTC')" if side == "crm" else "UTC_TIMESTAMP(6)"
        return self.probe_ids[side], f"INSERT INTO probe_{side} VALUES ({self.probe_ids[side]}, {now}, NULL);"

    def send_probe(self, side):
        pid, sql = self.probe_sql(side)
        (self.pg if side == "crm" else self.my)(sql)
        return pid

    def wait_probe(self, side, pid, timeout):
        """Wait until probe `pid` of `side` is on the other side; returns the time it was seen."""
        sql = f"SELECT count(*) FROM probe_{side} WHERE id = {pid}"
        query = self.my if side == "crm" else self.pg
        deadline = time.time() + timeout
        while query(sql) != "1":
            if self.proc.poll() is not None:
                raise RuntimeError(f"rowbridge exited {self.proc.returncode}")
            if time.time() > deadline:
                raise RuntimeError(f"probe {pid} of {side} not applied within {timeout} s")
            time.sleep(0.05)
        return time.time()

    def run_file(self, side, path, db=None):
        with open(path) as f:
            if side == "crm":
                out = subprocess.run(
                    ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                     str(self.args.pg_port), "-U", "postgres", "-d", db or "crm"], stdin=f,
                    capture_output=True, text=True, env={**os.environ, "PGPASSWORD": "postgres"})
            else:
                out = subprocess.run(
                    ["mariadb", "-h", "127.0.0.1", "-P", str(self.args.my_port), "-uroot",
                     "-proot", "erp"], stdin=f, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{side} {path}: {out.stderr.strip()[:2000]}")

    def shared_table(self, table, side, rows, db=None):
        """The peers' customer table as `table`, seeded with the shared workload's rows."""
        dialect = "pg" if side == "crm" else "mariadb"
        with open(os.path.join(HERE, f"schema-{dialect}.sql")) as f:
            ddl = re.sub(r"\bcustomer\b", table, f.read())
        if side == "crm":
            self.pg(ddl, db=db or "crm")
        else:
            self.my(ddl)
        self.run_file(side, workload_sql("seed", dialect, rows, 0, table, self.cache), db)

    # -- tables ------------------------------------------------------------------------------
    def create(self, table, side):
        if side == "crm":
            self.pg(PG_TABLE.format(t=table))
        else:
            self.my(MY_TABLE.format(t=table))

    def seed(self, table, side, n):
        """Rows 1..n, identical on either server."""
        if n == 0:
            return
        if side == "crm":
            self.pg(f"INSERT INTO {table} SELECT {PG_ROW.format(i='g')[1:-1]} "
                    f"FROM generate_series(1, {n}) g;")
        else:
            # MariaDB's Sequence engine: seq_1_to_N is a table of 1..N.
            self.my(f"INSERT INTO {table} SELECT {MY_ROW.format(i='seq')[1:-1]} "
                    f"FROM seq_1_to_{n};")

    def backlog(self, table, side, changes, seeded, txn=100):
        """`changes` row changes in transactions of `txn`: 60 % updates, 30 % inserts, 10 %
        deletes. Deletes take ids 1, 2, 3 ...; updates hit ids above the deleted range; inserts
        get new ids after the seed. Generated by the server (a DO block / a procedure)."""
        if side == "crm":
            self.pg(f"""
DO $$
DECLARE i bigint; k int; nxt bigint := {seeded}; del bigint := 0; span bigint := {seeded} - {changes // 10} - 1;
BEGIN
  FOR i IN 1..{changes} LOOP
    k := i % 10;
    IF k < 6 THEN
      UPDATE {table} SET credit_limit = credit_limit + 1, status = 'upd' || (i % 7),
        updated_at = timestamp '2025-01-01' + i * interval '1 second'
      WHERE id = {changes // 10} + 1 + (i * 7919) % span;
    ELSIF k < 9 THEN
      nxt := nxt + 1;
      INSERT INTO {table} SELECT {PG_ROW.format(i='nxt')[1:-1]};
    ELSE
      del := del + 1;
      DELETE FROM {table} WHERE id = del;
    END IF;
    IF i % {txn} = 0 THEN COMMIT; END IF;
  END LOOP;
  COMMIT;
END $$;""")
        else:
            self.my(f"""
DROP PROCEDURE IF EXISTS bench_backlog;
DELIMITER //
CREATE PROCEDURE bench_backlog()
BEGIN
  DECLARE i BIGINT DEFAULT 1; DECLARE k INT; DECLARE nxt BIGINT DEFAULT {seeded};
  DECLARE del BIGINT DEFAULT 0; DECLARE span BIGINT DEFAULT {seeded} - {changes // 10} - 1;
  START TRANSACTION;
  WHILE i <= {changes} DO
    SET k = i % 10;
    IF k < 6 THEN
      UPDATE {table} SET credit_limit = credit_limit + 1, status = CONCAT('upd', i % 7),
        updated_at = TIMESTAMP '2025-01-01 00:00:00' + INTERVAL i SECOND
      WHERE id = {changes // 10} + 1 + (i * 7919) % span;
    ELSEIF k < 9 THEN
      SET nxt = nxt + 1;
      INSERT INTO {table} SELECT {MY_ROW.format(i='nxt')[1:-1]};
    ELSE
      SET del = del + 1;
      DELETE FROM {table} WHERE id = del;
    END IF;
    IF i % {txn} = 0 THEN COMMIT; START TRANSACTION; END IF;
    SET i = i + 1;
  END WHILE;
  COMMIT;
END //
DELIMITER ;
CALL bench_backlog();
DROP PROCEDURE bench_backlog;""")

    def checksum(self, table, side):
        if side == "crm":
            return self.pg(f"SELECT count(*), coalesce(sum(id), 0), coalesce(sum(credit_limit), 0) "
                           f"FROM {table}").replace("|", " ")
        return self.my(f"SELECT count(*), coalesce(sum(id), 0), coalesce(sum(credit_limit), 0) "
                       f"FROM {table}").replace("\t", " ")

    # -- the daemon --------------------------------------------------------------------------
    def write_config(self, mappings, pipeline="", extra=""):
        mdir = os.path.join(self.work, "mappings")
        os.makedirs(mdir, exist_ok=True)
        for f in os.listdir(mdir):
            os.remove(os.path.join(mdir, f))
        mappings = dict(mappings)
        for src in ("crm", "erp"):
            mappings[f"probe_{src}"] = (src, other(src), f"probe_{src}", f"probe_{src}", ["id", "src_ts"])
        for name, spec in mappings.items():
            src, dst, table, target_table = spec[:4]
            columns = spec[4] if len(spec) > 4 else COLUMNS
            cols = "\n".join(f'{c} = "{c}"' for c in columns)
            with open(os.path.join(mdir, f"{name}.toml"), "w") as f:
                f.write(f'key = ["id"]\n[source]\nendpoint = "{src}"\ntable = "{table}"\n'
                        f'[target]\nendpoint = "{dst}"\ntable = "{target_table}"\n[columns]\n{cols}\n')
        with open(os.path.join(self.work, "crm.pw"), "w") as f:
            f.write("postgres\n")
        with open(os.path.join(self.work, "erp.pw"), "w") as f:
            f.write("root\n")
        self.config = os.path.join(self.work, "rowbridge.toml")
        with open(self.config, "w") as f:
            f.write(f"""mappings = "{mdir}"
[store]
path = "{self.work}/store"
[admin]
http = "127.0.0.1:{self.http}"
[pipeline]
{pipeline}
[endpoints.crm]
kind = "postgres"
host = "127.0.0.1"
port = {self.args.pg_port}
user = "postgres"
database = "crm"
password_file = "{self.work}/crm.pw"
[endpoints.erp]
kind = "mysql"
host = "127.0.0.1"
port = {self.args.my_port}
user = "root"
database = "erp"
password_file = "{self.work}/erp.pw"
server_id = 4343
{extra}""")

    def reset_store(self):
        subprocess.run(["rm", "-rf", os.path.join(self.work, "store")], check=True)

    def start(self):
        self.log = open(os.path.join(self.work, "rowbridge.log"), "a")
        self.proc = subprocess.Popen([self.bin, "-c", self.config, "run"], stderr=self.log,
                                     stdout=subprocess.DEVNULL)
        self.rss_peak = 0
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rowbridge exited {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError("rowbridge not ready within 60 s")

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=120)
        self.log.close()

    def cpu_seconds(self, pid=None):
        pid = pid or self.proc.pid
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def server_cpu_seconds(self):
        """CPU of every postgres and mariadbd process now alive."""
        total = 0.0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
                if comm in ("postgres", "mariadbd"):
                    total += self.cpu_seconds(pid)
            except OSError:
                pass
        return total

    def cli(self, *args):
        out = subprocess.run([self.bin, "-c", self.config, *args], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"rowbridge {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def wait_equal(self, pairs, timeout):
        """Wait until each (table, side, target table, target side) has equal checksums."""
        deadline = time.time() + timeout
        while True:
            if all(self.checksum(t, s) == self.checksum(tt, ts) for t, s, tt, ts in pairs):
                return time.time()
            if self.proc.poll() is not None:
                raise RuntimeError(f"rowbridge exited {self.proc.returncode}")
            if time.time() > deadline:
                raise RuntimeError(f"not converged within {timeout} s")
            time.sleep(0.2)


def other(side):
    return "erp" if side == "crm" else "crm"


def drain(env, directions, changes, seeded, pipeline="", label=None):
    """A backlog of `changes` on each source while the daemon is stopped, then the time until
    every target equals its source."""
    env.fresh_databases()
    env.reset_store()
    mappings, pairs = {}, []
    for src in directions:
        table = f"customer_{src}"
        env.shared_table(table, src, seeded)
        env.shared_table(table, other(src), seeded)
        mappings[table] = (src, other(src), table, table)
        pairs.append((table, src, table, other(src)))
        # Generated before the clock starts.
        workload_sql("changes", "pg" if src == "crm" else "mariadb", seeded, changes, table, env.cache)
    env.write_config(mappings, pipeline)
    env.start()  # creates the slot / takes the binlog position
    env.stop()
    t = time.time()
    def load(src):
        dialect = "pg" if src == "crm" else "mariadb"
        env.run_file(src, workload_sql("changes", dialect, seeded, changes, f"customer_{src}", env.cache))
    threads = [threading.Thread(target=load, args=(src,)) for src in directions]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ends = {src: env.send_probe(src) for src in directions}
    generated = time.time() - t
    s0 = env.server_cpu_seconds()
    t0 = time.time()
    env.start()
    c0 = env.cpu_seconds()
    t1 = max(env.wait_probe(src, pid, 3600) for src, pid in ends.items())
    cpu = env.cpu_seconds() - c0
    for table, src, target_table, dst in pairs:
        a, b = env.checksum(table, src), env.checksum(target_table, dst)
        if a != b:
            raise RuntimeError(f"{table}: source {a} != target {b} after the drain")
    rss = env.rss_mib()
    s1 = env.server_cpu_seconds()
    env.stop()
    total = changes * len(directions)
    secs = t1 - t0
    return {
        "scenario": label or f"drain {'+'.join(d + '->' + other(d) for d in directions)}",
        "changes": total,
        "transaction_size": 500,
        "seconds": round(secs, 2),
        "changes_per_second": round(total / secs),
        "daemon_cpu_us_per_change": round(cpu * 1e6 / total, 2),
        "servers_cpu_us_per_change": round((s1 - s0) * 1e6 / total, 2),
        "peak_rss_mib": round(rss, 1),
        "backlog_generation_seconds": round(generated, 1),
    }


def drain_pg_pg(env, changes, seeded):
    """rowbridge between two PostgreSQL databases (crm -> crm2 on the same server), the
    workload of the native publication/subscription peer."""
    env.fresh_databases()
    env.reset_store()
    env.pg("DROP DATABASE IF EXISTS crm2 WITH (FORCE); CREATE DATABASE crm2;", db="postgres")
    table = "customer_crm"
    env.shared_table(table, "crm", seeded)
    env.shared_table(table, "crm", seeded, db="crm2")
    path = workload_sql("changes", "pg", seeded, changes, table, env.cache)
    env.write_config({}, extra=f"""[endpoints.pg2]
kind = "postgres"
host = "127.0.0.1"
port = {env.args.pg_port}
user = "postgres"
database = "crm2"
password_file = "{env.work}/crm.pw"
""")
    mdir = os.path.join(env.work, "mappings")
    for f in os.listdir(mdir):
        os.remove(os.path.join(mdir, f))
    cols = "\n".join(f'{c} = "{c}"' for c in COLUMNS)
    with open(os.path.join(mdir, "pg2.toml"), "w") as f:
        f.write(f'key = ["id"]\n[source]\nendpoint = "crm"\ntable = "{table}"\n[target]\n'
                f'endpoint = "pg2"\ntable = "{table}"\n[columns]\n{cols}\n')
    env.start()
    env.stop()
    env.run_file("crm", path)
    end = env.pg("SELECT max(updated_at) FROM " + table)
    count = env.pg(f"SELECT count(*) FROM {table}")
    t0 = time.time()
    env.start()
    c0 = env.cpu_seconds()
    deadline = time.time() + 3600
    q = f"SELECT count(*) = {count} AND max(updated_at) = '{end}' FROM {table}"
    while env.pg(q, db="crm2") != "t":
        if time.time() > deadline:
            raise RuntimeError("pg -> pg drain did not converge")
        time.sleep(0.1)
    secs = time.time() - t0
    cpu = env.cpu_seconds() - c0
    rss = env.rss_mib()
    env.stop()
    a = env.pg(f"SELECT count(*), sum(id), sum(credit_limit) FROM {table}")
    b = env.pg(f"SELECT count(*), sum(id), sum(credit_limit) FROM {table}", db="crm2")
    if a != b:
        raise RuntimeError(f"pg -> pg: source {a} != target {b}")
    return {
        "scenario": "drain crm->pg2 (PostgreSQL to PostgreSQL)",
        "changes": changes,
        "transaction_size": 500,
        "seconds": round(secs, 2),
        "changes_per_second": round(changes / secs),
        "daemon_cpu_us_per_change": round(cpu * 1e6 / changes, 2),
        "peak_rss_mib": round(rss, 1),
    }


def bulk_reference(env, rows, target):
    """The target's own bulk load of the same rows: COPY (PostgreSQL) or LOAD DATA (MariaDB)."""
    csv = os.path.join(env.work, "rows.csv")
    src = other(target)
    if src == "crm":
        env.pg(f"\\copy (SELECT * FROM big ORDER BY id) TO '{csv}' WITH (FORMAT csv)")
    else:
        out = env.my("SELECT * FROM big ORDER BY id")
        with open(csv, "w") as f:
            for line in out.splitlines():
                f.write(",".join('"' + v.replace('"', '""') + '"' for v in line.split("\t")) + "\n")
    env.create("big_ref", target)
    t = time.time()
    if target == "erp":
        env.my(f"LOAD DATA LOCAL INFILE '{csv}' INTO TABLE big_ref FIELDS TERMINATED BY ',' "
               f"OPTIONALLY ENCLOSED BY '\"'")
    else:
        env.pg(f"\\copy big_ref FROM '{csv}' WITH (FORMAT csv)")
    secs = time.time() - t
    os.remove(csv)
    return rows / secs


def resync(env, rows, source):
    env.fresh_databases()
    env.reset_store()
    target = other(source)
    env.create("big", source)
    env.create("big", target)
    env.seed("big", source, rows)
    reference = bulk_reference(env, rows, target)
    env.write_config({"big": (source, target, "big", "big")})
    results = []
    for mode in ("empty", "populated"):
        env.start()
        c0 = env.cpu_seconds()
        t0 = time.time()
        env.cli("resync", "big", "--restart", "--yes")
        peak = 0.0
        while True:
            status = json.loads(env.cli("status", "-o", "json"))
            jobs = [j for f in status["flows"] for j in f.get("resync", [])]
            peak = max(peak, env.rss_mib())
            if jobs and all(j["done"] for j in jobs):
                break
            if time.time() - t0 > 3600:
                raise RuntimeError("resync did not finish")
            time.sleep(0.2)
        secs = time.time() - t0
        cpu = env.cpu_seconds() - c0
        env.stop()
        assert env.checksum("big", source) == env.checksum("big", target), "resync left a difference"
        rate = rows / secs
        results.append({
            "scenario": f"resync {source}->{target} into {mode} table",
            "rows": rows,
            "seconds": round(secs, 2),
            "rows_per_second": round(rate),
            "bulk_load_rows_per_second": round(reference),
            "ratio_to_bulk_load": round(rate / reference, 2),
            "daemon_cpu_us_per_row": round(cpu * 1e6 / rows, 2),
            "peak_rss_mib": round(peak, 1),
        })
    return results


def probe_lags(env, source, first, last):
    """(probe id, lag in ms) of probes first..last of `source`, once all have arrived."""
    target = other(source)
    query = env.my if target == "erp" else env.pg
    deadline = time.time() + 120
    while True:
        got = int(query(f"SELECT count(*) FROM probe_{source} WHERE id BETWEEN {first} AND {last}"))
        if got == last - first + 1:
            break
        if time.time() > deadline:
            raise RuntimeError(f"only {got} of {last - first + 1} probes arrived")
        time.sleep(0.2)
    q = (f"SELECT id, TIMESTAMPDIFF(MICROSECOND, src_ts, applied_ts) FROM probe_{source} "
         f"WHERE id BETWEEN {first} AND {last} ORDER BY id"
         if target == "erp" else
         f"SELECT id, (extract(epoch FROM applied_ts - src_ts) * 1000000)::bigint FROM probe_{source} "
         f"WHERE id BETWEEN {first} AND {last} ORDER BY id")
    out = query(q)
    return [(int(a), int(b) / 1000) for a, b in
            (line.replace("|", "\t").split("\t") for line in out.splitlines())]


def lag(env, source, rates, secs, seeded, kill_at=None):
    """Changes at a steady rate for `secs` each, in transactions every 10 ms; each transaction
    carries a probe row whose source time (the source's clock in the statement) and applied
    time (a trigger on the target, in the applying transaction) give the end-to-end lag."""
    env.fresh_databases()
    env.reset_store()
    target = other(source)
    env.create("cust", source)
    env.create("cust", target)
    env.seed("cust", source, seeded)
    env.seed("cust", target, seeded)
    env.write_config({"cust": (source, target, "cust", "cust")})
    env.start()
    results = []
    next_id = seeded
    row = PG_ROW if source == "crm" else MY_ROW
    for rate in rates:
        pipe = env.pg_pipe() if source == "crm" else env.my_pipe()
        tick = 0.01
        per_tick = rate * tick
        owed = 0.0
        first_probe = env.probe_ids[source] + 1
        start = time.time()
        sent = 0
        killed = restarted = None
        probe_times = {}
        while time.time() - start < secs:
            owed += per_tick
            n = int(owed)
            owed -= n
            if n:
                pid, stmt = env.probe_sql(source)
                probe_times[pid] = time.time() - start
                stmts = [stmt]
                # The other n - 1 changes: a third inserts, the rest updates of distinct rows,
                # as one multi-row statement each (the load generator must not be the limit).
                inserts = (n - 1) // 3
                updates = n - 1 - inserts
                if inserts:
                    a, b = next_id + 1, next_id + inserts
                    next_id = b
                    if source == "crm":
                        stmts.append(f"INSERT INTO cust SELECT {row.format(i='g')[1:-1]} "
                                     f"FROM generate_series({a}, {b}) g;")
                    else:
                        stmts.append(f"INSERT INTO cust SELECT {row.format(i='seq')[1:-1]} "
                                     f"FROM seq_{a}_to_{b};")
                if updates:
                    base = (sent * 7919) % seeded
                    keys = ",".join(str(1 + (base + j) % seeded) for j in range(updates))
                    stmts.append(f"UPDATE cust SET credit_limit = credit_limit + 1 WHERE id IN ({keys});")
                pipe.stdin.write("BEGIN;\n" + "\n".join(stmts) + "\nCOMMIT;\n")
                pipe.stdin.flush()
                sent += n
            if kill_at is not None and killed is None and time.time() - start >= kill_at:
                env.stop(signal.SIGKILL)
                killed = time.time() - start
                env.start()
                restarted = time.time() - start
            ticks_done = int((time.time() - start) / tick) + 1
            delay = start + tick * ticks_done - time.time()
            if delay > 0:
                time.sleep(delay)
        pipe.stdin.close()
        pipe.wait()
        elapsed = time.time() - start
        samples = probe_lags(env, source, first_probe, env.probe_ids[source])
        lags = sorted(ms for _, ms in samples)
        pct = lambda p: round(lags[min(len(lags) - 1, int(p * len(lags)))], 1)
        r = {
            "scenario": f"lag {source}->{target} at {rate} changes/s"
                        + (" with SIGKILL" if kill_at is not None else ""),
            "target_rate": rate,
            "achieved_rate": round(sent / elapsed),
            "seconds": round(elapsed, 1),
            "transactions_per_second": round(len(samples) / elapsed),
            "probes": len(lags),
            "lag_ms_p50": pct(0.50),
            "lag_ms_p99": pct(0.99),
            "lag_ms_max": round(lags[-1], 1),
        }
        if kill_at is not None:
            # From the kill: until when did probes arrive late (more than 1 s)?
            late = [probe_times[i] for i, ms in samples if ms > 1000 and probe_times[i] >= killed - 5]
            r["killed_at_s"] = round(killed, 1)
            r["restart_seconds"] = round(restarted - killed, 2)
            r["late_probes"] = len(late)
            r["caught_up_s_after_kill"] = round(max(late) - killed, 2) if late else 0.0
            r["lag_ms_max_after_kill"] = round(max(
                [ms for i, ms in samples if probe_times[i] >= killed - 5] or [0]), 1)
        results.append(r)
    env.stop()
    for t in ("cust",):
        a, b = env.checksum(t, source), env.checksum(t, target)
        if a != b:
            raise RuntimeError(f"{t}: source {a} != target {b} after the lag run")
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--my-port", type=int, required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--work", default="/tmp")
    ap.add_argument("--changes", type=int, default=1_000_000)
    ap.add_argument("--seed-rows", type=int, default=200_000)
    ap.add_argument("--resync-rows", type=int, default=1_000_000)
    ap.add_argument("--lag-seconds", type=int, default=60)
    ap.add_argument("--lag-rates", default="1000,5000")
    ap.add_argument("--only", default="drain,pgpg,checkpoint,resync,lag,kill")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", help="folder for the generated workload SQL (kept between runs)")
    args = ap.parse_args()
    env = Env(args)
    only = args.only.split(",")
    results = []

    def record(r):
        for x in (r if isinstance(r, list) else [r]):
            print(json.dumps(x), flush=True)
            results.append(x)
            with open(args.out, "w") as f:
                json.dump(results, f, indent=2)

    n, seeded = args.changes, max(args.seed_rows, args.changes // 10 + 1000)
    if "drain" in only:
        record(drain(env, ["crm"], n, seeded))
        record(drain(env, ["erp"], n, seeded))
        record(drain(env, ["crm", "erp"], n, seeded))
    if "pgpg" in only:
        record(drain_pg_pg(env, n, seeded))
    if "checkpoint" in only:
        record(drain(env, ["crm"], n, seeded, "status_interval_ms = 60000",
                     label="drain crm->erp, checkpoint made durable every 60 s"))
    if "resync" in only:
        record(resync(env, args.resync_rows, "crm"))
        record(resync(env, args.resync_rows, "erp"))
    rates = [int(r) for r in args.lag_rates.split(",")]
    if "lag" in only:
        record(lag(env, "crm", rates, args.lag_seconds, seeded))
        record(lag(env, "erp", rates, args.lag_seconds, seeded))
    if "kill" in only:
        record(lag(env, "crm", [rates[-1]], args.lag_seconds, seeded, kill_at=args.lag_seconds / 2))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
