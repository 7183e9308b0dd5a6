//! Failed logins keep the command API's memory flat: password hashes (19 MiB each) run
//! on a fixed set of threads, however many requests arrive at once.

use std::net::IpAddr;

use futures::future::join_all;
use serde_json::json;

use crate::helpers::*;

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_failed_logins_at_32_concurrent_keep_memory_under_300_mib() {
    let app = spawn_app().await;
    let (mut server, base) = spawn_binary(env!("CARGO_BIN_EXE_command-api"), &app.db.url, &[]).await;
    let started = rss_mib(server.id());
    // Ten client addresses, twenty failures each: all within the per-address allowance,
    // so every one of them is really hashed.
    let clients: Vec<reqwest::Client> = (0..10u8)
        .map(|i| {
            reqwest::Client::builder()
                .local_address(IpAddr::from([127, 0, 1, 10 + i]))
                .build()
                .expect("client")
        })
        .collect();
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let statuses = join_all((0..200).map(|i| {
        let (client, semaphore, url) =
            (clients[i % 10].clone(), semaphore.clone(), format!("{base}/v1/auth/login"));
        async move {
            let _permit = semaphore.acquire().await.expect("permit");
            let payload = json!({ "email": format!("nobody-{i}@test.dev"), "password": "wrong-password" });
            client.post(url).json(&payload).send().await.expect("login").status().as_u16()
        }
    }))
    .await;
    let after = rss_mib(server.id());
    let _ = server.kill();
    let _ = server.wait();
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert!(after < 300, "RSS went from {started} MiB to {after} MiB");
}
