//! The expiry sweep, with the clock driven through the sweep's `now`: lots expire on
//! time whatever their customers do, notice goes out once per lot, and concurrent
//! sweepers racing redemptions never expire or spend the same points twice.

use chrono::{Duration, Utc};
use command_api::testkit::{account_stream, spawn_app, Customer, TestApp};
use domain::account::{Account, AccountEvent};
use domain::DomainEvent;
use serde_json::json;

use crate::support::*;

/// A customer holding one lot of `points` that expires in 30 days.
async fn customer_with_expiring_lot(app: &TestApp, package: &str) -> Customer {
    let c = app.register("saver").await;
    let purchase = app.start_purchase(&c, package).await;
    let paid = json!({ "purchase_id": purchase, "status": "succeeded", "payment_ref": "pay" });
    assert_eq!(app.webhook(&paid).await.status(), 200);
    c
}

async fn account_events(app: &TestApp, c: &Customer) -> Vec<AccountEvent> {
    let client = app.db.client().await.expect("client");
    infra::store::read_stream(&client, &account_stream(&c.id), 0)
        .await
        .expect("read")
        .iter()
        .map(|e| AccountEvent::decode(&e.event_type, &e.data).expect("decode"))
        .collect()
}

#[tokio::test]
async fn lots_are_noticed_once_then_expired_once_even_against_concurrent_sweeps_and_redemptions() {
    let app = spawn_app().await;
    let package = app
        .create(
            "/v1/credit-packages",
            json!({ "name": "Thirty days", "description": "", "price": "5.00", "currency": "EUR", "points": 100, "points_valid_days": 30 }),
        )
        .await;
    let customers: Vec<Customer> =
        futures_util::future::join_all((0..6).map(|_| customer_with_expiring_lot(&app, &package))).await;
    let product = app.product(30, 1000).await;
    catch_up(&app.db.url).await;
    let pool = infra::db::pool(&app.db.url, 8).expect("pool");
    let notice = Duration::days(7);

    // Three weeks on: nothing is due yet.
    let swept =
        projector::expiry::sweep(&pool, Utc::now() + Duration::days(21), notice).await.expect("sweep");
    assert_eq!((swept.expired, swept.noticed), (0, 0));
    // Six days before expiry: one notice per lot, and only once.
    let at = Utc::now() + Duration::days(24);
    let swept = projector::expiry::sweep(&pool, at, notice).await.expect("sweep");
    assert_eq!((swept.accounts, swept.noticed, swept.expired), (6, 6, 0));
    catch_up(&app.db.url).await;
    let again = projector::expiry::sweep(&pool, at + Duration::hours(1), notice).await.expect("sweep");
    assert_eq!(again.noticed, 0, "notice is given once per lot");

    // Past expiry: three sweepers at once, while every customer redeems (at today's
    // clock) as fast as it can. Each lot's points are either spent or expired, never
    // both, and expired once.
    let after_expiry = Utc::now() + Duration::days(31);
    let sweeps = (0..3).map(|_| projector::expiry::sweep(&pool, after_expiry, notice));
    let redemptions = customers.iter().map(|c| async {
        let mut placed = 0;
        for _ in 0..4 {
            placed += i64::from(app.redeem(&c.token, &product).await.is_some());
        }
        placed
    });
    let (swept, placed) =
        tokio::join!(futures_util::future::join_all(sweeps), futures_util::future::join_all(redemptions));
    let expired_by_sweeps: u64 = swept.into_iter().map(|s| s.expect("sweep").expired).sum();
    assert_eq!(expired_by_sweeps, 6, "each lot expired by exactly one sweeper");

    for (c, placed) in customers.iter().zip(placed) {
        let events = account_events(&app, c).await;
        let expired: Vec<i64> = events
            .iter()
            .filter_map(|e| match e {
                AccountEvent::PointsExpired { points, .. } => Some(*points),
                _ => None,
            })
            .collect();
        let debited: i64 = events
            .iter()
            .map(|e| match e {
                AccountEvent::PointsDebited { points, .. } => *points,
                _ => 0,
            })
            .sum();
        assert_eq!(expired.len(), 1, "{events:?}");
        assert_eq!(debited, placed * 30);
        assert_eq!(expired[0] + debited, 100, "spent and expired add up to the lot: {events:?}");
        let account: Account = app.fold(&account_stream(&c.id)).await;
        assert_eq!(account.balance(), 0);
    }

    // The read models follow: nothing left due, balances at zero, reconcile clean.
    catch_up(&app.db.url).await;
    let client = connect(&app.db.url).await;
    let due: i64 = client
        .query_one("SELECT count(*) FROM read.balances WHERE next_expiry IS NOT NULL", &[])
        .await
        .expect("due")
        .get(0);
    assert_eq!(due, 0);
    assert!(projector::reconcile::reconcile(&client).await.expect("reconcile").is_empty());
}
