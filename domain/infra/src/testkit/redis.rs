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
        let child = redis_server(self.port, &self.dir)
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

/// `redis-server` on loopback `port`, keeping nothing on disk but in `dir`, quiet.
fn redis_server(port: u16, dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(std::process::Stdio::null());
    cmd
}

/// A private Redis Cluster of three masters (no replicas), made the way an operator
/// makes one: `redis-server --cluster-enabled yes` three times, then
/// `redis-cli --cluster create`. Slots are split evenly in node order.
pub struct TestRedisCluster {
    /// `redis-cluster://…?node=…&node=…`, what `REDIS_URL` takes.
    pub url: String,
    pub ports: Vec<u16>,
    dir: std::path::PathBuf,
    nodes: Vec<Option<std::process::Child>>,
}

impl TestRedisCluster {
    pub async fn start() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("tally-test-cluster-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let ports = cluster_ports(3)?;
        let mut nodes = Vec::new();
        for port in &ports {
            let child = redis_server(*port, &dir)
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                .args(["--cluster-require-full-coverage", "no"])
                .arg("--cluster-config-file")
                .arg(dir.join(format!("nodes-{port}.conf")))
                .spawn()
                .context("starting redis-server (scripts/test installs it)")?;
            nodes.push(Some(child));
        }
        let url = format!(
            "redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}",
            ports[0], ports[1], ports[2]
        );
        let cluster = TestRedisCluster { url, ports, dir, nodes };
        for port in &cluster.ports {
            cluster.wait_for(*port, "PING", "PONG").await?;
        }
        let mut create = std::process::Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        create.args(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")));
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = tokio::task::spawn_blocking(move || create.output()).await??;
        anyhow::ensure!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for port in &cluster.ports {
            cluster.wait_for(*port, "CLUSTER INFO", "cluster_state:ok").await?;
        }
        Ok(cluster)
    }

    /// The node (0, 1 or 2) that owns `key`'s hash slot.
    pub async fn owner_of(&self, key: &str) -> anyhow::Result<usize> {
        let slot = self.cli(self.ports[0], &["CLUSTER", "KEYSLOT", key]).await?;
        let slot: u32 = slot.trim().parse()?;
        for (i, port) in self.ports.iter().enumerate() {
            let nodes = self.cli(*port, &["CLUSTER", "NODES"]).await?;
            let mine = nodes.lines().find(|l| l.contains("myself")).unwrap_or_default();
            let owns = mine.split_whitespace().skip(8).any(|range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
            });
            if owns {
                return Ok(i);
            }
        }
        anyhow::bail!("no node owns slot {slot}")
    }

    /// A command on node `port` (following redirects), its output.
    pub async fn cli(&self, port: u16, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = std::process::Command::new("redis-cli");
        cmd.args(["-c", "-p", &port.to_string()]).args(args);
        let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Kills node `i`, as a crash would.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn wait_for(&self, port: u16, command: &str, expect: &str) -> anyhow::Result<()> {
        let args: Vec<&str> = command.split(' ').collect();
        for _ in 0..200 {
            if self.cli(port, &args).await.is_ok_and(|out| out.contains(expect)) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        anyhow::bail!("node {port} never answered {command} with {expect}")
    }
}

/// `n` free ports whose cluster bus ports (+10000) are free too.
fn cluster_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let mut ports = Vec::new();
    while ports.len() < n {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if port < 55_000
            && !ports.contains(&port)
            && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            ports.push(port);
        }
    }
    Ok(ports)
}

impl Drop for TestRedisCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
