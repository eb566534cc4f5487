//! Both directions on the same tables: rowbridge's own writes are never streamed back.

use std::time::{Duration, Instant};

use crate::support::bridge::{tail, Bridge, Rows};

const CRM: &str = "
CREATE TABLE parts (code text PRIMARY KEY, name text, qty integer);
CREATE TABLE write_count (n bigint NOT NULL);
INSERT INTO write_count VALUES (0);
CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql
  SECURITY DEFINER SET search_path = public AS
  $$ BEGIN UPDATE write_count SET n = n + 1; RETURN NULL; END $$;
CREATE TRIGGER parts_writes AFTER INSERT OR UPDATE OR DELETE ON parts
  FOR EACH ROW EXECUTE FUNCTION count_write();";

const ERP: &str = "
CREATE TABLE parts (code VARCHAR(40) PRIMARY KEY, name TEXT, qty INT);
CREATE TABLE write_count (n BIGINT NOT NULL);
INSERT INTO write_count VALUES (0);
CREATE TRIGGER parts_ins AFTER INSERT ON parts FOR EACH ROW UPDATE write_count SET n = n + 1;
CREATE TRIGGER parts_upd AFTER UPDATE ON parts FOR EACH ROW UPDATE write_count SET n = n + 1;
CREATE TRIGGER parts_del AFTER DELETE ON parts FOR EACH ROW UPDATE write_count SET n = n + 1;";

fn mapping(from: &str, to: &str) -> String {
    format!(
        "key = [\"code\"]\n[source]\nendpoint = \"{from}\"\ntable = \"parts\"\n[target]\nendpoint = \"{to}\"\n\
         table = \"parts\"\n[columns]\ncode = \"code\"\nname = \"name\"\nqty = \"qty\"\n"
    )
}

const SELECT_CRM: &str = "SELECT code, name, qty::text FROM parts ORDER BY code COLLATE \"C\"";
const SELECT_ERP: &str = "SELECT code, name, qty FROM parts ORDER BY code COLLATE utf8mb4_bin";

async fn counts(b: &Bridge) -> (i64, i64) {
    let c = b.crm_rows("SELECT n::text FROM write_count").await;
    let e = b.erp_rows("SELECT n FROM write_count").await;
    let n = |r: &Rows| r[0][0].as_deref().unwrap().parse::<i64>().unwrap();
    (n(&c), n(&e))
}

/// A sentinel written on one side and seen on the other proves that everything that side's
/// binlog/WAL held before it, echoes included, has been through the opposite flow.
async fn sentinel(b: &Bridge, on_crm: bool, code: &str) {
    if on_crm {
        b.crm_exec(&format!("INSERT INTO parts VALUES ('{code}', 's', 0)"))
            .await;
    } else {
        b.erp_exec(&format!("INSERT INTO parts VALUES ('{code}', 's', 0)"))
            .await;
    }
    let sql = format!("SELECT code FROM parts WHERE code = '{code}'");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = if on_crm {
            b.erp_rows(&sql).await
        } else {
            b.crm_rows(&sql).await
        };
        if !seen.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sentinel {code} did not cross\n{}",
            tail(&b.log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_writes_are_not_streamed_back_either_way() {
    // One file for both directions (direction = "both").
    let both = format!("direction = \"both\"\n{}", mapping("crm", "erp"));
    let mut b = Bridge::new("bidi_echo", CRM, ERP, &[("parts", &both)]).await;
    b.start_ready().await;

    // 10 000 CRM changes: 2 000 inserts, then 4 x 2 000 updates.
    b.crm_exec("INSERT INTO parts SELECT 'c' || lpad(g::text, 5, '0'), 'crm', 0 FROM generate_series(1, 2000) g").await;
    // Each round lands before the next: rounds that meet in one target transaction would be
    // written once per row (the last state), and this test counts writes.
    for _ in 0..4 {
        b.wait_equal(SELECT_CRM, SELECT_ERP, Duration::from_secs(120))
            .await;
        b.crm_exec("UPDATE parts SET qty = qty + 1 WHERE code LIKE 'c%'")
            .await;
    }
    b.wait_equal(SELECT_CRM, SELECT_ERP, Duration::from_secs(120))
        .await;
    sentinel(&b, false, "zz-sentinel-1").await;
    let (crm_writes, erp_writes) = counts(&b).await;
    // CRM: its own 10 000 writes plus the ERP sentinel; ERP: 10 000 applies plus its sentinel.
    assert_eq!(erp_writes, 10_001, "ERP applies");
    assert_eq!(
        crm_writes, 10_001,
        "nothing written back to the CRM besides the sentinel"
    );

    // 10 000 ERP changes (distinct rows) the other way.
    b.erp_exec(
        "INSERT INTO parts SELECT CONCAT('e', LPAD(seq, 5, '0')), 'erp', 0 FROM seq_1_to_10000",
    )
    .await;
    b.wait_equal(SELECT_CRM, SELECT_ERP, Duration::from_secs(120))
        .await;
    sentinel(&b, true, "zz-sentinel-2").await;
    let (crm_writes2, erp_writes2) = counts(&b).await;
    assert_eq!(
        crm_writes2 - crm_writes,
        10_001,
        "CRM applies plus its sentinel"
    );
    assert_eq!(
        erp_writes2 - erp_writes,
        10_001,
        "ERP: its 10 000 writes plus the CRM sentinel, no echo"
    );
    assert!(
        b.metric("rowbridge_echo_skipped_total")
            .await
            .unwrap_or(0.0)
            >= 2.0
    );
    b.stop();
}

/// With the marks off (as on a MySQL 8 target), the content check alone stops echoes: a row
/// that reads back as rowbridge wrote it is not sent back, while a user's change back to those
/// same values still crosses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_check_stops_echoes_without_marks() {
    let both = format!("direction = \"both\"\n{}", mapping("crm", "erp"));
    let mut b = Bridge::new("bidi_nomark", CRM, ERP, &[("parts", &both)]).await;
    b.write_config("mark_writes = false");
    b.start_ready().await;
    b.crm_exec("INSERT INTO parts SELECT 'c' || lpad(g::text, 5, '0'), 'crm', 0 FROM generate_series(1, 500) g").await;
    b.crm_exec("UPDATE parts SET qty = qty + 1 WHERE code LIKE 'c%'")
        .await;
    b.wait_equal(SELECT_CRM, SELECT_ERP, Duration::from_secs(60))
        .await;
    sentinel(&b, false, "zz-sentinel-1").await;
    let (crm_writes, erp_writes) = counts(&b).await;
    assert_eq!(erp_writes, 1_001, "ERP: 1 000 applies plus its sentinel");
    assert_eq!(
        crm_writes, 1_001,
        "CRM: its own 1 000 writes plus the sentinel, no echo"
    );
    // A user on the ERP changes a row and then back to what rowbridge wrote: both cross.
    b.erp_exec("UPDATE parts SET qty = 7 WHERE code = 'c00001'")
        .await;
    b.erp_exec("UPDATE parts SET qty = 1 WHERE code = 'c00001'")
        .await;
    sentinel(&b, false, "zz-sentinel-2").await;
    b.wait_equal(SELECT_CRM, SELECT_ERP, Duration::from_secs(60))
        .await;
    assert_eq!(
        b.crm_rows("SELECT qty::text FROM parts WHERE code = 'c00001'")
            .await,
        vec![vec![Some("1".to_string())]]
    );
    b.stop();
}
