//! What the command API, the query API and the dispatcher share about outbound
//! webhooks (design §13): the public event types, the `Tally-Signature` scheme (the same
//! for inbound and outbound webhooks) and which targets may be called.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The stable contract: what integrators subscribe to.
pub const PUBLIC_TYPES: [&str; 16] = [
    "points.credited",
    "points.debited",
    "points.refunded",
    "points.adjusted",
    "points.clawed_back",
    "points.expired",
    "points.expiring",
    "purchase.paid",
    "purchase.failed",
    "purchase.refunded",
    "redemption.placed",
    "redemption.cancelled",
    "redemption.fulfilled",
    "product.low_stock",
    "offer.started",
    "offer.ended",
];

/// How long the previous secret still signs after a rotation.
pub const ROTATION_OVERLAP: chrono::Duration = chrono::Duration::hours(24);

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, one `v1` per secret.
pub fn sign(secrets: &[&str], t: i64, body: &[u8]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&hex::encode(mac(secret, t, body).finalize().into_bytes()));
    }
    header
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Tally-Signature header is missing")]
    Missing,
    #[error("the Tally-Signature header is malformed")]
    Malformed,
    #[error("the signature timestamp is outside the tolerance")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks a `Tally-Signature` header: its time within `tolerance_secs` of `now`, and
/// one of its `v1` values the HMAC of `secret` (compared in constant time).
pub fn verify(
    header: Option<&str>,
    secret: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let (mut t, mut v1) = (None, Vec::new());
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1.push(v),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if (now - t).abs() > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    let matches = v1
        .iter()
        .filter_map(|sig| hex::decode(sig).ok())
        .any(|sig| mac(secret, t, body).verify_slice(&sig).is_ok());
    matches.then_some(()).ok_or(SignatureError::Mismatch)
}

/// Whether the dispatcher may connect to this address: not private, loopback,
/// link-local, unspecified, shared (CGNAT), multicast or broadcast — for IPv6 also
/// unique-local, and IPv4-mapped addresses as their IPv4 selves.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80) // link-local fe80::/10
}

/// Why a webhook URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("url must be an absolute http or https URL of at most 2048 characters")]
    NotHttp,
    #[error("url's host {0} does not resolve")]
    Unresolved(String),
    #[error("url's host {0} is a private, loopback or link-local address (set TALLY_WEBHOOK_ALLOW_PRIVATE=true to allow)")]
    Private(String),
}

/// Parses a webhook URL and, unless `allow_private`, resolves its host and refuses it
/// when any address is not public. (The dispatcher checks again at every connection:
/// DNS can change after this check.)
pub async fn check_target(raw: &str, allow_private: bool) -> Result<url::Url, TargetError> {
    let url = url::Url::parse(raw.trim()).map_err(|_| TargetError::NotHttp)?;
    if !matches!(url.scheme(), "http" | "https") || raw.len() > 2048 || !url.username().is_empty() {
        return Err(TargetError::NotHttp);
    }
    let host = url.host_str().ok_or(TargetError::NotHttp)?.to_owned();
    if allow_private {
        return Ok(url);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        // A resolver that never answers must not hold the admin's request for long.
        Err(_) => {
            tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::lookup_host((bare, port)))
                .await
                .map_err(|_| TargetError::Unresolved(host.clone()))?
                .map_err(|_| TargetError::Unresolved(host.clone()))?
                .map(|a| a.ip())
                .collect()
        }
    };
    if addrs.is_empty() {
        return Err(TargetError::Unresolved(host));
    }
    if addrs.iter().any(|ip| !is_public(*ip)) {
        return Err(TargetError::Private(host));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_either_secret_during_a_rotation() {
        let body = br#"{"id":"x"}"#;
        let header = sign(&["new", "old"], 1_700_000_000, body);
        assert_eq!(header.matches("v1=").count(), 2);
        assert_eq!(verify(Some(&header), "new", body, 1_700_000_000, 300), Ok(()));
        assert_eq!(verify(Some(&header), "old", body, 1_700_000_100, 300), Ok(()));
        assert_eq!(verify(Some(&header), "other", body, 1_700_000_000, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some(&header), "new", b"{}", 1_700_000_000, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some(&header), "new", body, 1_700_000_301, 300), Err(SignatureError::Stale));
        assert_eq!(verify(Some("t=abc,v1=zz"), "new", body, 0, 300), Err(SignatureError::Malformed));
        assert_eq!(verify(None, "new", body, 0, 300), Err(SignatureError::Missing));
    }

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn targets_must_be_http_and_public_unless_private_ones_are_allowed() {
        assert_eq!(check_target("ftp://example.com/x", true).await, Err(TargetError::NotHttp));
        assert_eq!(check_target("not a url", true).await, Err(TargetError::NotHttp));
        assert_eq!(check_target("http://user:pw@example.com/", true).await, Err(TargetError::NotHttp));
        for private in
            ["http://127.0.0.1:9/hook", "https://[::1]/hook", "http://169.254.169.254/", "http://localhost/"]
        {
            assert!(matches!(check_target(private, false).await, Err(TargetError::Private(_))), "{private}");
        }
        assert!(check_target("http://127.0.0.1:9/hook", true).await.is_ok());
        assert!(check_target("https://93.184.216.34/hook", false).await.is_ok());
    }
}
