//! Exact or refused: every value either arrives exactly as the source has it, or its row goes
//! to the dead-letter queue with a reason naming the column and why, never the value. Never
//! rounded, truncated, re-encoded, or written over another row, and a refused row never stops
//! the flow.

use std::time::Duration;

use serde_json::Value as Json;

use crate::support::bridge::{tail, Bridge};
use crate::support::wait_until;

const WAIT: Duration = Duration::from_secs(60);

fn mapping(table: &str, target: &str, columns: &[(&str, &str)]) -> String {
    let mut m = format!(
        "key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"{table}\"\n[target]\nendpoint = \"erp\"\ntable = \"{target}\"\n[columns]\n"
    );
    for (s, t) in columns {
        m.push_str(&format!("{s} = \"{t}\"\n"));
    }
    m
}

/// Wait until `sql` on the ERP returns at least one row.
async fn wait_erp(b: &Bridge, what: &str, sql: &str) {
    wait_until(what, WAIT, || async { !b.erp_rows(sql).await.is_empty() }).await;
}

/// The flow's state and last error class from `status` (the daemon is running).
fn flow_state(b: &Bridge) -> (String, Json) {
    let out = b.cli(&["status", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Json = serde_json::from_slice(&out.stdout).unwrap();
    let f = &s["flows"][0];
    (
        f["state"].as_str().unwrap_or_default().to_string(),
        f["last_error"].clone(),
    )
}

/// The dead letters (daemon stopped), sorted by key.
fn dead_letters(b: &Bridge) -> Vec<Json> {
    let out = b.cli(&["dlq", "list", "-o", "json"]);
    let dlq: Json = serde_json::from_slice(&out.stdout).expect("dlq json");
    let mut dlq = dlq.as_array().unwrap().clone();
    dlq.sort_by_key(|d| {
        d["key"]
            .as_str()
            .unwrap_or_default()
            .parse::<i64>()
            .unwrap_or(-1)
    });
    dlq
}

fn reason(d: &Json) -> String {
    d["reason"].as_str().unwrap_or_default().to_string()
}

/// Item 5: `crm_id` is the mapping's key, `email` another unique index. Row 116 with row 1's
/// e-mail must not overwrite row 1 (what ON DUPLICATE KEY UPDATE did): it is refused, naming
/// the index, and later rows and updates flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_unique_key_refuses_instead_of_overwriting() {
    let crm = "CREATE TABLE customers (id integer PRIMARY KEY, email text, name text);";
    let erp = "CREATE TABLE customers (pk INT AUTO_INCREMENT PRIMARY KEY, crm_id INT UNIQUE, \
               email VARCHAR(100) UNIQUE, name VARCHAR(100), note VARCHAR(20) DEFAULT 'erp');";
    let m = mapping(
        "customers",
        "customers",
        &[("id", "crm_id"), ("email", "email"), ("name", "name")],
    );
    let mut b = Bridge::new("x_unique", crm, erp, &[("customers", &m)]).await;
    b.start_ready().await;
    b.crm_exec("INSERT INTO customers VALUES (1, 'a@x', 'First')")
        .await;
    wait_erp(&b, "customer 1", "SELECT 1 FROM customers WHERE crm_id = 1").await;
    let select = "SELECT pk, crm_id, email, name, note FROM customers ORDER BY crm_id";
    let before = b.erp_rows(select).await;
    b.crm_exec("INSERT INTO customers VALUES (116, 'a@x', 'Intruder')")
        .await;
    b.crm_exec("INSERT INTO customers VALUES (2, 'b@x', 'Second')")
        .await;
    b.crm_exec("UPDATE customers SET name = 'First again' WHERE id = 1")
        .await;
    wait_erp(
        &b,
        "row 2 and the update of 1 after the refused row",
        "SELECT 1 FROM customers WHERE crm_id = 2 AND (SELECT name FROM customers WHERE crm_id = 1) = 'First again'",
    )
    .await;
    let after = b.erp_rows(select).await;
    assert_eq!(after.len(), 2, "116 never appears: {after:?}");
    let mut want_one = before[0].clone();
    want_one[3] = Some("First again".into());
    assert_eq!(
        after[0], want_one,
        "customer 1: only its own update arrived"
    );
    assert_eq!(after[1][1].as_deref(), Some("2"));
    let (state, _) = flow_state(&b);
    assert_eq!(state, "streaming", "{}", tail(&b.log(), 20));
    b.stop();
    let dlq = dead_letters(&b);
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0]["key"], "116");
    assert!(
        dlq[0]["table"].as_str().unwrap().ends_with(".customers"),
        "{dlq:?}"
    );
    let r = reason(&dlq[0]);
    assert!(r.contains("unique index 'email'"), "{r}");
    assert!(
        !r.contains("a@x") && !r.contains("Intruder"),
        "no value in the reason: {r}"
    );
    assert!(!b.log().contains("a@x"), "no value in the log");
}

/// Item 7: a decimal MariaDB would round, and integers, text and charsets that do not fit, are
/// dead letters naming table, key and column; the values that fit arrive exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_do_not_fit_are_refused_not_rounded() {
    let crm = "CREATE TABLE items (id integer PRIMARY KEY, c_num numeric, c_small integer, \
               c_name text, c_latin text);";
    let erp = "CREATE TABLE items (id INT PRIMARY KEY, c_num DECIMAL(10,2), c_small SMALLINT, \
               c_name VARCHAR(5), c_latin VARCHAR(20) CHARACTER SET latin1) DEFAULT CHARSET=utf8mb4;";
    let cols = ["id", "c_num", "c_small", "c_name", "c_latin"].map(|c| (c, c));
    let m = mapping("items", "items", &cols);
    let mut b = Bridge::new("x_fit", crm, erp, &[("items", &m)]).await;
    b.start_ready().await;
    b.crm_exec(
        "INSERT INTO items VALUES (1, 1.005, 1, 'a', 'a'), (2, 12345678.1234, 1, 'a', 'a'), \
         (3, 12345678.12, -32768, 'مرحبا', 'café €'), (4, 1.00, 32768, 'a', 'a'), \
         (5, 1, 1, 'abcdef', 'a'), (6, 1, 1, 'a', 'مرحبا'), (7, 1, 1, 'a', '🎉'), \
         (8, -99999999.99, 32767, '🎉🎉🎉🎉🎉', 'Ÿ‰')",
    )
    .await;
    b.crm_exec("INSERT INTO items VALUES (9, 0, 0, 'last', 'last')")
        .await;
    wait_erp(&b, "the last row", "SELECT 1 FROM items WHERE id = 9").await;
    let got = b
        .erp_rows("SELECT id, CAST(c_num AS CHAR), c_small, c_name, c_latin FROM items ORDER BY id")
        .await;
    let row = |v: [&str; 5]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            row(["3", "12345678.12", "-32768", "مرحبا", "café €"]),
            row(["8", "-99999999.99", "32767", "🎉🎉🎉🎉🎉", "Ÿ‰"]),
            row(["9", "0.00", "0", "last", "last"]),
        ]
    );
    b.stop();
    let dlq = dead_letters(&b);
    let keys: Vec<&str> = dlq.iter().map(|d| d["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["1", "2", "4", "5", "6", "7"], "{dlq:?}");
    let want = [
        "column 'c_num' decimal(10,2): 3 fractional digits, the column keeps 2",
        "column 'c_num' decimal(10,2): 4 fractional digits, the column keeps 2",
        "column 'c_small' smallint(6)",
        "column 'c_name' varchar(5): 6 characters, the column keeps 5",
        "column 'c_latin' varchar(20): character 1 is not representable in charset latin1",
        "column 'c_latin' varchar(20): character 1 is not representable in charset latin1",
    ];
    for (d, w) in dlq.iter().zip(want) {
        assert!(reason(d).contains(w), "{d:?} should say {w}");
        assert!(d["table"].as_str().unwrap().ends_with(".items"), "{d:?}");
        for value in ["1.005", "12345678", "32768", "abcdef", "مرحبا", "🎉"] {
            assert!(!reason(d).contains(value), "no value in {d:?}");
        }
    }
}

/// Item 8: the ERP table has a NOT NULL column without default the mapping does not carry.
/// Changes to rows that exist arrive; inserts of new rows are dead letters (1364) and the flow
/// keeps streaming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_exist_are_updated_without_the_insert_only_columns() {
    let crm = "CREATE TABLE items (id integer PRIMARY KEY, name text);";
    let erp = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), \
               code VARCHAR(10) NOT NULL);
               INSERT INTO items VALUES (1, 'erp one', 'C1'), (2, 'erp two', 'C2');";
    let m = mapping("items", "items", &[("id", "id"), ("name", "name")]);
    let mut b = Bridge::new("x_notnull", crm, erp, &[("items", &m)]).await;
    b.start_ready().await;
    b.crm_exec("INSERT INTO items VALUES (1, 'one'), (3, 'three')")
        .await;
    b.crm_exec("INSERT INTO items VALUES (2, 'two')").await;
    b.crm_exec("UPDATE items SET name = 'two again' WHERE id = 2")
        .await;
    b.crm_exec("INSERT INTO items VALUES (4, 'four')").await;
    b.crm_exec("UPDATE items SET name = 'one again' WHERE id = 1")
        .await;
    wait_erp(
        &b,
        "the last update",
        "SELECT 1 FROM items WHERE id = 1 AND name = 'one again'",
    )
    .await;
    let got = b
        .erp_rows("SELECT id, name, code FROM items ORDER BY id")
        .await;
    let row = |v: [&str; 3]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![row(["1", "one again", "C1"]), row(["2", "two again", "C2"])]
    );
    let (state, last_error) = flow_state(&b);
    assert_eq!(state, "streaming", "{last_error}\n{}", tail(&b.log(), 20));
    b.stop();
    let dlq = dead_letters(&b);
    let keys: Vec<&str> = dlq.iter().map(|d| d["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["3", "4"], "{dlq:?}");
    for d in &dlq {
        assert_eq!(d["class"], "row", "{d:?}");
        let r = reason(d);
        assert!(r.contains("1364") && r.contains("column 'code'"), "{r}");
    }
}

/// The PostgreSQL sink, same rules: another unique index (ON CONFLICT (key) raises on it),
/// numeric precision and scale, smallint range, varchar length (PostgreSQL would cut trailing
/// spaces silently), float digits, and a NOT NULL column without default the mapping does not
/// carry (PostgreSQL checks it before ON CONFLICT): rows that exist are updated, the others
/// are dead letters naming the constraint or column, never the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sink_is_exact_or_refuses_too() {
    let erp = "CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(100), num DECIMAL(20,4), \
               small INT, name VARCHAR(20), dbl DOUBLE) DEFAULT CHARSET=utf8mb4;";
    let crm = "CREATE TABLE customers (id integer PRIMARY KEY, email text UNIQUE, num numeric(10,2), \
               small smallint, name varchar(5), dbl real, code text NOT NULL);
               INSERT INTO customers SELECT g, CASE WHEN g = 1 THEN 'a@x' ELSE 'e' || g || '@x' END, \
               g, g, 'n' || g, g, 'C' || g FROM generate_series(1, 9) g;";
    let m = "key = [\"id\"]\n[source]\nendpoint = \"erp\"\ntable = \"customers\"\n[target]\nendpoint = \"crm\"\ntable = \"customers\"\n[columns]\nid = \"id\"\nemail = \"email\"\nnum = \"num\"\nsmall = \"small\"\nname = \"name\"\ndbl = \"dbl\"\n";
    let mut b = Bridge::new("x_pg", crm, erp, &[("customers", m)]).await;
    b.start_ready().await;
    let select = "SELECT id::text, email, num::text, small::text, name, dbl::text, code FROM customers ORDER BY id";
    let seeded = b.crm_rows(select).await;
    b.erp_exec(
        "INSERT INTO customers VALUES (1, 'a@x', 12345678.12, 32767, 'uno', 1.5), \
         (2, 'a@x', 2, 2, 'n2', 2), (3, 'e3@x', 123456789.5, 3, 'n3', 3), \
         (4, 'e4@x', 1.005, 4, 'n4', 4), (5, 'e5@x', 5, 40000, 'n5', 5), \
         (6, 'e6@x', 6, 6, 'abcdef', 6), (7, 'e7@x', 7, 7, 'abcd  ', 7), \
         (8, 'e8@x', 8, 8, 'n8', 0.1234567891), (10, 'new@x', 10, 10, 'n10', 10)",
    )
    .await;
    b.erp_exec("INSERT INTO customers VALUES (9, 'e9@x', 9.5, -32768, 'مرحبا', 9.25)")
        .await;
    let crm_sql = "SELECT 1 FROM customers WHERE id = 9 AND num = 9.5";
    wait_until("row 9 after the refused ones", WAIT, || async {
        !b.crm_rows(crm_sql).await.is_empty()
    })
    .await;
    let got = b.crm_rows(select).await;
    let mut want = seeded.clone();
    let row = |v: [&str; 7]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
    want[0] = row(["1", "a@x", "12345678.12", "32767", "uno", "1.5", "C1"]);
    want[8] = row(["9", "e9@x", "9.50", "-32768", "مرحبا", "9.25", "C9"]);
    assert_eq!(got, want, "rows 2..8 untouched, 10 never inserted");
    let (state, last_error) = flow_state(&b);
    assert_eq!(state, "streaming", "{last_error}");
    b.stop();
    let dlq = dead_letters(&b);
    let keys: Vec<&str> = dlq.iter().map(|d| d["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["2", "3", "4", "5", "6", "7", "8", "10"], "{dlq:?}");
    let want = [
        "unique constraint \"customers_email_key\"",
        "column 'num' numeric(10,2): 9 integer digits, the column keeps 8",
        "column 'num' numeric(10,2): 3 fractional digits, the column keeps 2",
        "column 'small' smallint: out of the column's range",
        "column 'name' character varying(5): 6 characters, the column keeps 5",
        "column 'name' character varying(5): 6 characters, the column keeps 5",
        "column 'dbl' real: more digits than a single-precision float holds",
        "column \"code\"",
    ];
    for (d, w) in dlq.iter().zip(want) {
        let r = reason(d);
        assert!(r.contains(w), "{d:?} should say {w}");
        assert!(
            d["table"].as_str().unwrap().ends_with(".customers"),
            "{d:?}"
        );
        for value in [
            "a@x",
            "123456789",
            "1.005",
            "40000",
            "abcdef",
            "0.1234567891",
            "new@x",
        ] {
            assert!(!r.contains(value), "no value in {d:?}");
        }
    }
}

/// How a corpus value is compared after it arrived.
#[derive(Clone, Copy)]
enum Cmp {
    /// Text as both sides print it.
    Same,
    /// Decimal numbers (trailing zeros and exponents aside).
    Number,
    /// Single-precision floats.
    F32,
    /// Double-precision floats.
    F64,
    /// JSON documents.
    Json,
    /// Bit strings (leading zeros aside).
    Bits,
}

struct Pair {
    column: &'static str,
    pg_type: &'static str,
    erp_type: &'static str,
    /// How each side prints the column for comparison.
    pg_text: &'static str,
    erp_text: &'static str,
    cmp: Cmp,
    /// (PostgreSQL literal, arrives exactly?)
    values: &'static [(&'static str, bool)],
}

const fn pair(
    column: &'static str,
    pg_type: &'static str,
    erp_type: &'static str,
    cmp: Cmp,
    values: &'static [(&'static str, bool)],
) -> Pair {
    Pair {
        column,
        pg_type,
        erp_type,
        pg_text: "{c}::text",
        erp_text: "CAST({c} AS CHAR)",
        cmp,
        values,
    }
}

fn corpus() -> Vec<Pair> {
    use Cmp::*;
    vec![
        pair(
            "c_tiny",
            "smallint",
            "TINYINT",
            Same,
            &[
                ("-128", true),
                ("127", true),
                ("-129", false),
                ("128", false),
            ],
        ),
        pair(
            "c_umed",
            "integer",
            "MEDIUMINT UNSIGNED",
            Same,
            &[
                ("0", true),
                ("16777215", true),
                ("-1", false),
                ("16777216", false),
            ],
        ),
        pair(
            "c_int",
            "bigint",
            "INT",
            Same,
            &[
                ("-2147483648", true),
                ("2147483647", true),
                ("2147483648", false),
                ("-2147483649", false),
            ],
        ),
        pair(
            "c_ubig",
            "bigint",
            "BIGINT UNSIGNED",
            Same,
            &[("9223372036854775807", true), ("-1", false)],
        ),
        pair(
            "c_small",
            "smallint",
            "SMALLINT",
            Same,
            &[("-32768", true), ("32767", true)],
        ),
        pair(
            "c_num",
            "numeric",
            "DECIMAL(10,2)",
            Number,
            &[
                ("12345678.12", true),
                ("-99999999.99", true),
                ("0.10", true),
                ("7", true),
                ("1.005", false),
                ("12345678.1234", false),
                ("123456789", false),
                ("-123456789.5", false),
                ("'NaN'", false),
            ],
        ),
        pair(
            "c_num_int",
            "numeric",
            "INT",
            Number,
            &[("42.000", true), ("42.5", false)],
        ),
        pair(
            "c_num_dbl",
            "numeric",
            "DOUBLE",
            Number,
            &[("0.1", true), ("0.10000000000000000001", false)],
        ),
        pair(
            "c_dbl_dec",
            "double precision",
            "DECIMAL(10,4)",
            Number,
            &[
                ("0.5", true),
                ("-1234.5678", true),
                ("0.12345", false),
                ("1e10", false),
            ],
        ),
        Pair {
            erp_text: "CAST({c} AS DOUBLE)",
            ..pair(
                "c_real",
                "real",
                "FLOAT",
                F32,
                &[
                    ("1.5", true),
                    ("1.1", true),
                    ("-3.40282e38", true),
                    ("'NaN'", false),
                ],
            )
        },
        pair(
            "c_double",
            "double precision",
            "DOUBLE",
            F64,
            &[
                ("-1e300", true),
                ("0.12345678901234568", true),
                ("5e-324", true),
                ("'Infinity'", false),
            ],
        ),
        Pair {
            pg_text: "{c}::int::text",
            ..pair(
                "c_bool",
                "boolean",
                "TINYINT(1)",
                Same,
                &[("true", true), ("false", true)],
            )
        },
        pair(
            "c_varchar",
            "text",
            "VARCHAR(5)",
            Same,
            &[
                ("'abcde'", true),
                ("'🎉🎉🎉🎉🎉'", true),
                ("'مرحبا'", true),
                ("'abcdef'", false),
                ("'مرحبا!'", false),
                ("'🎉🎉🎉🎉🎉🎉'", false),
            ],
        ),
        pair(
            "c_latin",
            "text",
            "VARCHAR(20) CHARACTER SET latin1",
            Same,
            &[
                ("'café € Ÿ‰'", true),
                ("'مرحبا'", false),
                ("'emoji 🎉'", false),
                ("'Ā'", false),
            ],
        ),
        pair(
            "c_mb3",
            "text",
            "VARCHAR(10) CHARACTER SET utf8mb3",
            Same,
            &[("'عربي'", true), ("'🎉'", false)],
        ),
        pair(
            "c_tinytext",
            "text",
            "TINYTEXT",
            Same,
            &[
                ("repeat('é', 127)", true),
                ("repeat('é', 128)", false),
                ("repeat('🎉', 63)", true),
                ("repeat('🎉', 64)", false),
            ],
        ),
        pair(
            "c_char",
            "text",
            "CHAR(3)",
            Same,
            &[
                ("'abc'", true),
                ("'ab'", true),
                ("'ab '", false),
                ("'abcd'", false),
            ],
        ),
        pair(
            "c_enum",
            "text",
            "ENUM('a','b')",
            Same,
            &[("'a'", true), ("'A'", false), ("'c'", false)],
        ),
        pair(
            "c_set",
            "text",
            "SET('x','y')",
            Same,
            &[
                ("'x,y'", true),
                ("''", true),
                ("'y,x'", false),
                ("'x,z'", false),
            ],
        ),
        pair(
            "c_date",
            "date",
            "DATE",
            Same,
            &[("'0001-01-01'", true), ("'9999-12-31'", true)],
        ),
        Pair {
            pg_text: "to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')",
            erp_text: "DATE_FORMAT({c}, '%Y-%m-%d %H:%i:%s.%f')",
            ..pair(
                "c_dt0",
                "timestamp",
                "DATETIME",
                Same,
                &[
                    ("'2024-01-01 10:00:00'", true),
                    ("'2024-01-01 10:00:00.5'", false),
                    ("'10000-01-01 00:00:00'", false),
                ],
            )
        },
        Pair {
            pg_text: "to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')",
            erp_text: "DATE_FORMAT({c}, '%Y-%m-%d %H:%i:%s.%f')",
            ..pair(
                "c_dt6",
                "timestamp",
                "DATETIME(6)",
                Same,
                &[
                    ("'2024-02-29 23:59:59.999999'", true),
                    ("'0001-01-01 00:00:00'", true),
                ],
            )
        },
        Pair {
            pg_text: "extract(epoch from {c})::numeric(20,6)::text",
            erp_text: "CAST(UNIX_TIMESTAMP({c}) AS CHAR)",
            ..pair(
                "c_stamp",
                "timestamptz",
                "TIMESTAMP(6) NULL",
                Number,
                &[
                    ("'1970-01-01 00:00:01+00'", true),
                    ("'2038-01-19 03:14:07.999999+00'", true),
                    ("'2038-01-19 03:14:08+00'", false),
                    ("'1969-12-31 23:59:59+00'", false),
                ],
            )
        },
        Pair {
            erp_text: "TIME_FORMAT({c}, '%H:%i:%s')",
            ..pair(
                "c_time",
                "time",
                "TIME",
                Same,
                &[("'23:59:59'", true), ("'12:00:00.5'", false)],
            )
        },
        Pair {
            pg_text: "encode({c}, 'hex')",
            erp_text: "LOWER(HEX({c}))",
            ..pair(
                "c_vbin",
                "bytea",
                "VARBINARY(4)",
                Same,
                &[
                    ("'\\x00ff0010'", true),
                    ("'\\x'", true),
                    ("'\\x0001020304'", false),
                ],
            )
        },
        Pair {
            pg_text: "encode({c}, 'hex')",
            erp_text: "LOWER(HEX({c}))",
            ..pair(
                "c_bin",
                "bytea",
                "BINARY(2)",
                Same,
                &[("'\\x0102'", true), ("'\\x01'", false)],
            )
        },
        Pair {
            erp_text: "BIN({c})",
            ..pair(
                "c_bit",
                "bit varying",
                "BIT(3)",
                Bits,
                &[("B'111'", true), ("B'0011'", true), ("B'1000'", false)],
            )
        },
        pair(
            "c_year",
            "integer",
            "YEAR",
            Same,
            &[("2155", true), ("1901", true), ("1900", false)],
        ),
        pair(
            "c_uuid",
            "uuid",
            "CHAR(36)",
            Same,
            &[("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", true)],
        ),
        pair(
            "c_json",
            "jsonb",
            "JSON",
            Json,
            &[("'{\"a\": [1, 2.5], \"s\": \"🎉 عربي\"}'", true)],
        ),
    ]
}

/// For every PostgreSQL -> MariaDB type pair, values at the limits and one past them, one more
/// digit than the column keeps, text in utf8mb4 (Arabic, emoji) and into latin1/utf8mb3
/// columns: each arrives exactly (read back and compared) or is a dead letter naming table,
/// key and column. Zero silent changes, no value in any reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_of_edge_values_arrives_exactly_or_is_refused() {
    let pairs = corpus();
    let crm_cols: Vec<String> = pairs
        .iter()
        .map(|p| format!("{} {}", p.column, p.pg_type))
        .collect();
    let erp_cols: Vec<String> = pairs
        .iter()
        .map(|p| format!("{} {}", p.column, p.erp_type))
        .collect();
    let crm = format!(
        "CREATE TABLE corpus (id integer PRIMARY KEY, {});",
        crm_cols.join(", ")
    );
    let erp = format!(
        "CREATE TABLE corpus (id INT PRIMARY KEY, {}) DEFAULT CHARSET=utf8mb4;",
        erp_cols.join(", ")
    );
    let mut cols = vec![("id", "id")];
    cols.extend(pairs.iter().map(|p| (p.column, p.column)));
    let m = mapping("corpus", "corpus", &cols);
    let mut b = Bridge::new("x_corpus", &crm, &erp, &[("corpus", &m)]).await;
    b.start_ready().await;
    // One row per value, every other column NULL.
    let mut cases = Vec::new();
    let mut inserts = String::new();
    for p in &pairs {
        for (literal, exact) in p.values {
            let id = cases.len() + 1;
            inserts.push_str(&format!(
                "INSERT INTO corpus (id, {}) VALUES ({id}, CAST(({literal}) AS {}));\n",
                p.column, p.pg_type
            ));
            cases.push((id, p, *literal, *exact) as Case);
        }
    }
    b.crm_exec(&inserts).await;
    let last = cases.len() + 1;
    b.crm_exec(&format!("INSERT INTO corpus (id) VALUES ({last})"))
        .await;
    wait_erp(
        &b,
        "the marker row",
        &format!("SELECT 1 FROM corpus WHERE id = {last}"),
    )
    .await;
    let (state, last_error) = flow_state(&b);
    assert_eq!(state, "streaming", "{last_error}");
    b.stop();
    let dlq = dead_letters(&b);
    let problems = corpus_problems(&b, &cases, &dlq).await;
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert_eq!(dlq.len(), cases.iter().filter(|c| !c.3).count(), "{dlq:?}");

    // The same exact values written by a resync into the emptied table: MariaDB's LOAD DATA
    // takes them whole (bits aside: they only travel by number) and they arrive exactly.
    b.start_ready().await;
    let refused: Vec<String> = cases
        .iter()
        .filter(|c| !c.3)
        .map(|c| c.0.to_string())
        .collect();
    b.crm_exec(&format!(
        "DELETE FROM corpus WHERE id IN ({}); UPDATE corpus SET c_bit = NULL; \
         INSERT INTO corpus (id) VALUES ({})",
        refused.join(", "),
        last + 1
    ))
    .await;
    let marker = format!("SELECT 1 FROM corpus WHERE id = {}", last + 1);
    wait_erp(&b, "the second marker row", &marker).await;
    b.erp_exec("DELETE FROM corpus").await;
    crate::support::bridge::resync_and_wait(&b, "corpus").await;
    wait_erp(&b, "the resynced marker row", &marker).await;
    let exact: Vec<Case> = cases.iter().filter(|c| c.3).cloned().collect();
    let problems = corpus_problems(&b, &exact, &[]).await;
    assert!(
        problems.is_empty(),
        "after resync, {} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    let log = b.log();
    for fallback in [
        "bulk load incomplete",
        "bulk load refused",
        "resync writes with upserts",
    ] {
        assert!(
            !log.contains(fallback),
            "the resync was bulk loaded: {fallback}\n{}",
            tail(&log, 20)
        );
    }
    b.stop();
}

/// (row id, type pair, PostgreSQL literal, arrives exactly?)
type Case<'a> = (usize, &'a Pair, &'a str, bool);

/// What is wrong with each case: each value arrived exactly (read back from both sides and
/// compared) or its row is a dead letter naming table, key and column, not the value.
async fn corpus_problems(b: &Bridge, cases: &[Case<'_>], dlq: &[Json]) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, p, literal, exact) in cases {
        let pg_sql = format!(
            "SELECT {} FROM corpus WHERE id = {id}",
            p.pg_text.replace("{c}", p.column)
        );
        let erp_sql = format!(
            "SELECT {} FROM corpus WHERE id = {id}",
            p.erp_text.replace("{c}", p.column)
        );
        let source = b.crm_rows(&pg_sql).await[0][0].clone().unwrap_or_default();
        let arrived = b.erp_rows(&erp_sql).await;
        let letter = dlq
            .iter()
            .find(|d| d["key"].as_str() == Some(id.to_string().as_str()));
        let what = format!("{} {literal} (row {id})", p.column);
        match (arrived.first(), letter) {
            (Some(_), Some(d)) => {
                problems.push(format!("{what}: both written and dead-lettered: {d}"))
            }
            (None, None) => problems.push(format!("{what}: neither written nor dead-lettered")),
            (Some(row), None) => {
                let target = row[0].clone().unwrap_or_default();
                if !same(p.cmp, &source, &target) {
                    problems.push(format!(
                        "{what}: SILENTLY CHANGED: source {source:?}, target {target:?}"
                    ));
                } else if !exact {
                    problems.push(format!("{what}: expected a refusal, arrived exactly"));
                }
            }
            (None, Some(d)) => {
                let r = reason(d);
                if !r.contains(p.column) {
                    problems.push(format!("{what}: the reason does not name the column: {r}"));
                }
                if !d["table"].as_str().unwrap_or_default().ends_with(".corpus") {
                    problems.push(format!(
                        "{what}: the dead letter does not name the table: {d}"
                    ));
                }
                let bare = literal.trim_matches('\'');
                if bare.chars().count() >= 4 && r.contains(bare)
                    || source.len() >= 4 && r.contains(&source)
                {
                    problems.push(format!("{what}: the reason quotes the value: {r}"));
                }
                if *exact {
                    problems.push(format!("{what}: expected to arrive, refused: {r}"));
                }
            }
        }
    }
    problems
}

/// Do `source` (PostgreSQL's text) and `target` (MariaDB's) denote the same value?
fn same(cmp: Cmp, source: &str, target: &str) -> bool {
    match cmp {
        Cmp::Same => source == target,
        Cmp::Number => normal_number(source) == normal_number(target),
        Cmp::F32 => source.parse::<f32>().ok() == target.parse::<f64>().ok().map(|f| f as f32),
        Cmp::F64 => source.parse::<f64>().ok() == target.parse::<f64>().ok(),
        Cmp::Json => {
            serde_json::from_str::<Json>(source).ok() == serde_json::from_str::<Json>(target).ok()
        }
        Cmp::Bits => source.trim_start_matches('0') == target.trim_start_matches('0'),
    }
}

/// A decimal's digits without leading/trailing zeros; exponent forms expanded through f64 only
/// when they have one (MariaDB prints large doubles with an exponent).
fn normal_number(s: &str) -> String {
    let s = if s.contains(['e', 'E']) {
        s.parse::<f64>().map(|f| f.to_string()).unwrap_or_default()
    } else {
        s.to_string()
    };
    let (neg, body) = s
        .strip_prefix('-')
        .map_or((false, s.as_str()), |b| (true, b));
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let (int, frac) = (int.trim_start_matches('0'), frac.trim_end_matches('0'));
    if int.is_empty() && frac.is_empty() {
        return "0".into();
    }
    format!("{}{int}.{frac}", if neg { "-" } else { "" })
}
