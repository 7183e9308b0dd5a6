//! The expiry sweep: every lot is expired (`PointsExpired`) within a minute of its
//! expiry whatever its customer does, and notice is given once (`PointsExpiring`, out
//! to integrators as `points.expiring`) `TALLY_EXPIRY_NOTICE_DAYS` (7) days before.
//!
//! The read model only nominates accounts (`read.balances.next_expiry/next_notice`);
//! each is decided by the account itself under its stream lock, like any command. So
//! any number of sweepers may run at once, beside redemptions of the same points:
//! whichever comes second sees the first's events and expires or spends nothing twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use domain::account::{Account, AccountCommand};
use domain::Decide;
use infra::store::{Actor, Metadata};
use infra::uow::UnitOfWork;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often the sweep runs: well inside the minute it promises.
const EVERY: Duration = Duration::from_secs(15);
/// Accounts nominated per query.
const PAGE: i64 = 500;

pub const DEFAULT_NOTICE_DAYS: i64 = 7;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub accounts: u64,
    pub expired: u64,
    pub noticed: u64,
}

/// One pass at `now`: every account with a lot past expiry, or expiring within
/// `notice` and not yet noticed, decides its own sweep.
pub async fn sweep(pool: &Pool, now: DateTime<Utc>, notice: chrono::Duration) -> anyhow::Result<Swept> {
    let mut client = pool.get().await?;
    let notice_until = now + notice;
    let mut swept = Swept::default();
    let mut after = Uuid::nil();
    loop {
        let rows = client
            .query(
                "SELECT user_id FROM read.balances
                 WHERE user_id > $1 AND (next_expiry <= $2 OR next_notice <= $3)
                 ORDER BY user_id LIMIT $4",
                &[&after, &now, &notice_until, &PAGE],
            )
            .await?;
        for row in &rows {
            after = row.get(0);
            let (expired, noticed) = sweep_account(&mut client, after, now, notice_until).await?;
            swept.accounts += u64::from(expired + noticed > 0);
            swept.expired += expired;
            swept.noticed += noticed;
        }
        if rows.len() < PAGE as usize {
            return Ok(swept);
        }
    }
}

/// Decides one account's sweep in its own transaction; returns the expiries and
/// notices appended.
async fn sweep_account(
    client: &mut deadpool_postgres::Client,
    user_id: Uuid,
    now: DateTime<Utc>,
    notice_until: DateTime<Utc>,
) -> anyhow::Result<(u64, u64)> {
    let mut uow = UnitOfWork::begin(client).await?;
    let account = uow.load::<Account>(&domain::ids::UserId(user_id).stream()).await?;
    let events = account.state.decide(AccountCommand::Sweep { now, notice_until })?;
    if events.is_empty() {
        return Ok((0, 0));
    }
    let expired = events.iter().filter(|e| e.delta() != 0).count() as u64;
    let noticed = events.len() as u64 - expired;
    uow.push(account, &events)?;
    let id = Uuid::new_v4().to_string();
    let metadata = Metadata {
        correlation_id: id.clone(),
        causation_id: id,
        actor: Actor::system("projector"),
        command: "SweepExpiries".into(),
    };
    // Decided at `now` (tests move it), recorded at the wall clock like every event.
    uow.save(&metadata, Utc::now()).await?;
    uow.commit().await?;
    Ok((expired, noticed))
}

/// Sweeps now and every 15 seconds until `shutdown`.
pub async fn run(pool: Pool, notice: chrono::Duration, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match sweep(&pool, Utc::now(), notice).await {
            Ok(s) if s.accounts > 0 => {
                tracing::info!(
                    accounts = s.accounts,
                    expired = s.expired,
                    noticed = s.noticed,
                    "expiry sweep"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the expiry sweep failed; retrying shortly"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}
