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

const ERP_COUNTER: &str = "CREATE TABLE write_count (tbl VARCHAR(64) PRIMARY KEY, n BIGINT NOT NULL);";

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
        .crm_rows(&format!("SELECT n::text FROM write_count WHERE tbl = '{table}'"))
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
    let want: Rows = want
        .iter()
        .map(|r| r.iter().map(|v| v.map(str::to_string)).collect())
        .collect();
    wait_until(&format!("CRM: {sql}"), LONG, || async {
        b.crm_rows(sql).await == want
    })
    .await;
}

async fn wait_erp(b: &Bridge, sql: &str, want: &[&[Option<&str>]]) {
    let want: Rows = want
        .iter()
        .map(|r| r.iter().map(|v| v.map(str::to_string)).collect())
        .collect();
    wait_until(&format!("ERP: {sql}"), LONG, || async {
        b.erp_rows(sql).await == want
    })
    .await;
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
    assert_eq!(erp_writes(&b, "sales_orders").await, 2 + 21 + 21, "{}", tail(&b.log(), 30));
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
    let erp_sql = "SELECT crm_id, customer_name, address_city, revenue FROM customers ORDER BY crm_id";
    let crm_sql = "SELECT id::text, name, city, revenue::text FROM companies ORDER BY id";

    b.crm_exec("INSERT INTO companies VALUES (1, 'Acme', 'Riyadh', 1.500), (2, 'شركة 🚀', 'Jeddah', 2)")
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
    assert_eq!(crm_writes(&b, "companies").await, 2 + 3 + 2, "{}", tail(&b.log(), 30));
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
        count(&b.erp_rows("SELECT COUNT(*) FROM `tabContact` WHERE crm_id IS NOT NULL").await) == 320
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
            let first = if i == 7 { "renamed".into() } else { format!("crm{i}") };
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
        assert!(stderr.contains(&format!("contacts.toml:{line}:")), "{stderr}");
        assert!(
            stderr.contains("computed.name: column 'name' is part of a unique key")
                && stderr.contains("owner = \"erp\""),
            "{stderr}"
        );
    }
    assert_eq!(
        count(&b.erp_rows("SELECT COUNT(*) FROM `tabContact` WHERE crm_id IS NOT NULL").await),
        0
    );
}
