#!/usr/bin/env python3
"""Deterministic benchmark workload for rowbridge and its peers (issue 8).

Prints SQL on stdout for one dialect (pg or mariadb); the same --seed gives the same rows and the
same changes in both dialects, so a PostgreSQL source and a MariaDB source end in identical tables.

  workload.py seed    --dialect pg|mariadb --rows N               N customer rows, ids 1..N
  workload.py changes --dialect pg|mariadb --rows N --changes C   the backlog, after `seed --rows N`
  workload.py stats   --rows N --changes C                        what the backlog contains (JSON)

The backlog is C row changes (C a multiple of 10): 60 % updates, 30 % inserts, 10 % deletes, in
transactions of --batch changes (default 500: 300 updates, 150 inserts, 50 deletes; the last
transaction may be smaller). Inside one transaction the deleted, updated and inserted ids are
disjoint, each kind is one multi-row statement (UPDATE ... FROM VALUES / UPDATE ... JOIN, multi-row
INSERT, DELETE ... IN), and every statement changes exactly the rows it names, so the binlog/WAL
holds exactly C row events. Why batched statements: a loader that sends 1 000 000 single-row
statements through psql/mariadb takes minutes on 2 cores and would be the slowest part of the
benchmark; a replicator sees the same row events either way (one row event per changed row). Why
500: typical OLTP-ish transactions of a CRM/ERP batch job; small enough that no replicator has to
hold a giant transaction, large enough that commit overhead does not dominate.

Updates change phone, street, status, credit_limit and updated_at (5 of 12 columns), like an app
editing a record. updated_at of change k is 2024-01-01 00:00:00 + k seconds, so max(updated_at)
is a cheap progress probe. Rows are ASCII (with apostrophes, escaped by doubling, which both
dialects accept with default settings; no backslashes), ~10 % NULL phones, whole-second
timestamps (PG timestamp / MariaDB datetime), numeric(12,2) credit limits. Average row text is
~300 bytes.
"""
import argparse
import datetime
import json
import random
import sys

FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
         "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
         "Sarah", "Charles", "Karen", "Christopher", "Nancy", "Daniel", "Lisa", "Matthew", "Betty",
         "Anthony", "Margaret", "Mark", "Sandra", "Donald", "Ashley", "Steven", "Kimberly"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
        "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
        "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
        "O'Brien", "O'Connor", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young"]
COMPANY = ["Acme Industrial Supplies", "Globex Corporation", "Initech Software Solutions",
           "Umbrella Logistics Group", "Hooli Consumer Electronics", "Stark Manufacturing",
           "Wayne Enterprises Holdings", "Wonka Confectionery Works", "Tyrell Biotech Partners",
           "Cyberdyne Systems Integration", "Soylent Foods International", "Vandelay Imports"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "corp.example.io", "customers.test"]
STREETS = ["Main Street", "Oak Avenue", "Pine Road", "Maple Drive", "Cedar Lane", "Elm Boulevard",
           "Washington Parkway", "Lakeview Terrace", "Hillcrest Court", "Sunset Boulevard",
           "Riverside Drive", "Church Street", "Park Place", "Highland Avenue", "Mill Road"]
CITIES = ["Springfield", "Riverton", "Fairview", "Georgetown", "Salem", "Madison", "Franklin",
          "Clinton", "Arlington", "Ashland", "Burlington", "Manchester", "Oxford", "Bristol",
          "Lakewood", "Milton", "Newport", "Centerville", "Greenville", "Kingston"]
COUNTRIES = ["United States", "United Kingdom", "Germany", "France", "Netherlands", "Canada",
             "Australia", "Ireland", "New Zealand", "Switzerland"]
STATUS = ["lead", "prospect", "active", "active", "active", "inactive", "churned", "on_hold"]

CREATED_BASE = datetime.datetime(2019, 1, 1)
UPDATED_BASE = datetime.datetime(2024, 1, 1)
COLUMNS = ["id", "name", "email", "phone", "street", "city", "postcode", "country", "status",
           "credit_limit", "created_at", "updated_at"]
UPDATED_COLUMNS = ["phone", "street", "status", "credit_limit", "updated_at"]
PG_TYPES = {"id": "bigint", "phone": "varchar", "street": "varchar", "status": "varchar",
            "credit_limit": "numeric(12,2)", "updated_at": "timestamp"}


def ts(base, seconds):
    return (base + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


def phone(r):
    if r.random() < 0.1:
        return None
    return "+1-%03d-555-%04d ext. %d" % (r.randrange(200, 1000), r.randrange(10000), r.randrange(1, 999))


def street(r):
    return "%d %s, %s Building, Floor %d, Suite %d, Attn: Accounts Payable Department" % (
        r.randrange(1, 20000), r.choice(STREETS), r.choice(["North", "South", "East", "West", "Central"]),
        r.randrange(1, 40), r.randrange(100, 4000))


def credit(r):
    return "%d.%02d" % (r.randrange(0, 1_000_000), r.randrange(100))


def new_row(r, id_, created_s, updated_s):
    first, last = r.choice(FIRST), r.choice(LAST)
    name = "%s %s %s. %s (%s)" % (first, r.choice(FIRST), chr(65 + r.randrange(26)), last, r.choice(COMPANY))
    email = "%s.%s.%d@%s" % (first.lower(), last.lower().replace("'", ""), id_, r.choice(DOMAINS))
    return [id_, name, email, phone(r), street(r), r.choice(CITIES), "%05d-%04d" % (r.randrange(100000), r.randrange(10000)),
            r.choice(COUNTRIES), r.choice(STATUS), credit(r), ts(CREATED_BASE, created_s), ts(UPDATED_BASE, updated_s)]


def lit(v):
    if v is None:
        return "NULL"
    if isinstance(v, int):
        return str(v)
    return "'" + v.replace("'", "''") + "'"


def insert_sql(rows):
    vals = ",\n".join("(" + ",".join(lit(v) for v in row) + ")" for row in rows)
    return "INSERT INTO customer (%s) VALUES\n%s;\n" % (", ".join(COLUMNS), vals)


def update_sql(dialect, rows):  # rows: [id, phone, street, status, credit_limit, updated_at]
    cols = ["id"] + UPDATED_COLUMNS
    sets = ", ".join("%s = v.%s" % (c, c) for c in UPDATED_COLUMNS)
    if dialect == "pg":
        first = "(" + ",".join("%s::%s" % (lit(v), PG_TYPES[c]) for c, v in zip(cols, rows[0])) + ")"
        rest = ["(" + ",".join(lit(v) for v in row) + ")" for row in rows[1:]]
        return "UPDATE customer AS c SET %s FROM (VALUES %s) AS v(%s) WHERE c.id = v.id;\n" % (
            sets, ",\n".join([first] + rest), ", ".join(cols))
    first = "SELECT " + ", ".join("%s AS %s" % (lit(v), c) for c, v in zip(cols, rows[0]))
    rest = ["SELECT " + ", ".join(lit(v) for v in row) for row in rows[1:]]
    sets = ", ".join("c.%s = v.%s" % (c, c) for c in UPDATED_COLUMNS)
    return "UPDATE customer AS c JOIN (%s) AS v ON c.id = v.id SET %s;\n" % ("\nUNION ALL ".join([first] + rest), sets)


def delete_sql(ids):
    return "DELETE FROM customer WHERE id IN (%s);\n" % ",".join(map(str, ids))


def seed(out, dialect, rows, seed_):
    r = random.Random("rowbridge-bench-seed-%d" % seed_)
    for start in range(1, rows + 1, 1000):
        batch = [new_row(r, i, r.randrange(5 * 365 * 86400), 0) for i in range(start, min(rows, start + 999) + 1)]
        out.write("BEGIN;\n" + insert_sql(batch) + "COMMIT;\n")


def changes(out, dialect, rows, total, batch, seed_, stats_only=False):
    if total % 10 or batch % 10:
        sys.exit("--changes and --batch must be multiples of 10")
    r = random.Random("rowbridge-bench-changes-%d" % seed_)
    live = list(range(1, rows + 1))  # ids present; swap-remove keeps it O(1) and deterministic
    next_id = rows + 1
    k = 0  # change counter: updated_at = UPDATED_BASE + k s
    counts = {"update": 0, "insert": 0, "delete": 0, "transactions": 0}
    done = 0
    while done < total:
        b = min(batch, total - done)
        nd, nu = b // 10, b * 6 // 10
        ni = b - nd - nu
        deleted = []
        for _ in range(nd):
            j = r.randrange(len(live))
            live[j], live[-1] = live[-1], live[j]
            deleted.append(live.pop())
        upd_ids = r.sample(live, nu)  # distinct, none deleted in this transaction
        updates = []
        for i in upd_ids:
            k += 1
            updates.append([i, phone(r), street(r), r.choice(STATUS), credit(r), ts(UPDATED_BASE, k)])
        inserts = []
        for _ in range(ni):
            k += 1
            inserts.append(new_row(r, next_id, 5 * 365 * 86400 + k, k))
            live.append(next_id)
            next_id += 1
        if not stats_only:
            out.write("BEGIN;\n")
            out.write(delete_sql(deleted))
            out.write(update_sql(dialect, updates))
            out.write(insert_sql(inserts))
            out.write("COMMIT;\n")
        counts["delete"] += nd; counts["update"] += nu; counts["insert"] += ni; counts["transactions"] += 1
        done += b
    counts.update(changes=total, final_rows=len(live), max_id=next_id - 1, last_updated_at=ts(UPDATED_BASE, k))
    return counts


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["seed", "changes", "stats"])
    p.add_argument("--dialect", choices=["pg", "mariadb"], default="pg")
    p.add_argument("--rows", type=int, default=200_000, help="seed rows (ids 1..rows)")
    p.add_argument("--changes", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=500, help="changes per transaction")
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    out = sys.stdout
    if a.what == "seed":
        seed(out, a.dialect, a.rows, a.seed)
    elif a.what == "changes":
        changes(out, a.dialect, a.rows, a.changes, a.batch, a.seed)
    else:
        print(json.dumps(changes(out, a.dialect, a.rows, a.changes, a.batch, a.seed, stats_only=True)))


if __name__ == "__main__":
    main()
