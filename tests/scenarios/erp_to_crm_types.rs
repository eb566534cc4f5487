//! Every ERP column type the binlog source decodes, NULLs, and a purged binlog.
//!
//! A MySQL DATETIME has no zone; written to a PostgreSQL `timestamp` it stays the same wall
//! clock time, and to a `timestamptz` it is read as UTC. A TIMESTAMP is an instant and arrives
//! as one.

use std::time::{Duration, Instant};

use crate::support::bridge::{tail, Bridge};
use crate::support::{mariadb, wait_until};

const ERP: &str = "
CREATE TABLE typed (
    id INT PRIMARY KEY,
    c_bool TINYINT(1), c_tiny TINYINT, c_int INT, c_uint INT UNSIGNED, c_big BIGINT,
    c_ubig BIGINT UNSIGNED, c_dec DECIMAL(18,9), c_float FLOAT, c_double DOUBLE,
    c_date DATE, c_time TIME(6), c_dt DATETIME(6), c_ts TIMESTAMP(6) NULL DEFAULT NULL,
    c_char CHAR(10), c_varchar VARCHAR(50), c_text MEDIUMTEXT, c_blob BLOB, c_json JSON,
    c_enum ENUM('open','won','lost'), c_set SET('a','b','c'), c_bit BIT(10)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;";

const CRM: &str = "
CREATE TABLE typed (
    id integer PRIMARY KEY,
    c_bool boolean, c_tiny smallint, c_int integer, c_uint bigint, c_big bigint,
    c_ubig numeric(20,0), c_dec numeric(18,9), c_float real, c_double double precision,
    c_date date, c_time time, c_dt timestamp, c_ts timestamptz,
    c_char text, c_varchar varchar(50), c_text text, c_blob bytea, c_json jsonb,
    c_enum text, c_set text, c_bit bit varying(10)
);";

const COLUMNS: [&str; 22] = [
    "id",
    "c_bool",
    "c_tiny",
    "c_int",
    "c_uint",
    "c_big",
    "c_ubig",
    "c_dec",
    "c_float",
    "c_double",
    "c_date",
    "c_time",
    "c_dt",
    "c_ts",
    "c_char",
    "c_varchar",
    "c_text",
    "c_blob",
    "c_json",
    "c_enum",
    "c_set",
    "c_bit",
];

fn mapping() -> String {
    let cols: String = COLUMNS.iter().map(|c| format!("{c} = \"{c}\"\n")).collect();
    format!("key = [\"id\"]\n[source]\nendpoint = \"erp\"\ntable = \"typed\"\n[target]\nendpoint = \"crm\"\ntable = \"typed\"\n[columns]\n{cols}")
}

const CRM_SELECT: &str = "SELECT id::text, c_bool::text, c_tiny::text, c_int::text, c_uint::text, c_big::text, \
    c_ubig::text, c_dec::text, c_float::text, c_double::text, c_date::text, c_time::text, \
    to_char(c_dt, 'YYYY-MM-DD HH24:MI:SS.US'), to_char(c_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), \
    c_char, c_varchar, length(c_text)::text, md5(c_text), encode(c_blob, 'hex'), c_json->>'k', c_enum, c_set, \
    c_bit::text FROM typed ORDER BY typed.id";

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_erp_type_and_null_round_trips() {
    let mut b = Bridge::new("e2c_types", CRM, ERP, &[("typed", &mapping())]).await;
    b.start_ready().await;
    b.erp_exec(
        "SET time_zone = '+00:00';
         INSERT INTO typed VALUES (1, 1, -128, -2147483648, 4294967295, -9223372036854775808,
            18446744073709551615, -123456789.123456789, 1.1, -2.5e300,
            '2024-02-29', '23:59:59.999999', '2024-12-31 23:59:59.123456', '2024-06-01 10:00:00.5',
            'ünï', 'quote '' backslash \\\\ 🎉 𝄞', REPEAT('long 🎉 text ', 6000), X'00FF10',
            '{\"k\": \"ünï 🎉\", \"n\": [1, 2.5]}', 'won', 'a,c', b'1000000001');
         INSERT INTO typed (id) VALUES (2);",
    )
    .await;
    let md5: Option<String> = mariadb()
        .query_first(&b.erp, "SELECT MD5(c_text) FROM typed WHERE id = 1")
        .await;
    let len: Option<String> = mariadb()
        .query_first(
            &b.erp,
            "SELECT CAST(CHAR_LENGTH(c_text) AS CHAR) FROM typed WHERE id = 1",
        )
        .await;
    assert!(len.as_deref().unwrap().parse::<usize>().unwrap() > 64 * 1024);
    let row1 = vec![
        s("1"),
        s("true"),
        s("-128"),
        s("-2147483648"),
        s("4294967295"),
        s("-9223372036854775808"),
        s("18446744073709551615"),
        s("-123456789.123456789"),
        s("1.1"),
        s("-2.5e+300"),
        s("2024-02-29"),
        s("23:59:59.999999"),
        s("2024-12-31 23:59:59.123456"),
        s("2024-06-01 10:00:00.500000"),
        s("ünï"),
        s("quote ' backslash \\ 🎉 𝄞"),
        len,
        md5,
        s("00ff10"),
        s("ünï 🎉"),
        s("won"),
        s("a,c"),
        s("1000000001"),
    ];
    let mut row2 = vec![s("2")];
    row2.extend(std::iter::repeat_n(None, 22));
    let want = vec![row1, row2];
    wait_rows(&b, &want).await;

    // The same rows copied by a resync into the emptied CRM table: PostgreSQL's COPY carries
    // them (bulk load), and they must arrive exactly as the stream delivered them.
    b.crm_exec("DELETE FROM typed").await;
    crate::support::bridge::resync_and_wait(&b, "typed").await;
    wait_rows(&b, &want).await;
    assert!(
        !b.log().contains("resync writes with upserts"),
        "the empty table was bulk loaded\n{}",
        tail(&b.log(), 20)
    );
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_binlog_stops_the_flow_with_a_resync_hint() {
    let items_erp = "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT);";
    let items_crm = "CREATE TABLE items (id bigint PRIMARY KEY, name text);";
    let m = "key = [\"id\"]\n[source]\nendpoint = \"erp\"\ntable = \"items\"\n[target]\nendpoint = \"crm\"\ntable = \"items\"\n[columns]\nid = \"id\"\nname = \"name\"\n";
    // A MariaDB of its own: purging the shared server's binlogs would break other tests.
    let server: &'static crate::support::MariaServer = Box::leak(Box::new(
        crate::support::MariaServer::start_custom("mariadb_purge"),
    ));
    let mut b = Bridge::with_servers(
        crate::support::pg(),
        server,
        "e2c_purge",
        items_crm,
        items_erp,
        &[("items", m)],
    )
    .await;
    b.start_ready().await;
    b.erp_exec("INSERT INTO items VALUES (1, 'a')").await;
    b.wait_equal(
        "SELECT id::text, name FROM items ORDER BY 1",
        "SELECT id, name FROM items ORDER BY 1",
        Duration::from_secs(30),
    )
    .await;
    b.stop();
    b.erp_exec("INSERT INTO items VALUES (2, 'b')").await;
    for _ in 0..3 {
        server.flush_binary_logs().await;
    }
    let last = server.binlog_files().await.pop().unwrap();
    // The server keeps a file its (dying) dump thread still reads: purge until it is gone.
    wait_until("old binlogs purged", Duration::from_secs(30), || async {
        server.purge_binary_logs_to(&last).await;
        server.binlog_files().await == vec![last.clone()]
    })
    .await;
    b.start();
    wait_until(
        "the flow reports the purged binlog",
        Duration::from_secs(30),
        || async { b.log().contains("is no longer on the server") },
    )
    .await;
    let log = b.log();
    assert!(log.contains("rowbridge resync"), "{log}");
    assert!(b.is_running(), "the daemon stays up with the flow stopped");
    assert_eq!(b.metric("rowbridge_flow_up").await, Some(0.0));
    // Nothing was skipped silently: row 2 never arrived and the checkpoint did not move.
    assert_eq!(
        b.crm_rows("SELECT count(*) FROM items").await,
        vec![vec![s("1")]]
    );

    // Recovery as the hint says, while the daemon runs with the flow stopped: the reset is
    // taken at once (never "restarting; try again"), the flow starts again as new, and a
    // resync brings what the purge lost.
    let reset = b.cli(&["checkpoint", "reset", "erp->crm", "--yes"]);
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    wait_until(
        "the flow streams again",
        Duration::from_secs(30),
        || async { b.metric("rowbridge_flow_up").await == Some(1.0) },
    )
    .await;
    b.erp_exec("INSERT INTO items VALUES (3, 'c')").await;
    crate::support::bridge::resync_and_wait(&b, "items").await;
    b.wait_equal(
        "SELECT id::text, name FROM items ORDER BY 1",
        "SELECT id, name FROM items ORDER BY 1",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        b.crm_rows("SELECT count(*) FROM items").await,
        vec![vec![s("3")]]
    );
    b.stop();
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_stay_right_across_alter_table() {
    let erp = "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT, price DECIMAL(10,2));";
    let crm = "CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric(10,2));";
    let m = "key = [\"id\"]\n[source]\nendpoint = \"erp\"\ntable = \"items\"\n[target]\nendpoint = \"crm\"\ntable = \"items\"\n[columns]\nid = \"id\"\nname = \"name\"\nprice = \"price\"\n";
    let mut b = Bridge::new("e2c_alter", crm, erp, &[("items", m)]).await;
    b.start_ready().await;
    let crm_sql = "SELECT id::text, name, price::text FROM items ORDER BY items.id";
    let erp_sql = "SELECT id, name, price FROM items ORDER BY id";
    b.erp_exec("INSERT INTO items VALUES (1, 'a', 1.50)").await;
    b.wait_equal(crm_sql, erp_sql, Duration::from_secs(30))
        .await;
    // Columns move: a new first column, a dropped one re-added at the end.
    b.erp_exec("ALTER TABLE items ADD COLUMN extra INT FIRST")
        .await;
    b.erp_exec("INSERT INTO items (extra, id, name, price) VALUES (9, 2, 'b', 2.25)")
        .await;
    b.erp_exec("ALTER TABLE items DROP COLUMN name, ADD COLUMN name TEXT")
        .await;
    b.erp_exec("UPDATE items SET name = 'renamed', price = 3.00 WHERE id = 1")
        .await;
    b.erp_exec("UPDATE items SET name = 'b2' WHERE id = 2")
        .await;
    b.wait_equal(crm_sql, erp_sql, Duration::from_secs(30))
        .await;
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_binlog_settings_are_refused_with_the_fix() {
    let server: &'static crate::support::MariaServer = Box::leak(Box::new(
        crate::support::MariaServer::start_custom("mariadb_settings"),
    ));
    let erp = "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT);";
    let crm = "CREATE TABLE items (id bigint PRIMARY KEY, name text);";
    let m = "key = [\"id\"]\n[source]\nendpoint = \"erp\"\ntable = \"items\"\n[target]\nendpoint = \"crm\"\ntable = \"items\"\n[columns]\nid = \"id\"\nname = \"name\"\n";
    let b = Bridge::with_servers(
        crate::support::pg(),
        server,
        "e2c_settings",
        crm,
        erp,
        &[("items", m)],
    )
    .await;
    for (setting, bad) in [
        ("binlog_row_image", "MINIMAL"),
        ("binlog_format", "MIXED"),
        ("binlog_row_metadata", "MINIMAL"),
    ] {
        server
            .exec("", &format!("SET GLOBAL {setting} = '{bad}'"))
            .await;
        for cmd in [&["check"][..], &["run"][..]] {
            let out = b.cli(cmd);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(78), "{setting} {cmd:?}: {stderr}");
            assert!(
                stderr.contains(&format!("{setting} is '{bad}'")),
                "{cmd:?}: {stderr}"
            );
            assert!(
                stderr.contains(&format!("set {setting} = ")),
                "{cmd:?}: {stderr}"
            );
        }
        let good = if setting == "binlog_format" {
            "ROW"
        } else {
            "FULL"
        };
        server
            .exec("", &format!("SET GLOBAL {setting} = '{good}'"))
            .await;
    }
    server.stop();
}

async fn wait_rows(b: &Bridge, want: &[Vec<Option<String>>]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = b.crm_rows(CRM_SELECT).await;
        if got == want {
            return;
        }
        if Instant::now() > deadline {
            for (g, w) in got.iter().zip(want) {
                for (i, (x, y)) in g.iter().zip(w).enumerate() {
                    assert_eq!(
                        x,
                        y,
                        "column {} differs\nlog:\n{}",
                        COLUMNS.get(i).unwrap_or(&"?"),
                        tail(&b.log(), 20)
                    );
                }
            }
            panic!("rows: {got:?}\nlog:\n{}", tail(&b.log(), 20));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
