//! OpenLineage events of the fixture project `tests/fixtures/dbt-shop`: their required fields
//! and facets (schema, columnLineage from `from:` and from SQL), written to a JSON-lines file and
//! POSTed to a local HTTP server started by the test that records the bodies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use dk_runtime::lineage::{self, Emitter, EventType, JobInfo, Observer};
use indexmap::IndexMap;
use serde_json::Value;

fn load() -> (dk_manifest::ProjectModel, dk_env::ResolvedProject) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbt-shop");
    let model = dk_manifest::loader::load(&root).unwrap();
    let env = dk_env::resolve(&model, Some("dev"), &IndexMap::<String, String>::new())
        .unwrap_or_else(|d| panic!("{d:?}"));
    (model, env)
}

/// The required fields of an OpenLineage 2-0-2 RunEvent and of every facet in it.
fn check_event(e: &Value) {
    for k in ["eventTime", "producer", "schemaURL"] {
        assert!(e[k].is_string(), "{k} missing in {e}");
    }
    assert!(
        ["START", "COMPLETE", "FAIL"].contains(&e["eventType"].as_str().unwrap()),
        "{e}"
    );
    chrono::DateTime::parse_from_rfc3339(e["eventTime"].as_str().unwrap()).unwrap();
    uuid::Uuid::parse_str(e["run"]["runId"].as_str().unwrap()).unwrap();
    assert!(e["job"]["namespace"].is_string() && e["job"]["name"].is_string());
    let facets = |v: &Value| {
        if let Some(m) = v["facets"].as_object() {
            for (name, f) in m {
                assert!(f["_producer"].is_string(), "facet {name}: _producer");
                assert!(
                    f["_schemaURL"]
                        .as_str()
                        .unwrap()
                        .starts_with("https://openlineage.io/spec/"),
                    "facet {name}: _schemaURL"
                );
            }
        }
    };
    facets(&e["run"]);
    facets(&e["job"]);
    for side in ["inputs", "outputs"] {
        for d in e[side].as_array().unwrap() {
            assert!(d["namespace"].is_string() && d["name"].is_string(), "{d}");
            facets(d);
        }
    }
}

#[test]
fn sql_transform_events_carry_schema_and_column_lineage() {
    let (model, env) = load();
    let job = JobInfo::for_transform(&model, &env, "summary").unwrap();
    assert!(job
        .sql
        .as_deref()
        .unwrap()
        .contains("\"raw\".\"orders\" where amount > 0"));
    let id = uuid::Uuid::new_v4();
    let e = lineage::event(EventType::Complete, &id, &job, chrono::Utc::now(), None);
    check_event(&e);
    assert_eq!(e["job"]["namespace"], "shop");
    assert_eq!(e["job"]["name"], "summary");
    assert_eq!(e["outputs"][0]["name"], "marts.customer_summary");
    let cl = &e["outputs"][0]["facets"]["columnLineage"]["fields"];
    let one = |col: &str| {
        let f = &cl[col]["inputFields"];
        assert_eq!(f.as_array().map(Vec::len), Some(1), "{col}: {f}");
        (
            f[0]["name"].as_str().unwrap().to_string(),
            f[0]["field"].as_str().unwrap().to_string(),
            f[0]["transformations"][0]["subtype"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    assert_eq!(
        one("customer"),
        (
            "raw.orders".into(),
            "customer".into(),
            "TRANSFORMATION".into()
        )
    );
    assert_eq!(
        one("total"),
        ("raw.orders".into(), "amount".into(), "AGGREGATION".into())
    );
    assert!(
        cl.get("orders").is_none(),
        "count(*) has no input field: {cl}"
    );
    let schema = &e["inputs"][0]["facets"]["schema"]["fields"];
    assert_eq!(schema[2]["name"], "amount");
    assert_eq!(schema[2]["type"], "double");

    // Declared `from:` lineage of a python transform.
    let job = JobInfo::for_transform(&model, &env, "score").unwrap();
    let e = lineage::event(EventType::Start, &id, &job, chrono::Utc::now(), None);
    check_event(&e);
    let f = &e["outputs"][0]["facets"]["columnLineage"]["fields"]["customer"]["inputFields"][0];
    assert_eq!(f["namespace"], "file");
    assert!(f["name"].as_str().unwrap().ends_with("lake/orders"), "{f}");
    assert_eq!(f["field"], "customer");
}

#[test]
fn sql_column_edges_for_the_pipeline_graph() {
    let (model, env) = load();
    let (edges, notes) = lineage::sql_column_edges(&model, Some(&env));
    assert!(notes.is_empty(), "{notes:?}");
    let got: Vec<String> = edges
        .iter()
        .map(|e| {
            format!(
                "{}.{} <- {}.{}",
                e.to_dataset, e.to_column, e.from_dataset, e.from_column
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            "customer-summary.customer <- raw-orders.customer",
            "customer-summary.total <- raw-orders.amount"
        ]
    );
    // Without an environment the transform's vars are used: min_amount is the environment's, so
    // the template fails and that is a note, not a crash.
    let (edges, notes) = lineage::sql_column_edges(&model, None);
    assert!(edges.is_empty());
    assert!(
        notes[0].contains("var('min_amount') is not set"),
        "{notes:?}"
    );
}

/// (request path, JSON body) of every request received.
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// A one-thread HTTP server answering 201 to every request and recording the bodies.
fn server(status: u16) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            rec.lock()
                .unwrap()
                .push((path, serde_json::from_slice(&body).unwrap_or(Value::Null)));
            let reason = if status < 300 {
                "Created"
            } else {
                "Bad Request"
            };
            let msg = if status < 300 { "" } else { "invalid event" };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                msg.len()
            );
        }
    });
    (format!("http://{addr}"), seen)
}

#[test]
fn observer_posts_to_http_and_appends_to_a_file() {
    let (model, env) = load();
    let (url, seen) = server(201);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lineage/events.jsonl");
    let obs = Observer::new(Emitter::new(Some(&file), Some(&url)).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ok = obs
            .start(&model, &env, "summary", uuid::Uuid::new_v4())
            .await;
        obs.finish(ok, None).await;
        let bad = obs.start(&model, &env, "score", uuid::Uuid::new_v4()).await;
        obs.finish(bad, Some("score.py exited with status 3")).await;
    });
    assert!(obs.warnings().is_empty(), "{:?}", obs.warnings());
    let posted = seen.lock().unwrap().clone();
    assert_eq!(posted.len(), 4);
    assert!(posted.iter().all(|(p, _)| p == "/api/v1/lineage"));
    let kinds: Vec<&str> = posted
        .iter()
        .map(|(_, e)| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["START", "COMPLETE", "START", "FAIL"]);
    for (_, e) in &posted {
        check_event(e);
    }
    assert_eq!(posted[0].1["run"]["runId"], posted[1].1["run"]["runId"]);
    assert_ne!(posted[1].1["run"]["runId"], posted[2].1["run"]["runId"]);
    assert_eq!(
        posted[3].1["run"]["facets"]["errorMessage"]["message"],
        "score.py exited with status 3"
    );
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        posted.into_iter().map(|(_, e)| e).collect::<Vec<_>>()
    );
}

#[test]
fn emission_failures_are_warnings() {
    let (model, env) = load();
    let (url, _) = server(400);
    let obs = Observer::new(Emitter::new(None, Some(&format!("{url}/custom/path"))).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = obs
            .start(&model, &env, "summary", uuid::Uuid::new_v4())
            .await;
        assert!(r.is_some());
    });
    let w = obs.warnings();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].contains("/custom/path: the server answered 400"),
        "{w:?}"
    );
    assert!(w[0].contains("invalid event"), "{w:?}");
    assert!(Emitter::new(None, Some("ftp://x")).is_err());
    // Nobody listening.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let e = Emitter::new(None, Some(&format!("http://{addr}")))
        .unwrap()
        .emit(&serde_json::json!({}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot send the event"), "{e}");
}
