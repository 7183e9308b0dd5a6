//! The command side's kept states (`infra::states`): used only at the head they were
//! folded to, whoever else appends; never kept from a transaction that did not commit;
//! snapshots written behind and never replaced by older ones.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;
use domain::account::{Account, AccountCommand, AccountError, CreditSource};
use domain::{Decide, LotId, PurchaseId, RedemptionId, UserId};
use infra::states::StateCache;
use infra::store::{snapshots, Checkpoint};
use infra::uow::UnitOfWork;
use uuid::Uuid;

use super::{meta, setup};

enum Refused {
    Decision(AccountError),
    Store(infra::store::StoreError),
}

/// One command on `stream` in its own unit of work, through `states` when given.
async fn run(
    pool: &Pool,
    states: Option<&Arc<StateCache>>,
    stream: &str,
    command: AccountCommand,
) -> Result<Account, Refused> {
    let mut client = pool.get().await.expect("client");
    let mut uow = UnitOfWork::begin(&mut client).await.map_err(Refused::Store)?;
    if let Some(states) = states {
        uow = uow.with_states(states);
    }
    let account = uow.load::<Account>(stream).await.map_err(Refused::Store)?;
    let events = account.state.decide(command).map_err(Refused::Decision)?;
    let after = uow.push(account, &events).map_err(Refused::Store)?;
    uow.save(&meta(), Utc::now()).await.map_err(Refused::Store)?;
    uow.commit().await.map_err(Refused::Store)?;
    Ok(after)
}

fn credit(points: i64) -> AccountCommand {
    AccountCommand::Credit {
        lot_id: LotId(Uuid::new_v4()),
        points,
        source: CreditSource::Purchase { purchase_id: PurchaseId(Uuid::new_v4()) },
        expires_at: None,
    }
}

fn debit(points: i64) -> AccountCommand {
    AccountCommand::Debit { redemption_id: RedemptionId(Uuid::new_v4()), points, now: Utc::now() }
}

/// A new, opened account's stream id.
async fn opened(pool: &Pool, states: Option<&Arc<StateCache>>) -> String {
    let user_id = UserId(Uuid::new_v4());
    let stream = format!("account-{}", user_id.0);
    assert!(run(pool, states, &stream, AccountCommand::Open { user_id }).await.is_ok());
    stream
}

/// The state folded from the store alone.
async fn stored(pool: &Pool, stream: &str) -> (Account, i64) {
    let mut client = pool.get().await.expect("client");
    let mut uow = UnitOfWork::begin(&mut client).await.expect("begin");
    let loaded = uow.load::<Account>(stream).await.expect("load");
    (loaded.state, loaded.version)
}

/// The state a unit of work on `states` loads.
async fn through(pool: &Pool, states: &Arc<StateCache>, stream: &str) -> (Account, i64) {
    let mut client = pool.get().await.expect("client");
    let mut uow = UnitOfWork::begin(&mut client).await.expect("begin").with_states(states);
    let loaded = uow.load::<Account>(stream).await.expect("load");
    (loaded.state, loaded.version)
}

#[tokio::test]
async fn two_instances_each_keeping_states_never_overspend_an_account() {
    let (_db, pool) = setup().await;
    let instances = [StateCache::new(pool.clone(), 1_000), StateCache::new(pool.clone(), 1_000)];
    let stream = opened(&pool, Some(&instances[0])).await;
    assert!(run(&pool, Some(&instances[1]), &stream, credit(30)).await.is_ok());
    // Both instances keep the account at 30 points before the race.
    for states in &instances {
        assert_eq!(through(&pool, states, &stream).await, stored(&pool, &stream).await);
    }
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let (pool, states, stream) = (pool.clone(), instances[i % 2].clone(), stream.clone());
            tokio::spawn(async move { run(&pool, Some(&states), &stream, debit(1)).await })
        })
        .collect();
    let mut debited = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => debited += 1,
            Err(Refused::Decision(AccountError::InsufficientPoints { .. })) => {}
            Err(Refused::Decision(e)) => panic!("unexpected refusal: {e}"),
            Err(Refused::Store(e)) => panic!("store error: {e}"),
        }
    }
    assert_eq!(debited, 30, "exactly the points there were");
    let (account, _) = stored(&pool, &stream).await;
    assert_eq!(account.balance(), 0);
    for states in &instances {
        assert_eq!(through(&pool, states, &stream).await, stored(&pool, &stream).await);
    }
}

#[tokio::test]
async fn a_state_another_instance_moved_on_is_folded_again() {
    let (_db, pool) = setup().await;
    let (mine, theirs) = (StateCache::new(pool.clone(), 1_000), StateCache::new(pool.clone(), 1_000));
    let stream = opened(&pool, Some(&mine)).await;
    assert!(run(&pool, Some(&mine), &stream, credit(10)).await.is_ok());
    assert!(run(&pool, Some(&theirs), &stream, credit(5)).await.is_ok());
    // Kept at 10 points, the account now holds 15: the kept state must not decide.
    let after = run(&pool, Some(&mine), &stream, debit(15)).await.ok().expect("15 points are there");
    assert_eq!(after.balance(), 0);
    assert!(matches!(
        run(&pool, Some(&theirs), &stream, debit(1)).await,
        Err(Refused::Decision(AccountError::InsufficientPoints { available: 0, .. }))
    ));
}

#[tokio::test]
async fn a_unit_of_work_that_does_not_commit_keeps_nothing() {
    let (_db, pool) = setup().await;
    let states = StateCache::new(pool.clone(), 1_000);
    let stream = opened(&pool, Some(&states)).await;
    let mut client = pool.get().await.expect("client");
    let mut uow = UnitOfWork::begin(&mut client).await.expect("begin").with_states(&states);
    let account = uow.load::<Account>(&stream).await.expect("load");
    let events = account.state.decide(credit(99)).expect("credit");
    uow.push(account, &events).expect("push");
    uow.save(&meta(), Utc::now()).await.expect("save");
    drop(uow); // rolled back
    let (kept, version) = through(&pool, &states, &stream).await;
    assert_eq!((kept.balance(), version), (0, 1));
}

#[tokio::test]
async fn a_stream_restored_and_grown_again_is_not_taken_for_the_kept_one() {
    // Two databases stand for the store before and after a restore to an earlier
    // point: the same stream at the same version, with other events.
    let ((_a, before), (_b, after)) = (setup().await, setup().await);
    let states = StateCache::new(before.clone(), 1_000);
    let user_id = UserId(Uuid::new_v4());
    let stream = format!("account-{}", user_id.0);
    for (pool, points) in [(&before, 7), (&after, 3)] {
        assert!(run(pool, Some(&states), &stream, AccountCommand::Open { user_id }).await.is_ok());
        assert!(run(pool, Some(&states), &stream, credit(points)).await.is_ok());
    }
    assert_eq!(states.len_and_weight().0, 1);
    let (kept, version) = through(&after, &states, &stream).await;
    assert_eq!((kept.balance(), version), (3, 2));
    let (kept, _) = through(&before, &states, &stream).await;
    assert_eq!(kept.balance(), 7);
}

#[tokio::test]
async fn kept_states_stay_within_their_weight() {
    let (_db, pool) = setup().await;
    let states = StateCache::new(pool.clone(), 12);
    let mut streams = Vec::new();
    for _ in 0..8 {
        let stream = opened(&pool, Some(&states)).await;
        assert!(run(&pool, Some(&states), &stream, credit(1)).await.is_ok()); // weight 2
        streams.push(stream);
    }
    let (len, weight) = states.len_and_weight();
    assert!(weight <= 12 && len == 6, "{len} states weighing {weight}");
    // Evicted or kept, every load answers the stored state.
    for stream in &streams {
        assert_eq!(through(&pool, &states, stream).await, stored(&pool, stream).await);
    }
}

#[tokio::test]
async fn snapshots_are_written_behind_and_never_replaced_by_older_ones() {
    let (_db, pool) = setup().await;
    let states = StateCache::new(pool.clone(), 1_000);
    let stream = opened(&pool, Some(&states)).await;
    for _ in 0..70 {
        assert!(run(&pool, Some(&states), &stream, credit(1)).await.is_ok());
    }
    let client = pool.get().await.expect("client");
    let mut version = None;
    for _ in 0..100 {
        version = snapshots::read(&**client, &stream, 2).await.expect("read").map(|s| s.version);
        if version.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(version, Some(64), "due at 64 events, written after the commit");
    let older = snapshots::Stored { version: 10, state: serde_json::json!({}), last: Checkpoint::default() };
    snapshots::write(&**client, &stream, 2, &older).await.expect("write");
    let kept = snapshots::read(&**client, &stream, 2).await.expect("read").expect("snapshot");
    assert_eq!(kept.version, 64);
    // A cold load (a process that kept nothing) starts from it and folds the tail.
    assert_eq!(stored(&pool, &stream).await.0.balance(), 70);
}
