use anyhow::Context;
use uuid::Uuid;

/// A private `redis-server` for one test, on a free port, so a test may stop and
/// restart it. Stopping saves its data, so a restart brings the old (now stale) entries
/// back, as a real Redis restart would.
pub struct TestRedis {
    pub url: String,
    port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl TestRedis {
    pub async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("tally-test-redis-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut redis = TestRedis { url: format!("redis://127.0.0.1:{port}"), port, dir, child: None };
        redis.restart().await?;
        Ok(redis)
    }

    /// Starts the server (again), loading what it saved when stopped.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting redis-server (scripts/test installs it)")?;
        self.child = Some(child);
        for _ in 0..100 {
            if self.ping().await {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        anyhow::bail!("redis-server did not start on port {}", self.port)
    }

    /// Saves and stops the server.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
            let _ = s.write_all(b"SHUTDOWN SAVE\r\n").await;
        }
        if let Some(mut child) = self.child.take() {
            tokio::task::spawn_blocking(move || child.wait()).await??;
        }
        Ok(())
    }

    async fn ping(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else { return false };
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").await.is_ok()
            && matches!(s.read(&mut buf).await, Ok(n) if buf[..n].starts_with(b"+PONG"))
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
