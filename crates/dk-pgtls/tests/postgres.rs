//! Every `sslmode` against the real PostgreSQL on 127.0.0.1 (`DK_TEST_PG_URL` overrides it), plus
//! a plain-only front (a loopback relay that declines TLS, as a server without TLS does) for the
//! fallback of `prefer` and the refusal of `require`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;

use dk_pgtls::TlsOptions;
use tokio_postgres::config::Host;
use tokio_postgres::Config;

fn base() -> Config {
    let url = dk_test_support::pg_url();
    let (rest, _, _) = dk_pgtls::split_conn_string(&url);
    let mut c: Config = rest.parse().expect("DK_TEST_PG_URL parses");
    c.connect_timeout(std::time::Duration::from_secs(10));
    c
}

fn upstream() -> (String, u16) {
    let c = base();
    let host = match c.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    (host, c.get_ports().first().copied().unwrap_or(5432))
}

/// The test server's user, database and password at another host and port (`Config::host` adds
/// a host to the list, so a fresh config is built).
fn config(host: &str, port: u16) -> Config {
    let b = base();
    let mut c = Config::new();
    c.host(host)
        .port(port)
        .user(b.get_user().unwrap_or("postgres"))
        .dbname(b.get_dbname().unwrap_or("test"))
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(pw) = b.get_password() {
        c.password(pw);
    }
    c
}

/// The error with its causes (the driver's Display leaves them out).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Connects with `mode`/`rootcert` and returns whether the session is encrypted.
async fn ssl_in_use(c: &Config, mode: &str, rootcert: Option<&str>) -> Result<bool, String> {
    let connector = TlsOptions::new(Some(mode), rootcert)
        .and_then(|t| t.connector())
        .map_err(|e| e.to_string())?;
    let client = connector.connect(c).await.map_err(|e| chain(&e))?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

/// Whether the test server offers TLS, and its certificate file.
async fn server_tls() -> (bool, Option<PathBuf>) {
    let (host, port) = upstream();
    let connector = TlsOptions::new(Some("disable"), None)
        .and_then(|t| t.connector())
        .expect("connector");
    let client = connector
        .connect(&config(&host, port))
        .await
        .unwrap_or_else(|e| dk_test_support::pg_unreachable(e));
    let on: String = client
        .query_one("SHOW ssl", &[])
        .await
        .expect("show ssl")
        .get(0);
    let cert: String = client
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .expect("show ssl_cert_file")
        .get(0);
    let cert = PathBuf::from(cert);
    (on == "on", cert.is_file().then_some(cert))
}

/// A loopback relay to the test server that declines TLS (answers `N` to SSLRequest), as a server
/// built or configured without TLS does. Returns its port; serves until the test process ends.
fn plain_only_front() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let port = listener.local_addr().expect("addr").port();
    let (host, up_port) = upstream();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let (host, up_port) = (host.clone(), up_port);
            std::thread::spawn(move || {
                let mut head = [0u8; 8];
                if client.read_exact(&mut head).is_err() {
                    return;
                }
                let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
                let Ok(mut server) = TcpStream::connect((host.as_str(), up_port)) else {
                    return;
                };
                if code == 80_877_103 || code == 80_877_104 {
                    // SSLRequest / GSSENCRequest: "not supported here".
                    if client.write_all(b"N").is_err() {
                        return;
                    }
                } else if server.write_all(&head).is_err() {
                    return;
                }
                let (mut c2, mut s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => return,
                };
                let up = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut s2);
                    let _ = s2.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Write);
                let _ = up.join();
            });
        }
    });
    port
}

#[tokio::test]
async fn modes_against_the_test_server() {
    let (tls_on, cert) = server_tls().await;
    let (host, port) = upstream();
    let c = config(&host, port);
    assert_eq!(ssl_in_use(&c, "disable", None).await, Ok(false));
    assert_eq!(ssl_in_use(&c, "allow", None).await, Ok(false));
    if !tls_on {
        // A server without TLS: prefer falls back, require fails.
        assert_eq!(ssl_in_use(&c, "prefer", None).await, Ok(false));
        let err = ssl_in_use(&c, "require", None).await.expect_err("require");
        assert!(err.contains("TLS"), "{err}");
        return;
    }
    assert_eq!(ssl_in_use(&c, "prefer", None).await, Ok(true));
    assert_eq!(ssl_in_use(&c, "require", None).await, Ok(true));
    // The server's certificate is self-signed: not trusted by the system roots.
    let err = ssl_in_use(&c, "verify-full", None)
        .await
        .expect_err("untrusted");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let Some(cert) = cert else {
        panic!("the server has TLS on but its ssl_cert_file is not readable here");
    };
    let cert = cert.to_str().expect("utf-8 path");
    // Trusting its certificate: verify-ca passes whatever the host name; verify-full needs the
    // name in the certificate (Debian's snakeoil names `localhost`, not 127.0.0.1).
    assert_eq!(ssl_in_use(&c, "verify-ca", Some(cert)).await, Ok(true));
    assert_eq!(ssl_in_use(&c, "require", Some(cert)).await, Ok(true));
    let by_ip = config("127.0.0.1", port);
    let err = ssl_in_use(&by_ip, "verify-full", Some(cert))
        .await
        .expect_err("127.0.0.1 is not the certificate's name");
    assert!(
        err.contains("NotValidForName") || err.contains("not valid for name"),
        "{err}"
    );
    let by_name = config("localhost", port);
    assert_eq!(
        ssl_in_use(&by_name, "verify-full", Some(cert)).await,
        Ok(true)
    );
}

#[tokio::test]
async fn without_tls_prefer_falls_back_and_require_fails() {
    server_tls().await; // a clear message when the server is down
    let c = config("127.0.0.1", plain_only_front());
    assert_eq!(ssl_in_use(&c, "disable", None).await, Ok(false));
    assert_eq!(ssl_in_use(&c, "allow", None).await, Ok(false));
    assert_eq!(ssl_in_use(&c, "prefer", None).await, Ok(false));
    for mode in ["require", "verify-ca", "verify-full"] {
        let root = (mode != "require").then_some("/etc/ssl/certs/ca-certificates.crt");
        let root = root.filter(|p| std::path::Path::new(p).is_file());
        let err = ssl_in_use(&c, mode, root).await.expect_err(mode);
        assert!(err.contains("TLS"), "{mode}: {err}");
    }
}
