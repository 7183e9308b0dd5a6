//! Failed logins and the command API's memory: 2,000 wrong passwords at 64 concurrent,
//! then the process's resident set. Each login is for an unknown email from one of
//! 100 loopback addresses (20 failures each, within the per-address allowance), so
//! every one of them costs a real argon2id hash.

use std::net::IpAddr;
use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::report::Row;

const LOGINS: usize = 2_000;
const CONCURRENT: usize = 64;
const ADDRESSES: usize = 100;

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))?;
    Ok(kib / 1024.0)
}

pub async fn failed_logins(base: &str, pid: u32) -> anyhow::Result<Row> {
    let before = rss_mib(pid)?;
    let clients: Vec<reqwest::Client> = (0..ADDRESSES)
        .map(|i| reqwest::Client::builder().local_address(IpAddr::from([127, 0, 2, 1 + i as u8])).build())
        .collect::<Result<_, _>>()?;
    let permits = Arc::new(Semaphore::new(CONCURRENT));
    let started = std::time::Instant::now();
    let statuses = join_all((0..LOGINS).map(|i| {
        let (client, permits, url) =
            (clients[i % ADDRESSES].clone(), permits.clone(), format!("{base}/v1/auth/login"));
        async move {
            let _permit = permits.acquire().await.ok()?;
            let body = json!({ "email": format!("nobody-{i}@bench.dev"), "password": "wrong-password" });
            Some(client.post(url).json(&body).send().await.ok()?.status().as_u16())
        }
    }))
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let after = rss_mib(pid)?;
    let refused = statuses.iter().filter(|s| **s == Some(401)).count();
    Ok(Row::new("Command API memory after 2,000 failed logins, 64 concurrent", after, "MiB RSS", "< 300 MiB")
        .met(after < 300.0 && refused == LOGINS)
        .note(format!("from {before:.0} MiB; {refused} answered 401 in {seconds:.1} s")))
}
