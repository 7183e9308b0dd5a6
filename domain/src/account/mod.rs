//! The account: a user's points ledger, kept as lots.
//!
//! Each credit is a lot with an optional expiry. A debit takes from the lot that
//! expires soonest (never-expiring lots last) and records its allocations; a refund
//! returns the points to the same lots. Lots past their expiry are expired (with a
//! `PointsExpired` event) by the next decision that sees them, or by the projector's
//! sweep ([`AccountCommand::Sweep`]) within a minute, so the spendable balance never
//! includes expired points. The balance never goes negative.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod events;

pub use events::{AccountEvent, Allocation, CreditSource};

use crate::ids::{is_valid_amount, LotId, PurchaseId, RedemptionId, Role, UserId};
use crate::{Aggregate, Decide};

/// Where a lot's points came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Lot {
    pub id: LotId,
    pub remaining: i64,
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether notice of its expiry was given (`PointsExpiring`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub noticed: bool,
}

/// An account's decision state: its lots. It holds nothing per redemption, so its size
/// (and its snapshot's) does not grow with the number of redemptions; a refund is
/// handed the allocations its debit recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub user_id: Option<UserId>,
    /// In credit order.
    pub lots: Vec<Lot>,
    /// Lots whose purchase was refunded: points once spent from them do not come back
    /// when their redemption is cancelled (they were clawed back, or unrecovered).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clawed: Vec<LotId>,
}

impl Account {
    /// Every point not yet debited or expired by an event.
    pub fn balance(&self) -> i64 {
        self.lots.iter().map(|l| l.remaining).sum()
    }

    /// The points that can be spent at `now`: lots past expiry are excluded.
    pub fn available(&self, now: DateTime<Utc>) -> i64 {
        self.lots.iter().filter(|l| !is_expired(l, now)).map(|l| l.remaining).sum()
    }

    fn lot_mut(&mut self, id: LotId) -> Option<&mut Lot> {
        self.lots.iter_mut().find(|l| l.id == id)
    }

    /// Soonest-expiring first, never-expiring last, older lots first among equals.
    /// A heap, not a sort: a debit takes from a few lots of possibly thousands.
    fn allocate(&self, points: i64, now: DateTime<Utc>) -> Vec<Allocation> {
        let mut order: BinaryHeap<Reverse<SpendOrder>> = self
            .lots
            .iter()
            .enumerate()
            .filter(|(_, l)| l.remaining > 0 && !is_expired(l, now))
            .map(|(i, l)| Reverse((l.expires_at.is_none(), l.expires_at, i)))
            .collect();
        let mut left = points;
        let mut out = Vec::new();
        while let Some(Reverse((_, _, i))) = order.pop().filter(|_| left > 0) {
            let lot = &self.lots[i];
            let take = lot.remaining.min(left);
            out.push(Allocation { lot_id: lot.id, points: take });
            left -= take;
        }
        out
    }

    fn expiries(&self, user_id: UserId, now: DateTime<Utc>) -> Vec<AccountEvent> {
        self.lots
            .iter()
            .filter(|l| l.remaining > 0 && is_expired(l, now))
            .map(|l| AccountEvent::PointsExpired { user_id, lot_id: l.id, points: l.remaining })
            .collect()
    }

    /// Notices for lots with points left that expire after `now` but by `until`, and
    /// were not noticed before.
    fn notices(&self, user_id: UserId, now: DateTime<Utc>, until: DateTime<Utc>) -> Vec<AccountEvent> {
        self.lots
            .iter()
            .filter(|l| l.remaining > 0 && !l.noticed && !is_expired(l, now))
            .filter_map(|l| {
                let expires_at = l.expires_at.filter(|t| *t <= until)?;
                Some(AccountEvent::PointsExpiring { user_id, lot_id: l.id, points: l.remaining, expires_at })
            })
            .collect()
    }

    /// When the sweep next has something to do: the soonest expiry of a lot with points
    /// left, and the soonest expiry of such a lot not yet noticed.
    pub fn next_due(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let live = || self.lots.iter().filter(|l| l.remaining > 0);
        let expiry = live().filter_map(|l| l.expires_at).min();
        let notice = live().filter(|l| !l.noticed).filter_map(|l| l.expires_at).min();
        (expiry, notice)
    }
}

/// A lot's place in the spending order: never-expiring last, then by expiry, then by
/// its index in credit order.
type SpendOrder = (bool, Option<DateTime<Utc>>, usize);

fn is_expired(lot: &Lot, now: DateTime<Utc>) -> bool {
    lot.expires_at.is_some_and(|t| t <= now)
}

impl Aggregate for Account {
    type Event = AccountEvent;
    const STREAM: &'static str = "account";
    /// Schema 2: the per-redemption debit map is gone.
    const SNAPSHOT: Option<crate::SnapshotCodec<Self>> = Some(crate::SnapshotCodec::json(2));

    fn weight(&self) -> usize {
        1 + self.lots.len() + self.clawed.len()
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::AccountOpened { user_id } => self.user_id = Some(*user_id),
            AccountEvent::PointsCredited { lot_id, points, expires_at, .. } => self.lots.push(Lot {
                id: *lot_id,
                remaining: *points,
                expires_at: *expires_at,
                noticed: false,
            }),
            AccountEvent::PointsDebited { allocations, .. } => self.take(allocations),
            AccountEvent::PointsRefunded { allocations, .. } => {
                for a in allocations {
                    if let Some(lot) = self.lot_mut(a.lot_id) {
                        lot.remaining += a.points;
                    }
                }
            }
            AccountEvent::PointsAdjusted { delta, allocations, .. } if *delta > 0 => {
                for a in allocations {
                    self.lots.push(Lot {
                        id: a.lot_id,
                        remaining: a.points,
                        expires_at: None,
                        noticed: false,
                    });
                }
            }
            AccountEvent::PointsAdjusted { allocations, .. } => self.take(allocations),
            AccountEvent::PointsExpired { lot_id, points, .. } => {
                if let Some(lot) = self.lot_mut(*lot_id) {
                    lot.remaining -= points;
                }
            }
            AccountEvent::PointsExpiring { lot_id, .. } => {
                if let Some(lot) = self.lot_mut(*lot_id) {
                    lot.noticed = true;
                }
            }
            AccountEvent::PointsClawedBack { lot_id, points, .. } => {
                if let Some(lot) = self.lot_mut(*lot_id) {
                    lot.remaining -= points;
                }
                self.clawed.push(*lot_id);
            }
            AccountEvent::RoleGranted { .. }
            | AccountEvent::RoleRevoked { .. }
            | AccountEvent::UserErased { .. } => {}
        }
    }
}

impl Account {
    fn take(&mut self, allocations: &[Allocation]) {
        for a in allocations {
            if let Some(lot) = self.lot_mut(a.lot_id) {
                lot.remaining -= a.points;
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    Open {
        user_id: UserId,
    },
    Credit {
        lot_id: LotId,
        points: i64,
        source: CreditSource,
        expires_at: Option<DateTime<Utc>>,
    },
    Debit {
        redemption_id: RedemptionId,
        points: i64,
        now: DateTime<Utc>,
    },
    /// Returns a redemption's points to the lots they came from. `debited` is what
    /// the redemption's `PointsDebited` recorded (empty: there was none). Refunding
    /// once is the redemption's rule: only a placed redemption can be cancelled.
    Refund {
        redemption_id: RedemptionId,
        debited: Vec<Allocation>,
    },
    Adjust {
        delta: i64,
        reason: String,
        reference: Option<String>,
        by: UserId,
        new_lot: LotId,
        now: DateTime<Utc>,
    },
    GrantRole {
        role: Role,
        by: UserId,
    },
    /// Roles live with the user's profile; the account records who changed them.
    RevokeRole {
        role: Role,
        by: UserId,
    },
    /// Records an erasure (the personal data itself is in `users`, never here).
    RecordErasure {
        by: UserId,
    },
    /// Takes back what is left of a refunded purchase's lot (`credited` points at first).
    ClawBack {
        lot_id: LotId,
        purchase_id: PurchaseId,
        credited: i64,
    },
    /// The projector's sweep: expires every lot past its expiry at `now`, and gives
    /// notice once of every lot with points left that expires by `notice_until`.
    Sweep {
        now: DateTime<Utc>,
        notice_until: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the account does not exist")]
    NotOpened,
    #[error("an admin cannot revoke their own admin role")]
    OwnAdminRole,
    #[error("the account is already open")]
    AlreadyOpened,
    #[error("points must be a positive whole number no larger than 10^12")]
    InvalidAmount,
    #[error("{requested} points requested but only {available} available")]
    InsufficientPoints { requested: i64, available: i64 },
    #[error("an adjustment needs a reason")]
    ReasonRequired,
    #[error("no debit for this redemption")]
    UnknownRedemption,
}

impl Decide for Account {
    type Command = AccountCommand;
    type Error = AccountError;

    fn decide(&self, command: AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        let user_id = match (self.user_id, &command) {
            (None, AccountCommand::Open { user_id }) => {
                return Ok(vec![AccountEvent::AccountOpened { user_id: *user_id }])
            }
            (Some(_), AccountCommand::Open { .. }) => return Err(AccountError::AlreadyOpened),
            (None, _) => return Err(AccountError::NotOpened),
            (Some(id), _) => id,
        };
        match command {
            AccountCommand::Open { .. } => Err(AccountError::AlreadyOpened),
            AccountCommand::Credit { lot_id, points, source, expires_at } => {
                if !is_valid_amount(points) {
                    return Err(AccountError::InvalidAmount);
                }
                Ok(vec![AccountEvent::PointsCredited { user_id, lot_id, points, source, expires_at }])
            }
            AccountCommand::Debit { redemption_id, points, now } => {
                if !is_valid_amount(points) {
                    return Err(AccountError::InvalidAmount);
                }
                let allocations = self.spend(points, now)?;
                let mut events = self.expiries(user_id, now);
                events.push(AccountEvent::PointsDebited { user_id, redemption_id, points, allocations });
                Ok(events)
            }
            AccountCommand::Refund { redemption_id, debited } => {
                if debited.is_empty() {
                    return Err(AccountError::UnknownRedemption);
                }
                let allocations: Vec<Allocation> =
                    debited.into_iter().filter(|a| !self.clawed.contains(&a.lot_id)).collect();
                if allocations.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![AccountEvent::PointsRefunded {
                    user_id,
                    redemption_id,
                    points: allocations.iter().map(|a| a.points).sum(),
                    allocations,
                }])
            }
            AccountCommand::Adjust { delta, reason, reference, by, new_lot, now } => {
                if reason.trim().is_empty() {
                    return Err(AccountError::ReasonRequired);
                }
                if !is_valid_amount(delta.saturating_abs()) {
                    return Err(AccountError::InvalidAmount);
                }
                let allocations = if delta > 0 {
                    vec![Allocation { lot_id: new_lot, points: delta }]
                } else {
                    self.spend(-delta, now)?
                };
                let mut events = self.expiries(user_id, now);
                events.push(AccountEvent::PointsAdjusted {
                    user_id,
                    delta,
                    reason,
                    reference,
                    by,
                    allocations,
                });
                Ok(events)
            }
            AccountCommand::GrantRole { role, by } => {
                Ok(vec![AccountEvent::RoleGranted { user_id, role, by }])
            }
            AccountCommand::RevokeRole { role: Role::Admin, by } if by == user_id => {
                Err(AccountError::OwnAdminRole)
            }
            AccountCommand::RevokeRole { role, by } => {
                Ok(vec![AccountEvent::RoleRevoked { user_id, role, by }])
            }
            AccountCommand::RecordErasure { by } => Ok(vec![AccountEvent::UserErased { user_id, by }]),
            AccountCommand::ClawBack { lot_id, purchase_id, credited } => {
                // Never below zero: only what the lot still holds comes back.
                let points = self.lots.iter().find(|l| l.id == lot_id).map_or(0, |l| l.remaining.max(0));
                let unrecovered = credited - points;
                Ok(vec![AccountEvent::PointsClawedBack { user_id, lot_id, purchase_id, points, unrecovered }])
            }
            AccountCommand::Sweep { now, notice_until } => {
                let mut events = self.expiries(user_id, now);
                events.extend(self.notices(user_id, now, notice_until));
                Ok(events)
            }
        }
    }
}

impl Account {
    fn spend(&self, points: i64, now: DateTime<Utc>) -> Result<Vec<Allocation>, AccountError> {
        let available = self.available(now);
        if points > available {
            return Err(AccountError::InsufficientPoints { requested: points, available });
        }
        Ok(self.allocate(points, now))
    }
}

#[cfg(test)]
mod tests;
