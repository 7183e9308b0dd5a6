//! The query API. For now it serves `/healthz` and `/readyz`; the read endpoints of
//! design §7 are issue #5.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use domain::infra::config::Settings;

/// A bound, not yet running, query API.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.query_addr)
            .with_context(|| format!("binding the query API to {}", settings.query_addr))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(|| {
            App::new().route(
                "/healthz",
                web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "ok"})) }),
            )
        })
        .listen(listener)?
        .run();
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}
