//! The three release binaries as real processes, on free ports, with bench-only
//! settings (rate limits off, logs at warn).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

/// Dev/bench-only credentials: the bench database is a scratch one.
pub const ADMIN: (&str, &str) = ("bench-admin@tally.dev", "bench-only-password");
/// The services' signing secret (bench only).
pub const JWT_SECRET: &str = "bench-only-jwt-secret";

pub struct Service {
    pub base: String,
    child: Child,
}

impl Service {
    /// Starts `binary [args]` with `env`, and waits for its `/healthz`.
    pub async fn start(binary: &str, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr_var = match binary {
            "command-api" => "TALLY_COMMAND_ADDR",
            "query-api" => "TALLY_QUERY_ADDR",
            _ => "TALLY_PROJECTOR_ADDR",
        };
        let child = Command::new(bin_dir()?.join(binary))
            .args(args)
            .env(addr_var, format!("127.0.0.1:{port}"))
            .env("TALLY_JWT_SECRET", JWT_SECRET)
            .env("TALLY_PAYMENT_WEBHOOK_SECRET", "bench-only-webhook-secret")
            .env("TALLY_ADMIN_EMAIL", ADMIN.0)
            .env("TALLY_ADMIN_PASSWORD", ADMIN.1)
            .env("TALLY_RATE_LIMIT_USER", "0")
            .env("TALLY_RATE_LIMIT_ADDR", "0")
            .env("RUST_LOG", "warn")
            // The caller's settings last, so they win (e.g. a rate limit turned back on).
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {binary} (scripts/bench builds it)"))?;
        let service = Service { base: format!("http://127.0.0.1:{port}"), child };
        for _ in 0..200 {
            if reqwest::get(format!("{}/healthz", service.base)).await.is_ok_and(|r| r.status().is_success())
            {
                return Ok(service);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{binary} did not become healthy")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait for the exit.
    pub async fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = tokio::task::spawn_blocking(move || self.child.wait()).await;
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The service binaries sit beside this example's directory (`target/release`).
fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let examples = exe.parent().context("no parent directory")?;
    Ok(examples.parent().context("no target directory")?.to_path_buf())
}
