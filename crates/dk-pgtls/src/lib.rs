//! `dk-pgtls` owns TLS for every PostgreSQL connection dk opens (stores and the PostgreSQL state
//! backend): libpq's `sslmode` semantics implemented over `rustls` with the `ring` crypto provider
//! and `tokio-postgres-rustls`.
//!
//! | `sslmode` | what dk does |
//! |---|---|
//! | `disable` | plain TCP, never TLS |
//! | `allow` | plain first; TLS (unverified) only if the server refuses the plain connection |
//! | `prefer` (default) | TLS when the server offers it (certificate not verified), plain otherwise |
//! | `require` | TLS or fail; the certificate is not verified unless `sslrootcert` is set (then as `verify-ca`, like libpq) |
//! | `verify-ca` | TLS or fail; the server's chain must lead to a trusted root (`sslrootcert`, else the system roots) |
//! | `verify-full` | `verify-ca` plus the certificate must name the host connected to |
//!
//! `sslrootcert` is a PEM file of trusted root certificates; without it the verifying modes use
//! the operating system's roots (`rustls-native-certs`). Connection strings (libpq `key=value` or
//! `postgresql://…?sslmode=…` URLs) may carry both; [`split_conn_string`] takes them out because
//! `tokio-postgres` does not parse `allow`, `verify-ca`, `verify-full` or `sslrootcert`.
//!
//! Errors say what is wrong; callers add which store or state backend they were connecting to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    Allow,
    /// libpq's default.
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// Parses a libpq `sslmode` value.
    pub fn parse(s: &str) -> Result<SslMode, TlsError> {
        Ok(match s.trim() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(TlsError::InvalidMode(other.to_string())),
        })
    }

    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The closest mode of the driver (which only knows disable/prefer/require).
    pub fn driver_mode(self) -> DriverSslMode {
        match self {
            SslMode::Disable | SslMode::Allow => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        }
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of TLS set-up (before any connection is attempted).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("sslmode={0:?} is not a PostgreSQL sslmode (disable, allow, prefer, require, verify-ca, verify-full)")]
    InvalidMode(String),
    #[error("sslrootcert {path}: {message}")]
    RootCert { path: PathBuf, message: String },
    #[error("sslmode={mode} needs trusted root certificates, but none were found in the system store ({message}); set sslrootcert to a PEM file with the server's CA")]
    NoRoots { mode: SslMode, message: String },
    #[error("cannot set up TLS: {0}")]
    Rustls(String),
}

/// TLS settings of one connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsOptions {
    pub mode: SslMode,
    /// `sslrootcert`: PEM file of trusted roots.
    pub root_cert: Option<PathBuf>,
}

impl TlsOptions {
    /// From optional `sslmode` / `sslrootcert` values (`None` mode = `prefer`).
    pub fn new(mode: Option<&str>, root_cert: Option<&str>) -> Result<TlsOptions, TlsError> {
        Ok(TlsOptions {
            mode: mode.map(SslMode::parse).transpose()?.unwrap_or_default(),
            root_cert: root_cert
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        })
    }

    /// Builds the connector (reads `sslrootcert` or the system roots when verifying).
    pub fn connector(&self) -> Result<PgConnector, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verify = match (self.mode, &self.root_cert) {
            (SslMode::VerifyFull, _) => Some(true),
            (SslMode::VerifyCa, _) | (SslMode::Require, Some(_)) => Some(false),
            _ => None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match verify {
            None => Arc::new(NoVerification(provider.clone())),
            Some(check_name) => {
                let roots = match &self.root_cert {
                    Some(path) => roots_from_file(path)?,
                    None => system_roots(self.mode)?,
                };
                let inner =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| TlsError::Rustls(e.to_string()))?;
                if check_name {
                    inner as Arc<dyn ServerCertVerifier>
                } else {
                    Arc::new(ChainOnly(inner))
                }
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(PgConnector {
            mode: self.mode,
            tls: MakeRustlsConnect::new(config),
        })
    }
}

/// The connection type of [`PgConnector::connect_raw`] (plain or TLS, one type).
pub type Connection =
    tokio_postgres::Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

/// Opens PostgreSQL connections with one [`TlsOptions`].
#[derive(Clone)]
pub struct PgConnector {
    mode: SslMode,
    tls: MakeRustlsConnect,
}

impl std::fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnector")
            .field("mode", &self.mode)
            .finish()
    }
}

impl PgConnector {
    /// The `sslmode` this connector implements.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// Connects; the caller drives the returned connection (or use [`connect`](Self::connect)).
    pub async fn connect_raw(
        &self,
        config: &Config,
    ) -> Result<(Client, Connection), tokio_postgres::Error> {
        let mut config = config.clone();
        config.ssl_mode(self.mode.driver_mode());
        let first = config.connect(self.tls.clone()).await;
        match first {
            // allow: plain was refused by the server (e.g. a `hostssl` rule): try TLS.
            Err(e) if self.mode == SslMode::Allow && e.as_db_error().is_some() => {
                config.ssl_mode(DriverSslMode::Require);
                config.connect(self.tls.clone()).await
            }
            other => other,
        }
    }

    /// Connects and drives the connection on the current tokio runtime.
    pub async fn connect(&self, config: &Config) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = self.connect_raw(config).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let err = |message: String| TlsError::RootCert {
        path: path.to_path_buf(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(format!("cannot read it ({e})")))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(err("holds no PEM certificate".into()));
    }
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .map_err(|e| err(format!("unusable certificate ({e})")))?;
    }
    Ok(roots)
}

fn system_roots(mode: SslMode) -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let message = found
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(TlsError::NoRoots {
            mode,
            message: if message.is_empty() {
                "the store is empty".into()
            } else {
                message
            },
        });
    }
    Ok(roots)
}

/// `prefer`/`require` without a root certificate: encrypt, do not authenticate the server (as
/// libpq). Handshake signatures are still checked.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The TLS keys dk takes out of connection strings.
const TLS_KEYS: [&str; 2] = ["sslmode", "sslrootcert"];

/// Splits a connection string (libpq `key=value` pairs or a `postgresql://` URL) into the string
/// without `sslmode`/`sslrootcert` (for `tokio_postgres::Config`'s parser) and their values.
pub fn split_conn_string(s: &str) -> (String, Option<String>, Option<String>) {
    let trimmed = s.trim();
    let mut found: [Option<String>; 2] = [None, None];
    let slot = |k: &str| TLS_KEYS.iter().position(|t| *t == k);
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        let Some((base, query)) = trimmed.split_once('?') else {
            return (trimmed.to_string(), None, None);
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| {
                if let Some((k, v)) = kv.split_once('=') {
                    if let Some(i) = slot(k) {
                        found[i] = Some(percent_decode(v));
                        return false;
                    }
                }
                !kv.is_empty()
            })
            .collect();
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let [mode, root] = found;
        return (rest, mode, root);
    }
    let mut rest = String::with_capacity(s.len());
    let mut i = 0;
    let bytes = s.as_bytes();
    'outer: while i < s.len() {
        let at_word_start = i == 0 || bytes[i - 1].is_ascii_whitespace();
        if at_word_start {
            for (k, key) in TLS_KEYS.iter().enumerate() {
                if !s[i..].starts_with(key) {
                    continue;
                }
                let after = &s[i + key.len()..];
                let Some(v) = after.trim_start().strip_prefix('=') else {
                    continue;
                };
                let v = v.trim_start();
                let quoted = v.starts_with('\'');
                let body = if quoted { &v[1..] } else { v };
                let end = body
                    .find(|c: char| {
                        if quoted {
                            c == '\''
                        } else {
                            c.is_ascii_whitespace()
                        }
                    })
                    .unwrap_or(body.len());
                found[k] = Some(body[..end].to_string());
                // `body` is a suffix of `s`: continue after the value (and its closing quote).
                i = s.len() - body.len() + end + usize::from(quoted && end < body.len());
                continue 'outer;
            }
        }
        let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
        rest.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    let [mode, root] = found;
    (rest, mode, root)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_map_to_the_driver() {
        for m in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            assert_eq!(SslMode::parse(m).expect(m).as_str(), m);
        }
        assert!(matches!(
            SslMode::parse("on"),
            Err(TlsError::InvalidMode(m)) if m == "on"
        ));
        assert_eq!(SslMode::VerifyCa.driver_mode(), DriverSslMode::Require);
        assert_eq!(SslMode::Allow.driver_mode(), DriverSslMode::Disable);
        assert_eq!(
            TlsOptions::new(None, None).expect("default").mode,
            SslMode::Prefer
        );
    }

    #[test]
    fn split_takes_tls_keys_out_of_key_value_strings() {
        let (rest, mode, root) = split_conn_string(
            "host=db sslmode=verify-full dbname=app sslrootcert='/etc/my ca.pem' user=u",
        );
        assert_eq!(rest, "host=db  dbname=app  user=u");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/etc/my ca.pem"));
        let (rest, mode, _) = split_conn_string("host=h sslmode = 'verify-ca'");
        assert_eq!(
            (rest.as_str(), mode.as_deref()),
            ("host=h ", Some("verify-ca"))
        );
        let (rest, mode, root) = split_conn_string("host=db user=u");
        assert_eq!((rest.as_str(), mode, root), ("host=db user=u", None, None));
        // Keys that merely start alike are kept.
        let (rest, mode, _) = split_conn_string("sslmodex=1 host=h");
        assert_eq!((rest.as_str(), mode), ("sslmodex=1 host=h", None));
    }

    #[test]
    fn split_takes_tls_keys_out_of_urls() {
        let (rest, mode, root) = split_conn_string(
            "postgresql://u@db:5432/app?sslmode=verify-ca&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
        );
        assert_eq!(rest, "postgresql://u@db:5432/app?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-ca"));
        assert_eq!(root.as_deref(), Some("/tmp/ca.pem"));
        let (rest, mode, _) = split_conn_string("postgres://db/app?sslmode=require");
        assert_eq!(
            (rest.as_str(), mode.as_deref()),
            ("postgres://db/app", Some("require"))
        );
    }

    #[test]
    fn a_bad_root_certificate_file_is_a_clear_error() {
        let tmp = std::env::temp_dir().join(format!("dk-pgtls-{}.pem", std::process::id()));
        std::fs::write(&tmp, "not a certificate").expect("write");
        let opts = TlsOptions::new(Some("verify-full"), tmp.to_str()).expect("options");
        let err = opts.connector().expect_err("no certificate in the file");
        assert!(
            err.to_string().contains("holds no PEM certificate"),
            "{err}"
        );
        std::fs::remove_file(&tmp).ok();
        let opts =
            TlsOptions::new(Some("verify-ca"), Some("/nonexistent/ca.pem")).expect("options");
        let err = opts.connector().expect_err("missing file");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        // Modes that do not verify need no roots.
        TlsOptions::new(Some("require"), None)
            .expect("options")
            .connector()
            .expect("require builds without roots");
    }
}
