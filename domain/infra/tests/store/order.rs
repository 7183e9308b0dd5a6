//! The safe global order keeps every stream's versions in order: a command that took
//! its first lock (or claimed its idempotency key) and then queued for a contended
//! stream sorts after the command it queued behind.

use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;
use infra::store::{self, idempotency, Checkpoint, Heads, RecordedEvent, StreamAppend};
use tokio::sync::oneshot;

use super::{event, meta, setup};

/// Waits until some backend is blocked on a lock.
async fn until_a_lock_waits(pool: &Pool) {
    let client = pool.get().await.expect("client");
    for _ in 0..500 {
        let waiting: i64 = client
            .query_one("SELECT count(*) FROM pg_locks WHERE NOT granted", &[])
            .await
            .expect("pg_locks")
            .get(0);
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no transaction ever waited for the contended lock");
}

/// Every event in the safe order, once the horizon has passed them all (transactions
/// of other tests on the same server hold it back for a moment).
async fn everything(pool: &Pool) -> Vec<RecordedEvent> {
    let client = pool.get().await.expect("client");
    let total: i64 = client.query_one("SELECT count(*) FROM es.events", &[]).await.expect("count").get(0);
    for _ in 0..1000 {
        let events = store::read_all(&**client, Checkpoint::default(), 1000).await.expect("read_all");
        if events.len() as i64 == total {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the safe horizon never passed the {total} events");
}

fn versions_of(events: &[RecordedEvent], stream: &str) -> Vec<i64> {
    events.iter().filter(|e| e.stream_id == stream).map(|e| e.version).collect()
}

/// The interleaving that broke the order: `first` takes its opening step and holds,
/// `second` locks the hot product and appends to it, `first` queues for the product,
/// `second` commits, then `first` appends to the product and commits.
async fn interleave(opening_step_claims_a_key: bool) -> Vec<RecordedEvent> {
    let (_db, pool) = setup().await;
    let (account, product) = ("account-ann", "product-hot");
    // Both streams exist, as they do for a customer with points and a listed product.
    super::append(
        &pool,
        &[super::append_to(account, 0, vec![event(0)]), super::append_to(product, 0, vec![event(0)])],
    )
    .await
    .expect("seed");
    let (opened, wait_opened) = oneshot::channel();
    let (go, wait_go) = oneshot::channel::<()>();
    let first = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut client = pool.get().await.expect("client");
            let tx = client.transaction().await.expect("begin");
            let key = idempotency::Key { caller: "ann".into(), key: "k-1".into(), fingerprint: vec![1] };
            if opening_step_claims_a_key {
                assert!(idempotency::claim(&*tx, &key).await.expect("claim").is_none());
            }
            let mut heads: Heads = store::lock_streams(&*tx, &[account]).await.expect("first lock");
            opened.send(()).expect("signal");
            wait_go.await.expect("go");
            heads.extend(store::lock_streams(&*tx, &[product]).await.expect("queued lock"));
            let appends = [
                StreamAppend { stream_id: account.into(), expected_version: 1, events: vec![event(1)] },
                StreamAppend {
                    stream_id: product.into(),
                    expected_version: heads[product].version,
                    events: vec![event(2)],
                },
            ];
            store::append_locked(&*tx, &mut heads, &appends, &meta(), Utc::now()).await.expect("append");
            if opening_step_claims_a_key {
                idempotency::record(&*tx, &key, 201, &serde_json::json!({})).await.expect("record");
            }
            tx.commit().await.expect("commit");
        })
    };
    wait_opened.await.expect("first opened");

    let mut client = pool.get().await.expect("client");
    let tx = client.transaction().await.expect("begin");
    let mut heads = store::lock_streams(&*tx, &[product]).await.expect("lock the product");
    go.send(()).expect("go");
    until_a_lock_waits(&pool).await;
    let appends = [StreamAppend { stream_id: product.into(), expected_version: 1, events: vec![event(3)] }];
    store::append_locked(&*tx, &mut heads, &appends, &meta(), Utc::now()).await.expect("append");
    tx.commit().await.expect("commit");
    first.await.expect("first finished");
    everything(&pool).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_locked_its_account_then_queued_for_the_product_sorts_after_the_holder() {
    let events = interleave(false).await;
    assert_eq!(versions_of(&events, "product-hot"), [1, 2, 3], "{events:#?}");
    assert_eq!(versions_of(&events, "account-ann"), [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_claimed_its_idempotency_key_then_queued_sorts_after_the_holder() {
    let events = interleave(true).await;
    assert_eq!(versions_of(&events, "product-hot"), [1, 2, 3], "{events:#?}");
}
