//! A user's product interactions: views, clicks and wishlists, the raw input of
//! affinity and popularity for recommendations.
//!
//! Since experiments (design §12) interactions are behaviour data: kept for a while
//! and deleted, so they are written to the `behaviour` schema, not the ledger. The
//! `InteractionRecorded` events the first release appended stay in the store (it is
//! append-only) and the insights projection still counts them.

use serde::{Deserialize, Serialize};

use crate::ids::{ProductId, UserId};
use crate::{Aggregate, Decide, DomainEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum InteractionKind {
    View,
    Click,
    Wishlist,
}

impl InteractionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InteractionKind::View => "view",
            InteractionKind::Click => "click",
            InteractionKind::Wishlist => "wishlist",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum InteractionEvent {
    InteractionRecorded { user_id: UserId, product_id: ProductId, kind: InteractionKind },
}

impl DomainEvent for InteractionEvent {}

#[derive(Debug, Clone, Default)]
pub struct Interactions;

impl Aggregate for Interactions {
    type Event = InteractionEvent;
    const STREAM: &'static str = "interactions";
    const STATELESS: bool = true;

    fn apply(&mut self, _event: &InteractionEvent) {}
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInteraction {
    pub user_id: UserId,
    pub product_id: ProductId,
    pub kind: InteractionKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InteractionError {}

impl Decide for Interactions {
    type Command = RecordInteraction;
    type Error = InteractionError;

    fn decide(&self, c: RecordInteraction) -> Result<Vec<InteractionEvent>, InteractionError> {
        Ok(vec![InteractionEvent::InteractionRecorded {
            user_id: c.user_id,
            product_id: c.product_id,
            kind: c.kind,
        }])
    }
}
