//! `command-api`: reads settings from the environment and serves.

use std::process::ExitCode;

use anyhow::Context;
use command_api::startup::Application;
use infra::{config::Settings, telemetry};

#[actix_web::main]
async fn main() -> ExitCode {
    // `command-api openapi`: print the OpenAPI document and exit (no database needed).
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        println!("{}", String::from_utf8_lossy(&command_api::routes::document().0));
        return ExitCode::SUCCESS;
    }
    telemetry::init();
    telemetry::exit_code("command-api", serve().await)
}

async fn serve() -> anyhow::Result<ExitCode> {
    let settings = Settings::from_env()?;
    let app = Application::build(&settings).await?;
    tracing::info!(addr = %settings.command_addr, "command API listening");
    app.run().await.context("serving the command API")?;
    Ok(ExitCode::SUCCESS)
}
