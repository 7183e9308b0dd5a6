//! given/when/then tests of the account's decisions.
use chrono::{Duration, TimeZone};
use uuid::Uuid;

use super::*;
use crate::testing::given;

fn user() -> UserId {
    UserId(Uuid::from_u128(1))
}
fn lot(n: u128) -> LotId {
    LotId(Uuid::from_u128(100 + n))
}
fn rid(n: u128) -> RedemptionId {
    RedemptionId(Uuid::from_u128(200 + n))
}
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("valid date")
}
fn opened() -> AccountEvent {
    AccountEvent::AccountOpened { user_id: user() }
}
fn credited(n: u128, points: i64, expires_at: Option<DateTime<Utc>>) -> AccountEvent {
    AccountEvent::PointsCredited {
        user_id: user(),
        lot_id: lot(n),
        points,
        source: CreditSource::Purchase { purchase_id: PurchaseId(Uuid::from_u128(n)) },
        expires_at,
    }
}
fn debit(n: u128, points: i64) -> AccountCommand {
    AccountCommand::Debit { redemption_id: rid(n), points, now: now() }
}

#[test]
fn a_debit_takes_from_the_soonest_expiring_lot_first() {
    let soon = now() + Duration::days(10);
    let later = now() + Duration::days(20);
    given::<Account>([
        opened(),
        credited(1, 50, None),
        credited(2, 30, Some(later)),
        credited(3, 20, Some(soon)),
    ])
    .when(debit(1, 40))
    .then([AccountEvent::PointsDebited {
        user_id: user(),
        redemption_id: rid(1),
        points: 40,
        allocations: vec![
            Allocation { lot_id: lot(3), points: 20 },
            Allocation { lot_id: lot(2), points: 20 },
        ],
    }]);
}

#[test]
fn redeeming_more_than_the_balance_is_rejected() {
    given::<Account>([opened(), credited(1, 50, None)])
        .when(debit(1, 51))
        .then_err(AccountError::InsufficientPoints { requested: 51, available: 50 });
}

#[test]
fn expired_lots_cannot_be_spent_and_are_expired_by_the_next_debit() {
    let past = now() - Duration::seconds(1);
    given::<Account>([opened(), credited(1, 50, Some(past)), credited(2, 10, None)])
        .when(debit(1, 51))
        .then_err(AccountError::InsufficientPoints { requested: 51, available: 10 });
    given::<Account>([opened(), credited(1, 50, Some(past)), credited(2, 10, None)]).when(debit(1, 10)).then(
        [
            AccountEvent::PointsExpired { user_id: user(), lot_id: lot(1), points: 50 },
            AccountEvent::PointsDebited {
                user_id: user(),
                redemption_id: rid(1),
                points: 10,
                allocations: vec![Allocation { lot_id: lot(2), points: 10 }],
            },
        ],
    );
}

#[test]
fn a_refund_returns_points_to_the_lots_they_came_from() {
    let allocations =
        vec![Allocation { lot_id: lot(1), points: 10 }, Allocation { lot_id: lot(2), points: 20 }];
    let debited = AccountEvent::PointsDebited {
        user_id: user(),
        redemption_id: rid(1),
        points: 30,
        allocations: allocations.clone(),
    };
    let refunded = AccountEvent::PointsRefunded {
        user_id: user(),
        redemption_id: rid(1),
        points: 30,
        allocations: allocations.clone(),
    };
    let refund = AccountCommand::Refund { redemption_id: rid(1), debited: allocations };
    given::<Account>([opened(), credited(1, 10, None), credited(2, 20, None), debited.clone()])
        .when(refund)
        .then([refunded.clone()]);
    given::<Account>([opened(), credited(1, 10, None), credited(2, 20, None), debited.clone()])
        .when(AccountCommand::Refund { redemption_id: rid(1), debited: vec![] })
        .then_err(AccountError::UnknownRedemption);
    // Folding the debit and then the refund puts every point back in its lot.
    let mut account = Account::default();
    for e in [opened(), credited(1, 10, None), credited(2, 20, None)] {
        account.apply(&e);
    }
    let before = account.clone();
    account.apply(&debited);
    assert_eq!(account.balance(), 0);
    account.apply(&refunded);
    assert_eq!(account, before);
}

#[test]
fn an_adjustment_needs_a_reason_and_cannot_overdraw() {
    let adjust = |delta, reason: &str| AccountCommand::Adjust {
        delta,
        reason: reason.into(),
        reference: None,
        by: UserId(Uuid::from_u128(9)),
        new_lot: lot(9),
        now: now(),
    };
    given::<Account>([opened()]).when(adjust(5, " ")).then_err(AccountError::ReasonRequired);
    given::<Account>([opened(), credited(1, 10, None)])
        .when(adjust(-11, "fraud"))
        .then_err(AccountError::InsufficientPoints { requested: 11, available: 10 });
    given::<Account>([opened()]).when(adjust(5, "goodwill")).then([AccountEvent::PointsAdjusted {
        user_id: user(),
        delta: 5,
        reason: "goodwill".into(),
        reference: None,
        by: UserId(Uuid::from_u128(9)),
        allocations: vec![Allocation { lot_id: lot(9), points: 5 }],
    }]);
}

#[test]
fn zero_negative_and_absurd_amounts_are_rejected() {
    for points in [0, -5, crate::ids::MAX_AMOUNT + 1] {
        given::<Account>([opened(), credited(1, 10, None)])
            .when(debit(1, points))
            .then_err(AccountError::InvalidAmount);
    }
}

#[test]
fn commands_on_an_unopened_account_are_rejected() {
    given::<Account>([]).when(debit(1, 1)).then_err(AccountError::NotOpened);
}

#[test]
fn the_state_and_its_snapshot_do_not_grow_with_redemptions() {
    let mut account = Account::default();
    for e in [opened(), credited(1, 1_000_000, None)] {
        account.apply(&e);
    }
    let size = |a: &Account| serde_json::to_vec(a).expect("serialize").len();
    let debit = |n: u128| AccountEvent::PointsDebited {
        user_id: user(),
        redemption_id: rid(n),
        points: 1,
        allocations: vec![Allocation { lot_id: lot(1), points: 1 }],
    };
    account.apply(&debit(0));
    let after_one = size(&account);
    for n in 1..1_000 {
        account.apply(&debit(n));
    }
    assert_eq!(account.balance(), 1_000_000 - 1_000);
    assert!(
        size(&account) <= after_one + 8,
        "{} bytes after 1,000 debits, {after_one} after one",
        size(&account)
    );
}

#[test]
fn a_claw_back_takes_what_is_left_of_the_lot_and_records_what_was_spent() {
    let spent = AccountEvent::PointsDebited {
        user_id: user(),
        redemption_id: rid(1),
        points: 30,
        allocations: vec![Allocation { lot_id: lot(1), points: 30 }],
    };
    let purchase_id = PurchaseId(Uuid::from_u128(1));
    given::<Account>([opened(), credited(1, 100, None), credited(2, 50, None), spent])
        .when(AccountCommand::ClawBack { lot_id: lot(1), purchase_id, credited: 100 })
        .then([AccountEvent::PointsClawedBack {
            user_id: user(),
            lot_id: lot(1),
            purchase_id,
            points: 70,
            unrecovered: 30,
        }]);
    let mut account = Account::fold(&[opened(), credited(1, 100, None), credited(2, 50, None)]);
    account.apply(&AccountEvent::PointsClawedBack {
        user_id: user(),
        lot_id: lot(1),
        purchase_id,
        points: 100,
        unrecovered: 0,
    });
    assert_eq!(account.balance(), 50, "the other lot is untouched");
}

#[test]
fn a_cancel_after_its_lot_was_clawed_back_returns_nothing_to_that_lot() {
    let purchase_id = PurchaseId(Uuid::from_u128(1));
    let spent = vec![Allocation { lot_id: lot(1), points: 30 }, Allocation { lot_id: lot(2), points: 10 }];
    let history = [
        opened(),
        credited(1, 100, None),
        credited(2, 50, None),
        AccountEvent::PointsDebited {
            user_id: user(),
            redemption_id: rid(1),
            points: 40,
            allocations: spent.clone(),
        },
        AccountEvent::PointsClawedBack {
            user_id: user(),
            lot_id: lot(1),
            purchase_id,
            points: 70,
            unrecovered: 30,
        },
    ];
    // Only the 10 points from the other lot come back.
    given::<Account>(history.clone())
        .when(AccountCommand::Refund { redemption_id: rid(1), debited: spent })
        .then([AccountEvent::PointsRefunded {
            user_id: user(),
            redemption_id: rid(1),
            points: 10,
            allocations: vec![Allocation { lot_id: lot(2), points: 10 }],
        }]);
    let only_clawed = vec![Allocation { lot_id: lot(1), points: 30 }];
    given::<Account>(history)
        .when(AccountCommand::Refund { redemption_id: rid(1), debited: only_clawed })
        .then([]);
}

fn sweep(notice_days: i64) -> AccountCommand {
    AccountCommand::Sweep { now: now(), notice_until: now() + Duration::days(notice_days) }
}

#[test]
fn the_sweep_expires_lots_past_expiry_and_gives_notice_once_of_those_expiring_soon() {
    let past = now() - Duration::seconds(1);
    let in_5_days = now() + Duration::days(5);
    let in_9_days = now() + Duration::days(9);
    let history = [
        opened(),
        credited(1, 50, Some(past)),
        credited(2, 30, Some(in_5_days)),
        credited(3, 20, Some(in_9_days)),
        credited(4, 10, None),
    ];
    given::<Account>(history.clone()).when(sweep(7)).then([
        AccountEvent::PointsExpired { user_id: user(), lot_id: lot(1), points: 50 },
        AccountEvent::PointsExpiring { user_id: user(), lot_id: lot(2), points: 30, expires_at: in_5_days },
    ]);
    // Once: a second sweep after the first finds nothing to do.
    let mut after = history.to_vec();
    after.push(AccountEvent::PointsExpired { user_id: user(), lot_id: lot(1), points: 50 });
    after.push(AccountEvent::PointsExpiring {
        user_id: user(),
        lot_id: lot(2),
        points: 30,
        expires_at: in_5_days,
    });
    given::<Account>(after.clone()).when(sweep(7)).then([]);
    // A spent lot needs no notice; the sweep's next due times follow the lots.
    let mut state = Account::default();
    after.iter().for_each(|e| state.apply(e));
    assert_eq!(state.next_due(), (Some(in_5_days), Some(in_9_days)));
}

#[test]
fn a_lot_spent_to_zero_is_neither_noticed_nor_expired() {
    let in_5_days = now() + Duration::days(5);
    let spent = AccountEvent::PointsDebited {
        user_id: user(),
        redemption_id: rid(1),
        points: 30,
        allocations: vec![Allocation { lot_id: lot(2), points: 30 }],
    };
    given::<Account>([opened(), credited(2, 30, Some(in_5_days)), spent]).when(sweep(7)).then([]);
}
