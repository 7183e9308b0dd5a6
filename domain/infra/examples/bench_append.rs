//! Append throughput with the redemption's shape: lock an account and a product stream,
//! then append one event each to them and to a new redemption stream, version-checked,
//! in one transaction. Prints appends (transactions) per second for each concurrency.
//!
//! `cargo run --release -p domain --example bench_append -- <seconds> <writers>...`
//! against `DATABASE_URL` (a scratch database: it is migrated and seeded).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use infra::store::{self, Actor, Metadata, NewEvent, StreamAppend};
use infra::{config, db};
use rand::Rng;
use serde_json::json;
use uuid::Uuid;

const STREAMS: u32 = 1000;

fn event(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "BenchEvent".into(),
        schema_version: 1,
        data: json!({ "n": n }),
    }
}

fn meta() -> Metadata {
    Metadata {
        correlation_id: "bench".into(),
        causation_id: "bench".into(),
        actor: Actor::system("bench"),
        command: "Bench".into(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u64 = args.first().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let writers: Vec<usize> = args.iter().skip(1).map(|s| s.parse()).collect::<Result<_, _>>()?;
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| config::DEV_DATABASE_URL.into());
    db::migrate(&url).await?;
    let pool = db::pool(&url, 32)?;
    seed(&pool).await?;
    for w in if writers.is_empty() { vec![1, 4, 16] } else { writers } {
        let done = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..w)
            .map(|_| {
                let (pool, done) = (pool.clone(), done.clone());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        if append_one(&pool).await.is_ok() {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await?;
        }
        let rate = done.load(Ordering::Relaxed) as f64 / seconds as f64;
        println!("writers={w} appends_per_sec={rate:.0}");
    }
    Ok(())
}

async fn seed(pool: &deadpool_postgres::Pool) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let exists =
        client.query_opt("SELECT 1 FROM es.streams WHERE stream_id = 'bench-account-1'", &[]).await?;
    if exists.is_some() {
        return Ok(());
    }
    let tx = client.transaction().await?;
    let appends: Vec<StreamAppend> = (1..=STREAMS)
        .flat_map(|i| {
            [format!("bench-account-{i}"), format!("bench-product-{i}")].map(|s| StreamAppend {
                stream_id: s,
                expected_version: 0,
                events: vec![event(0)],
            })
        })
        .collect();
    store::append(&*tx, &appends, &meta(), Utc::now()).await?;
    tx.commit().await?;
    Ok(())
}

async fn append_one(pool: &deadpool_postgres::Pool) -> anyhow::Result<()> {
    let (a, p) = {
        let mut rng = rand::thread_rng();
        (rng.gen_range(1..=STREAMS), rng.gen_range(1..=STREAMS))
    };
    let (account, product) = (format!("bench-account-{a}"), format!("bench-product-{p}"));
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut heads = store::lock_streams(&*tx, &[&account, &product]).await?;
    let appends = vec![
        StreamAppend {
            expected_version: heads[&account].version,
            stream_id: account,
            events: vec![event(1)],
        },
        StreamAppend {
            expected_version: heads[&product].version,
            stream_id: product,
            events: vec![event(2)],
        },
        StreamAppend {
            stream_id: format!("bench-redemption-{}", Uuid::new_v4()),
            expected_version: 0,
            events: vec![event(3)],
        },
    ];
    store::append_locked(&*tx, &mut heads, &appends, &meta(), Utc::now()).await?;
    tx.commit().await?;
    Ok(())
}
