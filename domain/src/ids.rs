//! Identifiers and small value types, validated once at the edge and trusted after.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Aggregate;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn parse(s: &str) -> Option<Self> {
                Uuid::parse_str(s).ok().map(Self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $aggregate:ty) => {
        id!($(#[$doc])* $name);

        impl $name {
            /// The id of the stream that holds this entity's events.
            pub fn stream(&self) -> String {
                stream_id::<$aggregate>(self)
            }
        }
    };
}

/// The id of aggregate `A`'s stream for entity `id`: `{A::STREAM}-{id}`.
pub fn stream_id<A: Aggregate>(id: impl std::fmt::Display) -> String {
    format!("{}-{id}", A::STREAM)
}

/// The entity id in one of aggregate `A`'s stream ids (`None` for another aggregate's).
pub fn entity_of<A: Aggregate>(stream_id: &str) -> Option<&str> {
    stream_id.strip_prefix(A::STREAM)?.strip_prefix('-')
}

id!(
    /// A user; their account stream is `account-{id}`.
    UserId, crate::account::Account
);
id!(ProductId, crate::product::Product);
id!(CategoryId, crate::category::Category);
id!(PackageId, crate::package::Package);
id!(PurchaseId, crate::purchase::Purchase);
id!(RedemptionId, crate::redemption::Redemption);
id!(
    /// A golden-hour offer; it lives in its product's stream.
    OfferId
);
id!(ExperimentId, crate::experiment::Experiment);
id!(
    /// One recommendation answer (an exposure, in behaviour data; not a stream).
    RecommendationId
);
id!(
    /// A lot of points within an account (one per credit); not a stream of its own.
    LotId
);

impl UserId {
    /// The stream of this user's product interactions.
    pub fn interactions_stream(&self) -> String {
        stream_id::<crate::interactions::Interactions>(self)
    }
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Admin,
    Auditor,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(Role::Customer),
            "admin" => Some(Role::Admin),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }
}

/// The longest name (of a product, category or package), in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;

/// A name: something besides blanks, at most [`MAX_NAME_CHARS`].
pub fn is_valid_name(name: &str) -> bool {
    !name.trim().is_empty() && name.chars().count() <= MAX_NAME_CHARS
}

/// A description: possibly empty, at most [`MAX_DESCRIPTION_CHARS`].
pub fn is_valid_description(description: &str) -> bool {
    description.chars().count() <= MAX_DESCRIPTION_CHARS
}

/// The largest points amount or quantity one command may carry. Far beyond any real
/// use, small enough that sums over thousands of events never overflow an i64.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// A positive amount (points or units) no larger than [`MAX_AMOUNT`].
pub fn is_valid_amount(n: i64) -> bool {
    (1..=MAX_AMOUNT).contains(&n)
}
