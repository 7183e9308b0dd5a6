//! The store-level audit commands against a real Postgres.

use chrono::Utc;
use infra::chain;
use infra::store::{self, Actor, Metadata, NewEvent, StreamAppend};
use infra::testkit::TestDb;
use serde_json::{json, Value};
use uuid::Uuid;

async fn seeded() -> (TestDb, tokio_postgres::Client) {
    let db = TestDb::new().await.expect("test database");
    let mut client = db.client().await.expect("client");
    let meta = Metadata {
        correlation_id: "r".into(),
        causation_id: "r".into(),
        actor: Actor::system("test"),
        command: "Seed".into(),
    };
    for i in 0..25 {
        let tx = client.transaction().await.expect("tx");
        let appends: Vec<StreamAppend> = ["a", "b"]
            .iter()
            .map(|s| StreamAppend {
                stream_id: format!("{s}-1"),
                expected_version: i,
                events: vec![NewEvent {
                    event_id: Uuid::new_v4(),
                    event_type: "Seeded".into(),
                    schema_version: 1,
                    data: json!({ "i": i }),
                }],
            })
            .collect();
        store::append(&tx, &appends, &meta, Utc::now()).await.expect("append");
        tx.commit().await.expect("commit");
    }
    (db, client)
}

#[tokio::test]
async fn export_writes_every_event_once_in_the_safe_order_from_a_position() {
    let (_db, client) = seeded().await;
    let mut out = Vec::new();
    let written = projector::audit::export(&client, 0, &mut out).await.expect("export");
    let lines: Vec<Value> = std::str::from_utf8(&out)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("ndjson"))
        .collect();
    assert_eq!((written, lines.len()), (50, 50));
    let keys: Vec<(u64, i64)> = lines
        .iter()
        .map(|l| (l["tx_id"].as_u64().expect("tx"), l["position"].as_i64().expect("pos")))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "safe global order");
    assert!(lines.iter().all(|l| l["hash"].as_str().is_some_and(|h| h.len() == 64)));

    // Every exported event's hash re-verifies from its stream's previous one.
    let mut last: std::collections::HashMap<String, (i64, Vec<u8>)> = Default::default();
    for l in &lines {
        let stream = l["stream_id"].as_str().expect("stream").to_owned();
        let (prev_version, prev_hash) = last.remove(&stream).unwrap_or((0, Vec::new()));
        let version = l["version"].as_i64().expect("version");
        assert_eq!(version, prev_version + 1, "{stream} in version order");
        let recorded_at: chrono::DateTime<Utc> =
            serde_json::from_value(l["recorded_at"].clone()).expect("time");
        let canonical = chain::Canonical {
            stream_id: &stream,
            version,
            event_id: serde_json::from_value(l["event_id"].clone()).expect("uuid"),
            event_type: l["event_type"].as_str().expect("type"),
            schema_version: l["schema_version"].as_i64().expect("schema") as i32,
            data: &l["data"],
            metadata: &l["metadata"],
            recorded_at,
        };
        let hash = chain::event_hash(&prev_hash, &canonical);
        assert_eq!(hex::encode(&hash), l["hash"].as_str().expect("hash"), "{stream} v{version}");
        last.insert(stream, (version, hash));
    }

    let from = keys[19].1;
    let mut tail = Vec::new();
    let written = projector::audit::export(&client, from, &mut tail).await.expect("export");
    assert_eq!(written, 30);
}

/// An export started while an older transaction is still in flight waits for it and
/// covers everything committed when it started, instead of stopping short at the safe
/// head (which that transaction holds back, even from another database).
#[tokio::test]
async fn export_waits_for_a_transaction_in_flight_instead_of_stopping_short() {
    let (db, client) = seeded().await;
    let one = |stream: &str| StreamAppend {
        stream_id: stream.into(),
        expected_version: 0,
        events: vec![NewEvent {
            event_id: Uuid::new_v4(),
            event_type: "Seeded".into(),
            schema_version: 1,
            data: json!({}),
        }],
    };
    let meta = Metadata {
        correlation_id: "r".into(),
        causation_id: "r".into(),
        actor: Actor::system("test"),
        command: "Seed".into(),
    };
    let (mut slow, mut fast) = (db.client().await.expect("client"), db.client().await.expect("client"));
    let in_flight = slow.transaction().await.expect("tx");
    store::append(&in_flight, &[one("slow-1")], &meta, Utc::now()).await.expect("append");
    let committed = fast.transaction().await.expect("tx");
    store::append(&committed, &[one("fast-1")], &meta, Utc::now()).await.expect("append");
    committed.commit().await.expect("commit");

    let mut out = Vec::new();
    let (written, ()) = tokio::join!(projector::audit::export(&client, 0, &mut out), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        in_flight.commit().await.expect("commit");
    });
    assert_eq!(written.expect("export"), 52);
    let text = String::from_utf8(out).expect("utf8");
    assert!(text.contains("\"fast-1\"") && text.contains("\"slow-1\""), "{text}");
}

#[tokio::test]
async fn verify_is_clean_and_then_names_a_deleted_event() {
    let (_db, client) = seeded().await;
    assert!(projector::audit::verify(&client, true).await.expect("verify"));
    client
        .batch_execute(
            "ALTER TABLE es.events DISABLE TRIGGER events_append_only;
             DELETE FROM es.events WHERE stream_id = 'b-1' AND version = 7;
             ALTER TABLE es.events ENABLE TRIGGER events_append_only;",
        )
        .await
        .expect("tamper");
    assert!(!projector::audit::verify(&client, true).await.expect("verify"));
    let findings = infra::store::verify(&client).await.expect("findings");
    assert!(findings.iter().any(|f| f.stream_id == "b-1" && f.version == 8), "{findings:?}");
    assert!(findings.iter().all(|f| f.stream_id == "b-1"), "only the broken stream is named: {findings:?}");
}

async fn tampered(sql: &str) -> Vec<store::Finding> {
    let (_db, client) = seeded().await;
    assert!(projector::audit::verify(&client, true).await.expect("verify"), "clean before tampering");
    let sql = format!(
        "ALTER TABLE es.events DISABLE TRIGGER events_append_only; {sql}; \
         ALTER TABLE es.events ENABLE TRIGGER events_append_only;"
    );
    client.batch_execute(&sql).await.expect("tamper");
    assert!(!projector::audit::verify(&client, true).await.expect("verify"));
    store::verify(&client).await.expect("findings")
}

#[tokio::test]
async fn verify_names_an_event_whose_payload_was_changed() {
    let findings =
        tampered("UPDATE es.events SET data = '{\"i\": 999}' WHERE stream_id = 'a-1' AND version = 5").await;
    assert!(findings.iter().any(|f| f.stream_id == "a-1" && f.version == 5), "{findings:?}");
    assert!(findings.iter().all(|f| f.stream_id == "a-1"), "{findings:?}");
}

#[tokio::test]
async fn verify_names_events_whose_versions_were_swapped() {
    let findings = tampered(
        "UPDATE es.events SET version = 1000 WHERE stream_id = 'b-1' AND version = 3; \
         UPDATE es.events SET version = 3 WHERE stream_id = 'b-1' AND version = 4; \
         UPDATE es.events SET version = 4 WHERE stream_id = 'b-1' AND version = 1000",
    )
    .await;
    assert!(
        findings.iter().any(|f| f.stream_id == "b-1" && (f.version == 3 || f.version == 4)),
        "{findings:?}"
    );
    assert!(findings.iter().all(|f| f.stream_id == "b-1"), "{findings:?}");
}

/// The chain recomputed by an independent RFC 8785 implementation (Python's `rfc8785`,
/// run by `scripts/chain-check.py`) over an export whose events hold what JCS is picky
/// about: doubles (`1.0`, `0.1`, `1e21`, `5e-7`), escapes, and keys outside the BMP.
/// `scripts/test` installs the package and sets `TALLY_PYTHON`; without it the test says
/// so and passes, so a plain `cargo test` needs no Python.
#[tokio::test]
async fn an_independent_rfc_8785_implementation_recomputes_every_chain() {
    let Ok(python) = std::env::var("TALLY_PYTHON") else {
        eprintln!("TALLY_PYTHON is not set: the RFC 8785 cross-check is skipped (scripts/test runs it)");
        return;
    };
    let db = TestDb::new().await.expect("test database");
    let mut client = db.client().await.expect("client");
    let meta = Metadata {
        correlation_id: "r".into(),
        causation_id: "r".into(),
        actor: Actor::system("test"),
        command: "Seed \u{1f600} \"quoted\"\n".into(),
    };
    let payloads = [
        json!({ "variants": [{ "name": "rules", "weight": 1.0 }, { "name": "ai", "weight": 0.1 }] }),
        json!({ "big": 1e21, "small": 5e-7, "neg": -2.5, "int": 9007199254740991i64, "zero": -0.0 }),
        json!({ "\u{20ac}": 1, "\r": 2, "\u{fb33}": 3, "\u{1f600}": 4, "\u{80}": 5, "nested": { "b": [], "a": {} } }),
        json!({ "text": "tab\there \u{1f} \u{7f} \\ / \u{2028} é 😀", "none": null, "yes": true }),
    ];
    for (i, data) in payloads.into_iter().enumerate() {
        let tx = client.transaction().await.expect("tx");
        let append = StreamAppend {
            stream_id: "jcs-1".into(),
            expected_version: i as i64,
            events: vec![NewEvent {
                event_id: Uuid::new_v4(),
                event_type: "Seeded".into(),
                schema_version: 1,
                data,
            }],
        };
        store::append(&tx, &[append], &meta, Utc::now()).await.expect("append");
        tx.commit().await.expect("commit");
    }
    let mut export = Vec::new();
    projector::audit::export(&client, 0, &mut export).await.expect("export");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/chain-check.py");
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python starts");
    use std::io::Write as _;
    child.stdin.take().expect("stdin").write_all(&export).expect("export piped");
    let out = child.wait_with_output().expect("python ends");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("4 events in 1 streams, 0 mismatch"), "{report}");
}
