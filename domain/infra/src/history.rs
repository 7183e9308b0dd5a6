//! Time travel for auditors: an account's balance folded from its events up to an
//! instant, shared by the query API's audit reads and `projector audit balance`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::store::{self, StoreError};
use domain::account::{Account, AccountEvent};
use domain::{Aggregate, DomainEvent, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BalanceAsOf {
    pub user_id: Uuid,
    pub as_of: DateTime<Utc>,
    /// Points not yet debited or expired by an event recorded by `as_of`.
    pub balance: i64,
    /// The same, less lots already past their expiry at `as_of`.
    pub spendable: i64,
    pub lifetime_earned: i64,
    pub lifetime_spent: i64,
    /// Account events folded.
    pub events: usize,
}

/// `None` when the account did not exist yet at `as_of`.
pub async fn balance_as_of(
    client: &impl GenericClient,
    user_id: Uuid,
    as_of: DateTime<Utc>,
) -> Result<Option<BalanceAsOf>, StoreError> {
    let rows = store::read_stream_until(client, &UserId(user_id).stream(), as_of).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut account = Account::default();
    let (mut earned, mut spent) = (0, 0);
    for row in &rows {
        let event = AccountEvent::decode(&row.event_type, &row.data)?;
        let (e, s) = event.lifetime();
        (earned, spent) = (earned + e, spent + s);
        account.apply(&event);
    }
    Ok(Some(BalanceAsOf {
        user_id,
        as_of,
        balance: account.balance(),
        spendable: account.available(as_of),
        lifetime_earned: earned,
        lifetime_spent: spent,
        events: rows.len(),
    }))
}
