//! `query-api`: reads settings from the environment and serves.

use std::process::ExitCode;

use anyhow::Context;
use infra::{config::Settings, telemetry};
use query_api::config::QueryConfig;
use query_api::Application;

#[actix_web::main]
async fn main() -> ExitCode {
    // `query-api openapi`: print the OpenAPI document and exit (no database needed).
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        println!("{}", String::from_utf8_lossy(&query_api::routes::document().0));
        return ExitCode::SUCCESS;
    }
    telemetry::init();
    telemetry::exit_code("query-api", serve().await)
}

async fn serve() -> anyhow::Result<ExitCode> {
    let settings = Settings::from_env()?;
    let app = Application::build(&settings, QueryConfig::from_env()?).await?;
    tracing::info!(addr = %settings.query_addr, "query API listening");
    app.run().await.context("serving the query API")?;
    Ok(ExitCode::SUCCESS)
}
