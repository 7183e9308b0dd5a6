//! `accounts`: balances (with their lots) and the ledger, one row per points movement.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::account::{Account, AccountEvent, CreditSource, Lot};
use domain::Aggregate;
use infra::store::RecordedEvent;
use infra::views::BalanceDoc;
use serde::{Deserialize, Serialize};
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::{decode, load, replace_on, write, Changes, ProjectError};

const BALANCE_COLUMNS: &str =
    "user_id, balance, lifetime_earned, lifetime_spent, lots, version, updated_at, next_expiry, next_notice";
const LEDGER_COLUMNS: &str = "user_id, version, at, kind, delta, balance_after, reference";

#[derive(Debug, Serialize, Deserialize)]
struct BalanceRow {
    user_id: Uuid,
    balance: i64,
    lifetime_earned: i64,
    lifetime_spent: i64,
    lots: Vec<Lot>,
    version: i64,
    updated_at: DateTime<Utc>,
    /// The expiry sweep's due times ([`Account::next_due`]).
    next_expiry: Option<DateTime<Utc>>,
    next_notice: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
struct LedgerRow {
    user_id: Uuid,
    version: i64,
    at: DateTime<Utc>,
    kind: &'static str,
    delta: i64,
    balance_after: i64,
    reference: Option<String>,
}

pub(super) async fn apply(tx: &Transaction<'_>, events: &[RecordedEvent]) -> Result<Changes, ProjectError> {
    let events = decode::<domain::account::Account>(events)?;
    if events.is_empty() {
        return Ok(Changes::default());
    }
    let mut ids: Vec<Uuid> = events.iter().map(|(_, e)| e.user_id().0).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut rows: HashMap<Uuid, BalanceRow> = load::<BalanceRow>(tx, "balances", "user_id", &ids)
        .await?
        .into_iter()
        .map(|r| (r.user_id, r))
        .collect();

    let mut ledger = Vec::new();
    for (recorded, event) in &events {
        let user_id = event.user_id().0;
        let row = rows.entry(user_id).or_insert_with(|| BalanceRow::new(user_id));
        ledger.extend(row.apply(recorded, event));
    }

    let rows: Vec<BalanceRow> = rows.into_values().collect();
    write(tx, "balances", BALANCE_COLUMNS, &replace_on("user_id", BALANCE_COLUMNS), &rows).await?;
    write(tx, "ledger", LEDGER_COLUMNS, "", &ledger).await?;
    Ok(Changes { balances: rows.into_iter().map(BalanceRow::into_doc).collect(), ..Changes::default() })
}

impl BalanceRow {
    fn new(user_id: Uuid) -> Self {
        BalanceRow {
            user_id,
            balance: 0,
            lifetime_earned: 0,
            lifetime_spent: 0,
            lots: Vec::new(),
            version: 0,
            updated_at: DateTime::<Utc>::MIN_UTC,
            next_expiry: None,
            next_notice: None,
        }
    }

    /// Folds one event in; returns its ledger line when it moved points.
    fn apply(&mut self, recorded: &RecordedEvent, event: &AccountEvent) -> Option<LedgerRow> {
        // The lot arithmetic is the aggregate's own, so the two can never disagree.
        let mut account = Account { lots: std::mem::take(&mut self.lots), ..Account::default() };
        account.apply(event);
        (self.next_expiry, self.next_notice) = account.next_due();
        self.lots = account.lots;

        let delta = event.delta();
        let (earned, spent) = event.lifetime();
        self.balance += delta;
        self.lifetime_earned += earned;
        self.lifetime_spent += spent;
        self.version = recorded.version;
        self.updated_at = recorded.recorded_at;
        let (kind, reference) = match event {
            AccountEvent::PointsCredited { source: CreditSource::Purchase { purchase_id }, .. } => {
                ("credit", purchase_id.to_string())
            }
            AccountEvent::PointsDebited { redemption_id, .. } => ("debit", redemption_id.to_string()),
            AccountEvent::PointsRefunded { redemption_id, .. } => ("refund", redemption_id.to_string()),
            AccountEvent::PointsAdjusted { reason, reference, .. } => {
                ("adjustment", reference.clone().unwrap_or_else(|| reason.clone()))
            }
            AccountEvent::PointsExpired { lot_id, .. } => ("expiry", lot_id.to_string()),
            AccountEvent::PointsClawedBack { purchase_id, .. } => ("clawback", purchase_id.to_string()),
            AccountEvent::AccountOpened { .. }
            | AccountEvent::PointsExpiring { .. }
            | AccountEvent::RoleGranted { .. }
            | AccountEvent::RoleRevoked { .. }
            | AccountEvent::UserErased { .. } => return None,
        };
        Some(LedgerRow {
            user_id: self.user_id,
            version: recorded.version,
            at: recorded.recorded_at,
            kind,
            delta,
            balance_after: self.balance,
            reference: Some(reference),
        })
    }

    fn into_doc(self) -> BalanceDoc {
        BalanceDoc {
            user_id: self.user_id,
            balance: self.balance,
            lifetime_earned: self.lifetime_earned,
            lifetime_spent: self.lifetime_spent,
            lots: self.lots,
        }
    }
}
