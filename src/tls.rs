//! TLS to the databases: one place that turns an endpoint's `[tls]` settings into what each
//! driver wants, and turns a failed handshake into an error that says what to fix.
//!
//! Only the CA file named in the config is trusted (never the system's roots, which would let
//! any public CA vouch for a database). `verify-full` also checks that the certificate names
//! the configured host; `verify-ca` checks the chain only. Everything runs on rustls with the
//! ring provider.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::config::{EndpointConfig, TlsMode};
use crate::error::{Error, Result};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Make ring the process's rustls provider, for the drivers that ask rustls for the default.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn tls_error(endpoint: &str, message: String) -> Error {
    Error::Tls {
        endpoint: endpoint.to_string(),
        message,
    }
}

/// The certificates of a CA file; an unreadable file or one without a certificate is an error
/// naming the file.
pub fn read_ca_file(endpoint: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let field = format!("endpoints.{endpoint}.tls.ca_file");
    let bytes = std::fs::read(path).map_err(|e| Error::ConfigFile {
        path: path.to_path_buf(),
        message: format!("{field}: cannot read: {e}"),
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            message: format!("{field}: not a PEM certificate file: {e}"),
        })?;
    if certs.is_empty() {
        return Err(Error::ConfigFile {
            path: path.to_path_buf(),
            message: format!("{field}: no certificate in the file"),
        });
    }
    Ok(certs)
}

/// The rustls client settings of an endpoint, `None` when TLS is off.
pub fn client_config(endpoint: &str, cfg: &EndpointConfig) -> Result<Option<ClientConfig>> {
    let Some(ca_file) = cfg.tls.ca_file.as_deref() else {
        return Ok(None);
    };
    if cfg.tls.mode == TlsMode::Disable {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    for cert in read_ca_file(endpoint, ca_file)? {
        roots.add(cert).map_err(|e| Error::ConfigFile {
            path: ca_file.to_path_buf(),
            message: format!("endpoints.{endpoint}.tls.ca_file: unusable certificate: {e}"),
        })?;
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| tls_error(endpoint, format!("cannot build the verifier: {e}")))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(endpoint, e.to_string()))?;
    let config = match cfg.tls.mode {
        TlsMode::VerifyFull => builder.with_webpki_verifier(webpki).with_no_client_auth(),
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
            .with_no_client_auth(),
    };
    Ok(Some(config))
}

/// verify-ca: the chain must lead to the CA file; the name in the certificate is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The SSL options of a MySQL/MariaDB endpoint, `None` when TLS is off.
pub fn mysql_opts(cfg: &EndpointConfig) -> Option<mysql_async::SslOpts> {
    let ca = cfg.tls.ca_file.clone()?;
    if cfg.tls.mode == TlsMode::Disable {
        return None;
    }
    Some(
        mysql_async::SslOpts::default()
            .with_root_certs(vec![ca.into()])
            .with_disable_built_in_roots(true)
            .with_danger_skip_domain_validation(cfg.tls.mode == TlsMode::VerifyCa),
    )
}

/// The pgwire-replication TLS settings of a PostgreSQL endpoint.
pub fn replication_config(cfg: &EndpointConfig) -> pgwire_replication::TlsConfig {
    match (cfg.tls.mode, cfg.tls.ca_file.clone()) {
        // The name to verify is the host as configured, an IP address included (the
        // certificate then needs it as an IP subjectAltName, as for the other connections).
        (TlsMode::VerifyFull, Some(ca)) => {
            pgwire_replication::TlsConfig::verify_full(Some(ca)).with_sni_hostname(&cfg.host)
        }
        (TlsMode::VerifyCa, Some(ca)) => pgwire_replication::TlsConfig::verify_ca(Some(ca)),
        _ => pgwire_replication::TlsConfig::disabled(),
    }
}

/// A driver's error text, when it is a failed TLS handshake, as what the operator should fix.
pub fn explain(text: &str, cfg: &EndpointConfig) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let ca = cfg
        .tls
        .ca_file
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let why = if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
        format!("the server's certificate is not signed by a CA in tls.ca_file ({ca})")
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        format!(
            "the server's certificate does not name host '{}' (tls.mode = verify-full); connect by a name the certificate lists, or use verify-ca",
            cfg.host
        )
    } else if lower.contains("expired") || lower.contains("notvalidyet") {
        "the server's certificate is expired or not valid yet".to_string()
    } else if lower.contains("invalid peer certificate") || lower.contains("invalidcertificate") {
        "the server's certificate was refused".to_string()
    } else if lower.contains("server does not support tls")
        || lower.contains("server does not support ssl")
        || lower.contains("does not support ssl")
        || lower.contains("does not have this capability")
    {
        "the server does not offer TLS (enable ssl on the server, or set tls.mode = \"disable\")"
            .to_string()
    } else if lower.contains("tls") {
        "the TLS connection failed".to_string()
    } else {
        return None;
    };
    Some(format!("TLS: {why} ({})", first_line(text)))
}

/// An error and its causes, `a: b: c`, skipping causes its own text already repeats.
pub fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cause = c.source();
    }
    text
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(mode: TlsMode, ca: Option<&str>) -> EndpointConfig {
        let mut ep: EndpointConfig = toml::from_str(
            "kind = \"postgres\"\nhost = \"db.example\"\nuser = \"u\"\ndatabase = \"d\"",
        )
        .unwrap();
        ep.tls.mode = mode;
        ep.tls.ca_file = ca.map(Into::into);
        ep
    }

    #[test]
    fn handshake_failures_say_what_to_fix() {
        let ep = endpoint(TlsMode::VerifyFull, Some("/etc/rowbridge/ca.pem"));
        let m = explain(
            "error performing TLS handshake: invalid peer certificate: UnknownIssuer",
            &ep,
        )
        .unwrap();
        assert!(
            m.contains("not signed by a CA in tls.ca_file (/etc/rowbridge/ca.pem)"),
            "{m}"
        );
        let m = explain("invalid peer certificate: NotValidForName", &ep).unwrap();
        assert!(m.contains("does not name host 'db.example'"), "{m}");
        let m = explain(
            "error performing TLS handshake: server does not support TLS",
            &ep,
        )
        .unwrap();
        assert!(m.contains("does not offer TLS"), "{m}");
        assert_eq!(
            explain("password authentication failed for user \"u\"", &ep),
            None
        );
    }

    #[test]
    fn ca_file_problems_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = read_ca_file("crm", &missing).unwrap_err().to_string();
        assert!(
            err.contains("nope.pem") && err.contains("endpoints.crm.tls.ca_file"),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = read_ca_file("crm", &empty).unwrap_err().to_string();
        assert!(err.contains("no certificate"), "{err}");
    }

    #[test]
    fn disabled_means_no_tls_anywhere() {
        let ep = endpoint(TlsMode::Disable, None);
        assert!(client_config("crm", &ep).unwrap().is_none());
        assert!(mysql_opts(&ep).is_none());
        assert_eq!(
            replication_config(&ep).mode,
            pgwire_replication::SslMode::Disable
        );
    }
}
