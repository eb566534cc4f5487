//! The shipped mappings on the demo schemas (scripts/sql), both directions at once, plus
//! value maps with dead letters and identifiers that need quoting.

use std::time::{Duration, Instant};

use crate::support::bridge::{tail, Bridge, Rows};

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

pub(crate) async fn demo_bridge(prefix: &str) -> Bridge {
    let names = [
        "company_customer",
        "contact_contact",
        "opportunity_sales_order",
        "item_product",
        "stock_product_stock",
        "opportunity_line_sales_order_item",
        "sales_order_status_opportunity",
        "invoice_company",
    ];
    let files: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.to_string(), repo_file(&format!("mappings/{n}.toml"))))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    Bridge::new(
        prefix,
        &repo_file("scripts/sql/crm.sql"),
        &repo_file("scripts/sql/erp.sql"),
        &refs,
    )
    .await
}

async fn wait_rows(b: &Bridge, what: &str, erp: bool, sql: &str, want: Rows) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = if erp {
            b.erp_rows(sql).await
        } else {
            b.crm_rows(sql).await
        };
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: got {got:?}, want {want:?}\nlog:\n{}",
            tail(&b.log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn row(v: &[Option<&str>]) -> Vec<Option<String>> {
    v.iter().map(|x| x.map(str::to_string)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_flows_run_both_directions_at_once() {
    let mut b = demo_bridge("flows").await;
    assert!(
        b.cli(&["check"]).status.success(),
        "check: {}",
        String::from_utf8_lossy(&b.cli(&["check"]).stderr)
    );
    b.start_ready().await;
    let acme = "11111111-1111-1111-1111-111111111111";
    b.crm_exec(&format!(
        "INSERT INTO companies (id, name, domain, annual_revenue, is_customer) \
         VALUES ('{acme}', '  Acme GmbH ', ' ACME.Example ', 1234567.8912, true)"
    ))
    .await;
    // Currency with 4 decimal places arrives exactly in decimal(21,9); trim/lower applied.
    wait_rows(
        &b,
        "company -> customer",
        true,
        "SELECT crm_id, customer_name, website, annual_revenue, is_active FROM customers",
        vec![row(&[
            Some(acme),
            Some("Acme GmbH"),
            Some("acme.example"),
            Some("1234567.891200000"),
            Some("1"),
        ])],
    )
    .await;

    // An opportunity reaches the ERP only once won, and leaves it when it is lost.
    let opp = "22222222-2222-2222-2222-222222222222";
    b.crm_exec(&format!(
        "INSERT INTO opportunities (id, company_id, title, stage, amount, close_date) \
         VALUES ('{opp}', '{acme}', 'Big deal', 'prospecting', 5000.1250, '2025-01-31')"
    ))
    .await;
    b.crm_exec(&format!(
        "UPDATE opportunities SET title = 'Big deal 2' WHERE id = '{opp}'"
    ))
    .await;
    b.crm_exec(&format!(
        "UPDATE opportunities SET stage = 'won' WHERE id = '{opp}'"
    ))
    .await;
    let upper = opp.to_uppercase();
    wait_rows(&b, "won opportunity -> sales order", true,
        "SELECT name, crm_id, customer_crm_id, title, status, grand_total, DATE_FORMAT(delivery_date, '%Y-%m-%d') FROM sales_orders",
        vec![row(&[Some(&upper), Some(opp), Some(acme), Some("Big deal 2"), Some("To Deliver and Bill"), Some("5000.125000000"), Some("2025-01-31")])]).await;
    b.crm_exec(&format!(
        "UPDATE opportunities SET stage = 'lost' WHERE id = '{opp}'"
    ))
    .await;
    wait_rows(
        &b,
        "lost opportunity leaves the ERP",
        true,
        "SELECT count(*) FROM sales_orders",
        vec![row(&[Some("0")])],
    )
    .await;

    // ERP -> CRM in the same daemon: items and stock.
    b.erp_exec("INSERT INTO items (item_code, item_name, standard_rate) VALUES ('BOLT-M6', ' Bolt M6 ', 12.345678901)").await;
    b.erp_exec("INSERT INTO stock VALUES ('BOLT-M6', 'Main', 100), ('BOLT-M6', 'East', 2.5)")
        .await;
    wait_rows(
        &b,
        "item -> product",
        false,
        "SELECT sku, name, list_price::text FROM products",
        vec![row(&[Some("BOLT-M6"), Some("Bolt M6"), Some("12.3457")])],
    )
    .await;
    wait_rows(
        &b,
        "stock -> product_stock",
        false,
        "SELECT sku, warehouse, quantity::text FROM product_stock ORDER BY warehouse",
        vec![
            row(&[Some("BOLT-M6"), Some("East"), Some("2.5000")]),
            row(&[Some("BOLT-M6"), Some("Main"), Some("100.0000")]),
        ],
    )
    .await;
    b.erp_exec("UPDATE stock SET actual_qty = 99 WHERE warehouse = 'Main'; DELETE FROM stock WHERE warehouse = 'East'").await;
    b.erp_exec("UPDATE items SET standard_rate = 13 WHERE item_code = 'BOLT-M6'")
        .await;
    wait_rows(
        &b,
        "stock update and delete",
        false,
        "SELECT sku, warehouse, quantity::text FROM product_stock",
        vec![row(&[Some("BOLT-M6"), Some("Main"), Some("99.0000")])],
    )
    .await;
    wait_rows(
        &b,
        "price update",
        false,
        "SELECT list_price::text FROM products",
        vec![row(&[Some("13.0000")])],
    )
    .await;
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmapped_status_goes_to_dead_letters_while_the_rest_flows() {
    let erp =
        "CREATE TABLE sales_orders (name VARCHAR(140) PRIMARY KEY, status VARCHAR(40) NOT NULL);";
    let crm = "CREATE TABLE deals (erp_name text PRIMARY KEY, stage text NOT NULL);";
    let m = r#"
key = ["name"]
[source]
endpoint = "erp"
table = "sales_orders"
[target]
endpoint = "crm"
table = "deals"
[columns]
name = "erp_name"
status = { to = "stage", map = { "To Deliver and Bill" = "won", "Completed" = "delivered", "Cancelled" = "lost" } }
"#;
    let mut b = Bridge::new("flow_dlq", crm, erp, &[("orders", m)]).await;
    b.start_ready().await;
    b.erp_exec("INSERT INTO sales_orders VALUES ('SO-1', 'To Deliver and Bill'), ('SO-2', 'On Hold'), ('SO-3', 'Completed')").await;
    b.erp_exec("UPDATE sales_orders SET status = 'Cancelled' WHERE name = 'SO-1'")
        .await;
    wait_rows(
        &b,
        "mapped statuses flow",
        false,
        "SELECT erp_name, stage FROM deals ORDER BY 1",
        vec![
            row(&[Some("SO-1"), Some("lost")]),
            row(&[Some("SO-3"), Some("delivered")]),
        ],
    )
    .await;
    b.stop();
    let out = b.cli(&["dlq", "list", "-o", "json"]);
    let dlq: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dlq = dlq.as_array().unwrap();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0]["key"], "SO-2");
    assert_eq!(dlq[0]["mapping"], "orders");
    let reason = dlq[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("column 'status'") && reason.contains("has no entry in the map"),
        "{reason}"
    );
    assert!(
        !reason.contains("On Hold"),
        "the reason must not quote the value: {reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_that_need_quoting_work_both_ways() {
    let crm = r#"CREATE SCHEMA "Sales Data"; CREATE TABLE "Sales Data"."Order Lines" ("Id" bigint PRIMARY KEY, "select" text, "Unit Price" numeric(18,4));
                 CREATE TABLE "Back Orders" ("from" bigint PRIMARY KEY, "Group" text);"#;
    let erp = "CREATE TABLE `Order Lines` (`Id` BIGINT PRIMARY KEY, `select` TEXT, `Unit Price` DECIMAL(18,4));
               CREATE TABLE `back``orders` (`from` BIGINT PRIMARY KEY, `group` TEXT);";
    let c2e = r#"
key = ["Id"]
[source]
endpoint = "crm"
schema = "Sales Data"
table = "Order Lines"
[target]
endpoint = "erp"
table = "Order Lines"
[columns]
Id = "Id"
select = "select"
"Unit Price" = "Unit Price"
"#;
    let e2c = r#"
key = ["from"]
[source]
endpoint = "erp"
table = "back`orders"
[target]
endpoint = "crm"
table = "Back Orders"
[columns]
from = "from"
group = "Group"
"#;
    let mut b = Bridge::new("flow_quote", crm, erp, &[("c2e", c2e), ("e2c", e2c)]).await;
    assert!(
        b.cli(&["check"]).status.success(),
        "{}",
        String::from_utf8_lossy(&b.cli(&["check"]).stdout)
    );
    b.start_ready().await;
    b.crm_exec(r#"INSERT INTO "Sales Data"."Order Lines" VALUES (1, 'from "x"', 9.9999)"#)
        .await;
    b.erp_exec("INSERT INTO `back``orders` VALUES (7, 'a`b')")
        .await;
    wait_rows(
        &b,
        "quoted CRM -> ERP",
        true,
        "SELECT `Id`, `select`, `Unit Price` FROM `Order Lines`",
        vec![row(&[Some("1"), Some("from \"x\""), Some("9.9999")])],
    )
    .await;
    wait_rows(
        &b,
        "quoted ERP -> CRM",
        false,
        r#"SELECT "from"::text, "Group" FROM "Back Orders""#,
        vec![row(&[Some("7"), Some("a`b")])],
    )
    .await;
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_is_matched_by_email_to_an_existing_erp_contact() {
    let mut b = demo_bridge("flow_match").await;
    // The ERP already knows Ann (no CRM id yet), and has two rows for a shared mailbox.
    b.erp_exec(
        "INSERT INTO contacts (first_name, last_name, email_id, phone) VALUES ('Ann', 'L.', 'ann@acme.example', '+49 1'); \
         INSERT INTO contacts (first_name, last_name, email_id) VALUES ('Info', 'A', 'info@acme.example'), ('Info', 'B', 'info@acme.example')",
    )
    .await;
    b.start_ready().await;
    let acme = "11111111-1111-1111-1111-111111111111";
    b.crm_exec(&format!(
        "INSERT INTO companies (id, name) VALUES ('{acme}', 'Acme'); \
         INSERT INTO contacts (id, company_id, first_name, last_name, email) VALUES \
           ('aaaaaaaa-0000-0000-0000-000000000001', '{acme}', 'Ann', 'Lee', ' Ann@ACME.example '), \
           ('aaaaaaaa-0000-0000-0000-000000000002', '{acme}', 'Bob', 'Stone', 'bob@acme.example'), \
           ('aaaaaaaa-0000-0000-0000-000000000003', '{acme}', 'Shared', 'Box', 'info@acme.example')"
    ))
    .await;
    // Ann adopted the existing row (same id; the mapped columns, phone included, now come from
    // the CRM); Bob is new; the shared mailbox matches two rows and is not guessed.
    wait_rows(
        &b,
        "contacts matched by email",
        true,
        "SELECT id, crm_id, first_name, last_name, email_id, phone FROM contacts ORDER BY id",
        vec![
            row(&[
                Some("1"),
                Some("aaaaaaaa-0000-0000-0000-000000000001"),
                Some("Ann"),
                Some("Lee"),
                Some("ann@acme.example"),
                None,
            ]),
            row(&[
                Some("2"),
                None,
                Some("Info"),
                Some("A"),
                Some("info@acme.example"),
                None,
            ]),
            row(&[
                Some("3"),
                None,
                Some("Info"),
                Some("B"),
                Some("info@acme.example"),
                None,
            ]),
            row(&[
                Some("4"),
                Some("aaaaaaaa-0000-0000-0000-000000000002"),
                Some("Bob"),
                Some("Stone"),
                Some("bob@acme.example"),
                None,
            ]),
        ],
    )
    .await;
    // Later changes go by the remembered key, even when the e-mail changes.
    b.crm_exec("UPDATE contacts SET email = 'ann.lee@acme.example', last_name = 'Lee-Smith' WHERE first_name = 'Ann'").await;
    wait_rows(
        &b,
        "update by remembered key",
        true,
        "SELECT id, last_name, email_id FROM contacts WHERE id = 1",
        vec![row(&[
            Some("1"),
            Some("Lee-Smith"),
            Some("ann.lee@acme.example"),
        ])],
    )
    .await;
    b.stop();
    let out = b.cli(&["dlq", "list", "-o", "json"]);
    let dlq: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dlq = dlq.as_array().unwrap();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0]["key"], "aaaaaaaa-0000-0000-0000-000000000003");
    assert!(
        dlq[0]["reason"]
            .as_str()
            .unwrap()
            .contains("refusing to guess"),
        "{dlq:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_waits_for_its_customer_across_a_restart() {
    // No foreign key on the CRM side here, so the order can come first.
    let crm = "CREATE TABLE companies (id bigint PRIMARY KEY, name text NOT NULL);
               CREATE TABLE orders (id bigint PRIMARY KEY, company_id bigint, total numeric(18,4));";
    let erp = "CREATE TABLE customers (id BIGINT AUTO_INCREMENT PRIMARY KEY, crm_id BIGINT UNIQUE, name TEXT);
               CREATE TABLE orders (crm_id BIGINT PRIMARY KEY, customer_crm_id BIGINT, total DECIMAL(21,9));";
    let companies = r#"
name = "company_customer"
key = ["id"]
[source]
endpoint = "crm"
table = "companies"
[target]
endpoint = "erp"
table = "customers"
[columns]
id = "crm_id"
name = "name"
"#;
    let orders = r#"
name = "orders"
key = ["id"]
[source]
endpoint = "crm"
table = "orders"
[target]
endpoint = "erp"
table = "orders"
[columns]
id = "crm_id"
company_id = { to = "customer_crm_id", reference = "company_customer" }
total = "total"
"#;
    let mut b = Bridge::new(
        "flow_wait",
        crm,
        erp,
        &[("companies", companies), ("orders", orders)],
    )
    .await;
    b.start_ready().await;
    b.crm_exec("INSERT INTO orders VALUES (100, 7, 10.5)").await;
    b.crm_exec("UPDATE orders SET total = 11.25 WHERE id = 100")
        .await;
    b.crm_exec("INSERT INTO orders VALUES (101, NULL, 1)").await;
    // The order without a customer reference flows; the one for customer 7 waits.
    wait_rows(
        &b,
        "unreferenced order flows",
        true,
        "SELECT crm_id FROM orders",
        vec![row(&[Some("101")])],
    )
    .await;
    crate::support::wait_until("waiting metric", Duration::from_secs(30), || async {
        b.metric("rowbridge_waiting_changes").await == Some(2.0)
    })
    .await;
    // kill -9 while it waits: the parked changes are in the store, not in memory.
    b.kill9();
    b.start_ready().await;
    b.crm_exec("INSERT INTO companies VALUES (7, 'Late Customer')")
        .await;
    wait_rows(
        &b,
        "the waiting order follows its customer, last version",
        true,
        "SELECT crm_id, customer_crm_id, total FROM orders ORDER BY crm_id",
        vec![
            row(&[Some("100"), Some("7"), Some("11.250000000")]),
            row(&[Some("101"), None, Some("1.000000000")]),
        ],
    )
    .await;
    crate::support::wait_until(
        "nothing waits any more",
        Duration::from_secs(30),
        || async { b.metric("rowbridge_waiting_changes").await == Some(0.0) },
    )
    .await;
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn won_opportunity_and_its_lines_arrive_in_one_erp_transaction() {
    let mut b = demo_bridge("flow_parent").await;
    // Record the InnoDB transaction of every order and item the sink writes.
    b.erp_exec(
        "CREATE TABLE trx_log (tbl VARCHAR(40), trx VARCHAR(40));
         CREATE TRIGGER so_trx AFTER INSERT ON sales_orders FOR EACH ROW INSERT INTO trx_log
           SELECT 'order', trx_id FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = CONNECTION_ID();
         CREATE TRIGGER soi_trx AFTER INSERT ON sales_order_items FOR EACH ROW INSERT INTO trx_log
           SELECT 'item', trx_id FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = CONNECTION_ID();",
    )
    .await;
    b.start_ready().await;
    let (acme, opp) = (
        "11111111-1111-1111-1111-111111111111",
        "33333333-3333-3333-3333-333333333333",
    );
    b.crm_exec(&format!(
        "INSERT INTO companies (id, name) VALUES ('{acme}', 'Acme');
         INSERT INTO products (sku, name) VALUES ('BOLT-M6', 'Bolt'), ('NUT-M6', 'Nut');
         INSERT INTO opportunities (id, company_id, title, stage, amount) VALUES ('{opp}', '{acme}', 'Deal', 'negotiation', 30);
         INSERT INTO opportunity_lines (id, opportunity_id, sku, quantity, unit_price) VALUES
           ('44444444-0000-0000-0000-000000000001', '{opp}', 'BOLT-M6', 100, 0.2500),
           ('44444444-0000-0000-0000-000000000002', '{opp}', 'NUT-M6', 50, 0.1000);"
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.metric("rowbridge_waiting_changes").await != Some(2.0) {
        assert!(
            Instant::now() < deadline,
            "lines wait for their order: metric {:?}\n{}\nlog:\n{}",
            b.metric("rowbridge_waiting_changes").await,
            crate::support::bridge::http_get(b.http_port, "/metrics")
                .await
                .map(|(_, body)| body
                    .lines()
                    .filter(|l| l.contains("waiting"))
                    .collect::<Vec<_>>()
                    .join("\n"))
                .unwrap_or_default(),
            tail(&b.log(), 40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        b.erp_rows("SELECT count(*) FROM sales_order_items").await,
        vec![row(&[Some("0")])]
    );
    b.crm_exec(&format!(
        "UPDATE opportunities SET stage = 'won' WHERE id = '{opp}'"
    ))
    .await;
    let name = opp.to_uppercase();
    wait_rows(
        &b,
        "order items",
        true,
        "SELECT parent, item_code, qty, rate FROM sales_order_items ORDER BY item_code",
        vec![
            row(&[
                Some(&name),
                Some("BOLT-M6"),
                Some("100.000000000"),
                Some("0.250000000"),
            ]),
            row(&[
                Some(&name),
                Some("NUT-M6"),
                Some("50.000000000"),
                Some("0.100000000"),
            ]),
        ],
    )
    .await;
    let trx = b.erp_rows("SELECT tbl, trx FROM trx_log").await;
    assert_eq!(trx.len(), 3, "{trx:?}");
    assert!(
        trx.iter().all(|r| r[1] == trx[0][1]),
        "order and items in one ERP transaction: {trx:?}"
    );
    // A line added while the deal is won flows at once.
    b.crm_exec(&format!(
        "INSERT INTO opportunity_lines (id, opportunity_id, sku, quantity, unit_price) VALUES \
         ('44444444-0000-0000-0000-000000000003', '{opp}', 'NUT-M6', 1, 1)"
    ))
    .await;
    wait_rows(
        &b,
        "third item",
        true,
        "SELECT count(*) FROM sales_order_items",
        vec![row(&[Some("3")])],
    )
    .await;
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erp_reports_order_progress_and_invoices_back_to_the_crm() {
    let mut b = demo_bridge("flow_back").await;
    b.start_ready().await;
    let (acme, opp) = (
        "11111111-1111-1111-1111-111111111111",
        "55555555-5555-5555-5555-555555555555",
    );
    b.crm_exec(&format!(
        "INSERT INTO companies (id, name) VALUES ('{acme}', 'Acme');
         INSERT INTO opportunities (id, company_id, title, stage, amount) VALUES ('{opp}', '{acme}', 'Deal', 'won', 10);"
    ))
    .await;
    let name = opp.to_uppercase();
    wait_rows(
        &b,
        "order",
        true,
        "SELECT status FROM sales_orders",
        vec![row(&[Some("To Deliver and Bill")])],
    )
    .await;
    // The ERP ships and invoices; the CRM hears of both.
    b.erp_exec(&format!(
        "UPDATE sales_orders SET status = 'To Bill' WHERE name = '{name}'"
    ))
    .await;
    b.erp_exec(&format!(
        "INSERT INTO invoices (name, customer_crm_id, status, grand_total, outstanding_amount) \
         VALUES ('INV-1', '{acme}', 'Unpaid', 10, 10.123456789)"
    ))
    .await;
    wait_rows(
        &b,
        "stage shipped",
        false,
        "SELECT stage FROM opportunities",
        vec![row(&[Some("shipped")])],
    )
    .await;
    wait_rows(
        &b,
        "invoice on company",
        false,
        "SELECT last_invoice_status, last_invoice_outstanding::text FROM companies",
        vec![row(&[Some("Unpaid"), Some("10.1235")])],
    )
    .await;
    // The stage change travels back to the ERP as the same status: no change there, no loop.
    wait_rows(
        &b,
        "ERP status unchanged",
        true,
        "SELECT status FROM sales_orders",
        vec![row(&[Some("To Bill")])],
    )
    .await;
    b.erp_exec(&format!(
        "UPDATE sales_orders SET status = 'Completed' WHERE name = '{name}'"
    ))
    .await;
    b.erp_exec("UPDATE invoices SET status = 'Paid', outstanding_amount = 0 WHERE name = 'INV-1'")
        .await;
    wait_rows(
        &b,
        "stage delivered",
        false,
        "SELECT stage FROM opportunities",
        vec![row(&[Some("delivered")])],
    )
    .await;
    wait_rows(
        &b,
        "invoice paid",
        false,
        "SELECT last_invoice_status, last_invoice_outstanding::text FROM companies",
        vec![row(&[Some("Paid"), Some("0.0000")])],
    )
    .await;
    // An invoice of a customer the CRM does not know changes nothing and creates nothing.
    b.erp_exec("INSERT INTO invoices (name, customer_crm_id, status) VALUES ('INV-2', '99999999-9999-9999-9999-999999999999', 'Unpaid')").await;
    b.erp_exec(
        "INSERT INTO invoices (name, customer_crm_id, status) VALUES ('INV-3', NULL, 'Unpaid')",
    )
    .await;
    b.erp_exec("INSERT INTO stock VALUES ('MARK', 'Main', 1)")
        .await;
    wait_rows(
        &b,
        "later change flows",
        false,
        "SELECT count(*) FROM product_stock",
        vec![row(&[Some("1")])],
    )
    .await;
    assert_eq!(
        b.crm_rows("SELECT count(*) FROM companies").await,
        vec![row(&[Some("1")])]
    );
    b.stop();
    let out = b.cli(&["dlq", "list", "-o", "json"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[]",
        "no dead letters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_owned_by_the_target_is_seeded_on_insert_and_never_overwritten() {
    let crm = "CREATE TABLE products (sku text PRIMARY KEY, name text, price numeric(18,4));";
    let erp = "CREATE TABLE items (item_code VARCHAR(40) PRIMARY KEY, item_name TEXT, standard_rate DECIMAL(21,9));";
    let m = r#"
key = ["sku"]
[source]
endpoint = "crm"
table = "products"
[target]
endpoint = "erp"
table = "items"
[columns]
sku = "item_code"
name = "item_name"
# The ERP owns prices: the CRM's price seeds a new item, then finance sets it.
price = { to = "standard_rate", owner = "erp" }
"#;
    let mut b = Bridge::new("flow_owner", crm, erp, &[("products", m)]).await;
    b.start_ready().await;
    b.crm_exec("INSERT INTO products VALUES ('P1', 'Pump', 100)")
        .await;
    wait_rows(
        &b,
        "seeded",
        true,
        "SELECT item_name, standard_rate FROM items",
        vec![row(&[Some("Pump"), Some("100.000000000")])],
    )
    .await;
    b.erp_exec("UPDATE items SET standard_rate = 120 WHERE item_code = 'P1'")
        .await;
    b.crm_exec("UPDATE products SET name = 'Pump XL', price = 90 WHERE sku = 'P1'")
        .await;
    wait_rows(
        &b,
        "name follows, price stays",
        true,
        "SELECT item_name, standard_rate FROM items",
        vec![row(&[Some("Pump XL"), Some("120.000000000")])],
    )
    .await;
    b.stop();
}
