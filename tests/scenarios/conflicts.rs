//! Concurrent edits of rows mapped both ways: detection, the four policies, the operator's
//! decision, and convergence under random load on both sides (with and without SIGKILL).
//!
//! Every table counts its writes by who made them (a trigger tells rowbridge's sessions by
//! their replication origin on PostgreSQL and by `skip_replication` on MariaDB), so a test
//! can bound rowbridge's writes by the users' and see exactly which side was written. The
//! triggers are the test's code, not the daemon's: on PostgreSQL they run as their owner
//! (SECURITY DEFINER), so the daemon's role needs no rights on the `writes` table.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::support::bridge::{tail, Bridge, Rows};

const TABLES: [&str; 4] = ["lww", "src", "mrg", "man"];

fn crm_schema() -> String {
    let mut s = String::from(
        "CREATE TABLE writes (tbl text, who text, n bigint NOT NULL, PRIMARY KEY (tbl, who));
         CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql
           SECURITY DEFINER SET search_path = public AS $$
         BEGIN
           INSERT INTO writes VALUES (TG_TABLE_NAME,
             CASE WHEN pg_replication_origin_session_is_setup() THEN 'rowbridge' ELSE 'user' END, 1)
           ON CONFLICT (tbl, who) DO UPDATE SET n = writes.n + 1;
           RETURN NULL;
         END $$;",
    );
    for t in TABLES {
        s.push_str(&format!(
            "CREATE TABLE {t} (id integer PRIMARY KEY, name text, qty integer, price numeric(12,2));
             CREATE TRIGGER {t}_writes AFTER INSERT OR UPDATE OR DELETE ON {t}
               FOR EACH ROW EXECUTE FUNCTION count_write();"
        ));
    }
    s
}

fn erp_schema() -> String {
    let mut s = String::from(
        "CREATE TABLE writes (tbl VARCHAR(8), who VARCHAR(10), n BIGINT NOT NULL, PRIMARY KEY (tbl, who));",
    );
    for t in TABLES {
        s.push_str(&format!(
            "CREATE TABLE {t} (id INT PRIMARY KEY, name TEXT, qty INT, price DECIMAL(12,2));"
        ));
        for (ev, tag) in [("INSERT", "i"), ("UPDATE", "u"), ("DELETE", "d")] {
            s.push_str(&format!(
                "CREATE TRIGGER {t}_{tag} AFTER {ev} ON {t} FOR EACH ROW
                   INSERT INTO writes VALUES ('{t}', IF(@@skip_replication, 'rowbridge', 'user'), 1)
                   ON DUPLICATE KEY UPDATE n = n + 1;"
            ));
        }
    }
    s
}

/// One `direction = "both"` mapping per policy; `src` lets the ERP own prices.
fn mapping(table: &str) -> String {
    let (price, conflict) = match table {
        "lww" => (
            "\"price\"",
            "policy = \"last_writer_wins\"\npriority = [\"erp\", \"crm\"]",
        ),
        "src" => (
            "{ to = \"price\", owner = \"erp\" }",
            "policy = \"source_wins\"\nwinner = \"crm\"",
        ),
        "mrg" => (
            "\"price\"",
            "policy = \"merge\"\nfallback = \"last_writer_wins\"",
        ),
        _ => ("\"price\"", "policy = \"manual\""),
    };
    format!(
        "direction = \"both\"\nkey = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"{table}\"\n\
         [target]\nendpoint = \"erp\"\ntable = \"{table}\"\n[columns]\nid = \"id\"\nname = \"name\"\n\
         qty = \"qty\"\nprice = {price}\n[conflict]\n{conflict}\n"
    )
}

async fn bridge(prefix: &str) -> Bridge {
    let files: Vec<(String, String)> = TABLES.iter().map(|t| (t.to_string(), mapping(t))).collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, m)| (n.as_str(), m.as_str()))
        .collect();
    Bridge::new(prefix, &crm_schema(), &erp_schema(), &refs).await
}

fn select_crm(t: &str) -> String {
    // ORDER BY the integer column, not the text output column of the same name.
    format!("SELECT id::text, name, qty::text, price::text FROM {t} ORDER BY {t}.id")
}

fn select_erp(t: &str) -> String {
    format!("SELECT id, name, qty, price FROM {t} ORDER BY id")
}

async fn wait_all_equal(b: &Bridge, timeout: Duration) {
    for t in TABLES {
        b.wait_equal(&select_crm(t), &select_erp(t), timeout).await;
    }
}

/// Wait until the row reads `want` on both sides (`None`: absent on both).
async fn wait_row(b: &Bridge, table: &str, id: i32, want: Option<[&str; 3]>) {
    let want: Rows = want
        .map(|w| {
            vec![std::iter::once(Some(id.to_string()))
                .chain(w.iter().map(|v| Some(v.to_string())))
                .collect()]
        })
        .unwrap_or_default();
    let crm = format!("SELECT id::text, name, qty::text, price::text FROM {table} WHERE id = {id}");
    let erp = format!("SELECT id, name, qty, price FROM {table} WHERE id = {id}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (c, e) = (b.crm_rows(&crm).await, b.erp_rows(&erp).await);
        if c == want && e == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{table} id {id}: want {want:?} on both sides, CRM {c:?}, ERP {e:?}\n{}",
            tail(&b.log(), 40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// rowbridge's writes to each side, summed over the tables (or one table).
async fn rowbridge_writes(b: &Bridge, table: Option<&str>) -> (i64, i64) {
    let filter = table
        .map(|t| format!(" AND tbl = '{t}'"))
        .unwrap_or_default();
    let sql = format!("SELECT COALESCE(SUM(n), 0) FROM writes WHERE who = 'rowbridge'{filter}");
    let c = b.crm_rows(&format!("SELECT ({sql})::text")).await;
    let e = b.erp_rows(&format!("SELECT CAST(({sql}) AS CHAR)")).await;
    let n = |r: &Rows| r[0][0].as_deref().unwrap_or("0").parse::<i64>().unwrap();
    (n(&c), n(&e))
}

fn conflicts(b: &Bridge, all: bool) -> Vec<serde_json::Value> {
    let mut args = vec!["conflicts", "list", "-o", "json"];
    if all {
        args.push("--all");
    }
    let out = b.cli(&args);
    assert!(
        out.status.success(),
        "conflicts list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v.as_array().cloned().unwrap_or_default()
}

async fn wait_parked(b: &Bridge, mapping: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let parked: Vec<_> = conflicts(b, false)
            .into_iter()
            .filter(|c| c["mapping"] == mapping && c["state"] == "parked")
            .collect();
        if parked.len() >= n {
            return parked;
        }
        assert!(
            Instant::now() < deadline,
            "{n} parked conflicts of {mapping} expected, {} seen\n{}",
            parked.len(),
            tail(&b.log(), 40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn resolve(b: &Bridge, id: &serde_json::Value, take: &str) {
    let id = id.to_string();
    let out = b.cli(&["conflicts", "resolve", &id, "--take", take, "--yes"]);
    assert!(
        out.status.success(),
        "conflicts resolve {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Edits made on both sides while the daemon is down are concurrent by construction: each
/// policy decides them as documented, deletes included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_policy_decides_concurrent_edits() {
    let mut b = bridge("conflict_policies").await;
    b.start_ready().await;
    for t in TABLES {
        b.crm_exec(&format!(
            "INSERT INTO {t} VALUES (1, 'one', 10, 1.50), (2, 'two', 20, 2.50), (3, 'three', 30, 3.50)"
        ))
        .await;
    }
    wait_all_equal(&b, Duration::from_secs(30)).await;
    assert_eq!(b.stop(), Some(0));

    // The ERP edits first; the CRM's edits are more than a second later (MariaDB's binlog
    // keeps whole seconds).
    for t in TABLES {
        b.erp_exec(&format!(
            "UPDATE {t} SET qty = 99, price = 9.99, name = IF('{t}' IN ('src', 'man'), 'erp-edit', name) WHERE id = 1"
        ))
        .await;
    }
    b.erp_exec("DELETE FROM lww WHERE id = 2").await;
    b.erp_exec("UPDATE src SET name = 'erp-edit' WHERE id = 2")
        .await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for t in TABLES {
        b.crm_exec(&format!(
            "UPDATE {t} SET name = 'crm-edit', price = 1.00 WHERE id = 1"
        ))
        .await;
    }
    b.crm_exec("UPDATE lww SET qty = 21 WHERE id = 2").await;
    b.crm_exec("DELETE FROM src WHERE id = 2").await;
    let (crm_before, erp_before) = rowbridge_writes(&b, Some("man")).await;

    b.start_ready().await;
    // last_writer_wins: the whole later row (the CRM's), and its update brings back the row
    // the ERP deleted earlier.
    wait_row(&b, "lww", 1, Some(["crm-edit", "10", "1.00"])).await;
    wait_row(&b, "lww", 2, Some(["two", "21", "2.50"])).await;
    // source_wins: the winner (the CRM) takes every column without an owner, whole (its
    // quantity too, though only the ERP changed it), and the row (its delete stands); the
    // ERP owns prices.
    wait_row(&b, "src", 1, Some(["crm-edit", "10", "9.99"])).await;
    wait_row(&b, "src", 2, None).await;
    // merge: the CRM's name and the ERP's quantity both survive; both changed the price and
    // the later edit (the CRM's) wins it.
    wait_row(&b, "mrg", 1, Some(["crm-edit", "99", "1.00"])).await;
    // Untouched rows stay as they were.
    for t in TABLES {
        wait_row(&b, t, 3, Some(["three", "30", "3.50"])).await;
    }

    // manual: parked, both sides keep their own version.
    let parked = wait_parked(&b, "man", 1).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0]["a"]["row"]["name"], "crm-edit");
    assert_eq!(parked[0]["b"]["row"]["name"], "erp-edit");
    assert_eq!(
        b.crm_rows("SELECT name, qty::text FROM man WHERE id = 1")
            .await,
        vec![vec![Some("crm-edit".into()), Some("10".into())]]
    );
    assert_eq!(
        b.erp_rows("SELECT name, qty FROM man WHERE id = 1").await,
        vec![vec![Some("erp-edit".into()), Some("99".into())]]
    );
    assert_eq!(
        rowbridge_writes(&b, Some("man")).await,
        (crm_before, erp_before),
        "a parked conflict writes nothing"
    );
    // The operator takes the ERP's version: written to the CRM once, nothing to the ERP.
    resolve(&b, &parked[0]["id"], "erp");
    wait_row(&b, "man", 1, Some(["erp-edit", "99", "9.99"])).await;
    let (crm_after, erp_after) = rowbridge_writes(&b, Some("man")).await;
    assert_eq!(
        crm_after - crm_before,
        1,
        "the CRM row is written exactly once"
    );
    assert_eq!(
        erp_after, erp_before,
        "the ERP already holds the chosen version"
    );
    // Resolving it again is refused.
    let again = b.cli(&[
        "conflicts",
        "resolve",
        &parked[0]["id"].to_string(),
        "--take",
        "crm",
        "--yes",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already resolved"));

    // Every decision is recorded with both versions and counted.
    let all = conflicts(&b, true);
    let by = |m: &str| all.iter().filter(|c| c["mapping"] == m).count();
    assert_eq!(
        (by("lww"), by("src"), by("mrg"), by("man")),
        (2, 2, 1, 1),
        "{all:#?}"
    );
    assert!(all.iter().all(|c| c["state"] == "resolved"), "{all:#?}");
    let counted = b.metric("rowbridge_conflicts_total").await.unwrap_or(0.0);
    assert_eq!(counted as usize, all.len());
    wait_all_equal(&b, Duration::from_secs(30)).await;
    b.stop();
}

/// Random inserts, updates and deletes of the same few rows on both sides at once, for
/// `secs` seconds (ROWBRIDGE_CONVERGENCE_SECS, default 60), optionally killing the daemon
/// with SIGKILL `kills` times during the load.
async fn converge(prefix: &str, kills: usize) {
    let secs: u64 = std::env::var("ROWBRIDGE_CONVERGENCE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let mut b = bridge(prefix).await;
    b.start_ready().await;
    let load = Duration::from_secs(secs);
    let started = Instant::now();
    let crm_client = b.pg.client(&b.crm).await;
    let erp_conn = b.my.conn(&b.erp).await;
    let crm_load = tokio::spawn(async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut writes = 0u64;
        while started.elapsed() < load {
            let (t, sql) = random_op(&mut rng, true);
            writes += crm_client
                .execute(&sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{t}: {sql}: {e}"));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        writes
    });
    let erp_load = tokio::spawn(async move {
        use mysql_async::prelude::Queryable;
        let mut conn = erp_conn;
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut writes = 0u64;
        while started.elapsed() < load {
            let (t, sql) = random_op(&mut rng, false);
            let r = conn.query_iter(sql.as_str()).await;
            let r = r.unwrap_or_else(|e| panic!("{t}: {sql}: {e}"));
            writes += r.affected_rows();
            drop(r);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        writes
    });
    for k in 0..kills {
        let at = load.mul_f64((k + 1) as f64 / (kills + 1) as f64);
        tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
        b.kill9();
        b.start_ready().await;
    }
    let crm_user = crm_load.await.unwrap();
    let erp_user = erp_load.await.unwrap();
    assert!(
        crm_user > 100 && erp_user > 100,
        "load ran: {crm_user} / {erp_user}"
    );

    // Parked conflicts wait for an operator: take the CRM's version of each until none is
    // left (a row can conflict again while the load's last changes drain).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let open = conflicts(&b, false);
        let parked: Vec<_> = open.iter().filter(|c| c["state"] == "parked").collect();
        for c in &parked {
            resolve(&b, &c["id"], "crm");
        }
        if open.is_empty() {
            let mut equal = true;
            for t in TABLES {
                equal &= b.crm_rows(&select_crm(t)).await == b.erp_rows(&select_erp(t)).await;
            }
            if equal && conflicts(&b, false).is_empty() {
                break;
            }
        }
        if Instant::now() >= deadline {
            let all_conflicts = conflicts(&b, true);
            let _ = std::fs::copy(b.log_path(), "/tmp/conflict-fail.log");
            let mut diffs = Vec::new();
            for t in TABLES {
                let (c, e) = (
                    b.crm_rows(&select_crm(t)).await,
                    b.erp_rows(&select_erp(t)).await,
                );
                for id in 1..=20 {
                    let id = Some(id.to_string());
                    let x = c.iter().find(|r| r[0] == id);
                    let y = e.iter().find(|r| r[0] == id);
                    if x != y {
                        let seen: Vec<String> = all_conflicts
                            .iter()
                            .filter(|k| k["mapping"] == t && k["key"].as_str() == id.as_deref())
                            .map(|k| k.to_string())
                            .collect();
                        diffs.push(format!(
                            "{t} id {id:?}: CRM {x:?} ERP {y:?}; conflicts: {seen:#?}"
                        ));
                    }
                }
            }
            panic!(
                "no convergence: {} unresolved conflicts; {}\n{}",
                open.len(),
                diffs.join("\n"),
                tail(&b.log(), 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_all_equal(&b, Duration::from_secs(10)).await;

    // No ping-pong: rowbridge writes each user change at most once to the other side, plus
    // at most one write per side for each decided conflict.
    let all = conflicts(&b, true);
    let (crm_rb, erp_rb) = rowbridge_writes(&b, None).await;
    let bound = (crm_user + erp_user) as i64 + 2 * all.len() as i64;
    assert!(
        crm_rb + erp_rb <= bound,
        "rowbridge wrote {crm_rb} + {erp_rb} rows for {crm_user} + {erp_user} user writes and {} conflicts",
        all.len()
    );
    assert!(!all.is_empty(), "the load produced conflicts");
    for c in &all {
        assert_eq!(c["state"], "resolved", "{c}");
        let policy = match c["mapping"].as_str().unwrap() {
            "lww" => "last_writer_wins",
            "src" => "source_wins",
            "mrg" => "merge",
            _ => "manual",
        };
        assert_eq!(c["resolution"], policy, "{c}");
    }
    if kills == 0 {
        // Counters restart with the process; without kills they match the records.
        let counted = b.metric("rowbridge_conflicts_total").await.unwrap_or(0.0);
        assert_eq!(
            counted as usize,
            all.len(),
            "conflict counter vs recorded conflicts"
        );
    }
    b.stop();
}

/// One random statement on a random table, on a small key range so both sides collide.
fn random_op(rng: &mut rand::rngs::StdRng, crm: bool) -> (&'static str, String) {
    let t = TABLES[rng.random_range(0..TABLES.len())];
    let id = rng.random_range(1..=20);
    let side = if crm { "c" } else { "e" };
    let n: u32 = rng.random_range(0..1000);
    let sql = match rng.random_range(0..10) {
        0..=1 if crm => format!(
            "INSERT INTO {t} VALUES ({id}, '{side}{n}', {n}, {n}.25) ON CONFLICT (id) DO NOTHING"
        ),
        0..=1 => format!("INSERT IGNORE INTO {t} VALUES ({id}, '{side}{n}', {n}, {n}.25)"),
        2 => format!("DELETE FROM {t} WHERE id = {id}"),
        3..=5 => format!("UPDATE {t} SET name = '{side}{n}' WHERE id = {id}"),
        6..=7 => format!("UPDATE {t} SET qty = {n} WHERE id = {id}"),
        _ => format!("UPDATE {t} SET price = {n}.75 WHERE id = {id}"),
    };
    (t, sql)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_converge_under_every_policy() {
    converge("conflict_load", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_converge_across_three_sigkills() {
    converge("conflict_kill", 3).await;
}
