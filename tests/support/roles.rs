//! The daemon's least-privilege database accounts, as docs/security.md sets them up.
//!
//! The tests' own code (fixtures, triggers, checks) keeps the superuser; only the daemon's
//! config names these accounts. Each bridge gets its own PostgreSQL role and MariaDB user, with
//! grants derived from its mapping files: what a mapping reads gets SELECT, what it writes gets
//! SELECT, INSERT, UPDATE, DELETE, and the server-level rights only where a flow needs them. A
//! grant the daemon lacks makes a scenario fail, so the whole suite checks the documented set.

use std::collections::BTreeSet;
use std::path::Path;

use super::{MariaServer, PgServer};

/// A table as (schema or database, name).
type Table = (String, String);

/// What one bridge's mappings read and write on the CRM (PostgreSQL, endpoint `crm`) and the
/// ERP (MariaDB, endpoint `erp`).
#[derive(Default, Debug)]
pub struct Plan {
    pub crm_read: BTreeSet<Table>,
    pub crm_write: BTreeSet<Table>,
    pub erp_read: BTreeSet<Table>,
    pub erp_write: BTreeSet<Table>,
    /// Some mapping has `direction = "both"`: conflict handling keeps `rowbridge_progress` in
    /// each target and reads the target's log position.
    pub both: bool,
}

impl Plan {
    /// Reads `dir/*.toml`; the ERP's default database is `erp_db`.
    pub fn from_mappings(dir: &Path, erp_db: &str) -> Plan {
        let mut plan = Plan::default();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return plan;
        };
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            // A malformed file is some test's subject: the daemon rejects it before any grant matters.
            let Ok(doc) = text.parse::<toml::Table>() else {
                continue;
            };
            let both = doc.get("direction").and_then(|d| d.as_str()) == Some("both");
            plan.both |= both;
            let side = |key: &str| -> Option<(String, Table)> {
                let t = doc.get(key)?.as_table()?;
                let endpoint = t.get("endpoint")?.as_str()?.to_string();
                let table = t.get("table")?.as_str()?.to_string();
                let default_ns = if endpoint == "erp" { erp_db } else { "public" };
                let ns = t
                    .get("schema")
                    .and_then(|s| s.as_str())
                    .unwrap_or(default_ns);
                Some((endpoint, (ns.to_string(), table)))
            };
            if let Some((ep, t)) = side("source") {
                plan.add(&ep, t.clone(), both);
                if both {
                    plan.add(&ep, t, false);
                }
            }
            if let Some((ep, t)) = side("target") {
                plan.add(&ep, t.clone(), true);
                if both {
                    plan.add(&ep, t, false);
                }
            }
        }
        plan
    }

    fn add(&mut self, endpoint: &str, table: Table, write: bool) {
        let set = match (endpoint, write) {
            ("crm", false) => &mut self.crm_read,
            ("crm", true) => &mut self.crm_write,
            ("erp", false) => &mut self.erp_read,
            _ => &mut self.erp_write,
        };
        set.insert(table);
    }
}

fn pg_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn pg_table((ns, t): &Table) -> String {
    format!("{}.{}", pg_ident(ns), pg_ident(t))
}

/// Creates the daemon's PostgreSQL role for database `db` and, when the CRM is a source, the
/// publication an administrator creates once (PostgreSQL 15 lets only a table's owner add it).
pub async fn create_pg_role(
    pg: &PgServer,
    db: &str,
    role: &str,
    password: &str,
    plan: &Plan,
    publication: &str,
) {
    let existing = existing_pg_tables(pg, db, plan.crm_read.union(&plan.crm_write)).await;
    let keep = |set: &BTreeSet<Table>| -> Vec<String> {
        set.iter()
            .filter(|t| existing.contains(*t))
            .map(pg_table)
            .collect()
    };
    let (read, write) = (keep(&plan.crm_read), keep(&plan.crm_write));
    let r = pg_ident(role);
    let replication = if read.is_empty() { "" } else { " REPLICATION" };
    let mut sql = vec![format!(
        "CREATE ROLE {r} LOGIN{replication} PASSWORD '{password}'"
    )];
    let schemas: BTreeSet<&String> = existing.iter().map(|(ns, _)| ns).collect();
    for ns in schemas.into_iter().filter(|ns| *ns != "public") {
        sql.push(format!("GRANT USAGE ON SCHEMA {} TO {r}", pg_ident(ns)));
    }
    if !read.is_empty() {
        sql.push(format!("GRANT SELECT ON {} TO {r}", read.join(", ")));
        sql.push(format!(
            "CREATE PUBLICATION {} FOR TABLE {}",
            pg_ident(publication),
            read.join(", ")
        ));
    }
    if !write.is_empty() {
        sql.push(format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {r}",
            write.join(", ")
        ));
        sql.push(format!(
            "GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), \
             pg_replication_origin_oid(text), pg_replication_origin_session_setup(text) TO {r}"
        ));
    }
    if plan.both {
        // rowbridge_progress goes to the first schema of the default search_path, "$user".
        sql.push(format!("CREATE SCHEMA {r} AUTHORIZATION {r}"));
    }
    pg.exec(db, &sql.join(";\n")).await;
}

/// The planned tables that exist (a test may map a missing table on purpose).
async fn existing_pg_tables<'a>(
    pg: &PgServer,
    db: &str,
    tables: impl Iterator<Item = &'a Table>,
) -> BTreeSet<Table> {
    let client = pg.local_client(db).await;
    let mut out = BTreeSet::new();
    for t in tables {
        let sql = "SELECT to_regclass($1) IS NOT NULL";
        let row = client.query_one(sql, &[&pg_table(t)]).await;
        if row.is_ok_and(|r| r.get::<_, bool>(0)) {
            out.insert(t.clone());
        }
    }
    out
}

/// Creates the daemon's MariaDB user `user@127.0.0.1` with grants on database `db`.
pub async fn create_maria_user(
    my: &MariaServer,
    db: &str,
    user: &str,
    password: &str,
    plan: &Plan,
) {
    let account = format!("'{user}'@'127.0.0.1'");
    let mut sql = vec![format!("CREATE USER {account} IDENTIFIED BY '{password}'")];
    let read = existing_maria_tables(my, &plan.erp_read).await;
    let write = existing_maria_tables(my, &plan.erp_write).await;
    if !read.is_empty() {
        // The binlog dump, and SHOW MASTER STATUS: where a first start begins, and the position
        // conflict handling orders writes by (a both-ways mapping's ERP side is a source too).
        sql.push(format!(
            "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {account}"
        ));
    }
    for t in &read {
        sql.push(format!("GRANT SELECT ON {t} TO {account}"));
    }
    for t in &write {
        sql.push(format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO {account}"
        ));
    }
    if plan.both && !write.is_empty() {
        sql.push(format!(
            "GRANT CREATE, SELECT, INSERT, UPDATE ON `{}`.`rowbridge_progress` TO {account}",
            db.replace('`', "``")
        ));
    }
    my.exec("", &sql.join(";\n")).await;
}

/// The planned tables that exist, as quoted `db`.`table` with the server's spelling (grants
/// compare names exactly; mappings may not).
async fn existing_maria_tables(my: &MariaServer, tables: &BTreeSet<Table>) -> Vec<String> {
    let mut out = Vec::new();
    for (db, t) in tables {
        let sql = format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE LOWER(TABLE_SCHEMA) = LOWER('{}') AND LOWER(TABLE_NAME) = LOWER('{}')",
            db.replace('\'', "''"),
            t.replace('\'', "''")
        );
        if let Some((db, t)) = my.query_first::<(String, String)>("", &sql).await {
            let q = |s: &str| format!("`{}`", s.replace('`', "``"));
            out.push(format!("{}.{}", q(&db), q(&t)));
        }
    }
    out
}

/// Sets a new password for both accounts of a bridge.
pub async fn set_passwords(
    pg: &PgServer,
    my: &MariaServer,
    (crm_role, crm_pw): (&str, &str),
    (erp_user, erp_pw): (&str, &str),
) {
    pg.exec(
        "postgres",
        &format!("ALTER ROLE {} PASSWORD '{crm_pw}'", pg_ident(crm_role)),
    )
    .await;
    my.exec(
        "",
        &format!("ALTER USER '{erp_user}'@'127.0.0.1' IDENTIFIED BY '{erp_pw}'"),
    )
    .await;
}
