//! The account's events, and what each does to the balance, the lifetime totals and
//! the ledger.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{LotId, PurchaseId, RedemptionId, Role, UserId};
use crate::DomainEvent;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CreditSource {
    Purchase { purchase_id: PurchaseId },
}

/// Points taken from (or returned to) one lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub lot_id: LotId,
    pub points: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AccountEvent {
    AccountOpened {
        user_id: UserId,
    },
    PointsCredited {
        user_id: UserId,
        lot_id: LotId,
        points: i64,
        source: CreditSource,
        expires_at: Option<DateTime<Utc>>,
    },
    PointsDebited {
        user_id: UserId,
        redemption_id: RedemptionId,
        points: i64,
        allocations: Vec<Allocation>,
    },
    PointsRefunded {
        user_id: UserId,
        redemption_id: RedemptionId,
        points: i64,
        allocations: Vec<Allocation>,
    },
    /// A manual correction by an admin. A positive delta opens a new never-expiring lot;
    /// a negative one takes from lots like a debit.
    PointsAdjusted {
        user_id: UserId,
        delta: i64,
        reason: String,
        reference: Option<String>,
        by: UserId,
        allocations: Vec<Allocation>,
    },
    PointsExpired {
        user_id: UserId,
        lot_id: LotId,
        points: i64,
    },
    /// Notice, given once per lot, that `points` of it expire at `expires_at`. Moves
    /// nothing: integrators hear of it as `points.expiring`.
    PointsExpiring {
        user_id: UserId,
        lot_id: LotId,
        points: i64,
        expires_at: DateTime<Utc>,
    },
    RoleGranted {
        user_id: UserId,
        role: Role,
        by: UserId,
    },
    RoleRevoked {
        user_id: UserId,
        role: Role,
        by: UserId,
    },
    /// The user's personal data was erased (it was never in events); `by` is who did it.
    UserErased {
        user_id: UserId,
        by: UserId,
    },
    /// A purchase was refunded or charged back: what is left of its lot is taken back;
    /// `unrecovered` is what had been spent (or had expired) already.
    PointsClawedBack {
        user_id: UserId,
        lot_id: LotId,
        purchase_id: PurchaseId,
        points: i64,
        unrecovered: i64,
    },
}

impl DomainEvent for AccountEvent {}

impl AccountEvent {
    /// The account this event belongs to.
    pub fn user_id(&self) -> UserId {
        match self {
            AccountEvent::AccountOpened { user_id }
            | AccountEvent::PointsCredited { user_id, .. }
            | AccountEvent::PointsDebited { user_id, .. }
            | AccountEvent::PointsRefunded { user_id, .. }
            | AccountEvent::PointsAdjusted { user_id, .. }
            | AccountEvent::PointsExpired { user_id, .. }
            | AccountEvent::PointsExpiring { user_id, .. }
            | AccountEvent::RoleGranted { user_id, .. }
            | AccountEvent::RoleRevoked { user_id, .. }
            | AccountEvent::PointsClawedBack { user_id, .. }
            | AccountEvent::UserErased { user_id, .. } => *user_id,
        }
    }

    /// What this event adds to the lifetime totals, as `(earned, spent)`: earned counts
    /// credits and positive adjustments, spent counts debits net of refunds. Expiries
    /// and negative adjustments are neither.
    pub fn lifetime(&self) -> (i64, i64) {
        match self {
            AccountEvent::PointsCredited { points, .. } => (*points, 0),
            AccountEvent::PointsAdjusted { delta, .. } => ((*delta).max(0), 0),
            AccountEvent::PointsDebited { points, .. } => (0, *points),
            AccountEvent::PointsRefunded { points, .. } => (0, -points),
            _ => (0, 0),
        }
    }

    /// Whether this event moves points, and so has a line in the ledger.
    pub fn moves_points(&self) -> bool {
        !matches!(
            self,
            AccountEvent::AccountOpened { .. }
                | AccountEvent::PointsExpiring { .. }
                | AccountEvent::RoleGranted { .. }
                | AccountEvent::RoleRevoked { .. }
                | AccountEvent::UserErased { .. }
        )
    }

    /// The change this event makes to the balance.
    pub fn delta(&self) -> i64 {
        match self {
            AccountEvent::PointsCredited { points, .. } | AccountEvent::PointsRefunded { points, .. } => {
                *points
            }
            AccountEvent::PointsDebited { points, .. }
            | AccountEvent::PointsExpired { points, .. }
            | AccountEvent::PointsClawedBack { points, .. } => -points,
            AccountEvent::PointsAdjusted { delta, .. } => *delta,
            AccountEvent::AccountOpened { .. }
            | AccountEvent::PointsExpiring { .. }
            | AccountEvent::RoleGranted { .. }
            | AccountEvent::RoleRevoked { .. }
            | AccountEvent::UserErased { .. } => 0,
        }
    }
}
