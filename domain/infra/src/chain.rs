//! Tamper evidence: each event's `hash = sha256(previous hash of its stream ‖ canonical
//! bytes of this event)`. [`crate::store::verify`] recomputes every chain from the table.
//!
//! The canonical bytes are RFC 8785 (the JSON Canonicalization Scheme): object keys
//! sorted by their UTF-16 code units at every depth, no whitespace, strings escaped as
//! ECMAScript does, numbers written as ECMAScript writes doubles. So they are the same
//! before the insert and after a round trip through `jsonb` (which reorders keys and
//! keeps `1.0` as written), and any JCS implementation can recompute a chain.

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
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
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
    match v {
        Value::Number(n) if n.is_f64() => {
            out.extend_from_slice(es_number(n.as_f64().unwrap_or(0.0)).as_bytes())
        }
        // serde_json escapes strings exactly as RFC 8785 asks (`\b \t \n \f \r`, other
        // controls as lowercase `\u00xx`, nothing else) and writes integers plainly.
        // Serializing a scalar Value cannot fail.
        _ => {
            let _ = serde_json::to_writer(&mut *out, v);
        }
    }
}

/// A finite double as ECMAScript's `Number.prototype.toString` writes it (RFC 8785
/// §3.2.2.3): the shortest digits that round-trip, plain notation for exponents from
/// -7 to 20, otherwise `d.ddde±x`; `-0` is `0`.
fn es_number(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e2", "5e-7".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let n = exp.parse::<i32>().unwrap_or(0) + 1; // where the decimal point goes
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat(-n as usize))
    } else {
        let sign = if n - 1 < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        format!("{first}{dot}{rest}e{sign}{}", (n - 1).abs())
    };
    if x < 0.0 {
        format!("-{body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(v: &Value) -> String {
        let mut out = Vec::new();
        write_canonical(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Number samples of RFC 8785, appendix B (IEEE-754 bits → text, as Python's
    /// `rfc8785` writes them too).
    #[test]
    fn numbers_are_written_as_ecmascript_writes_them() {
        let samples = [
            (0x0000000000000000u64, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x4415af1d78b58c40, "100000000000000000000"),
            (0x4415af1d78b58c3f, "99999999999999980000"),
        ];
        for (bits, text) in samples {
            assert_eq!(es_number(f64::from_bits(bits)), text, "{bits:#018x}");
        }
        assert_eq!(canonical(&serde_json::json!([1.0, 0.5, -2.25, 7])), "[1,0.5,-2.25,7]");
    }

    /// RFC 8785 §3.2.3: keys sort by UTF-16 code units, so U+1F600 (a surrogate pair)
    /// sorts before U+FB33 although its UTF-8 bytes sort after.
    #[test]
    fn keys_sort_by_utf16_code_units() {
        let doc = serde_json::json!({
            "\u{20ac}": "Euro Sign", "\r": "Carriage Return", "\u{fb33}": "Hebrew Letter Dalet With Dagesh",
            "1": "One", "\u{1f600}": "Emoji: Grinning Face", "\u{80}": "Control", "\u{f6}": "Latin Small Letter O With Diaeresis"
        });
        let text = canonical(&doc);
        let order: Vec<usize> = ["\\r", "\"1\"", "\u{80}", "\u{f6}", "\u{20ac}", "\u{1f600}", "\u{fb33}"]
            .iter()
            .map(|k| text.find(k).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn strings_escape_as_rfc_8785_asks() {
        let text = canonical(&serde_json::json!("\u{8}\t\n\u{c}\r\u{1f}\"\\/\u{7f}é"));
        assert_eq!(text, "\"\\b\\t\\n\\f\\r\\u001f\\\"\\\\/\u{7f}é\"");
    }
}
