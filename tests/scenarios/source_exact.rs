//! The MariaDB binlog source reads every value exactly, or refuses it (issue 14 item 6).
//!
//! Exact or refused: a value either arrives in PostgreSQL as the ERP holds it (read back on both
//! sides and compared) or its row goes to the dead-letter queue with a reason that names the
//! table, key and column and never the value. The reference for text is MariaDB's own
//! conversion: a utf8mb4 client reads every column through `CONVERT(x USING utf8mb4)`.

use std::collections::HashMap;
use std::time::Duration;

use rowbridge::source::mysql::{charset_name, Charset};

use crate::support::bridge::{tail, Bridge, Rows};
use crate::support::{mariadb, wait_until};

fn mapping(table: &str, columns: &[&str]) -> String {
    let cols: String = columns.iter().map(|c| format!("{c} = \"{c}\"\n")).collect();
    format!("key = [\"id\"]\n[source]\nendpoint = \"erp\"\ntable = \"{table}\"\n[target]\nendpoint = \"crm\"\ntable = \"{table}\"\n[columns]\n{cols}")
}

/// Dead letters by key, read while the daemon runs.
fn dead_letters(b: &Bridge) -> HashMap<String, serde_json::Value> {
    let out = b.cli(&["dlq", "list", "-o", "json"]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    all.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|d| (d["key"].as_str().unwrap_or_default().to_string(), d))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collation_ids_and_code_pages_match_the_server() {
    let my = mariadb();
    let rows: Vec<(u64, String)> = my
        .query(
            "",
            "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY",
        )
        .await;
    assert!(rows.len() > 300, "{} collations", rows.len());
    for (id, name) in &rows {
        assert_eq!(
            charset_name(*id as u16),
            Some(name.as_str()),
            "collation {id}"
        );
    }
    // Every high byte of every single-byte set: the same character as the server's CONVERT,
    // or refused where the server has none (it gives '?').
    for (cs, collation) in [
        ("latin1", 8u16),
        ("cp1256", 57),
        ("greek", 25),
        ("hebrew", 16),
        ("koi8r", 7),
    ] {
        let exprs: Vec<String> = (0x80..=0xffu8)
            .map(|b| format!("HEX(CONVERT(_{cs} x'{b:02X}' USING utf8mb4))"))
            .collect();
        let sql = format!("SELECT CONCAT_WS(',', {})", exprs.join(", "));
        let hex: Option<String> = my.query_first("", &sql).await;
        for (i, h) in hex.unwrap().split(',').enumerate() {
            let byte = 0x80 + i as u8;
            let server = String::from_utf8(
                (0..h.len())
                    .step_by(2)
                    .map(|j| u8::from_str_radix(&h[j..j + 2], 16).unwrap())
                    .collect(),
            )
            .unwrap();
            let ours = Charset::of_collation(collation).decode(&[byte]);
            match ours {
                Ok(text) => assert_eq!(text, server, "{cs} byte {byte:#x}"),
                Err(_) => assert_eq!(server, "?", "{cs} byte {byte:#x} is defined on the server"),
            }
        }
    }
}

const SEEN_ERP: &str = "
CREATE TABLE seen (
    id INT PRIMARY KEY,
    l1 VARCHAR(40) CHARACTER SET latin1,
    e1 ENUM('café', 'Mél', 'x') CHARACTER SET latin1,
    ar VARCHAR(40) CHARACTER SET cp1256,
    t4 TEXT CHARACTER SET utf8mb4
) DEFAULT CHARSET=utf8mb4;";

const SEEN_CRM: &str =
    "CREATE TABLE seen (id integer PRIMARY KEY, l1 text, e1 text, ar text, t4 text);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latin1_and_cp1256_text_arrives_exactly() {
    let cols = ["id", "l1", "e1", "ar", "t4"];
    let m = mapping("seen", &cols);
    let mut b = Bridge::new("src_seen", SEEN_CRM, SEEN_ERP, &[("seen", &m)]).await;
    b.start_ready().await;
    // Row 1 stores the latin1 bytes 4D C3 A9 6C: the four characters "MÃ©l".
    b.erp_exec(
        "INSERT INTO seen VALUES (1, _latin1 x'4DC3A96C', 'Mél', 'مرحبا بالعالم', 'MÃ©l');
         INSERT INTO seen VALUES (2, 'Mél', 'café', '100 ريال، ؟', 'é🎉');
         INSERT INTO seen VALUES (3, 'café', 'x', 'ok', NULL);
         INSERT INTO seen VALUES (4, '€100', NULL, NULL, NULL);
         INSERT INTO seen VALUES (5, _latin1 x'819D', NULL, NULL, NULL);",
    )
    .await;
    let want: Rows = [
        ["1", "MÃ©l", "Mél", "مرحبا بالعالم", "MÃ©l"],
        ["2", "Mél", "café", "100 ريال، ؟", "é🎉"],
        ["3", "café", "x", "ok", ""],
        ["4", "€100", "", "", ""],
        ["5", "\u{81}\u{9d}", "", "", ""],
    ]
    .iter()
    .map(|r| {
        r.iter()
            .map(|v| (!v.is_empty()).then(|| v.to_string()))
            .collect()
    })
    .collect();
    let sql = "SELECT id::text, l1, e1, ar, t4 FROM seen ORDER BY id";
    wait_until("the seen rows arrive", Duration::from_secs(30), || async {
        b.crm_rows(sql).await == want
    })
    .await;
    // The server's own reading of the same bytes agrees.
    assert_eq!(
        b.erp_rows("SELECT CAST(id AS CHAR), l1, e1, ar, t4 FROM seen ORDER BY id")
            .await,
        want
    );
    assert!(dead_letters(&b).is_empty(), "{}", tail(&b.log(), 20));

    // A byte cp1256 leaves undefined is refused, by column and key.
    b.erp_exec("INSERT INTO seen VALUES (6, 'ok', NULL, _cp1256 x'418A', NULL);")
        .await;
    wait_until(
        "row 6 is dead-lettered",
        Duration::from_secs(30),
        || async { dead_letters(&b).contains_key("6") },
    )
    .await;
    let d = &dead_letters(&b)["6"];
    assert_eq!(d["table"], format!("erp:{}.seen", b.erp), "{d}");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("column 'ar'") && reason.contains("cp1256"),
        "{reason}"
    );
    assert!(!reason.contains("8A") && !reason.contains("8a"), "{reason}");
    b.stop();
}
