//! `sslmode` of PostgreSQL stores and of the PostgreSQL state backend, through the CLI: against
//! the real server and against a plain-only front of it (a relay that declines TLS, as a server
//! without TLS does).

mod common;
mod pgproject;

use pgproject::*;

#[test]
fn prefer_falls_back_to_plain_and_require_fails_naming_the_store() {
    let db = TestDb::new("tls");
    let (_tmp, p) = project(&db, StateKind::Local);
    let plain = plain_only_front();
    set_prod_connection(&p, plain, "prefer");
    let (code, out, err) = dk_in(&p, &db, &["plan", "-e", "prod"]);
    assert_eq!(code, 0, "prefer falls back to plain: {out}{err}");
    assert!(out.contains("Plan: 3 to add"), "{out}");

    let (_tmp2, p2) = project(&db, StateKind::Local);
    set_prod_connection(&p2, plain, "require");
    let (code, out, err) = dk_in(&p2, &db, &["plan", "-e", "prod"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("warehouse") && err.contains("TLS") && err.contains("sslmode=require"),
        "the error names the store, TLS and the mode: {err}"
    );

    let (_tmp3, p3) = project(&db, StateKind::Local);
    set_prod_connection(&p3, plain, "disable");
    let (code, out, err) = dk_in(&p3, &db, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "disable: {out}{err}");

    let (_tmp4, p4) = project(&db, StateKind::Local);
    set_prod_connection(&p4, 5432, "on");
    let (code, out, err) = dk_in(&p4, &db, &["plan", "-e", "prod"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("warehouse") && err.contains("verify-full"),
        "an unknown sslmode is refused, listing the valid ones: {err}"
    );
}

#[test]
fn require_uses_tls_when_the_server_offers_it() {
    let db = TestDb::new("tls");
    let tls_on = pg(&db.0, "SHOW ssl")[0][0].as_deref() == Some("on");
    let (_tmp, p) = project(&db, StateKind::Local);
    set_prod_connection(&p, 5432, "require");
    let (code, out, err) = dk_in(&p, &db, &["apply", "-e", "prod", "--auto-approve"]);
    if tls_on {
        assert_eq!(code, 0, "{out}{err}");
        let (code, out, err) = dk_in(&p, &db, &["plan", "-e", "prod", "--detailed-exitcode"]);
        assert_eq!(code, 0, "{out}{err}");
    } else {
        assert_eq!(code, 1, "a server without TLS refuses require: {out}{err}");
        assert!(err.contains("warehouse") && err.contains("TLS"), "{err}");
    }
}

#[test]
fn state_backend_url_honours_sslmode() {
    let db = TestDb::new("tls");
    let (_tmp, p) = project(&db, StateKind::Postgres);
    let plain = plain_only_front();
    let url = |mode: &str| {
        format!(
            "host=127.0.0.1 port={plain} user=postgres dbname={} sslmode={mode}",
            db.0
        )
    };
    let run = |mode: &str, args: &[&str]| {
        let out = dk_cmd(&p, &db)
            .env("DK_TEST_STATE_URL", url(mode))
            .args(args)
            .output()
            .expect("run dk");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run("prefer", &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "prefer falls back to plain: {out}{err}");
    let (code, out, err) = run("require", &["state", "list", "-e", "prod"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("state backend") && err.contains("TLS") && err.contains("sslmode=require"),
        "{err}"
    );
    let (code, out, err) = run("verify-sometimes", &["state", "list", "-e", "prod"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("stateBackend") && err.contains("verify-full"),
        "{err}"
    );
}
