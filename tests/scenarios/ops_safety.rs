//! Issue 15 items 1, 3, 4 and 8: verify and repair never destroy what a mapping does not own,
//! compare values by meaning, go on over unreadable values; a bad resync filter is refused, a
//! failing resync job fails alone, and a resync can be cancelled.

use std::time::Duration;

use crate::support::bridge::{tail, Bridge, Rows};
use crate::support::wait_until;

const LONG: Duration = Duration::from_secs(60);

fn run(b: &Bridge, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = b.cli(args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(b: &Bridge, args: &[&str]) -> serde_json::Value {
    let (code, v, err) = run(b, args);
    assert!(
        matches!(code, Some(0 | 1)),
        "rowbridge {args:?}: exit {code:?}: {err}"
    );
    v
}

async fn wait_rows(what: &str, n: usize, mut rows: impl AsyncFnMut() -> Rows) {
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let got = rows().await.len();
        if got == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {got} rows, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---- item 1: repair on mappings that do not own their target rows ----------------------------

const OWN_CRM: &str = "
CREATE TABLE companies (id integer PRIMARY KEY, name text NOT NULL, last_status text);
INSERT INTO companies SELECT g, 'company ' || g, NULL FROM generate_series(1, 5) g;
CREATE TABLE leads (id integer PRIMARY KEY, region text, name text);
CREATE TABLE parts (id integer PRIMARY KEY, name text);
CREATE TABLE notes (id integer PRIMARY KEY, body text);
CREATE TABLE people (id integer PRIMARY KEY, email text, name text);";

const OWN_ERP: &str = "
CREATE TABLE invoices (name VARCHAR(20) PRIMARY KEY, customer_id INT, status VARCHAR(20));
CREATE TABLE leads (id INT PRIMARY KEY, region VARCHAR(10), name VARCHAR(40));
INSERT INTO leads VALUES (900, 'US', 'erp own lead'), (901, 'APAC', 'erp own lead');
CREATE TABLE parts (id INT PRIMARY KEY, name VARCHAR(40), deleted TINYINT(1) NOT NULL DEFAULT 0);
CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(40));
CREATE TABLE people (id INT AUTO_INCREMENT PRIMARY KEY, crm_id INT NULL UNIQUE, email VARCHAR(60), name VARCHAR(40));
INSERT INTO people (crm_id, email, name) VALUES (NULL, 'a@x.test', 'erp a'), (77, 'old@x.test', 'paired before');";

const INVOICE_COMPANY: &str = r#"
direction = "erp->crm"
key = ["customer_id"]
write = "update"
[source]
endpoint = "erp"
table = "invoices"
[target]
endpoint = "crm"
table = "companies"
[filter]
customer_id = { null = false }
[columns]
customer_id = "id"
status = "last_status"
"#;

const LEADS_EU: &str = r#"
key = ["id"]
[source]
endpoint = "crm"
table = "leads"
[target]
endpoint = "erp"
table = "leads"
[filter]
region = "EU"
[columns]
id = "id"
region = "region"
name = "name"
"#;

const PARTS_SOFT: &str = r#"
key = ["id"]
on_delete = { set = "deleted", value = 1 }
[source]
endpoint = "crm"
table = "parts"
[target]
endpoint = "erp"
table = "parts"
[columns]
id = "id"
name = "name"
"#;

const NOTES_KEEP: &str = r#"
key = ["id"]
on_delete = "ignore"
[source]
endpoint = "crm"
table = "notes"
[target]
endpoint = "erp"
table = "notes"
[columns]
id = "id"
body = "body"
"#;

const PEOPLE_MATCH: &str = r#"
key = ["id"]
[source]
endpoint = "crm"
table = "people"
[target]
endpoint = "erp"
table = "people"
[columns]
id = "crm_id"
email = "email"
name = "name"
[match]
on = ["email"]
"#;

/// Every table of the test, both sides, column by column.
async fn snapshot(b: &Bridge) -> (Rows, Vec<Rows>) {
    let crm = b
        .crm_rows("SELECT id::text, name, last_status FROM companies ORDER BY id")
        .await;
    let mut erp = Vec::new();
    for t in ["leads", "parts", "notes", "people"] {
        erp.push(b.erp_rows(&format!("SELECT * FROM {t} ORDER BY 1")).await);
    }
    (crm, erp)
}

/// Item 1 as seen: on a healthy setup, repair through mappings that do not own the existence
/// of their target rows (update-only, filter, soft delete, on_delete ignore, [match]) reports
/// no extra rows and deletes nothing: both databases are unchanged, column by column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_deletes_nothing_a_mapping_does_not_own() {
    let maps = [
        ("invoice_company", INVOICE_COMPANY),
        ("leads_eu", LEADS_EU),
        ("parts_soft", PARTS_SOFT),
        ("notes_keep", NOTES_KEEP),
        ("people_match", PEOPLE_MATCH),
    ];
    let mut b = Bridge::new("safety_own", OWN_CRM, OWN_ERP, &maps).await;
    b.start_ready().await;
    b.erp_exec("INSERT INTO invoices VALUES ('INV-1', 2, 'Paid'), ('INV-2', 4, 'Unpaid')")
        .await;
    b.crm_exec(
        "INSERT INTO leads VALUES (1, 'EU', 'l1'), (2, 'EU', 'l2'), (3, 'US', 'l3');
         INSERT INTO parts VALUES (1, 'p1'), (2, 'p2'), (3, 'p3');
         INSERT INTO notes VALUES (1, 'n1'), (2, 'n2');
         INSERT INTO people VALUES (1, 'a@x.test', 'crm a'), (2, 'b@x.test', 'crm b');",
    )
    .await;
    b.crm_exec("DELETE FROM parts WHERE id = 3; DELETE FROM notes WHERE id = 2;")
        .await;
    wait_rows("invoice status on companies", 2, || {
        b.crm_rows("SELECT id FROM companies WHERE last_status IS NOT NULL")
    })
    .await;
    wait_rows("EU leads", 4, || b.erp_rows("SELECT id FROM leads")).await;
    wait_rows("soft-deleted part", 1, || {
        b.erp_rows("SELECT id FROM parts WHERE deleted = 1")
    })
    .await;
    wait_rows("people", 3, || {
        b.erp_rows("SELECT id FROM people WHERE crm_id IS NOT NULL")
    })
    .await;
    wait_rows("notes", 2, || b.erp_rows("SELECT id FROM notes")).await;
    let before = snapshot(&b).await;

    for (name, _) in maps {
        let v = json(&b, &["verify", name, "-o", "json"]);
        assert_eq!(v["extra"], 0, "{name}: no extra rows to delete: {v}");
        assert_eq!(v["owns_rows"], false, "{name}: {v}");
        assert_eq!(v["plan"]["delete_extra"], 0, "{name}: {v}");
        let r = json(&b, &["verify", name, "--repair", "--yes", "-o", "json"]);
        assert_eq!(r["repaired"]["deleted"], 0, "{name}: {r}");
    }
    // The update-only mapping saw 3 companies without invoices and left them alone, saying why.
    let v = json(&b, &["verify", "invoice_company", "-o", "json"]);
    assert_eq!(v["in_sync"], true, "{v}");
    assert_eq!(v["not_owned"], 3, "{v}");
    let why = v["plan"]["left_alone"][0]["why"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("update"), "{v}");
    assert_eq!(
        snapshot(&b).await,
        before,
        "repair changed rows it does not own"
    );
}

/// Item 1 exactly as seen: the demo schemas with the shipped mappings, two CRM companies and no
/// invoices. `invoice_company` (`write = "update"`) used to report the 2 companies as extra and
/// `--repair --yes` deleted them; now it reports none and the companies stay, column by column.
/// `company_customer` (timestamptz -> DATETIME(6), numeric -> DECIMAL(21,9), boolean ->
/// TINYINT(1)) verifies in sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_repair_through_invoice_company_deletes_no_company() {
    let mut b = crate::flows::demo_bridge("safety_demo").await;
    b.start_ready().await;
    b.crm_exec(
        "INSERT INTO companies (name, domain, industry, annual_revenue, employees, is_customer, notes)
         VALUES ('  Acme GmbH ', 'ACME.example', 'Manufacturing', 1250000.5000, 120, true, 'Key account'),
                ('Globex Ltd', 'globex.example', 'Energy', 830000.0000, 45, false, NULL)",
    )
    .await;
    wait_rows("ERP customers", 2, || {
        b.erp_rows("SELECT id FROM customers")
    })
    .await;
    let companies = "SELECT * FROM companies ORDER BY name";
    let before = b.crm_rows(companies).await;

    let v = json(&b, &["verify", "invoice_company", "-o", "json"]);
    assert_eq!(
        (&v["extra"], &v["not_owned"]),
        (&0.into(), &2.into()),
        "{v}"
    );
    assert_eq!(v["in_sync"], true, "{v}");
    let r = json(
        &b,
        &[
            "verify",
            "invoice_company",
            "--repair",
            "--yes",
            "-o",
            "json",
        ],
    );
    assert_eq!(
        r["repaired"],
        serde_json::json!({"written": 0, "deleted": 0}),
        "{r}"
    );
    assert_eq!(
        b.crm_rows(companies).await,
        before,
        "companies changed by the repair"
    );

    let c = json(&b, &["verify", "company_customer", "-o", "json"]);
    assert_eq!(c["in_sync"], true, "{c}");
    assert_eq!(c["target_rows"], 2, "{c}");
}

// ---- item 1: the plan, dry run and the mass-delete refusal ----------------------------------

const ITEMS_CRM: &str = "CREATE TABLE items (id integer PRIMARY KEY, name text);";
const ITEMS_ERP: &str = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40));";
const ITEMS: &str = "key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"items\"\n\
                     [target]\nendpoint = \"erp\"\ntable = \"items\"\n[columns]\nid = \"id\"\nname = \"name\"\n";

async fn erp_ids(b: &Bridge) -> Vec<String> {
    b.erp_rows("SELECT id FROM items ORDER BY id")
        .await
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect()
}

/// A mapping that owns its rows: the plan is printed first, `--dry-run` changes nothing, a plan
/// deleting more than 10 % of the target is refused without `--allow-mass-delete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_shows_its_plan_and_refuses_a_mass_delete() {
    let mut b = Bridge::new("safety_plan", ITEMS_CRM, ITEMS_ERP, &[("items", ITEMS)]).await;
    b.start_ready().await;
    b.crm_exec("INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 40) g")
        .await;
    wait_rows("items", 40, || b.erp_rows("SELECT id FROM items")).await;
    b.erp_exec("INSERT INTO items VALUES (5001, 'stray'); DELETE FROM items WHERE id = 3;")
        .await;

    let dry = json(
        &b,
        &["verify", "items", "--repair", "--dry-run", "-o", "json"],
    );
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(
        (&dry["plan"]["write_missing"], &dry["plan"]["delete_extra"]),
        (&serde_json::json!(1), &serde_json::json!(1)),
        "{dry}"
    );
    assert!(dry.get("repaired").is_none(), "{dry}");
    assert!(
        erp_ids(&b).await.contains(&"5001".to_string()),
        "dry run deleted"
    );

    let out = b.cli(&["verify", "items", "--repair", "--yes"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let plan = text.find("plan: 1 missing to write, 0 differing to rewrite, 1 extra to delete");
    let done = text.find("repaired: 1 rows written, 1 deleted");
    assert!(
        plan.is_some() && done.is_some() && plan < done,
        "plan first, then the outcome:\n{text}"
    );

    // 6 of 46 target rows extra: more than 10 %.
    b.erp_exec("INSERT INTO items VALUES (6001,'s'),(6002,'s'),(6003,'s'),(6004,'s'),(6005,'s'),(6006,'s')")
        .await;
    let (code, _, err) = run(&b, &["verify", "items", "--repair", "--yes"]);
    assert_eq!(code, Some(2), "mass delete refused: {err}");
    assert!(err.contains("--allow-mass-delete"), "{err}");
    assert_eq!(
        erp_ids(&b).await.len(),
        46,
        "nothing deleted by a refused plan"
    );
    let r = json(
        &b,
        &[
            "verify",
            "items",
            "--repair",
            "--yes",
            "--allow-mass-delete",
            "-o",
            "json",
        ],
    );
    assert_eq!(r["repaired"]["deleted"], 6, "{r}");
    assert_eq!(
        json(&b, &["verify", "items", "-o", "json"])["in_sync"],
        true
    );
    let audit = json(&b, &["audit", "-o", "json"]).to_string();
    assert!(audit.contains("mass delete allowed"), "{audit}");
}

// ---- item 3: equal values by meaning, dead letters held ------------------------------------

const DOCS_ERP: &str = "CREATE TABLE docs (id INT PRIMARY KEY, doc JSON, amount DECIMAL(10,2), \
    at DATETIME(6), flag TINYINT(1), ratio DOUBLE, label VARCHAR(20));";
const DOCS_CRM: &str = "CREATE TABLE docs (id integer PRIMARY KEY, doc jsonb, \
    amount numeric(12,4) CHECK (amount < 1000), at timestamptz, flag boolean, \
    ratio double precision, label text);";
const DOCS: &str = r#"
direction = "erp->crm"
key = ["id"]
[source]
endpoint = "erp"
table = "docs"
[target]
endpoint = "crm"
table = "docs"
[columns]
id = "id"
doc = "doc"
amount = "amount"
at = "at"
flag = "flag"
ratio = "ratio"
label = "label"
"#;

/// Item 3 as seen: MariaDB JSON in a jsonb column (keys re-ordered, re-spaced), decimals the
/// target pads, DATETIME vs timestamptz, TINYINT(1) vs boolean: verify finds no difference and
/// a repair rewrites nothing. A row held in the dead-letter queue is reported as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_compares_values_by_meaning_and_reports_dead_letters() {
    let mut b = Bridge::new("safety_types", DOCS_CRM, DOCS_ERP, &[("docs", DOCS)]).await;
    b.start_ready().await;
    b.erp_exec(
        r#"INSERT INTO docs VALUES
           (1, '{"z": 1, "a": {"y": [1, 2.50], "b": "x"}}', 1.50, '2024-06-01 10:00:00', 1, 0.1, 'Text '),
           (2, '{"b":true,"a":null}', 1.00, '1999-12-31 23:59:59.123456', 0, 1e300, ''),
           (3, '[3, 2, 1]', -0.01, NULL, NULL, -2.5, NULL),
           (4, '{"k": "v"}', 5000.00, '2024-01-01 00:00:00', 0, 1, 'held')"#,
    )
    .await;
    wait_rows("docs", 3, || b.crm_rows("SELECT id FROM docs")).await;
    wait_until("the dead letter", LONG, || async {
        json(&b, &["dlq", "list", "-o", "json"])
            .as_array()
            .map(Vec::len)
            == Some(1)
    })
    .await;
    let v = json(&b, &["verify", "docs", "-o", "json"]);
    assert_eq!(v["differing"], 0, "equal values reported as differing: {v}");
    assert_eq!(v["missing"], 0, "a dead letter is not missing: {v}");
    assert_eq!(v["dead_letters"], 1, "{v}");
    assert_eq!(v["dead_letter_keys"], serde_json::json!(["4"]), "{v}");
    assert_eq!(v["in_sync"], true, "{v}");
    let r = json(&b, &["verify", "docs", "--repair", "--yes", "-o", "json"]);
    assert_eq!(r["repaired"]["written"], 0, "{r}");
    let out = b.cli(&["verify", "docs"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("held in the dead-letter queue: 1"), "{text}");

    // A real difference is still found (the comparison is not blind).
    b.crm_exec(
        "UPDATE docs SET doc = '{\"z\": 2, \"a\": {\"y\": [1, 2.5], \"b\": \"x\"}}' WHERE id = 1",
    )
    .await;
    let v = json(&b, &["verify", "docs", "-o", "json"]);
    assert_eq!(v["differing_keys"], serde_json::json!(["1"]), "{v}");
}

// ---- item 4: unreadable values ---------------------------------------------------------------

const EVENTS_CRM: &str =
    "CREATE TABLE events (id integer PRIMARY KEY, d date, t timestamptz, name text);
CREATE TABLE slots (id integer PRIMARY KEY, d date);";
const EVENTS_ERP: &str =
    "CREATE TABLE events (id INT PRIMARY KEY, d DATE, t DATETIME(6), name VARCHAR(20));
CREATE TABLE slots (id INT PRIMARY KEY, d DATE);";
const EVENTS: &str = r#"
key = ["id"]
[source]
endpoint = "crm"
table = "events"
[target]
endpoint = "erp"
table = "events"
[columns]
id = "id"
d = "d"
t = "t"
name = "name"
"#;
const SLOTS: &str = r#"
direction = "erp->crm"
key = ["id"]
[source]
endpoint = "erp"
table = "slots"
[target]
endpoint = "crm"
table = "slots"
[columns]
id = "id"
d = "d"
"#;

/// Item 4 as seen: PostgreSQL `infinity`, a BC date and year 10000 on the CRM side (source of
/// one mapping, target of another) are findings for their keys; the rest of the run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_completes_over_unreadable_values() {
    let maps = [("events", EVENTS), ("slots", SLOTS)];
    let mut b = Bridge::new("safety_unreadable", EVENTS_CRM, EVENTS_ERP, &maps).await;
    b.start_ready().await;
    b.crm_exec("INSERT INTO events SELECT g, '2024-01-01'::date + g, now(), 'e' || g FROM generate_series(1, 20) g")
        .await;
    b.erp_exec("INSERT INTO slots VALUES (1, '2024-01-01'), (2, '2024-01-02'), (3, '2024-01-03')")
        .await;
    wait_rows("events", 20, || b.erp_rows("SELECT id FROM events")).await;
    wait_rows("slots", 3, || b.crm_rows("SELECT id FROM slots")).await;
    b.crm_exec(
        "INSERT INTO events VALUES (21, 'infinity', now(), 'inf'), (22, '0044-03-15 BC', now(), 'bc'), \
         (23, '2024-01-01', '10000-01-01 00:00:00+00', 'y10k');
         UPDATE slots SET d = '-infinity' WHERE id = 2;",
    )
    .await;
    let v = json(&b, &["verify", "events", "-o", "json"]);
    assert_eq!(v["source_rows"], 23, "{v}");
    assert_eq!(v["unreadable"], 3, "{v}");
    let mut cols: Vec<String> = v["unreadable_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            format!(
                "{}:{}",
                u["key"].as_str().unwrap(),
                u["column"].as_str().unwrap()
            )
        })
        .collect();
    cols.sort();
    assert_eq!(cols, ["21:d", "22:d", "23:t"], "{v}");
    assert_eq!(
        (&v["missing"], &v["differing"]),
        (&0.into(), &0.into()),
        "{v}\n{}",
        tail(&b.log(), 20)
    );
    let s = json(&b, &["verify", "slots", "-o", "json"]);
    assert_eq!(s["unreadable_keys"][0]["column"], "d", "{s}");
    assert_eq!(s["unreadable_keys"][0]["endpoint"], "crm", "{s}");
    assert_eq!(
        (&s["differing"], &s["target_rows"]),
        (&0.into(), &3.into()),
        "{s}"
    );
}

// ---- item 8: resync filter, failing job, cancel ---------------------------------------------

fn resync_job(b: &Bridge) -> serde_json::Value {
    json(b, &["status", "-o", "json"])["flows"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["resync"].as_array().cloned().unwrap_or_default())
        .next()
        .unwrap_or_default()
}

/// Item 8 as seen: a bad `--where` is refused before a job exists (exit 2, the database's
/// reason); a job failing at run time fails alone while the stream goes on; `resync cancel`
/// ends a job, on a stopped and on a running daemon, and is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_resync_filter_is_refused_and_a_failing_job_fails_alone() {
    let crm = "CREATE TABLE items (id integer PRIMARY KEY, name text);
               INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 300000) g;";
    let mut b = Bridge::new("safety_resync", crm, ITEMS_ERP, &[("items", ITEMS)]).await;
    b.start_ready().await;

    let (code, _, err) = run(
        &b,
        &["resync", "items", "--where", "bogus_col = 1", "--yes"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bogus_col"), "the database's reason: {err}");
    // A second statement is refused too, and runs nowhere.
    let (code, _, err) = run(
        &b,
        &[
            "resync",
            "items",
            "--where",
            "true; DROP TABLE items",
            "--yes",
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(
        b.crm_rows("SELECT count(*) FROM items").await[0][0].as_deref(),
        Some("300000")
    );
    assert!(resync_job(&b).is_null(), "no job was stored");

    // Valid to plan, fails when run: the job fails alone.
    let (code, _, err) = run(
        &b,
        &["resync", "items", "--where", "id / (id - id) = 1", "--yes"],
    );
    assert_eq!(code, Some(0), "{err}");
    wait_until("the job fails", LONG, || async {
        resync_job(&b)["state"] == "failed"
    })
    .await;
    let job = resync_job(&b);
    assert!(
        job["error"].as_str().unwrap_or_default().contains("22012"),
        "{job}"
    );
    let status = json(&b, &["status", "-o", "json"]);
    assert_eq!(status["flows"][0]["state"], "streaming", "{status}");
    b.crm_exec("UPDATE items SET name = 'after the failure' WHERE id = 1")
        .await;
    wait_rows("a change made after the failure", 1, || {
        b.erp_rows("SELECT id FROM items WHERE name = 'after the failure'")
    })
    .await;

    // Cancel a running copy of 300 000 rows.
    let (code, _, err) = run(&b, &["resync", "items", "--yes"]);
    assert_eq!(code, Some(0), "{err}");
    let c = json(&b, &["resync", "cancel", "items", "--yes", "-o", "json"]);
    assert_eq!(c["cancelled"]["mapping"], "items", "{c}");
    let job = resync_job(&b);
    assert_eq!(job["state"], "cancelled", "{job}");
    let rows = job["rows"].as_u64().unwrap();
    assert!(rows < 300_000, "{job}");
    // Cancelled means no more chunks: the count stays (checked after a later stream change).
    b.crm_exec("UPDATE items SET name = 'later' WHERE id = 2")
        .await;
    wait_rows("a later change", 1, || {
        b.erp_rows("SELECT id FROM items WHERE name = 'later'")
    })
    .await;
    assert_eq!(resync_job(&b)["rows"].as_u64(), Some(rows));
    let (code, _, _) = run(&b, &["resync", "cancel", "items", "--yes"]);
    assert_eq!(code, Some(2), "nothing left to cancel");

    // Stopped daemon: the job is stored, cancelled in the store, and never runs.
    assert_eq!(b.stop(), Some(0));
    let (code, _, err) = run(&b, &["resync", "items", "--where", "id <= 10", "--yes"]);
    assert_eq!(code, Some(0), "{err}");
    let c = json(&b, &["resync", "cancel", "items", "--yes", "-o", "json"]);
    assert_eq!(c["cancelled"]["rows"], 0, "{c}");
    b.start_ready().await;
    assert_eq!(resync_job(&b)["state"], "cancelled");
    let audit = json(&b, &["audit", "-o", "json"]).to_string();
    assert_eq!(audit.matches("resync cancel").count(), 2, "{audit}");
}
