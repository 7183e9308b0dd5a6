//! `projector`: the operator and auditor CLI.

use std::process::ExitCode;

use clap::Parser;
use domain::infra::{config::Settings, db, telemetry};
use projector::cli::{AuditCommand, Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    telemetry::init();
    let cli = Cli::parse();
    let settings = Settings::from_env()?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            db::ensure_migrated(&db::pool(&settings.database_url, 2)?).await?;
            tracing::info!(addr = %settings.projector_addr, "projector health endpoint listening");
            actix_web::HttpServer::new(|| {
                actix_web::App::new().route(
                    "/healthz",
                    actix_web::web::get().to(|| async {
                        actix_web::HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
                    }),
                )
            })
            .bind(&settings.projector_addr)?
            .run()
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let applied = db::migrate(&settings.database_url).await?;
            if cli.json {
                println!("{}", serde_json::json!({ "applied": applied }));
            } else if applied.is_empty() {
                println!("migrate: the database is up to date");
            } else {
                applied.iter().for_each(|m| println!("migrate: applied {m}"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(audit) => {
            let (client, conn) =
                tokio_postgres::connect(&settings.database_url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            match audit {
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
