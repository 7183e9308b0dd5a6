//! A redemption: points exchanged for units of a product. Placed (points debited,
//! stock reserved), then fulfilled by an admin (stock shipped) or cancelled by its
//! owner while placed or by an admin (points refunded, stock released).

use serde::{Deserialize, Serialize};

use crate::ids::{OfferId, ProductId, RecommendationId, RedemptionId, UserId};
use crate::{Aggregate, Decide, DomainEvent};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum RedemptionEvent {
    RedemptionPlaced {
        redemption_id: RedemptionId,
        user_id: UserId,
        product_id: ProductId,
        quantity: i64,
        points: i64,
        /// The golden-hour offer that priced it, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offer_id: Option<OfferId>,
        /// The recommendation the customer named (design §12), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recommendation_id: Option<RecommendationId>,
    },
    RedemptionFulfilled {
        redemption_id: RedemptionId,
        by: UserId,
    },
    RedemptionCancelled {
        redemption_id: RedemptionId,
        by: UserId,
        reason: Option<String>,
    },
}

impl DomainEvent for RedemptionEvent {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedemptionStatus {
    Placed,
    Fulfilled,
    Cancelled,
}

impl RedemptionStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RedemptionStatus::Placed => "placed",
            RedemptionStatus::Fulfilled => "fulfilled",
            RedemptionStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Redemption {
    pub id: Option<RedemptionId>,
    pub user_id: Option<UserId>,
    pub product_id: Option<ProductId>,
    pub status: Option<RedemptionStatus>,
    pub quantity: i64,
    pub points: i64,
}

impl Aggregate for Redemption {
    type Event = RedemptionEvent;
    const STREAM: &'static str = "redemption";

    fn apply(&mut self, event: &RedemptionEvent) {
        match event {
            RedemptionEvent::RedemptionPlaced {
                redemption_id,
                user_id,
                product_id,
                quantity,
                points,
                ..
            } => {
                *self = Redemption {
                    id: Some(*redemption_id),
                    user_id: Some(*user_id),
                    product_id: Some(*product_id),
                    status: Some(RedemptionStatus::Placed),
                    quantity: *quantity,
                    points: *points,
                }
            }
            RedemptionEvent::RedemptionFulfilled { .. } => self.status = Some(RedemptionStatus::Fulfilled),
            RedemptionEvent::RedemptionCancelled { .. } => self.status = Some(RedemptionStatus::Cancelled),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedemptionCommand {
    Place {
        redemption_id: RedemptionId,
        user_id: UserId,
        product_id: ProductId,
        quantity: i64,
        points: i64,
        offer_id: Option<OfferId>,
        recommendation_id: Option<RecommendationId>,
    },
    Fulfil {
        by: UserId,
    },
    /// `by_admin` says whether the actor holds the admin role; otherwise only the owner may cancel.
    Cancel {
        by: UserId,
        by_admin: bool,
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedemptionError {
    #[error("the redemption does not exist")]
    NotFound,
    #[error("the redemption already exists")]
    AlreadyPlaced,
    #[error("only the owner or an admin may cancel this redemption")]
    NotOwner,
    #[error("the redemption is {0}, not placed")]
    NotPlaced(&'static str),
}

impl Decide for Redemption {
    type Command = RedemptionCommand;
    type Error = RedemptionError;

    fn decide(&self, command: RedemptionCommand) -> Result<Vec<RedemptionEvent>, RedemptionError> {
        let (redemption_id, status) = match (self.id, self.status, &command) {
            (
                None,
                _,
                RedemptionCommand::Place {
                    redemption_id,
                    user_id,
                    product_id,
                    quantity,
                    points,
                    offer_id,
                    recommendation_id,
                },
            ) => {
                return Ok(vec![RedemptionEvent::RedemptionPlaced {
                    redemption_id: *redemption_id,
                    user_id: *user_id,
                    product_id: *product_id,
                    quantity: *quantity,
                    points: *points,
                    offer_id: *offer_id,
                    recommendation_id: *recommendation_id,
                }])
            }
            (Some(_), _, RedemptionCommand::Place { .. }) => return Err(RedemptionError::AlreadyPlaced),
            (Some(id), Some(status), _) => (id, status),
            _ => return Err(RedemptionError::NotFound),
        };
        match command {
            RedemptionCommand::Cancel { by, by_admin, .. } if !by_admin && self.user_id != Some(by) => {
                Err(RedemptionError::NotOwner)
            }
            _ if status != RedemptionStatus::Placed => Err(RedemptionError::NotPlaced(status.as_str())),
            RedemptionCommand::Fulfil { by } => {
                Ok(vec![RedemptionEvent::RedemptionFulfilled { redemption_id, by }])
            }
            RedemptionCommand::Cancel { by, reason, .. } => {
                Ok(vec![RedemptionEvent::RedemptionCancelled { redemption_id, by, reason }])
            }
            RedemptionCommand::Place { .. } => Err(RedemptionError::AlreadyPlaced),
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::testing::given;

    fn owner() -> UserId {
        UserId(Uuid::from_u128(1))
    }
    fn placed() -> RedemptionEvent {
        RedemptionEvent::RedemptionPlaced {
            redemption_id: RedemptionId(Uuid::from_u128(5)),
            user_id: owner(),
            product_id: ProductId(Uuid::from_u128(6)),
            quantity: 1,
            points: 100,
            offer_id: None,
            recommendation_id: None,
        }
    }

    #[test]
    fn only_the_owner_or_an_admin_may_cancel() {
        let stranger = UserId(Uuid::from_u128(2));
        given::<Redemption>([placed()])
            .when(RedemptionCommand::Cancel { by: stranger, by_admin: false, reason: None })
            .then_err(RedemptionError::NotOwner);
        given::<Redemption>([placed()])
            .when(RedemptionCommand::Cancel { by: stranger, by_admin: true, reason: None })
            .then([RedemptionEvent::RedemptionCancelled {
                redemption_id: RedemptionId(Uuid::from_u128(5)),
                by: stranger,
                reason: None,
            }]);
    }

    #[test]
    fn a_fulfilled_redemption_cannot_be_cancelled() {
        given::<Redemption>([
            placed(),
            RedemptionEvent::RedemptionFulfilled {
                redemption_id: RedemptionId(Uuid::from_u128(5)),
                by: owner(),
            },
        ])
        .when(RedemptionCommand::Cancel { by: owner(), by_admin: false, reason: None })
        .then_err(RedemptionError::NotPlaced("fulfilled"));
    }
}
