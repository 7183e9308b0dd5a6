//! Command-line interface (clap).

use clap::{Parser, Subcommand};

use crate::projections::Projection;

#[derive(Debug, Parser)]
#[command(
    name = "projector",
    about = "Tally projector: builds the read models and caches, and is the operator/auditor CLI",
    long_about = "Tally projector: builds the read models (Postgres schema `read`) and the Redis caches \
                  from the event store, and is the operator and auditor CLI.\n\n\
                  Configuration comes from the environment: DATABASE_URL, REDIS_URL, \
                  TALLY_PROJECTOR_ADDR (the /healthz, /readyz and /metrics port), RUST_LOG.",
    version
)]
pub struct Cli {
    /// Machine-readable output (one JSON document on stdout).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: applies new events to every projection and keeps the Redis caches,
    /// serving /healthz, /readyz and /metrics on TALLY_PROJECTOR_ADDR. A second instance
    /// waits as a hot standby and takes over when the active one dies. Stops on
    /// SIGTERM or Ctrl-C after the batch in hand.
    Run,
    /// Apply the SQL migrations in migrations/ (idempotent).
    Migrate,
    /// Replay every event into fresh tables beside the live ones and swap them in;
    /// the query API keeps answering throughout. All projections unless one is named.
    Rebuild {
        /// accounts, catalog, orders or insights.
        #[arg(long, value_parser = parse_projection)]
        projection: Option<Projection>,
    },
    /// Per projection: checkpoint, head of the store, lag in events and seconds.
    Status,
    /// Auditor commands over the event store.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Events with who, when and why (from their metadata), in global order.
    #[command(group = clap::ArgGroup::new("subject").required(true).args(["stream", "user"]))]
    History {
        /// One stream, e.g. account-<uuid> or product-<uuid>.
        #[arg(long)]
        stream: Option<String>,
        /// Everything about a user (account, purchases, redemptions, interactions) and
        /// everything they did.
        #[arg(long)]
        user: Option<uuid::Uuid>,
        /// Only events recorded at or after this RFC 3339 instant.
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Only events recorded at or before this RFC 3339 instant.
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Only events of this type, e.g. PointsDebited.
        #[arg(long = "type")]
        event_type: Option<String>,
    },
    /// An account's balance folded from its events up to an instant.
    Balance {
        #[arg(long)]
        user: uuid::Uuid,
        /// RFC 3339 instant, e.g. 2026-11-01T12:00:00Z.
        #[arg(long)]
        as_of: chrono::DateTime<chrono::Utc>,
    },
    /// Recompute every stream's hash chain, check versions are contiguous and the
    /// append-only triggers are present. Exits 1 on any finding.
    Verify,
    /// Fold the events afresh and compare with every read model (balances, ledger,
    /// stock, purchase and redemption statuses), each at its checkpoint. Exits 1 on
    /// any drift.
    Reconcile,
    /// Stream every event as NDJSON in the safe global order.
    Export {
        /// Start after this global position (0 = from the beginning).
        #[arg(long, default_value_t = 0)]
        from: i64,
    },
}

fn parse_projection(name: &str) -> Result<Projection, String> {
    Projection::parse(name).ok_or_else(|| {
        let names: Vec<&str> = Projection::ALL.iter().map(|p| p.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}
