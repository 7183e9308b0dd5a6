//! The event store against a real Postgres: optimistic concurrency, multi-stream
//! atomicity, the late-commit reader, append-only enforcement and the hash chain.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;
use infra::db;
use infra::store::{self, Actor, Checkpoint, Metadata, NewEvent, StoreError, StreamAppend};
use infra::testkit::TestDb;
use rand::Rng;
use serde_json::json;
use uuid::Uuid;

mod order;
mod prefetch;
mod states;

async fn setup() -> (TestDb, Pool) {
    let test_db = TestDb::new().await.expect("test database");
    let pool = db::pool(&test_db.url, 40).expect("pool");
    (test_db, pool)
}

fn meta() -> Metadata {
    Metadata {
        correlation_id: Uuid::new_v4().to_string(),
        causation_id: Uuid::new_v4().to_string(),
        actor: Actor::system("test"),
        command: "Test".into(),
    }
}

fn event(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "Happened".into(),
        schema_version: 1,
        data: json!({ "n": n }),
    }
}

fn append_to(stream: &str, expected: i64, events: Vec<NewEvent>) -> StreamAppend {
    StreamAppend { stream_id: stream.into(), expected_version: expected, events }
}

/// Appends in its own transaction and commits.
async fn append(pool: &Pool, appends: &[StreamAppend]) -> Result<Checkpoint, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let appended = store::append(&*tx, appends, &meta(), Utc::now()).await?;
    tx.commit().await?;
    Ok(appended.last)
}

async fn count_events(pool: &Pool) -> i64 {
    let c = pool.get().await.expect("client");
    c.query_one("SELECT count(*) FROM es.events", &[]).await.expect("count").get(0)
}

#[tokio::test]
async fn two_concurrent_appends_at_the_same_version_one_wins_the_other_conflicts() {
    let (_db, pool) = setup().await;
    append(&pool, &[append_to("s-1", 0, vec![event(0)])]).await.expect("first");
    for round in 0..20 {
        let expected = 1 + 2 * round;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let tasks: Vec<_> = (0..2)
            .map(|i| {
                let (pool, barrier) = (pool.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    append(&pool, &[append_to("s-1", expected, vec![event(i), event(i + 10)])]).await
                })
            })
            .collect();
        let results: Vec<_> =
            futures::future::join_all(tasks).await.into_iter().map(|r| r.expect("task")).collect();
        let wins = results.iter().filter(|r| r.is_ok()).count();
        let conflicts = results.iter().filter(|r| matches!(r, Err(StoreError::Conflict { .. }))).count();
        assert_eq!((wins, conflicts), (1, 1), "round {round}: {results:?}");
        // Exactly the winner's two events, never a mix of both writers.
        let c = pool.get().await.expect("client");
        let ns: Vec<i64> = store::read_stream(&**c, "s-1", expected)
            .await
            .expect("read")
            .iter()
            .map(|e| e.data["n"].as_i64().expect("n"))
            .collect();
        assert!(ns == [0, 10] || ns == [1, 11], "round {round}: {ns:?}");
    }
    assert_eq!(count_events(&pool).await, 1 + 2 * 20);
}

#[tokio::test]
async fn a_multi_stream_append_with_one_wrong_version_writes_nothing() {
    let (_db, pool) = setup().await;
    append(&pool, &[append_to("a", 0, vec![event(1)]), append_to("b", 0, vec![event(2)])])
        .await
        .expect("seed");
    let result = append(
        &pool,
        &[
            append_to("a", 1, vec![event(3)]),
            append_to("b", 0, vec![event(4)]),
            append_to("c", 0, vec![event(5)]),
        ],
    )
    .await;
    assert!(
        matches!(result, Err(StoreError::Conflict { ref stream_id, .. }) if stream_id == "b"),
        "{result:?}"
    );
    let c = pool.get().await.expect("client");
    assert_eq!(store::read_stream(&**c, "a", 0).await.expect("a").len(), 1);
    assert_eq!(store::read_stream(&**c, "c", 0).await.expect("c").len(), 0);
    assert_eq!(count_events(&pool).await, 2);
}

#[tokio::test]
async fn a_reader_never_skips_an_event_whose_transaction_commits_late() {
    let (_db, pool) = setup().await;
    // Writer A takes a position and holds its transaction open.
    let mut a_client = pool.get().await.expect("client");
    let a_tx = a_client.transaction().await.expect("tx");
    let a_event = event(-1);
    let a_id = a_event.event_id;
    store::append(&*a_tx, &[append_to("late", 0, vec![a_event])], &meta(), Utc::now())
        .await
        .expect("A appends");

    // Writers B..N commit many events with higher positions.
    for i in 0..50 {
        append(&pool, &[append_to(&format!("early-{}", i % 5), i / 5, vec![event(i)])])
            .await
            .expect("append");
    }

    // The reader reads everything it safely can and checkpoints: a position-only reader
    // would now stand past A's position and never look back.
    let reader = pool.get().await.expect("reader");
    let mut seen = Vec::new();
    let mut checkpoint = Checkpoint::default();
    read_available(&reader, &mut checkpoint, &mut seen).await;
    assert!(!seen.contains(&a_id), "A is not committed yet");

    a_tx.commit().await.expect("A commits");
    // Other tests' open transactions in the same cluster can hold the horizon back for
    // a moment, so read until everything committed has arrived.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 51 && tokio::time::Instant::now() < deadline {
        read_available(&reader, &mut checkpoint, &mut seen).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen.contains(&a_id), "the late commit is read after A commits");
    assert_eq!(seen.len(), 51);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 51, "each event once");
}

async fn read_available(client: &tokio_postgres::Client, checkpoint: &mut Checkpoint, seen: &mut Vec<Uuid>) {
    loop {
        let batch = store::read_all(client, *checkpoint, 7).await.expect("read");
        let Some(last) = batch.last() else { return };
        *checkpoint = Checkpoint::of(last);
        seen.extend(batch.into_iter().map(|e| e.event_id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_with_slow_and_rolled_back_transactions_lose_nothing() {
    let (_db, pool) = setup().await;
    let writers = 10;
    let per_writer = 300;
    let reader_pool = pool.clone();
    let stop = stop_flag();
    let reader = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let client = reader_pool.get().await.expect("reader");
            let mut checkpoint = Checkpoint::default();
            let mut seen: Vec<(String, i64, Uuid)> = Vec::new();
            let mut hist = Vec::new();
            loop {
                let done = stop.load(std::sync::atomic::Ordering::SeqCst);
                let batch = store::read_all(&**client, checkpoint, 100).await.expect("read");
                if !batch.is_empty() {
                    let rows: Vec<(u64, i64)> = batch.iter().map(|e| (e.tx_id, e.position)).collect();
                    hist.push((checkpoint, rows, batch.iter().map(|e| e.event_id).collect::<Vec<_>>()));
                }
                // The safe order: every batch moves strictly forward from its checkpoint.
                let mut previous = checkpoint;
                for e in &batch {
                    assert!(Checkpoint::of(e) > previous, "read out of order: {previous:?} then {e:?}");
                    previous = Checkpoint::of(e);
                }
                checkpoint = previous;
                let empty = batch.is_empty();
                seen.extend(batch.into_iter().map(|e| (e.stream_id, e.version, e.event_id)));
                // Done once the writers are and the reader has passed every committed
                // event: an empty batch alone may only mean that another test's open
                // transaction (on the same server) holds the safe horizon back.
                if done && empty && checkpoint >= store::visible_head(&**client).await.expect("head") {
                    return (seen, hist);
                }
                if empty {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };

    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut committed = Vec::new();
                let mut version = 0;
                let stream = format!("w-{w}");
                for i in 0..per_writer {
                    let (hold, rollback, shared) = {
                        let mut rng = rand::thread_rng();
                        (rng.gen_ratio(1, 20), rng.gen_ratio(1, 10), rng.gen_ratio(1, 8))
                    };
                    let mut client = pool.get().await.expect("client");
                    let tx = client.transaction().await.expect("tx");
                    let e = event(i);
                    let id = e.event_id;
                    let mut appends = vec![append_to(&stream, version, vec![e])];
                    // Sometimes also touch a stream every writer shares, racing on its version.
                    let shared_version = if shared {
                        let v: i64 = tx
                            .query_opt("SELECT version FROM es.streams WHERE stream_id = 'shared'", &[])
                            .await
                            .expect("head")
                            .map_or(0, |r| r.get(0));
                        appends.push(append_to("shared", v, vec![event(i)]));
                        Some(appends[1].events[0].event_id)
                    } else {
                        None
                    };
                    let result = store::append(&*tx, &appends, &meta(), Utc::now()).await;
                    if hold {
                        let ms = rand::thread_rng().gen_range(5..60);
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    match result {
                        Ok(_) if !rollback => {
                            tx.commit().await.expect("commit");
                            version += 1;
                            committed.push(id);
                            committed.extend(shared_version);
                        }
                        Ok(_) | Err(StoreError::Conflict { .. }) => tx.rollback().await.expect("rollback"),
                        Err(e) => panic!("append failed: {e}"),
                    }
                }
                committed
            })
        })
        .collect();
    let mut committed = HashSet::new();
    for t in tasks {
        committed.extend(t.await.expect("writer"));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (seen, hist) = reader.await.expect("reader");

    let seen_ids: Vec<Uuid> = seen.iter().map(|(_, _, id)| *id).collect();
    let unique: HashSet<Uuid> = seen_ids.iter().copied().collect();
    if unique.len() != seen_ids.len() {
        // Diagnostics for a failure: every batch that returned a duplicate, and from where.
        let mut counts: HashMap<Uuid, usize> = HashMap::new();
        seen_ids.iter().for_each(|id| *counts.entry(*id).or_default() += 1);
        hist.iter()
            .filter(|h| h.2.iter().any(|id| counts[id] > 1))
            .for_each(|h| eprintln!("batch from {:?}: {:?}", h.0, h.1));
    }
    assert_eq!(unique.len(), seen_ids.len(), "no event is read twice");
    assert_eq!(unique, committed, "every committed event is read, and no rolled-back one");
    assert!(committed.len() > (writers * per_writer) as usize / 2);
    let mut last_version: HashMap<&str, i64> = HashMap::new();
    for (stream, version, _) in &seen {
        let prev = last_version.insert(stream, *version).unwrap_or(0);
        assert_eq!(*version, prev + 1, "stream {stream} arrives in version order");
    }
}

fn stop_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false))
}

#[tokio::test]
async fn the_events_table_rejects_update_delete_and_truncate() {
    let (_db, pool) = setup().await;
    append(&pool, &[append_to("s", 0, vec![event(1)])]).await.expect("seed");
    let c = pool.get().await.expect("client");
    for sql in [
        "UPDATE es.events SET data = '{}'",
        "DELETE FROM es.events",
        "TRUNCATE es.events",
        "TRUNCATE es.events CASCADE",
    ] {
        let err = c.batch_execute(sql).await.expect_err(sql);
        let db_err = err.as_db_error().expect("a database error");
        assert!(db_err.message().contains("append-only"), "{sql}: {}", db_err.message());
    }
    assert_eq!(count_events(&pool).await, 1);
}

#[tokio::test]
async fn verify_is_clean_on_an_honest_store_and_names_a_tampered_event() {
    let (_db, pool) = setup().await;
    for v in 0..3 {
        append(
            &pool,
            &[append_to("acct", v, vec![event(v)]), append_to(&format!("other-{v}"), 0, vec![event(v)])],
        )
        .await
        .expect("append");
    }
    let c = pool.get().await.expect("client");
    assert_eq!(store::verify(&**c).await.expect("verify"), vec![]);

    // Superuser, trigger disabled: edit the payload of acct v2.
    c.batch_execute(
        "ALTER TABLE es.events DISABLE TRIGGER events_append_only;
         UPDATE es.events SET data = '{\"n\": 999}' WHERE stream_id = 'acct' AND version = 2;
         ALTER TABLE es.events ENABLE TRIGGER events_append_only;",
    )
    .await
    .expect("tamper");
    let findings = store::verify(&**c).await.expect("verify");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!((findings[0].stream_id.as_str(), findings[0].version), ("acct", 2));
}

#[tokio::test]
async fn checkpoint_tokens_round_trip() {
    let cp = Checkpoint { tx_id: 981, position: 42 };
    assert_eq!(Checkpoint::parse_token(&cp.token()), Some(cp));
    assert_eq!(Checkpoint::parse_token("42"), None);
    assert_eq!(Checkpoint::parse_token("a.b"), None);
}

#[tokio::test]
async fn a_service_refuses_an_unmigrated_database_and_names_the_fix() {
    use infra::testkit::{admin_url, with_database};
    let name = format!("tally_test_{}", Uuid::new_v4().simple());
    let admin_db = with_database(&admin_url(), "postgres");
    let (admin, conn) = tokio_postgres::connect(&admin_db, tokio_postgres::NoTls).await.expect("admin");
    tokio::spawn(conn);
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create");
    let pool = db::pool(&with_database(&admin_url(), &name), 2).expect("pool");
    let err = db::ensure_migrated(&pool).await.expect_err("an empty database must be refused");
    assert!(err.to_string().contains("projector migrate"), "{err}");
    db::migrate(&with_database(&admin_url(), &name)).await.expect("migrate");
    db::ensure_migrated(&pool).await.expect("a migrated database is accepted");
    drop(pool);
    admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.expect("drop");
}

#[tokio::test]
async fn the_safe_order_compares_transaction_ids_as_numbers_not_text() {
    // Transaction ids 9 and 10 sort the other way round as text ("10" < "9"): a reader
    // ordering by the text would return tx 10 first and then step its checkpoint back.
    let (_db, pool) = setup().await;
    let c = pool.get().await.expect("client");
    c.batch_execute(
        "INSERT INTO es.events (tx_id, stream_id, version, event_id, event_type, schema_version, \
                                data, metadata, recorded_at, hash) VALUES \
           ('10', 'x', 1, gen_random_uuid(), 'T', 1, '{}', '{}', now(), '\\x00'), \
           ('9',  'y', 1, gen_random_uuid(), 'T', 1, '{}', '{}', now(), '\\x00')",
    )
    .await
    .expect("insert with explicit transaction ids");
    let events = store::read_all(&**c, Checkpoint::default(), 10).await.expect("read");
    let order: Vec<(u64, &str)> = events.iter().map(|e| (e.tx_id, e.stream_id.as_str())).collect();
    assert_eq!(order, [(9, "y"), (10, "x")]);
    let head = store::safe_head(&**c).await.expect("head");
    assert_eq!(head.tx_id, 10);
}

#[tokio::test]
async fn a_broken_database_connection_is_503_unavailable_and_an_sql_error_stays_500() {
    use actix_web::ResponseError;
    use infra::http::error::ApiError;

    let db = TestDb::new().await.expect("test database");
    let client = db.client().await.expect("client");
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.expect("pid").get(0);
    let admin = db.client().await.expect("admin");
    admin.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.expect("terminate");
    let broken = client.query_one("SELECT 1", &[]).await.expect_err("the session was terminated");
    let api = ApiError::from(StoreError::Database(broken));
    assert_eq!((api.code(), api.status_code().as_u16()), ("unavailable", 503));

    let sql = admin.query("SELECT * FROM no_such_table", &[]).await.expect_err("no such table");
    let api = ApiError::from(StoreError::Database(sql));
    assert_eq!((api.code(), api.status_code().as_u16()), ("internal", 500));
}
