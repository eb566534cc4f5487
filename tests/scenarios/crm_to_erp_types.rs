//! Every CRM column type the sink supports, NULLs, and an untouched TOASTed value.
//!
//! The UTC rule: a `timestamptz` is written to MySQL/MariaDB as its UTC wall-clock time (the
//! sink's session runs with `time_zone = '+00:00'`), so `2024-06-01 12:00:00+02` arrives as
//! `2024-06-01 10:00:00` in a DATETIME column.

use std::time::Duration;

use crate::support::bridge::Bridge;

const CRM: &str = "
CREATE TABLE typed (
    id integer PRIMARY KEY,
    c_small smallint, c_int integer, c_big bigint, c_num numeric(18,4),
    c_real real, c_double double precision, c_bool boolean,
    c_text text, c_varchar varchar(20), c_date date, c_time time, c_ts timestamp,
    c_tstz timestamptz, c_uuid uuid, c_json jsonb, c_bin bytea, c_long text
);";

const ERP: &str = "
CREATE TABLE typed (
    id INT PRIMARY KEY,
    c_small SMALLINT, c_int INT, c_big BIGINT, c_num DECIMAL(18,4),
    c_real FLOAT, c_double DOUBLE, c_bool TINYINT(1),
    c_text TEXT, c_varchar VARCHAR(20), c_date DATE, c_time TIME(6), c_ts DATETIME(6),
    c_tstz DATETIME(6), c_uuid CHAR(36), c_json JSON, c_bin BLOB, c_long MEDIUMTEXT
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;";

const MAPPING: &str = r#"
key = ["id"]
[source]
endpoint = "crm"
table = "typed"
[target]
endpoint = "erp"
table = "typed"
[columns]
id = "id"
c_small = "c_small"
c_int = "c_int"
c_big = "c_big"
c_num = "c_num"
c_real = "c_real"
c_double = "c_double"
c_bool = "c_bool"
c_text = "c_text"
c_varchar = "c_varchar"
c_date = "c_date"
c_time = "c_time"
c_ts = "c_ts"
c_tstz = "c_tstz"
c_uuid = "c_uuid"
c_json = "c_json"
c_bin = "c_bin"
c_long = "c_long"
"#;

const ERP_SELECT: &str = "SELECT id, c_small, c_int, c_big, c_num, c_real, c_double, c_bool, \
    c_text, c_varchar, DATE_FORMAT(c_date, '%Y-%m-%d'), TIME_FORMAT(c_time, '%H:%i:%s.%f'), \
    DATE_FORMAT(c_ts, '%Y-%m-%d %H:%i:%s.%f'), DATE_FORMAT(c_tstz, '%Y-%m-%d %H:%i:%s.%f'), \
    c_uuid, JSON_EXTRACT(c_json, '$.a[1]'), JSON_EXTRACT(c_json, '$.s'), HEX(c_bin), \
    LENGTH(c_long), MD5(c_long) FROM typed ORDER BY id";

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_and_null_round_trips() {
    let mut b = Bridge::new("types", CRM, ERP, &[("typed", MAPPING)]).await;
    b.start_ready().await;
    b.crm_exec(
        r#"INSERT INTO typed VALUES (
            1, -32768, 2147483647, -9223372036854775808, -99999999999999.9999,
            1.5, -1e300, true,
            E'quote '' backslash \\ tab \t 4-byte 🎉 𝄞 end', 'varchar-ä',
            '2024-02-29', '23:59:59.999999', '2024-12-31 23:59:59.123456',
            '2024-06-01 12:00:00+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
            '{"a": [1, 2.5, "x"], "s": "ünï \"q\""}', '\x00ff10',
            repeat('long text ', 1200)
        );
        INSERT INTO typed (id) VALUES (2);"#,
    )
    .await;
    let md5: String = crate::support::pg()
        .query_scalar(&b.crm, "SELECT md5(c_long) FROM typed WHERE id = 1")
        .await;
    let want_row1 = vec![
        s("1"),
        s("-32768"),
        s("2147483647"),
        s("-9223372036854775808"),
        s("-99999999999999.9999"),
        s("1.5"),
        s("-1e300"),
        s("1"),
        s("quote ' backslash \\ tab \t 4-byte 🎉 𝄞 end"),
        s("varchar-ä"),
        s("2024-02-29"),
        s("23:59:59.999999"),
        s("2024-12-31 23:59:59.123456"),
        s("2024-06-01 10:00:00.000000"),
        s("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        s("2.5"),
        s("\"ünï \\\"q\\\"\""),
        s("00FF10"),
        s("12000"),
        Some(md5.clone()),
    ];
    let mut want_row2 = vec![s("2")];
    want_row2.extend(std::iter::repeat_n(None, 19));
    let want = vec![want_row1.clone(), want_row2.clone()];
    wait_rows(&b, &want).await;

    // An UPDATE that leaves the TOASTed text alone: pgoutput sends it as "unchanged" and the
    // ERP must keep it, not receive NULL.
    b.crm_exec("UPDATE typed SET c_int = c_int - 1 WHERE id = 1")
        .await;
    let mut want_row1b = want_row1;
    want_row1b[2] = s("2147483646");
    // NULL into every column of a full row.
    b.crm_exec(
        "UPDATE typed SET c_small = NULL, c_int = NULL, c_big = NULL, c_num = NULL, c_real = NULL, \
         c_double = NULL, c_bool = NULL, c_text = NULL, c_varchar = NULL, c_date = NULL, c_time = NULL, \
         c_ts = NULL, c_tstz = NULL, c_uuid = NULL, c_json = NULL, c_bin = NULL, c_long = NULL WHERE id = 2",
    )
    .await;
    let want = [want_row1b, want_row2];
    wait_rows(&b, &want).await;
    // Row 2 looked the same before that update: a marker row committed after it, seen on the
    // ERP, shows the update was applied (commit order) before the ERP table is emptied.
    b.crm_exec("INSERT INTO typed (id) VALUES (3)").await;
    let count = (
        "SELECT count(*)::text FROM typed",
        "SELECT CAST(COUNT(*) AS CHAR) FROM typed",
    );
    b.wait_equal(count.0, count.1, Duration::from_secs(30))
        .await;
    b.crm_exec("DELETE FROM typed WHERE id = 3").await;
    b.wait_equal(count.0, count.1, Duration::from_secs(30))
        .await;

    // The same rows copied by a resync into the emptied ERP table: MariaDB's LOAD DATA carries
    // them (bulk load), and they must arrive exactly as the stream delivered them.
    b.erp_exec("DELETE FROM typed").await;
    crate::support::bridge::resync_and_wait(&b, "typed").await;
    wait_rows(&b, &want).await;
    assert!(
        !b.log().contains("resync writes with upserts"),
        "the empty table was bulk loaded\n{}",
        crate::support::bridge::tail(&b.log(), 20)
    );
    b.stop();
}

async fn wait_rows(b: &Bridge, want: &[Vec<Option<String>>]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = b.erp_rows(ERP_SELECT).await;
        if got == want {
            return;
        }
        if std::time::Instant::now() > deadline {
            for (g, w) in got.iter().zip(want) {
                for (i, (x, y)) in g.iter().zip(w).enumerate() {
                    assert_eq!(x, y, "column {i} differs\nlog:\n{}", b.log());
                }
            }
            assert_eq!(got.len(), want.len(), "row count");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_stay_right_across_alter_table() {
    let crm = "CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric(10,2));";
    let erp = "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT, price DECIMAL(10,2));";
    let m = "key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"items\"\n[target]\nendpoint = \"erp\"\ntable = \"items\"\n[columns]\nid = \"id\"\nname = \"name\"\nprice = \"price\"\n";
    let mut b = Bridge::new("c2e_alter", crm, erp, &[("items", m)]).await;
    b.start_ready().await;
    let crm_sql = "SELECT id::text, name, price::text FROM items ORDER BY items.id";
    let erp_sql = "SELECT id, name, price FROM items ORDER BY id";
    b.crm_exec("INSERT INTO items VALUES (1, 'a', 1.50)").await;
    b.wait_equal(crm_sql, erp_sql, Duration::from_secs(30))
        .await;
    b.crm_exec("ALTER TABLE items ADD COLUMN extra int").await;
    b.crm_exec("INSERT INTO items (extra, id, name, price) VALUES (9, 2, 'b', 2.25)")
        .await;
    b.crm_exec("ALTER TABLE items DROP COLUMN name; ALTER TABLE items ADD COLUMN name text")
        .await;
    b.crm_exec("UPDATE items SET name = 'renamed', price = 3.00 WHERE id = 1")
        .await;
    b.crm_exec("UPDATE items SET name = 'b2' WHERE id = 2")
        .await;
    b.wait_equal(crm_sql, erp_sql, Duration::from_secs(30))
        .await;
    b.stop();
}
