//! `verify`: recomputes every stream's hash chain (see [`crate::chain`]) from the table,
//! checks contiguous versions and stream heads, and that the append-only triggers are
//! installed.

use futures_util::TryStreamExt;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::GenericClient;

use super::StoreError;
use crate::chain::{event_hash, Canonical};

/// One problem [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub stream_id: String,
    pub version: i64,
    pub problem: String,
}

/// Recomputes every stream's hash chain, checks versions run 1, 2, 3… without gaps and
/// that the stream head agrees, and that the append-only triggers are installed.
/// Streams rows in one ordered pass, so memory stays flat however large the store.
pub async fn verify(client: &impl GenericClient) -> Result<Vec<Finding>, StoreError> {
    let mut findings = trigger_findings(client).await?;
    let heads: std::collections::HashMap<String, (i64, Vec<u8>)> = client
        .query("SELECT stream_id, version, last_hash FROM es.streams", &[])
        .await?
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let rows = client
        .query_raw(
            "SELECT stream_id, version, event_id, event_type, schema_version, data, metadata, \
                    recorded_at, hash FROM es.events ORDER BY stream_id, version",
            std::iter::empty::<i32>(),
        )
        .await?;
    futures_util::pin_mut!(rows);
    let mut current: Option<(String, i64, Vec<u8>)> = None; // stream, last version, last hash
    let mut seen = std::collections::HashSet::new();
    while let Some(r) = rows.try_next().await? {
        let stream_id: String = r.get(0);
        let version: i64 = r.get(1);
        let (expected_version, prev_hash) = match &current {
            Some((s, v, h)) if *s == stream_id => (v + 1, h.clone()),
            _ => {
                if let Some((s, v, h)) = current.take() {
                    check_head(&heads, &s, v, &h, &mut findings);
                }
                seen.insert(stream_id.clone());
                (1, Vec::new())
            }
        };
        if version != expected_version {
            findings.push(Finding {
                stream_id: stream_id.clone(),
                version,
                problem: format!("version {version} where {expected_version} was expected"),
            });
        }
        let data: Value = r.get(5);
        let metadata: Value = r.get(6);
        let stored: Vec<u8> = r.get(8);
        let event_type: String = r.get(3);
        let computed = event_hash(
            &prev_hash,
            &Canonical {
                stream_id: &stream_id,
                version,
                event_id: r.get(2),
                event_type: &event_type,
                schema_version: r.get(4),
                data: &data,
                metadata: &metadata,
                recorded_at: r.get(7),
            },
        );
        if computed != stored {
            findings.push(Finding {
                stream_id: stream_id.clone(),
                version,
                problem: "hash does not match the event and its predecessor".into(),
            });
        }
        // Continue the chain from the stored hash so one edit is reported once.
        current = Some((stream_id, version, stored));
    }
    if let Some((s, v, h)) = current {
        check_head(&heads, &s, v, &h, &mut findings);
    }
    for (s, (v, _)) in heads.iter().filter(|(s, _)| !seen.contains(*s)) {
        findings.push(Finding {
            stream_id: s.clone(),
            version: *v,
            problem: "stream head exists but the stream has no events".into(),
        });
    }
    Ok(findings)
}

fn check_head(
    heads: &std::collections::HashMap<String, (i64, Vec<u8>)>,
    stream_id: &str,
    last_version: i64,
    last_hash: &[u8],
    findings: &mut Vec<Finding>,
) {
    match heads.get(stream_id) {
        Some((v, h)) if *v == last_version && h == last_hash => {}
        Some((v, _)) => findings.push(Finding {
            stream_id: stream_id.to_owned(),
            version: *v,
            problem: format!("stream head says version {v}, events end at {last_version}"),
        }),
        None => findings.push(Finding {
            stream_id: stream_id.to_owned(),
            version: last_version,
            problem: "events without a stream head".into(),
        }),
    }
}

async fn trigger_findings(client: &impl GenericClient) -> Result<Vec<Finding>, StoreError> {
    let rows = client
        .query(
            "SELECT tgname FROM pg_trigger \
             WHERE tgrelid = 'es.events'::regclass AND tgenabled <> 'D' \
               AND tgname IN ('events_append_only', 'events_no_truncate')",
            &[],
        )
        .await?;
    let present: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(["events_append_only", "events_no_truncate"]
        .into_iter()
        .filter(|t| !present.iter().any(|p| p == t))
        .map(|t| Finding {
            stream_id: "es.events".into(),
            version: 0,
            problem: format!("append-only trigger {t} is missing or disabled"),
        })
        .collect())
}
