//! SIGTERM under load: requests accepted before the signal finish without a 5xx, every
//! acknowledged command is in the store, and no command is half applied.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn sigterm_under_load_drains_in_flight_commands_and_applies_none_by_half() {
    // The in-process app seeds the data; the binary under test serves the same database.
    let app = spawn_app().await;
    let customer = app.customer_with_points(1_000_000).await;
    let product = app.product(1, 1_000_000).await;
    let (mut server, base) = spawn_binary(env!("CARGO_BIN_EXE_command-api"), &app.db.url, &[]).await;

    // A fresh connection per request, so the server's draining is what is tested, not
    // the reuse of idle keep-alive connections.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    let signalled: Arc<std::sync::OnceLock<std::time::Instant>> = Arc::default();
    let token = Arc::new(customer.token.clone());
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (http, base, token, product) = (http.clone(), base.clone(), token.clone(), product.clone());
            let signalled = signalled.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for _ in 0..40 {
                    let res = http
                        .post(format!("{base}/v1/redemptions"))
                        .bearer_auth(token.as_str())
                        .json(&json!({ "product_id": product, "quantity": 1 }))
                        .send()
                        .await;
                    match res {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let id = r
                                .json::<Value>()
                                .await
                                .ok()
                                .and_then(|b| b["id"].as_str().map(str::to_owned));
                            let after_signal = signalled.get().is_some();
                            outcomes.push((status, id, after_signal));
                        }
                        // Refused, or reset while still in the kernel's accept queue when
                        // the listener closed: never reached the application.
                        Err(_) => break,
                    }
                }
                outcomes
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.id().to_string();
    assert!(Command::new("sh").args(["-c", &format!("kill -TERM {pid}")]).status().expect("kill").success());
    signalled.set(std::time::Instant::now()).expect("signalled once");

    let (mut acknowledged, mut drained) = (Vec::new(), 0);
    for c in clients {
        for (status, id, after_signal) in c.await.expect("client") {
            assert!(status < 500, "a 5xx while shutting down: {status}");
            if status == 201 {
                acknowledged.push(id.expect("a redemption id"));
                drained += usize::from(after_signal);
            }
        }
    }
    assert!(drained > 0, "requests in flight at the signal were answered, not cut");
    let exit = tokio::task::spawn_blocking(move || server.wait()).await.expect("join").expect("wait");
    assert!(exit.success(), "a clean exit: {exit:?}");
    assert!(!acknowledged.is_empty(), "the load ran before the signal");

    for id in &acknowledged {
        assert_eq!(
            app.count_type(&format!("redemption-{id}"), "RedemptionPlaced").await,
            1,
            "{id} is stored"
        );
    }
    // Whole commands only: every placed redemption has its debit and its reservation.
    let client = app.db.client().await.expect("client");
    let count = |t: &'static str| {
        let client = &client;
        async move {
            client
                .query_one("SELECT count(*) FROM es.events WHERE event_type = $1", &[&t])
                .await
                .expect("count")
                .get::<_, i64>(0)
        }
    };
    let (placed, debited, reserved) =
        (count("RedemptionPlaced").await, count("PointsDebited").await, count("StockReserved").await);
    assert_eq!((debited, reserved), (placed, placed));
    assert!(placed >= acknowledged.len() as i64);
}
