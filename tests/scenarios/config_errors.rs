//! Bad configuration stops the daemon before it moves a row, with exit code 78 and a message
//! that names the file, line and field.

use crate::support::bridge::Bridge;
use crate::support::PgServer;

const CRM: &str = "CREATE TABLE accounts (id bigint PRIMARY KEY, name text);";
const ERP: &str = "CREATE TABLE accounts (id BIGINT PRIMARY KEY, name TEXT);";

fn mapping(extra_column: &str) -> String {
    format!(
        "key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"accounts\"\n[target]\nendpoint = \"erp\"\n\
         table = \"accounts\"\n[columns]\nid = \"id\"\nname = \"name\"\n{extra_column}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_column_stops_check_and_run_with_78() {
    let text = mapping("ghost = \"ghost_col\"");
    let line = text.lines().position(|l| l.starts_with("ghost")).unwrap() + 1;
    let b = Bridge::new("badcol", CRM, ERP, &[("accounts", &text)]).await;
    for cmd in [&["check"][..], &["run"][..]] {
        let out = b.cli(cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{cmd:?}: {stderr}");
        let at = format!("accounts.toml:{line}:");
        assert!(stderr.contains(&at), "{cmd:?} should name {at}: {stderr}");
        assert!(
            stderr.contains("column 'ghost' does not exist in source table"),
            "{cmd:?}: {stderr}"
        );
        assert!(
            stderr.contains("column 'ghost_col' does not exist in target table"),
            "{cmd:?}: {stderr}"
        );
    }
    // Nothing was created on the CRM: run refused before preparing the slot.
    let slots: i64 =
        b.pg.query_scalar(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'",
                b.slot
            ),
        )
        .await;
    assert_eq!(slots, 0);
}

/// With `--log-format json` every line on stderr is a JSON object, the refusal included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_json_lines_to_the_last() {
    let text = mapping("ghost = \"ghost_col\"");
    let b = Bridge::new("jsonlog", CRM, ERP, &[("accounts", &text)]).await;
    let out = b.cli(&["--log-format", "json", "run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    let records: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let refusal = records
        .iter()
        .find(|r| r["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no ERROR record: {stderr}"));
    let message = refusal["message"].as_str().unwrap_or_default();
    assert!(message.contains("accounts.toml:"), "{refusal}");
    assert_eq!(refusal["exit_code"], 78, "{refusal}");
    assert_eq!(refusal["class"], "config", "{refusal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_mapping_file_names_line() {
    let text = mapping("name2 = 42");
    let line = text.lines().position(|l| l.starts_with("name2")).unwrap() + 1;
    let b = Bridge::new("badtoml", CRM, ERP, &[("accounts", &text)]).await;
    let out = b.cli(&["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(&format!("accounts.toml:{line}:")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_level_replica_is_refused_with_the_fix() {
    let server: &'static PgServer = Box::leak(Box::new(PgServer::start_custom(
        "pg_replica",
        &["wal_level=replica"],
    )));
    let b = Bridge::with_pg(server, "walrep", CRM, ERP, &[("accounts", &mapping(""))]).await;
    for cmd in [&["check"][..], &["run"][..]] {
        let out = b.cli(cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{cmd:?}: {stderr}");
        assert!(
            stderr.contains("wal_level is 'replica'"),
            "{cmd:?}: {stderr}"
        );
        assert!(
            stderr.contains("ALTER SYSTEM SET wal_level = logical"),
            "{cmd:?}: {stderr}"
        );
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_without_key_is_refused_with_the_alter_to_run() {
    let crm = "CREATE TABLE accounts (id bigint NOT NULL, name text);";
    let b = Bridge::new("noident", crm, ERP, &[("accounts", &mapping(""))]).await;
    for cmd in [&["check"][..], &["run"][..]] {
        let out = b.cli(cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{cmd:?}: {stderr}");
        assert!(
            stderr.contains("REPLICA IDENTITY DEFAULT and no primary key"),
            "{cmd:?}: {stderr}"
        );
        assert!(
            stderr.contains(r#"ALTER TABLE "public"."accounts" REPLICA IDENTITY FULL"#),
            "{cmd:?}: {stderr}"
        );
    }
}
