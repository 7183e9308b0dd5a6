//! `query-api`: reads settings from the environment and serves.

use infra::{config::Settings, telemetry};
use query_api::config::QueryConfig;
use query_api::Application;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let settings = Settings::from_env()?;
    let app = Application::build(&settings, QueryConfig::from_env()?).await?;
    tracing::info!(addr = %settings.query_addr, "query API listening");
    Ok(app.run().await?)
}
