//! Echoes and ownership on the streaming path, as real CRM/ERP pairs use them: several mappings
//! on one table pair, values rowbridge wrote that another mapping must carry on, user edits
//! next to rowbridge's writes, rows adopted by a natural key. Every user change must arrive;
//! rowbridge's own writes must not come back (trigger counters count every row write).

use std::time::Duration;

use crate::support::bridge::{tail, Bridge, Rows};
use crate::support::wait_until;

const LONG: Duration = Duration::from_secs(60);

/// Row writes per table, counted by triggers (every insert, update and delete, whoever wrote).
const CRM_COUNTER: &str = "
CREATE TABLE write_count (tbl text PRIMARY KEY, n bigint NOT NULL);
CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql
  SECURITY DEFINER SET search_path = public AS
  $$ BEGIN
       INSERT INTO write_count VALUES (TG_TABLE_NAME, 1)
         ON CONFLICT (tbl) DO UPDATE SET n = write_count.n + 1;
       RETURN NULL;
     END $$;";

const ERP_COUNTER: &str =
    "CREATE TABLE write_count (tbl VARCHAR(64) PRIMARY KEY, n BIGINT NOT NULL);";

fn pg_trigger(table: &str) -> String {
    format!(
        "CREATE TRIGGER {table}_writes AFTER INSERT OR UPDATE OR DELETE ON {table} \
         FOR EACH ROW EXECUTE FUNCTION count_write();"
    )
}

fn my_triggers(table: &str) -> String {
    ["INSERT", "UPDATE", "DELETE"]
        .iter()
        .map(|ev| {
            format!(
                "CREATE TRIGGER {table}_{ev} AFTER {ev} ON {table} FOR EACH ROW \
                 INSERT INTO write_count VALUES ('{table}', 1) ON DUPLICATE KEY UPDATE n = n + 1;"
            )
        })
        .collect()
}

async fn crm_writes(b: &Bridge, table: &str) -> i64 {
    let r = b
        .crm_rows(&format!(
            "SELECT n::text FROM write_count WHERE tbl = '{table}'"
        ))
        .await;
    count(&r)
}

async fn erp_writes(b: &Bridge, table: &str) -> i64 {
    let r = b
        .erp_rows(&format!("SELECT n FROM write_count WHERE tbl = '{table}'"))
        .await;
    count(&r)
}

fn count(r: &Rows) -> i64 {
    r.first()
        .and_then(|row| row[0].as_deref())
        .map(|n| n.parse().unwrap())
        .unwrap_or(0)
}

async fn wait_crm(b: &Bridge, sql: &str, want: &[&[Option<&str>]]) {
    wait_rows(b, true, sql, want).await
}

async fn wait_erp(b: &Bridge, sql: &str, want: &[&[Option<&str>]]) {
    wait_rows(b, false, sql, want).await
}

/// Wait until one side's rows are `want`; on time-out, say what was there, the dead letters
/// and the daemon's last lines.
async fn wait_rows(b: &Bridge, crm: bool, sql: &str, want: &[&[Option<&str>]]) {
    let want: Rows = want
        .iter()
        .map(|r| r.iter().map(|v| v.map(str::to_string)).collect())
        .collect();
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let got = match crm {
            true => b.crm_rows(sql).await,
            false => b.erp_rows(sql).await,
        };
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}: {sql}: {got:?}\ndead letters: {}\n{}",
            if crm { "CRM" } else { "ERP" },
            String::from_utf8_lossy(&b.cli(&["dlq", "list", "-o", "json"]).stdout),
            tail(&b.log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- one mapping writes a column another carries back: opportunities and sales orders ----

/// X: CRM opportunities become ERP sales orders (the status value-mapped from the stage, the
/// ERP's own afterwards). Y: the ERP status goes back to the opportunity's delivery status.
const OPP_X: &str = r#"
name = "opp_order"
direction = "crm->erp"
key = ["id"]
[source]
endpoint = "crm"
table = "opportunities"
[target]
endpoint = "erp"
table = "sales_orders"
[filter]
stage = ["won"]
[columns]
id = "crm_id"
title = "title"
amount = "grand_total"
stage = { to = "status", map = { won = "To Deliver and Bill" }, owner = "erp" }
"#;

const OPP_Y: &str = r#"
name = "order_status"
direction = "erp->crm"
key = ["crm_id"]
write = "update"
[source]
endpoint = "erp"
table = "sales_orders"
[target]
endpoint = "crm"
table = "opportunities"
[filter]
crm_id = { null = false }
[columns]
crm_id = "id"
status = "delivery_status"
"#;

fn opp_schemas() -> (String, String) {
    let crm = format!(
        "CREATE TABLE opportunities (id integer PRIMARY KEY, title text, stage text, \
         amount numeric(12,2), delivery_status text);{CRM_COUNTER}{}",
        pg_trigger("opportunities")
    );
    let erp = format!(
        "CREATE TABLE sales_orders (crm_id INT PRIMARY KEY, title VARCHAR(140), \
         status VARCHAR(40), grand_total DECIMAL(12,2)) DEFAULT CHARSET=utf8mb4;{ERP_COUNTER}{}",
        my_triggers("sales_orders")
    );
    (crm, erp)
}

/// Item 2 (a value rowbridge wrote reaches another mapping) and item 1 (a user's change next to
/// rowbridge's write is never taken for an echo), as seen: 20 of 20 amount updates arrive, each
/// after an ERP status change that rowbridge carried to the same opportunity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_edits_beside_rowbridge_writes_all_arrive() {
    let (crm, erp) = opp_schemas();
    let mut b = Bridge::new(
        "echo_opp",
        &crm,
        &erp,
        &[("opp_order", OPP_X), ("order_status", OPP_Y)],
    )
    .await;
    b.start_ready().await;

    b.crm_exec("INSERT INTO opportunities VALUES (1, 'Deal', 'won', 10.00, NULL)")
        .await;
    // The status X wrote from the stage is carried by Y like any other ERP change.
    wait_crm(
        &b,
        "SELECT delivery_status FROM opportunities WHERE id = 1",
        &[&[Some("To Deliver and Bill")]],
    )
    .await;

    let statuses = ["To Bill", "Completed"];
    for i in 1..=20 {
        let status = statuses[i % 2];
        b.erp_exec(&format!(
            "UPDATE sales_orders SET status = '{status}' WHERE crm_id = 1"
        ))
        .await;
        wait_crm(
            &b,
            "SELECT delivery_status FROM opportunities WHERE id = 1",
            &[&[Some(status)]],
        )
        .await;
        let amount = format!("{}.00", 100 + i);
        b.crm_exec(&format!(
            "UPDATE opportunities SET amount = {amount} WHERE id = 1"
        ))
        .await;
        wait_erp(
            &b,
            "SELECT grand_total, status FROM sales_orders WHERE crm_id = 1",
            &[&[Some(&amount), Some(status)]],
        )
        .await;
    }

    // Settle both streams: a new order crosses, comes back, and both sides see one more edit.
    b.crm_exec("INSERT INTO opportunities VALUES (2, 'Sentinel', 'won', 1.00, NULL)")
        .await;
    wait_crm(
        &b,
        "SELECT delivery_status FROM opportunities WHERE id = 2",
        &[&[Some("To Deliver and Bill")]],
    )
    .await;
    b.crm_exec("UPDATE opportunities SET amount = 2.00 WHERE id = 2")
        .await;
    wait_erp(
        &b,
        "SELECT grand_total FROM sales_orders WHERE crm_id = 2",
        &[&[Some("2.00")]],
    )
    .await;
    b.erp_exec("UPDATE sales_orders SET status = 'Completed' WHERE crm_id = 2")
        .await;
    wait_crm(
        &b,
        "SELECT delivery_status FROM opportunities WHERE id = 2",
        &[&[Some("Completed")]],
    )
    .await;

    // Column by column: the CRM row as its users and Y left it, the ERP row as X and its
    // users left it.
    assert_eq!(
        b.crm_rows("SELECT id::text, title, stage, amount::text, delivery_status FROM opportunities ORDER BY id")
            .await,
        vec![
            vec![s("1"), s("Deal"), s("won"), s("120.00"), s("To Bill")],
            vec![s("2"), s("Sentinel"), s("won"), s("2.00"), s("Completed")],
        ]
    );
    assert_eq!(
        b.erp_rows("SELECT crm_id, title, status, grand_total FROM sales_orders ORDER BY crm_id")
            .await,
        vec![
            vec![s("1"), s("Deal"), s("To Bill"), s("120.00")],
            vec![s("2"), s("Sentinel"), s("Completed"), s("2.00")],
        ]
    );
    // Every row write accounted for, none an echo. ERP: X's 2 inserts and 21 amount updates,
    // the users' 21 status changes. CRM: the users' 2 inserts and 21 amount updates, Y's 2
    // first statuses and 21 status changes.
    assert_eq!(
        erp_writes(&b, "sales_orders").await,
        2 + 21 + 21,
        "{}",
        tail(&b.log(), 30)
    );
    assert_eq!(crm_writes(&b, "opportunities").await, 2 + 21 + 2 + 21);
    assert_eq!(
        b.cli(&["dlq", "list", "-o", "json"]).stdout,
        b"[]\n".to_vec(),
        "no dead letters"
    );
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

// ---- several mappings on one table pair ----

/// "The ERP owns the address, both edit the name": a one-way mapping creates ERP customers from
/// CRM companies (the city written on insert only, revenue converted), and a `both` mapping of
/// just the name.
const COMPANY_CUSTOMER: &str = r#"
name = "company_customer"
direction = "crm->erp"
key = ["id"]
[source]
endpoint = "crm"
table = "companies"
[target]
endpoint = "erp"
table = "customers"
[columns]
id = "crm_id"
city = { to = "address_city", owner = "erp" }
revenue = { to = "revenue", multiply = 1000 }
"#;

const COMPANY_NAME: &str = r#"
name = "company_name"
direction = "both"
key = ["id"]
[source]
endpoint = "crm"
table = "companies"
[target]
endpoint = "erp"
table = "customers"
[columns]
id = "crm_id"
name = "customer_name"
[conflict]
policy = "last_writer_wins"
"#;

fn company_schemas() -> (String, String) {
    let crm = format!(
        "CREATE TABLE companies (id integer PRIMARY KEY, name text, city text, revenue numeric(12,3));\
         {CRM_COUNTER}{}",
        pg_trigger("companies")
    );
    let erp = format!(
        "CREATE TABLE customers (crm_id INT PRIMARY KEY, customer_name VARCHAR(140), \
         address_city VARCHAR(140), revenue DECIMAL(21,3)) DEFAULT CHARSET=utf8mb4;{ERP_COUNTER}{}",
        my_triggers("customers")
    );
    (crm, erp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_mappings_share_a_table_pair_both_ways() {
    let (crm, erp) = company_schemas();
    let mut b = Bridge::new(
        "echo_pair",
        &crm,
        &erp,
        &[
            ("company_customer", COMPANY_CUSTOMER),
            ("company_name", COMPANY_NAME),
        ],
    )
    .await;
    b.start_ready().await;
    let erp_sql =
        "SELECT crm_id, customer_name, address_city, revenue FROM customers ORDER BY crm_id";
    let crm_sql = "SELECT id::text, name, city, revenue::text FROM companies ORDER BY companies.id";

    b.crm_exec(
        "INSERT INTO companies VALUES (1, 'Acme', 'Riyadh', 1.500), (2, 'شركة 🚀', 'Jeddah', 2)",
    )
    .await;
    wait_erp(
        &b,
        erp_sql,
        &[
            &[Some("1"), Some("Acme"), Some("Riyadh"), Some("1500.000")],
            &[Some("2"), Some("شركة 🚀"), Some("Jeddah"), Some("2000.000")],
        ],
    )
    .await;
    // The name both ways; the ERP's address is its own; revenue from the CRM.
    b.erp_exec("UPDATE customers SET customer_name = 'Acme Ltd' WHERE crm_id = 1")
        .await;
    wait_crm(
        &b,
        "SELECT name FROM companies WHERE id = 1",
        &[&[Some("Acme Ltd")]],
    )
    .await;
    b.erp_exec("UPDATE customers SET address_city = 'Dammam' WHERE crm_id = 1")
        .await;
    b.crm_exec("UPDATE companies SET city = 'Mecca', revenue = 3 WHERE id = 1")
        .await;
    wait_erp(
        &b,
        "SELECT address_city, revenue FROM customers WHERE crm_id = 1",
        &[&[Some("Dammam"), Some("3000.000")]],
    )
    .await;
    b.crm_exec("UPDATE companies SET name = 'Acme Group' WHERE id = 1")
        .await;
    wait_erp(
        &b,
        "SELECT customer_name FROM customers WHERE crm_id = 1",
        &[&[Some("Acme Group")]],
    )
    .await;
    // Settle: one more round trip each way.
    b.erp_exec("UPDATE customers SET customer_name = 'Beta' WHERE crm_id = 2")
        .await;
    wait_crm(
        &b,
        "SELECT name FROM companies WHERE id = 2",
        &[&[Some("Beta")]],
    )
    .await;
    b.crm_exec("UPDATE companies SET revenue = 4 WHERE id = 2")
        .await;
    wait_erp(
        &b,
        "SELECT revenue FROM customers WHERE crm_id = 2",
        &[&[Some("4000.000")]],
    )
    .await;

    assert_eq!(
        b.crm_rows(crm_sql).await,
        vec![
            vec![s("1"), s("Acme Group"), s("Mecca"), s("3.000")],
            vec![s("2"), s("Beta"), s("Jeddah"), s("4.000")],
        ]
    );
    assert_eq!(
        b.erp_rows(erp_sql).await,
        vec![
            vec![s("1"), s("Acme Group"), s("Dammam"), s("3000.000")],
            vec![s("2"), s("Beta"), s("Jeddah"), s("4000.000")],
        ]
    );
    // CRM: users' 2 inserts + 3 updates, rowbridge's 2 names. ERP: per new row an insert by one
    // mapping and the name by the other, 3 carried updates, users' 3 updates. Nothing bounced.
    assert_eq!(
        crm_writes(&b, "companies").await,
        2 + 3 + 2,
        "{}",
        tail(&b.log(), 30)
    );
    assert_eq!(erp_writes(&b, "customers").await, 2 * 2 + 3 + 3);
}

/// Two mappings writing one target column are refused at load, naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_of_one_column_are_refused() {
    let (crm, erp) = company_schemas();
    let overlapping = COMPANY_CUSTOMER.replace(
        "revenue = { to = \"revenue\", multiply = 1000 }",
        "revenue = { to = \"revenue\", multiply = 1000 }\nname = \"customer_name\"",
    );
    // Files load in name order: the second writer of the column is the one refused.
    let line = COMPANY_NAME
        .lines()
        .position(|l| l.starts_with("name = \"customer_name\""))
        .unwrap()
        + 1;
    let b = Bridge::new(
        "echo_overlap",
        &crm,
        &erp,
        &[
            ("company_customer", &overlapping),
            ("company_name", COMPANY_NAME),
        ],
    )
    .await;
    let out = b.cli(&["check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(&format!("company_name.toml:{line}:")),
        "{stderr}"
    );
    assert!(
        stderr.contains("column customer_name of erp:")
            && stderr.contains("is also written by mapping 'company_customer'"),
        "{stderr}"
    );
    assert!(!stderr.contains("feed itself"), "{stderr}");
}

// ---- adopted rows keep their identity ----

const CONTACTS: &str = r#"
name = "contacts"
direction = "crm->erp"
key = ["id"]
[source]
endpoint = "crm"
table = "contacts"
[target]
endpoint = "erp"
table = "tabContact"
[columns]
id = "crm_id"
first_name = "first_name"
email = { to = "email_id", transform = ["lower"] }
[computed]
name = { concat = ["id"], separator = "", owner = "erp" }
[match]
on = ["email"]
"#;

fn contact_schemas() -> (String, String) {
    let crm = "CREATE TABLE contacts (id integer PRIMARY KEY, first_name text, email text);";
    let mut erp = String::from(
        "CREATE TABLE `tabContact` (name VARCHAR(140) PRIMARY KEY, crm_id INT NULL UNIQUE, \
         email_id VARCHAR(140) UNIQUE, first_name VARCHAR(140)) DEFAULT CHARSET=utf8mb4 \
         COLLATE=utf8mb4_unicode_ci;",
    );
    erp.push_str("INSERT INTO `tabContact` (name, email_id, first_name) VALUES ");
    let rows: Vec<String> = (1..=300)
        .map(|i| format!("('CONT-{i:05}', 'c{i}@x.test', 'erp{i}')"))
        .collect();
    erp.push_str(&rows.join(","));
    erp.push(';');
    (crm.to_string(), erp)
}

/// Item 4 as seen: 300 ERP contacts matched by e-mail keep their document names; only new
/// contacts get the computed name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopted_rows_keep_their_names() {
    let (crm, erp) = contact_schemas();
    let mut b = Bridge::new("echo_adopt", &crm, &erp, &[("contacts", CONTACTS)]).await;
    b.start_ready().await;
    // 300 CRM contacts for the ERP's (CRM ids 1001..1300, e-mails in upper case), 20 new ones.
    b.crm_exec(
        "INSERT INTO contacts SELECT 1000 + g, 'crm' || g, 'C' || g || '@X.TEST' FROM generate_series(1, 300) g;
         INSERT INTO contacts SELECT 2000 + g, 'new' || g, 'n' || g || '@x.test' FROM generate_series(1, 20) g;",
    )
    .await;
    wait_until("320 contacts with a CRM id", LONG, || async {
        count(
            &b.erp_rows("SELECT COUNT(*) FROM `tabContact` WHERE crm_id IS NOT NULL")
                .await,
        ) == 320
    })
    .await;
    b.crm_exec("UPDATE contacts SET first_name = 'renamed' WHERE id = 1007")
        .await;
    wait_erp(
        &b,
        "SELECT first_name FROM `tabContact` WHERE crm_id = 1007",
        &[&[Some("renamed")]],
    )
    .await;

    let mut want: Rows = (1..=300)
        .map(|i| {
            let first = if i == 7 {
                "renamed".into()
            } else {
                format!("crm{i}")
            };
            vec![
                Some(format!("CONT-{i:05}")),
                Some((1000 + i).to_string()),
                Some(format!("c{i}@x.test")),
                Some(first),
            ]
        })
        .collect();
    want.extend((1..=20).map(|i| {
        vec![
            Some((2000 + i).to_string()),
            Some((2000 + i).to_string()),
            Some(format!("n{i}@x.test")),
            Some(format!("new{i}")),
        ]
    }));
    want.sort();
    let mut got = b
        .erp_rows("SELECT name, crm_id, email_id, first_name FROM `tabContact`")
        .await;
    got.sort();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

/// Without `owner`, a computed column into the target's primary key on a mapping that adopts
/// rows is refused before anything is written, naming the line and the way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_mapping_that_would_rename_rows_is_refused() {
    let (crm, erp) = contact_schemas();
    let text = CONTACTS.replace(", owner = \"erp\"", "");
    let line = text
        .lines()
        .position(|l| l.starts_with("name = { concat"))
        .unwrap()
        + 1;
    let b = Bridge::new("echo_adopt_bad", &crm, &erp, &[("contacts", &text)]).await;
    for cmd in [&["check"][..], &["run"][..]] {
        let out = b.cli(cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{cmd:?}: {stderr}");
        assert!(
            stderr.contains(&format!("contacts.toml:{line}:")),
            "{stderr}"
        );
        assert!(
            stderr.contains("computed.name: column 'name' is part of a unique key")
                && stderr.contains("owner = \"erp\""),
            "{stderr}"
        );
    }
    assert_eq!(
        count(
            &b.erp_rows("SELECT COUNT(*) FROM `tabContact` WHERE crm_id IS NOT NULL")
                .await
        ),
        0
    );
}

// ---- a mixed-ownership workload ----

/// The ERP owns credit limits: they go back to the CRM company (update only).
const CREDIT_LIMIT: &str = r#"
name = "credit_limit"
direction = "erp->crm"
key = ["crm_id"]
write = "update"
[source]
endpoint = "erp"
table = "customers"
[target]
endpoint = "crm"
table = "companies"
[columns]
crm_id = "id"
credit_limit = "credit_limit"
"#;

/// Row writes that change nothing (an echo written back), counted per side.
fn workload_schemas() -> (String, String) {
    let crm = String::from(
        "CREATE TABLE companies (id integer PRIMARY KEY, name text, city text, \
           revenue numeric(12,3), credit_limit numeric(12,2));\
         CREATE TABLE noop_count (n bigint NOT NULL); INSERT INTO noop_count VALUES (0);\
         CREATE FUNCTION count_noop() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER \
           SET search_path = public AS $$ BEGIN UPDATE noop_count SET n = n + 1; RETURN NULL; END $$;\
         CREATE TRIGGER companies_noop AFTER UPDATE ON companies FOR EACH ROW \
           WHEN (OLD IS NOT DISTINCT FROM NEW) EXECUTE FUNCTION count_noop();",
    );
    let erp = "CREATE TABLE customers (crm_id INT PRIMARY KEY, customer_name VARCHAR(140), \
           address_city VARCHAR(140), revenue DECIMAL(21,3), credit_limit DECIMAL(12,2)) \
           DEFAULT CHARSET=utf8mb4;\
         CREATE TABLE noop_count (n BIGINT NOT NULL); INSERT INTO noop_count VALUES (0);\
         CREATE TRIGGER customers_noop AFTER UPDATE ON customers FOR EACH ROW \
           UPDATE noop_count SET n = n + IF(NEW.customer_name <=> OLD.customer_name \
             AND NEW.address_city <=> OLD.address_city AND NEW.revenue <=> OLD.revenue \
             AND NEW.credit_limit <=> OLD.credit_limit, 1, 0);"
        .to_string();
    (crm, erp)
}

/// A small deterministic generator (64-bit LCG): the same edits every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Three mappings on one table pair (one-way with an ERP-owned column, a `both` name, an
/// ERP-owned column going back), users editing both sides in the same rounds: every edit
/// arrives, no write is an echo, both sides end as the users' edits say, column by column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_ownership_workload_converges_without_echo_writes() {
    const ROWS: u64 = 40;
    let (crm, erp) = workload_schemas();
    let mut b = Bridge::new(
        "echo_mixed",
        &crm,
        &erp,
        &[
            ("company_customer", COMPANY_CUSTOMER),
            ("company_name", COMPANY_NAME),
            ("credit_limit", CREDIT_LIMIT),
        ],
    )
    .await;
    b.start_ready().await;
    // What each side must end with, kept by this test alone.
    let mut name: Vec<String> = (0..ROWS).map(|i| format!("co {i} ✓")).collect();
    let mut city: Vec<String> = (0..ROWS).map(|i| format!("city {i}")).collect();
    let mut erp_city = city.clone();
    let mut revenue: Vec<u64> = (0..ROWS).collect();
    let mut credit: Vec<Option<u64>> = vec![None; ROWS as usize];
    let values: Vec<String> = (0..ROWS)
        .map(|i| {
            format!(
                "({i}, '{}', '{}', {})",
                name[i as usize], city[i as usize], i
            )
        })
        .collect();
    b.crm_exec(&format!(
        "INSERT INTO companies (id, name, city, revenue) VALUES {}",
        values.join(",")
    ))
    .await;
    wait_until("the customers on the ERP", LONG, || async {
        count(&b.erp_rows("SELECT COUNT(*) FROM customers").await) == ROWS as i64
    })
    .await;
    let mut rng = Lcg(14);
    for round in 0..12 {
        let mut crm_sql = Vec::new();
        let mut erp_sql = Vec::new();
        for _ in 0..6 {
            let i = rng.below(ROWS) as usize;
            match rng.below(3) {
                // The CRM edits names of even rows, the ERP of odd rows: no edit of one
                // field on both sides at once (that is a conflict, tested elsewhere).
                0 if i.is_multiple_of(2) => {
                    name[i] = format!("crm {round} {i} عربي");
                    crm_sql.push(format!(
                        "UPDATE companies SET name = '{}' WHERE id = {i}",
                        name[i]
                    ));
                }
                0 => {
                    name[i] = format!("erp {round} {i} 🚀");
                    erp_sql.push(format!(
                        "UPDATE customers SET customer_name = '{}' WHERE crm_id = {i}",
                        name[i]
                    ));
                }
                1 => {
                    revenue[i] = rng.below(100_000);
                    city[i] = format!("city {round}");
                    crm_sql.push(format!(
                        "UPDATE companies SET revenue = {}, city = '{}' WHERE id = {i}",
                        revenue[i], city[i]
                    ));
                }
                _ => {
                    let c = rng.below(10_000);
                    credit[i] = Some(c);
                    erp_city[i] = format!("erp city {round}");
                    erp_sql.push(format!(
                        "UPDATE customers SET credit_limit = {c}, address_city = '{}' WHERE crm_id = {i}",
                        erp_city[i]
                    ));
                }
            }
        }
        // Both sides' edits of this round in flight together.
        // A user's transaction that deadlocks with rowbridge's locked writes is rolled back
        // whole and run again, as an application would.
        let crm_round = async {
            if crm_sql.is_empty() {
                return;
            }
            let client = b.pg.local_client(&b.crm).await;
            let sql = format!("BEGIN; {}; COMMIT", crm_sql.join("; "));
            let retry = |e: &tokio_postgres::Error| {
                use tokio_postgres::error::SqlState;
                let codes = [
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                ];
                e.code().is_some_and(|c| codes.contains(c))
            };
            for attempt in 0.. {
                match client.batch_execute(&sql).await {
                    Ok(()) => return,
                    Err(e) if attempt < 20 && retry(&e) => {
                        let _ = client.batch_execute("ROLLBACK").await;
                    }
                    Err(e) => panic!("CRM round: {e}"),
                }
            }
        };
        let erp_round = async {
            if erp_sql.is_empty() {
                return;
            }
            use mysql_async::prelude::Queryable;
            let mut conn = b.my.conn(&b.erp).await;
            for attempt in 0.. {
                let mut tx = conn
                    .start_transaction(mysql_async::TxOpts::default())
                    .await
                    .unwrap();
                let mut failed = None;
                for sql in &erp_sql {
                    if let Err(e) = tx.query_drop(sql).await {
                        failed = Some(e);
                        break;
                    }
                }
                match failed {
                    None => {
                        tx.commit().await.unwrap();
                        return;
                    }
                    Some(mysql_async::Error::Server(e)) if e.code == 1213 && attempt < 20 => {
                        let _ = tx.rollback().await;
                    }
                    Some(e) => panic!("ERP round: {e}"),
                }
            }
        };
        tokio::join!(crm_round, erp_round);
    }
    let crm_want: Rows = (0..ROWS as usize)
        .map(|i| {
            vec![
                Some(i.to_string()),
                Some(name[i].clone()),
                Some(city[i].clone()),
                Some(format!("{}.000", revenue[i])),
                credit[i].map(|c| format!("{c}.00")),
            ]
        })
        .collect();
    let erp_want: Rows = (0..ROWS as usize)
        .map(|i| {
            vec![
                Some(i.to_string()),
                Some(name[i].clone()),
                Some(erp_city[i].clone()),
                Some(format!("{}.000", revenue[i] * 1000)),
                credit[i].map(|c| format!("{c}.00")),
            ]
        })
        .collect();
    let crm_sql = "SELECT id::text, name, city, revenue::text, credit_limit::text FROM companies ORDER BY companies.id";
    let erp_sql = "SELECT crm_id, customer_name, address_city, revenue, credit_limit FROM customers ORDER BY crm_id";
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let (crm_got, erp_got) = (b.crm_rows(crm_sql).await, b.erp_rows(erp_sql).await);
        if crm_got == crm_want && erp_got == erp_want {
            break;
        }
        if std::time::Instant::now() > deadline {
            for (g, w) in crm_got.iter().zip(&crm_want).filter(|(g, w)| g != w) {
                eprintln!("CRM got {g:?}\n    want {w:?}");
            }
            for (g, w) in erp_got.iter().zip(&erp_want).filter(|(g, w)| g != w) {
                eprintln!("ERP got {g:?}\n    want {w:?}");
            }
            panic!("both sides as the users left them\n{}", tail(&b.log(), 40));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One more crossing each way, so any echo still in flight has been through its flow.
    b.crm_exec("UPDATE companies SET revenue = 1 WHERE id = 0")
        .await;
    wait_erp(
        &b,
        "SELECT revenue FROM customers WHERE crm_id = 0",
        &[&[Some("1000.000")]],
    )
    .await;
    b.erp_exec("UPDATE customers SET credit_limit = 1 WHERE crm_id = 0")
        .await;
    wait_crm(
        &b,
        "SELECT credit_limit::text FROM companies WHERE id = 0",
        &[&[Some("1.00")]],
    )
    .await;
    let noop_crm = count(&b.crm_rows("SELECT n::text FROM noop_count").await);
    let noop_erp = count(&b.erp_rows("SELECT n FROM noop_count").await);
    assert_eq!(
        (noop_crm, noop_erp),
        (0, 0),
        "echo writes\n{}",
        tail(&b.log(), 40)
    );
    assert_eq!(
        b.cli(&["dlq", "list", "-o", "json"]).stdout,
        b"[]\n".to_vec()
    );
    let conflicts = b.cli(&["conflicts", "list", "-o", "json"]);
    assert_eq!(conflicts.stdout, b"[]\n".to_vec(), "no conflicts");
}
