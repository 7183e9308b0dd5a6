//! A private Postgres server for one test, so the test may restart the server process
//! itself without disturbing the tests that share `DATABASE_URL`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use uuid::Uuid;

/// A throwaway cluster (`initdb`, then `pg_ctl`) on a free port, trust auth, fsync off.
/// The server binaries come from `TALLY_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/*/bin` (`scripts/test` installs them). As root, the server runs
/// as the `postgres` user, since Postgres refuses to run as root.
pub struct TestPostgres {
    /// Superuser URL of the `postgres` database, for [`super::TestDb::on`].
    pub admin_url: String,
    server: Server,
}

#[derive(Clone)]
struct Server {
    port: u16,
    dir: PathBuf,
    bindir: PathBuf,
    /// We are root, so the server runs as `postgres`.
    as_postgres: bool,
}

impl TestPostgres {
    pub async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("tally-test-pg-{}", Uuid::new_v4().simple()));
        let server = Server { port, dir, bindir: bindir()?, as_postgres: is_root() };
        let admin_url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let pg = TestPostgres { admin_url, server: server.clone() };
        blocking(move || server.init_and_start()).await?;
        Ok(pg)
    }

    /// Stops the server the hard way (`-m immediate`: no shutdown checkpoint, crash
    /// recovery on the next start) and starts it again on the same port.
    pub async fn restart(&self) -> anyhow::Result<()> {
        let server = self.server.clone();
        blocking(move || {
            server.pg_ctl_stop()?;
            server.pg_ctl_start()
        })
        .await
    }
}

impl TestPostgres {
    /// A hot standby of this server, made the way an operator makes one:
    /// `pg_basebackup -R` (which writes `primary_conninfo` and `standby.signal`), then
    /// started on a free port, streaming from this server.
    pub async fn start_replica(&self) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("tally-test-replica-{}", Uuid::new_v4().simple()));
        let server =
            Server { port, dir, bindir: self.server.bindir.clone(), as_postgres: self.server.as_postgres };
        let primary_port = self.server.port.to_string();
        let replica = TestPostgres {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            server: server.clone(),
        };
        blocking(move || {
            let backup = server.bindir.join("pg_basebackup");
            let args = [
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port,
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ];
            run(server.as_server_user(&backup).args(args).arg("-D").arg(&server.dir))?;
            server.pg_ctl_start()
        })
        .await?;
        Ok(replica)
    }

    /// The URL of database `name` on this server.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.server.port)
    }

    /// Stops the server the hard way, as a crash or a pulled cable would.
    pub async fn stop(&self) -> anyhow::Result<()> {
        let server = self.server.clone();
        blocking(move || server.pg_ctl_stop()).await
    }

    /// Starts a stopped server again on the same port.
    pub async fn start_again(&self) -> anyhow::Result<()> {
        let server = self.server.clone();
        blocking(move || server.pg_ctl_start()).await
    }
}

async fn blocking(f: impl FnOnce() -> anyhow::Result<()> + Send + 'static) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(f).await?
}

impl Server {
    fn init_and_start(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        if self.as_postgres {
            run(Command::new("chown").arg("postgres").arg(&self.dir))?;
        }
        let initdb = self.bindir.join("initdb");
        let args = ["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"];
        run(self.as_server_user(&initdb).args(args).arg(&self.dir))?;
        self.pg_ctl_start()
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        run(self.pg_ctl().args(["-w", "-t", "60", "-l"]).arg(log).args(["-o", &options, "start"]))
    }

    fn pg_ctl_stop(&self) -> anyhow::Result<()> {
        run(self.pg_ctl().args(["-w", "-m", "immediate", "stop"]))
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = self.as_server_user(&self.bindir.join("pg_ctl"));
        cmd.arg("-D").arg(&self.dir);
        cmd
    }

    fn as_server_user(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = self.server.pg_ctl_stop();
        let _ = std::fs::remove_dir_all(&self.server.dir);
    }
}

fn bindir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("TALLY_PG_BINDIR") {
        return Ok(dir.into());
    }
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no Postgres server binaries in /usr/lib/postgresql (scripts/test installs them)")?
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d).context("no initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
