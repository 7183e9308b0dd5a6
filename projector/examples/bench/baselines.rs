//! The baselines run beside the targets: `pgbench` with the equivalent SQL, and
//! `redis-benchmark`.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

/// Transactions per second `pgbench` reaches running `script` with `clients` clients.
pub async fn pgbench(url: &str, script: &str, clients: usize, duration: Duration) -> anyhow::Result<f64> {
    let args = [
        "-n".to_owned(),
        "-c".to_owned(),
        clients.to_string(),
        "-j".to_owned(),
        "2".to_owned(),
        "-T".to_owned(),
        duration.as_secs().to_string(),
        "-f".to_owned(),
        script.to_owned(),
        url.to_owned(),
    ];
    let out = run("pgbench", args.to_vec()).await?;
    figure(&out, "tps = ").context("no tps in pgbench's output")
}

/// `pgbench` on a one-statement script.
pub async fn pgbench_sql(url: &str, sql: &str, clients: usize, duration: Duration) -> anyhow::Result<f64> {
    let path = std::env::temp_dir().join(format!("tally-bench-{}.sql", std::process::id()));
    std::fs::write(&path, format!("{sql}\n"))?;
    let tps = pgbench(url, &path.to_string_lossy(), clients, duration).await;
    let _ = std::fs::remove_file(&path);
    tps
}

/// GETs per second `redis-benchmark` reaches on one key with `clients` connections.
pub async fn redis_get(redis_url: &str, clients: usize, requests: u64) -> anyhow::Result<f64> {
    let hostport = redis_url.trim_start_matches("redis://").split('/').next().unwrap_or_default();
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "6379"));
    let args =
        ["-h", host, "-p", port, "-c", &clients.to_string(), "-n", &requests.to_string(), "-t", "get", "-q"];
    let out = run("redis-benchmark", args.iter().map(|s| s.to_string()).collect()).await?;
    // "GET: 123456.79 requests per second, p50=0.239 msec"
    figure(&out, "GET: ").context("no GET figure in redis-benchmark's output")
}

/// What `wrk` measured.
pub struct Wrk {
    pub requests_per_second: f64,
    /// Non-2xx answers plus socket errors.
    pub errors: u64,
}

/// `wrk` (2 threads, `connections` connections) on `url`, with a bearer token if given.
pub async fn wrk(
    url: &str,
    token: Option<&str>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Wrk> {
    let mut args = vec![
        "-t2".to_owned(),
        format!("-c{connections}"),
        format!("-d{}s", duration.as_secs()),
        url.to_owned(),
    ];
    if let Some(t) = token {
        args.extend(["-H".to_owned(), format!("Authorization: Bearer {t}")]);
    }
    wrk_run(args).await
}

/// [`wrk`] with each request signed by the next of `tokens` in turn (many users, as
/// per-user limits see them, rather than one user at the whole rate).
pub async fn wrk_tokens(
    url: &str,
    tokens: &[String],
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Wrk> {
    let list = tokens.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(",");
    let script = format!(
        "local tokens = {{{list}}}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  \
         return wrk.format(\"GET\", nil, {{[\"Authorization\"] = \"Bearer \" .. tokens[(i % #tokens) + 1]}})\nend\n"
    );
    let path = std::env::temp_dir().join(format!("tally-bench-tokens-{}.lua", std::process::id()));
    std::fs::write(&path, script)?;
    let args = vec![
        "-t2".to_owned(),
        format!("-c{connections}"),
        format!("-d{}s", duration.as_secs()),
        "-s".to_owned(),
        path.to_string_lossy().into_owned(),
        url.to_owned(),
    ];
    wrk_run(args).await
}

async fn wrk_run(args: Vec<String>) -> anyhow::Result<Wrk> {
    let out = run("wrk", args).await?;
    let requests_per_second = figure(&out, "Requests/sec:").context("no Requests/sec in wrk's output")?;
    let non_2xx = figure(&out, "Non-2xx or 3xx responses: ").unwrap_or(0.0) as u64;
    let socket = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or(0, |l| l.split(',').filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok()).sum());
    Ok(Wrk { requests_per_second, errors: non_2xx + socket })
}

async fn run(program: &'static str, args: Vec<String>) -> anyhow::Result<String> {
    let out = tokio::task::spawn_blocking(move || Command::new(program).args(&args).output())
        .await?
        .with_context(|| format!("running {program} (scripts/bench installs it)"))?;
    if !out.status.success() {
        bail!("{program} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The number following the last `label` in `text`.
fn figure(text: &str, label: &str) -> Option<f64> {
    let rest = text[text.rfind(label)? + label.len()..].trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    rest[..end].parse().ok()
}
