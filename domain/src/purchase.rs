//! A purchase of a credit package: pending until the payment provider's signed webhook
//! says it succeeded (then paid, exactly once) or failed. A paid purchase may later be
//! refunded or charged back (then what is left of its lot is clawed back, once).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{PackageId, PurchaseId, UserId};
use crate::{Aggregate, Decide, DomainEvent};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum PurchaseEvent {
    PurchaseStarted {
        purchase_id: PurchaseId,
        user_id: UserId,
        package_id: PackageId,
        price: Decimal,
        currency: String,
        points: i64,
        points_valid_days: Option<u32>,
    },
    PurchasePaid {
        purchase_id: PurchaseId,
        payment_ref: String,
    },
    PurchaseFailed {
        purchase_id: PurchaseId,
        reason: String,
    },
    /// The money went back; `clawed_back` points were taken from the purchase's lot and
    /// `unrecovered` had been spent already.
    PurchaseRefunded {
        purchase_id: PurchaseId,
        payment_ref: String,
        clawed_back: i64,
        unrecovered: i64,
    },
}

impl DomainEvent for PurchaseEvent {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PurchaseStatus {
    Pending,
    Paid,
    Failed,
    Refunded,
}

impl PurchaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseStatus::Pending => "pending",
            PurchaseStatus::Paid => "paid",
            PurchaseStatus::Failed => "failed",
            PurchaseStatus::Refunded => "refunded",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Purchase {
    pub id: Option<PurchaseId>,
    pub user_id: Option<UserId>,
    pub status: Option<PurchaseStatus>,
    pub points: i64,
    pub points_valid_days: Option<u32>,
}

impl Aggregate for Purchase {
    type Event = PurchaseEvent;
    const STREAM: &'static str = "purchase";

    fn apply(&mut self, event: &PurchaseEvent) {
        match event {
            PurchaseEvent::PurchaseStarted { purchase_id, user_id, points, points_valid_days, .. } => {
                self.id = Some(*purchase_id);
                self.user_id = Some(*user_id);
                self.points = *points;
                self.points_valid_days = *points_valid_days;
                self.status = Some(PurchaseStatus::Pending);
            }
            PurchaseEvent::PurchasePaid { .. } => self.status = Some(PurchaseStatus::Paid),
            PurchaseEvent::PurchaseFailed { .. } => self.status = Some(PurchaseStatus::Failed),
            PurchaseEvent::PurchaseRefunded { .. } => self.status = Some(PurchaseStatus::Refunded),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseCommand {
    Start {
        purchase_id: PurchaseId,
        user_id: UserId,
        package_id: PackageId,
        price: Decimal,
        currency: String,
        points: i64,
        points_valid_days: Option<u32>,
    },
    /// The provider says the payment succeeded. Repeating it is a no-op.
    MarkPaid { payment_ref: String },
    /// The provider says the payment failed. Repeating it is a no-op.
    MarkFailed { reason: String },
    /// The provider refunded a paid purchase (or it was charged back), and the points
    /// clawed back came to this. Repeating it is a no-op.
    MarkRefunded { payment_ref: String, clawed_back: i64, unrecovered: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurchaseError {
    #[error("the purchase does not exist")]
    NotFound,
    #[error("the purchase already exists")]
    AlreadyStarted,
    #[error("the purchase is already {0}")]
    AlreadySettled(&'static str),
    #[error("a {0} purchase cannot be refunded")]
    NotRefundable(&'static str),
}

impl Decide for Purchase {
    type Command = PurchaseCommand;
    type Error = PurchaseError;

    fn decide(&self, command: PurchaseCommand) -> Result<Vec<PurchaseEvent>, PurchaseError> {
        use PurchaseStatus::*;
        match (self.id, self.status, command) {
            (
                None,
                _,
                PurchaseCommand::Start {
                    purchase_id,
                    user_id,
                    package_id,
                    price,
                    currency,
                    points,
                    points_valid_days,
                },
            ) => Ok(vec![PurchaseEvent::PurchaseStarted {
                purchase_id,
                user_id,
                package_id,
                price,
                currency,
                points,
                points_valid_days,
            }]),
            (Some(_), _, PurchaseCommand::Start { .. }) => Err(PurchaseError::AlreadyStarted),
            (None, _, _) => Err(PurchaseError::NotFound),
            (Some(purchase_id), Some(Pending), PurchaseCommand::MarkPaid { payment_ref }) => {
                Ok(vec![PurchaseEvent::PurchasePaid { purchase_id, payment_ref }])
            }
            (Some(purchase_id), Some(Pending), PurchaseCommand::MarkFailed { reason }) => {
                Ok(vec![PurchaseEvent::PurchaseFailed { purchase_id, reason }])
            }
            (
                Some(purchase_id),
                Some(Paid),
                PurchaseCommand::MarkRefunded { payment_ref, clawed_back, unrecovered },
            ) => Ok(vec![PurchaseEvent::PurchaseRefunded {
                purchase_id,
                payment_ref,
                clawed_back,
                unrecovered,
            }]),
            (Some(_), Some(status @ (Pending | Failed)), PurchaseCommand::MarkRefunded { .. }) => {
                Err(PurchaseError::NotRefundable(status.as_str()))
            }
            (Some(_), Some(Paid), PurchaseCommand::MarkPaid { .. }) => Ok(vec![]),
            (Some(_), Some(Failed), PurchaseCommand::MarkFailed { .. }) => Ok(vec![]),
            (Some(_), Some(Refunded), PurchaseCommand::MarkRefunded { .. }) => Ok(vec![]),
            // A late repeat of the success that came before the refund.
            (Some(_), Some(Refunded), PurchaseCommand::MarkPaid { .. }) => Ok(vec![]),
            (Some(_), Some(status), _) => Err(PurchaseError::AlreadySettled(status.as_str())),
            (Some(_), None, _) => Err(PurchaseError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::testing::given;

    fn started() -> PurchaseEvent {
        PurchaseEvent::PurchaseStarted {
            purchase_id: PurchaseId(Uuid::from_u128(1)),
            user_id: UserId(Uuid::from_u128(2)),
            package_id: PackageId(Uuid::from_u128(3)),
            price: Decimal::new(999, 2),
            currency: "EUR".into(),
            points: 100,
            points_valid_days: None,
        }
    }
    fn paid() -> PurchaseEvent {
        PurchaseEvent::PurchasePaid { purchase_id: PurchaseId(Uuid::from_u128(1)), payment_ref: "p1".into() }
    }

    #[test]
    fn a_pending_purchase_is_paid_once_and_a_repeat_changes_nothing() {
        given::<Purchase>([started()])
            .when(PurchaseCommand::MarkPaid { payment_ref: "p1".into() })
            .then([paid()]);
        given::<Purchase>([started(), paid()])
            .when(PurchaseCommand::MarkPaid { payment_ref: "p1".into() })
            .then([]);
    }

    #[test]
    fn a_paid_purchase_cannot_fail_afterwards() {
        given::<Purchase>([started(), paid()])
            .when(PurchaseCommand::MarkFailed { reason: "late".into() })
            .then_err(PurchaseError::AlreadySettled("paid"));
    }

    fn refund() -> PurchaseCommand {
        PurchaseCommand::MarkRefunded { payment_ref: "r".into(), clawed_back: 70, unrecovered: 30 }
    }

    #[test]
    fn only_a_paid_purchase_is_refunded_and_a_repeat_is_a_no_op() {
        given::<Purchase>([started()]).when(refund()).then_err(PurchaseError::NotRefundable("pending"));
        let failed = PurchaseEvent::PurchaseFailed {
            purchase_id: PurchaseId(Uuid::from_u128(1)),
            reason: "declined".into(),
        };
        given::<Purchase>([started(), failed])
            .when(refund())
            .then_err(PurchaseError::NotRefundable("failed"));
        let paid = PurchaseEvent::PurchasePaid {
            purchase_id: PurchaseId(Uuid::from_u128(1)),
            payment_ref: "p".into(),
        };
        let refunded = PurchaseEvent::PurchaseRefunded {
            purchase_id: PurchaseId(Uuid::from_u128(1)),
            payment_ref: "r".into(),
            clawed_back: 70,
            unrecovered: 30,
        };
        given::<Purchase>([started(), paid.clone()]).when(refund()).then([refunded.clone()]);
        given::<Purchase>([started(), paid.clone(), refunded.clone()]).when(refund()).then([]);
        given::<Purchase>([started(), paid, refunded])
            .when(PurchaseCommand::MarkPaid { payment_ref: "p".into() })
            .then([]);
    }
}
