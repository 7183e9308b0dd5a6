//! Command-line interface (clap).

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "projector", about = "Tally projector and operator/auditor CLI", version)]
pub struct Cli {
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon. For now it serves /healthz on TALLY_PROJECTOR_ADDR until SIGTERM;
    /// the projections themselves are issue #4.
    Run,
    /// Apply the SQL migrations in migrations/ (idempotent).
    Migrate,
    /// Auditor commands over the event store.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every stream's hash chain, check versions are contiguous and the
    /// append-only triggers are present. Exits 1 on any finding.
    Verify,
    /// Stream every event as NDJSON in the safe global order.
    Export {
        /// Start after this global position (0 = from the beginning).
        #[arg(long, default_value_t = 0)]
        from: i64,
    },
}
