//! A group commit's prefetch folds the same states the unit of work's own loads do.

use chrono::Utc;
use deadpool_postgres::Pool;
use domain::account::{Account, AccountEvent, CreditSource};
use domain::{LotId, PurchaseId, UserId};
use infra::uow::UnitOfWork;
use uuid::Uuid;

use super::{meta, setup};

/// Credits `n` lots to a new account, one unit of work each (snapshots fall due as in
/// production); its stream id.
async fn account_with_credits(pool: &Pool, n: usize) -> String {
    let user_id = UserId(Uuid::new_v4());
    let stream = format!("account-{}", user_id.0);
    for i in 0..n {
        let mut client = pool.get().await.expect("client");
        let mut uow = UnitOfWork::begin(&mut client).await.expect("begin");
        let account = uow.load::<Account>(&stream).await.expect("load");
        let credit = AccountEvent::PointsCredited {
            user_id,
            lot_id: LotId(Uuid::new_v4()),
            points: 1 + i as i64,
            source: CreditSource::Purchase { purchase_id: PurchaseId(Uuid::new_v4()) },
            expires_at: None,
        };
        uow.push(account, &[credit]).expect("push");
        uow.save(&meta(), Utc::now()).await.expect("save");
        uow.commit().await.expect("commit");
    }
    stream
}

#[tokio::test]
async fn prefetched_accounts_equal_loaded_ones_with_and_without_a_snapshot() {
    let (_db, pool) = setup().await;
    let (long, short) = (account_with_credits(&pool, 70).await, account_with_credits(&pool, 3).await);
    let client = pool.get().await.expect("client");
    let snapshots: i64 = client
        .query_one("SELECT count(*) FROM es.snapshots WHERE stream_id = $1", &[&long])
        .await
        .expect("snapshots")
        .get(0);
    assert_eq!(snapshots, 1, "the long account has a snapshot and a tail");
    drop(client);

    let streams = [long.as_str(), short.as_str(), long.as_str()];
    let mut client = pool.get().await.expect("client");
    let mut prefetching = UnitOfWork::begin(&mut client).await.expect("begin");
    prefetching.lock(&streams).await.expect("lock");
    prefetching.prefetch::<Account>(&streams).await.expect("prefetch");
    let mut prefetched = Vec::new();
    for s in [&long, &short] {
        let loaded = prefetching.load::<Account>(s).await.expect("load");
        prefetched.push((loaded.state, loaded.version));
    }
    drop(prefetching);

    let mut client = pool.get().await.expect("client");
    let mut plain = UnitOfWork::begin(&mut client).await.expect("begin");
    for (s, (state, version)) in [&long, &short].into_iter().zip(prefetched) {
        let loaded = plain.load::<Account>(s).await.expect("load");
        assert_eq!((&state, version), (&loaded.state, loaded.version), "{s}");
        assert!(state.balance() > 0);
    }
}
