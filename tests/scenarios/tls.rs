//! TLS to both databases: verify-full against servers with certificates from a test CA, and
//! a clear refusal when the configured CA did not sign the server's certificate.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::bridge::{tail, Bridge};
use crate::support::{MariaServer, PgServer};

const CRM: &str = "CREATE TABLE parts (code text PRIMARY KEY, name text, qty integer);";
const ERP: &str = "CREATE TABLE parts (code VARCHAR(40) PRIMARY KEY, name TEXT, qty INT);";
const MAPPING: &str = "direction = \"both\"\nkey = [\"code\"]\n[source]\nendpoint = \"crm\"\n\
    table = \"parts\"\n[target]\nendpoint = \"erp\"\ntable = \"parts\"\n[columns]\n\
    code = \"code\"\nname = \"name\"\nqty = \"qty\"\n";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a second unrelated CA, and a server certificate for 127.0.0.1 and localhost signed
/// by the first; the server key readable by the PostgreSQL user.
fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=rowbridge test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = DNS:localhost, IP:127.0.0.1\nbasicConstraints = CA:FALSE\n\
         keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
    if crate::support::is_root() {
        // PostgreSQL runs as nobody and wants its key private to it.
        for f in ["server.key", "server.crt"] {
            std::os::unix::fs::chown(dir.join(f), Some(65534), Some(65534)).unwrap();
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    // The certificate folder must be reachable by the server users.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The bridge's config with a `[tls]` table added to each endpoint.
fn with_tls(b: &Bridge, crm_ca: &Path, erp_ca: &Path) {
    b.write_config("");
    let text = std::fs::read_to_string(&b.config).unwrap();
    let tls = |ca: &Path| {
        format!(
            "tls = {{ mode = \"verify-full\", ca_file = \"{}\" }}\n",
            ca.display()
        )
    };
    let text = text
        .replace(
            "[endpoints.crm]\n",
            &format!("[endpoints.crm]\n{}", tls(crm_ca)),
        )
        .replace(
            "[endpoints.erp]\n",
            &format!("[endpoints.erp]\n{}", tls(erp_ca)),
        );
    std::fs::write(&b.config, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_to_both_databases_and_a_wrong_ca_is_refused() {
    let certs = crate::support::root_dir().join("tls_certs");
    make_certificates(&certs);
    let cert = |f: &str| certs.join(f).display().to_string();
    let pg: &'static PgServer = Box::leak(Box::new(PgServer::start_custom(
        "pg_tls",
        &[
            "ssl=on",
            &format!("ssl_cert_file={}", cert("server.crt")),
            &format!("ssl_key_file={}", cert("server.key")),
        ],
    )));
    let my: &'static MariaServer = Box::leak(Box::new(MariaServer::start_custom_with(
        "mariadb_tls",
        &[
            &format!("--ssl-cert={}", cert("server.crt")),
            &format!("--ssl-key={}", cert("server.key")),
            &format!("--ssl-ca={}", cert("ca.pem")),
        ],
    )));
    let mut b = Bridge::with_servers(pg, my, "tls", CRM, ERP, &[("parts", MAPPING)]).await;
    // rowbridge's ERP login only works over TLS: a plain connection would be refused.
    my.exec(
        &b.erp,
        &format!("ALTER USER '{}'@'127.0.0.1' REQUIRE SSL", b.erp_user),
    )
    .await;
    let (ca, other) = (certs.join("ca.pem"), certs.join("other-ca.pem"));
    with_tls(&b, &ca, &ca);

    let out = b.cli(&["check"]);
    assert!(
        out.status.success(),
        "check over TLS failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    b.start_ready().await;
    b.crm_exec("INSERT INTO parts VALUES ('c1', 'from crm', 1)")
        .await;
    b.erp_exec("INSERT INTO parts VALUES ('e1', 'from erp', 2)")
        .await;
    b.wait_equal(
        "SELECT code, name, qty::text FROM parts ORDER BY code COLLATE \"C\"",
        "SELECT code, name, qty FROM parts ORDER BY code COLLATE utf8mb4_bin",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        b.crm_rows("SELECT count(*)::text FROM parts").await[0][0].as_deref(),
        Some("2")
    );
    // Every PostgreSQL session of rowbridge (catalog, sink, replication) is encrypted.
    let sessions = b
        .crm_rows(
            "SELECT s.ssl::text, count(*)::text FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'rowbridge' \
             GROUP BY s.ssl ORDER BY 1",
        )
        .await;
    assert_eq!(sessions.len(), 1, "rowbridge sessions by ssl: {sessions:?}");
    assert_eq!(sessions[0][0].as_deref(), Some("true"), "{sessions:?}");
    assert_eq!(b.stop(), Some(0), "{}", tail(&b.log(), 20));

    // A CA that did not sign the server's certificate: refused, saying so, per endpoint.
    for (endpoint, crm_ca, erp_ca) in [("crm", &other, &ca), ("erp", &ca, &other)] {
        with_tls(&b, crm_ca, erp_ca);
        let out = b.cli(&["check"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{text}");
        let expected = format!(
            "endpoint {endpoint}: TLS: the server's certificate is not signed by a CA in tls.ca_file ({})",
            other.display()
        );
        assert!(
            text.contains(&expected),
            "expected «{expected}» in:\n{text}"
        );
    }
}
