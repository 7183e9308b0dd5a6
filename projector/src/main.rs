//! `projector`: the projection daemon and the operator/auditor CLI.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use infra::{cache, config::Settings, db, telemetry};
use projector::cli::{AuditCommand, Cli, Command};
use projector::projections::Projection;
use projector::{http, metrics::Metrics, rebuild, runner, status};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let cli = Cli::parse();
    telemetry::exit_code("projector", command(cli).await)
}

async fn command(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_env()?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&settings).await,
        Command::Migrate => {
            let applied = db::migrate(settings.database_url.expose()).await?;
            if cli.json {
                println!("{}", serde_json::json!({ "applied": applied }));
            } else if applied.is_empty() {
                println!("migrate: the database is up to date");
            } else {
                applied.iter().for_each(|m| println!("migrate: applied {m}"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rebuild { projection } => {
            db::ensure_migrated(&db::pool(settings.database_url.expose(), 1)?).await?;
            let targets = projection.map_or_else(|| Projection::ALL.to_vec(), |p| vec![p]);
            let show_progress = !cli.json && std::io::stderr().is_terminal();
            let mut reports = Vec::new();
            for p in targets {
                let r = rebuild::rebuild(settings.database_url.expose(), p, show_progress).await?;
                if !cli.json {
                    println!(
                        "rebuild: {} — {} events in {:.2}s ({:.0} events/s), checkpoint {}",
                        r.projection, r.events, r.seconds, r.events_per_second, r.checkpoint
                    );
                }
                reports.push(r);
            }
            if cli.json {
                println!("{}", serde_json::json!({ "rebuilt": reports }));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let pool = db::pool(settings.database_url.expose(), 1)?;
            db::ensure_migrated(&pool).await?;
            status::print(&status::status(&**pool.get().await?).await?, cli.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(audit) => {
            let (client, conn) =
                tokio_postgres::connect(settings.database_url.expose(), tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            match audit {
                AuditCommand::History { stream, user, from, to, event_type } => {
                    let filter = projector::audit::HistoryFilter { stream, user, from, to, event_type };
                    let events = projector::audit::history(&client, &filter).await?;
                    projector::audit::print_history(&events, cli.json);
                    Ok(ExitCode::SUCCESS)
                }
                AuditCommand::Balance { user, as_of } => {
                    let Some(b) = infra::history::balance_as_of(&client, user, as_of).await? else {
                        anyhow::bail!("account {user} did not exist at {as_of}");
                    };
                    if cli.json {
                        println!("{}", serde_json::to_string(&b)?);
                    } else {
                        println!(
                            "{user} as of {}: balance {} (spendable {}), earned {}, spent {}, from {} events",
                            b.as_of.to_rfc3339(),
                            b.balance,
                            b.spendable,
                            b.lifetime_earned,
                            b.lifetime_spent,
                            b.events
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                AuditCommand::Reconcile => {
                    let drifts = projector::reconcile::reconcile(&client).await?;
                    if cli.json {
                        println!("{}", serde_json::json!({ "clean": drifts.is_empty(), "drifts": drifts }));
                    } else {
                        for d in &drifts {
                            println!(
                                "DRIFT {} {} {}: read model {}, events {}",
                                d.model, d.key, d.field, d.read_model, d.events
                            );
                        }
                        println!("reconcile: {} drift(s)", drifts.len());
                    }
                    Ok(if drifts.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
                }
                AuditCommand::Verify => {
                    let clean = projector::audit::verify(&client, cli.json).await?;
                    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
                }
                AuditCommand::Export { from } => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    projector::audit::export(&client, from, &mut out).await?;
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
    }
}

async fn run(settings: &Settings) -> anyhow::Result<ExitCode> {
    let pool = db::pool(settings.database_url.expose(), 4)?;
    db::ensure_migrated(&pool).await?;
    let redis = cache::connect(settings.redis_url.expose()).await?;
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    // The daemon's tasks; `runner::run` waits for all of them before it returns.
    let tasks = TaskTracker::new();

    let listener = std::net::TcpListener::bind(&settings.projector_addr).with_context(|| {
        format!("cannot listen on {} (set TALLY_PROJECTOR_ADDR)", settings.projector_addr)
    })?;
    tracing::info!(addr = %listener.local_addr()?, "projector health and metrics listening");
    let server = http::serve(listener, pool.clone(), redis.clone(), metrics.clone())?;
    let server_handle = server.handle();
    tokio::spawn(server);
    http::track_lag(&tasks, pool.clone(), metrics.clone(), shutdown.clone());
    let retention = interaction_retention()?;
    tasks.spawn(projector::retention::run(pool.clone(), retention, shutdown.clone()));
    tasks.spawn(projector::expiry::run(pool.clone(), expiry_notice()?, shutdown.clone()));

    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down after the batches in hand");
        stop.cancel();
    });
    let mut config = runner::RunConfig::new(settings.database_url.expose());
    config.dispatch.allow_private = settings.webhook_allow_private;
    config.dispatch.retry_cap =
        std::time::Duration::from_secs(env_number("TALLY_WEBHOOK_RETRY_CAP_SECS", 3600, 1..=86_400)?);
    config.dispatch.low_stock = env_number("TALLY_LOW_STOCK_THRESHOLD", 10, 1..=1_000_000_000)? as i64;
    let ctx = runner::Context { config, pool, redis, metrics, shutdown, tasks };
    runner::run(ctx).await?;
    server_handle.stop(true).await;
    Ok(ExitCode::SUCCESS)
}

/// `TALLY_INTERACTION_RETENTION_DAYS` (180), at least one day.
fn interaction_retention() -> anyhow::Result<chrono::Duration> {
    let days = match std::env::var("TALLY_INTERACTION_RETENTION_DAYS") {
        Ok(v) => v.trim().parse::<i64>().ok().filter(|d| (1..=36_500).contains(d)).with_context(|| {
            format!(
                "TALLY_INTERACTION_RETENTION_DAYS must be a whole number of days from 1 to 36500, not {v:?}"
            )
        })?,
        Err(_) => projector::retention::DEFAULT_RETENTION_DAYS,
    };
    Ok(chrono::Duration::days(days))
}

/// A whole number from the environment within `range`, or `default` when unset.
fn env_number(name: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse::<u64>().ok().filter(|n| range.contains(n)).with_context(|| {
            format!("{name} must be a whole number from {} to {}, not {v:?}", range.start(), range.end())
        }),
        Err(_) => Ok(default),
    }
}

/// `TALLY_EXPIRY_NOTICE_DAYS` (7): how long before a lot expires notice is given.
fn expiry_notice() -> anyhow::Result<chrono::Duration> {
    let days = match std::env::var("TALLY_EXPIRY_NOTICE_DAYS") {
        Ok(v) => v.trim().parse::<i64>().ok().filter(|d| (0..=3650).contains(d)).with_context(|| {
            format!("TALLY_EXPIRY_NOTICE_DAYS must be a whole number of days from 0 to 3650, not {v:?}")
        })?,
        Err(_) => projector::expiry::DEFAULT_NOTICE_DAYS,
    };
    Ok(chrono::Duration::days(days))
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
