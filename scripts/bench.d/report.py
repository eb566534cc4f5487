#!/usr/bin/env python3
"""Turn bench-results/results.json (rowbridge) and peers.jsonl (the peers) into BENCHMARKS.md."""

import argparse
import json
import os
import platform
import subprocess


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def machine():
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem = sh("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo")
    return [
        f"- CPU: {os.cpu_count()} cores ({cpu or platform.processor()}), memory {mem}",
        f"- PostgreSQL: {sh('/usr/lib/postgresql/15/bin/postgres --version')}",
        f"- MariaDB: {sh('mariadbd --version')}",
        f"- rowbridge: {sh('git rev-parse --short HEAD')} (release build), "
        f"{sh('rustc --version')}",
        f"- Run at: {sh('date -u +%Y-%m-%dT%H:%MZ')}",
    ]


def table(rows, cols):
    out = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(k, "")) for _, k in cols) + " |")
    return out


def goals(results, peers):
    """Issue 8's goals next to what this run measured."""
    by = {r["scenario"]: r for r in results}
    peer = {p.get("peer"): p for p in peers if not p.get("error")}

    def rate(name):
        return by.get(name, {}).get("changes_per_second")

    def prate(name):
        return peer.get(name, {}).get("changes_per_s")

    rows = []

    def add(goal, measured, ok):
        mark = "n/a" if ok is None else ("met" if ok else "**not met**")
        rows.append({"goal": goal, "measured": measured, "verdict": mark})

    ce, ec = rate("drain crm->erp"), rate("drain erp->crm")
    both, pgpg = rate("drain crm->erp+erp->crm"), rate("drain crm->pg2 (PostgreSQL to PostgreSQL)")
    if ce and ec:
        add(">= 20 000 changes/s each direction", f"{ce:,} (CRM->ERP), {ec:,} (ERP->CRM)",
            min(ce, ec) >= 20000)
    if ce and prate("bucardo"):
        b = prate("bucardo")
        add("PG->MariaDB >= 3x Bucardo", f"{ce / b:.1f}x ({ce:,} vs {b:,.0f})", ce >= 3 * b)
    if ec and prate("pg_chameleon"):
        c = prate("pg_chameleon")
        add("MariaDB->PG >= 5x pg_chameleon", f"{ec / c:.1f}x ({ec:,} vs {c:,.0f})", ec >= 5 * c)
    if pgpg and prate("native-pg"):
        n = prate("native-pg")
        add("PG->PG >= 1.0x native pub/sub", f"{pgpg / n:.2f}x ({pgpg:,} vs {n:,.0f})", pgpg >= n)
    if ce and prate("recvlogical-pgoutput"):
        d = prate("recvlogical-pgoutput")
        add("drain >= 0.5x decode ceiling (pg_recvlogical, pgoutput)",
            f"{ce / d:.2f}x ({ce:,} vs {d:,.0f})", ce >= 0.5 * d)
    if both and ce and ec:
        add("both directions at once >= 0.9x the better single one",
            f"{both / max(ce, ec):.2f}x ({both:,} vs {max(ce, ec):,})", both >= 0.9 * max(ce, ec))
    for r in results:
        if r["scenario"].startswith("lag") and "SIGKILL" not in r["scenario"]:
            src = r["scenario"].split()[1].split("->")[0]
            top = rate(f"drain {src}->{'erp' if src == 'crm' else 'crm'}")
            share = f" ({r['target_rate'] / top * 100:.0f} % of the drain rate)" if top else ""
            measured = f"p50 {r['lag_ms_p50']} ms, p99 {r['lag_ms_p99']} ms, max {r['lag_ms_max']} ms"
            if top and r["target_rate"] > 0.65 * top:
                add(f"{r['scenario']}{share}: p99 <= 1 s", measured, r["lag_ms_p99"] <= 1000)
            else:
                add(f"{r['scenario']}{share}: p50 <= 50 ms, p99 <= 250 ms", measured,
                    r["lag_ms_p50"] <= 50 and r["lag_ms_p99"] <= 250)
    for r in results:
        if r["scenario"].startswith("resync"):
            want = 0.7 if "empty" in r["scenario"] else 0.35
            add(f"{r['scenario']} >= {want}x bulk load", f"{r['ratio_to_bulk_load']}x",
                r["ratio_to_bulk_load"] >= want)
    for r in results:
        if r["scenario"].startswith("drain") and "servers_cpu_us_per_change" in r:
            d, sv = r["daemon_cpu_us_per_change"], r["servers_cpu_us_per_change"]
            add(f"{r['scenario']}: rowbridge CPU <= 0.25x servers, ~<= 10 us/change",
                f"{d} us vs servers {sv} us ({d / sv:.2f}x)", d <= 0.25 * sv or d <= 10)
    steady = [(r["median_rss_mib"], r["peak_rss_mib"], r["scenario"]) for r in results
              if r["scenario"].startswith("drain") and r.get("median_rss_mib")
              and "+" not in r["scenario"]]
    if steady:
        worst = max(steady)
        add("RSS <= 128 MiB steady (single-flow drains: median of the samples)",
            f"max median {worst[0]} MiB, peak {worst[1]} MiB ({worst[2]})", worst[0] <= 128)
    for r in results:
        if "backlog" in r["scenario"]:
            add("RSS bounded with a 10 000 000-change backlog",
                f"peak {r['peak_rss_mib']} MiB, median {r.get('median_rss_mib')} MiB over "
                f"{r['changes']:,} changes", r["peak_rss_mib"] <= 512)
    rpeaks = [r["peak_rss_mib"] for r in results if r["scenario"].startswith("resync")]
    if rpeaks:
        add("RSS <= 512 MiB during resync", f"max {max(rpeaks)} MiB", max(rpeaks) <= 512)
    long = rate("drain crm->erp, checkpoint made durable every 60 s")
    if ce and long:
        overhead = (long - ce) / long
        add("checkpoint overhead <= 5 %", f"{overhead * 100:.1f} % ({ce:,} at 1 s vs {long:,} at 60 s)",
            overhead <= 0.05)
    for r in results:
        if "SIGKILL" in r["scenario"]:
            add("after SIGKILL under load: caught up within 10 s",
                f"restart {r['restart_seconds']} s, probes late by > 1 s until "
                f"{r['caught_up_s_after_kill']} s after the kill, max lag {r['lag_ms_max_after_kill']} ms",
                r["caught_up_s_after_kill"] <= 10)
            if "replayed_seconds_of_load" in r:
                add("after SIGKILL under load: replays at most 1 s of changes",
                    f"{r['replayed_changes']:,} changes replayed = {r['replayed_seconds_of_load']} s "
                    f"of the load", r["replayed_seconds_of_load"] <= 1)
    return (["## Goals (issue 8) against this run", ""]
            + table(rows, [("goal", "goal"), ("measured", "measured"), ("verdict", "verdict")]) + [""])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--peers")
    ap.add_argument("--extra", action="append", help="results of a separate run to include")
    ap.add_argument("--changes", type=int)
    ap.add_argument("--resync-rows", type=int)
    ap.add_argument("--lag-seconds", type=int)
    a = ap.parse_args()
    results = json.load(open(a.results)) if os.path.exists(a.results) else []
    # Scenarios too long for every run (the 10 000 000-change backlog) come from their own
    # run's results, marked with its commit and time.
    earlier = []
    for path in a.extra or []:
        if os.path.exists(path):
            earlier += json.load(open(path))
    results += earlier
    peers = []
    if a.peers and os.path.exists(a.peers):
        for line in open(a.peers):
            line = line.strip()
            if line.startswith("{"):
                peers.append(json.loads(line))

    drains = [r for r in results if r["scenario"].startswith("drain")]
    resyncs = [r for r in results if r["scenario"].startswith("resync")]
    lags = [r for r in results if r["scenario"].startswith("lag") and "SIGKILL" not in r["scenario"]]
    kills = [r for r in results if "SIGKILL" in r["scenario"]]

    md = ["# Benchmarks", "",
          "Written by `scripts/bench` (do not edit by hand; run it again). Everything runs on one "
          "machine: both database servers, rowbridge and the load generator share its cores.", ""]
    md += ["## Machine", ""] + machine() + [""]
    md += ["## How it was run", "",
           "```", f"scripts/bench{'' if a.changes == 1000000 else ' --changes ' + str(a.changes)}", "```", "",
           f"- Backlog: {a.changes:,} changes per direction: 60 % updates, 30 % inserts, 10 % deletes, "
           "in transactions of 500, on a 12-column customer row of about 300 bytes (id, name, email, "
           "phone, street, city, postcode, country, status, credit_limit numeric(12,2), created_at, "
           "updated_at), after a seed of identical rows on both sides. The same seeded workload "
           "(`scripts/bench.d/workload.py`) as the peers', committed while rowbridge is stopped; "
           "the drain is timed from starting rowbridge until a probe row committed after the "
           "backlog has arrived (the flow applies in commit order), then both tables are compared "
           "by count and a sum of per-row md5 prefixes. RSS: peak (VmHWM) and the median of "
           "VmRSS sampled every 0.5 s during the drain.",
           "- Lag: a steady load in transactions every 10 ms; each transaction carries a probe row "
           "stamped with the source's clock; a trigger on the target stamps it when rowbridge "
           "writes it (inside the applying transaction, just before its commit). Lag = applied - "
           "source time (both servers share the machine's clock). Rates: 1 000 and 5 000 "
           "changes/s, and 50 % and 80 % of the direction's drain rate in this run. SIGKILL: at "
           "80 % of the CRM->ERP drain rate, killed half way and restarted at once; replayed = "
           "changes the restarted daemon applied minus those that had not reached the target at "
           "the kill (each load transaction carries one probe, so the last probe applied before "
           "the kill marks the last transaction applied).",
           f"- Resync: `rowbridge resync` of a {a.resync_rows:,}-row table, first into an empty "
           "target, then again into the populated one (upserts), against the target's own bulk "
           "load of the same rows from a CSV file (`\\copy ... FROM` on PostgreSQL, `LOAD DATA "
           "LOCAL INFILE` on MariaDB).",
           "- Servers (scripts/lib/dbs.sh): PostgreSQL with fsync=off, synchronous_commit=on, "
           "shared_buffers=256MB; MariaDB with innodb_flush_log_at_trx_commit=2, "
           "innodb_buffer_pool_size=256M, binlog ROW/FULL/FULL. rowbridge with its default "
           "settings (batch_max_rows 20 000, status_interval_ms 1 000).",
           "- CPU: user+system time of the rowbridge process, and of every postgres and mariadbd "
           "process, over the measured interval, divided by the changes.", ""]

    md += ["## Drain throughput", ""]
    md += table(drains, [("scenario", "scenario"), ("changes", "changes"), ("seconds", "seconds"),
                         ("changes/s", "changes_per_second"),
                         ("rowbridge CPU µs/change", "daemon_cpu_us_per_change"),
                         ("servers CPU µs/change", "servers_cpu_us_per_change"),
                         ("peak RSS MiB", "peak_rss_mib"),
                         ("median RSS MiB", "median_rss_mib")]) + [""]
    if earlier:
        md += [f"From a separate run: {', '.join(sorted({r['scenario'] for r in earlier}))} "
               f"(`scripts/bench --only backlog --out bench-results/backlog`, commit "
               f"{', '.join(sorted({r.get('commit', '?') for r in earlier}))}, "
               f"{', '.join(sorted({r.get('run_at', '?') for r in earlier}))}).", ""]
    md += ["## Lag under steady load", ""]
    md += table(lags, [("scenario", "scenario"), ("achieved changes/s", "achieved_rate"),
                       ("seconds", "seconds"), ("probes", "probes"), ("p50 ms", "lag_ms_p50"),
                       ("p99 ms", "lag_ms_p99"), ("max ms", "lag_ms_max")]) + [""]
    if kills:
        md += ["## SIGKILL under load", ""]
        md += table(kills, [("scenario", "scenario"), ("killed at s", "killed_at_s"),
                            ("restart s", "restart_seconds"),
                            ("caught up s after kill", "caught_up_s_after_kill"),
                            ("probes later than 1 s", "late_probes"),
                            ("max lag ms after kill", "lag_ms_max_after_kill"),
                            ("replayed changes", "replayed_changes"),
                            ("replayed s of load", "replayed_seconds_of_load"),
                            ("p50 ms", "lag_ms_p50")]) + [""]
    md += ["## Online resync", ""]
    md += table(resyncs, [("scenario", "scenario"), ("rows", "rows"), ("seconds", "seconds"),
                          ("rows/s", "rows_per_second"),
                          ("bulk load rows/s", "bulk_load_rows_per_second"),
                          ("ratio", "ratio_to_bulk_load"),
                          ("rowbridge CPU µs/row", "daemon_cpu_us_per_row"),
                          ("peak RSS MiB", "peak_rss_mib")]) + [""]
    md += ["## Peers (same machine, same workload)", ""]
    if peers:
        md += table(peers, [("peer", "peer"), ("direction", "direction"), ("changes", "changes"),
                            ("seconds", "seconds"), ("changes/s", "changes_per_s"),
                            ("notes / error", "notes")]) + [""]
        for p in peers:
            if p.get("error"):
                md.append(f"- {p.get('peer')}: could not run here: {p['error']}")
        md.append("")
    else:
        md += ["Not run in this pass (`scripts/bench --only peers`).", ""]
    md += goals(results, peers)
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md")
    if os.path.exists(notes):
        md += [open(notes).read().rstrip(), ""]
    md += ["## Raw results", "", "`bench-results/results.json`, `bench-results/peers.jsonl`.", ""]
    print("\n".join(md))


if __name__ == "__main__":
    main()
