//! Tamper evidence: each event's `hash = sha256(previous hash of its stream ‖ canonical
//! bytes of this event)`. [`crate::store::verify`] recomputes every chain from the table.
//!
//! The canonical bytes are JSON with object keys sorted at every depth, so they are the
//! same before the insert and after a round trip through `jsonb` (which reorders keys).

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The fields of an event that its hash covers.
#[derive(Debug)]
pub struct Canonical<'a> {
    pub stream_id: &'a str,
    pub version: i64,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: i32,
    pub data: &'a Value,
    pub metadata: &'a Value,
    pub recorded_at: DateTime<Utc>,
}

/// Postgres keeps microseconds; hash what will be stored.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

pub fn event_hash(prev_hash: &[u8], e: &Canonical<'_>) -> Vec<u8> {
    let doc = serde_json::json!({
        "stream_id": e.stream_id,
        "version": e.version,
        "event_id": e.event_id,
        "event_type": e.event_type,
        "schema_version": e.schema_version,
        "data": e.data,
        "metadata": e.metadata,
        "recorded_at": e.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    });
    let mut bytes = Vec::with_capacity(256);
    write_canonical(&doc, &mut bytes);
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(&bytes);
    h.finalize().to_vec()
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(k.clone()), out);
                out.push(b':');
                write_canonical(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(v: &Value, out: &mut Vec<u8>) {
    // Serializing a scalar Value cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}
