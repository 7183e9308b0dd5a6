//! JSON logs through `tracing` on stderr (stdout stays clean for CLI output), filtered
//! by `RUST_LOG` (default `info`). Whatever `RUST_LOG` says, `tokio_postgres` logs at
//! `info` at most: at `debug` it logs every statement's parameters, which carry emails,
//! names and password hashes (the erasure test caught it).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are no-ops (tests call it freely).
pub fn init() {
    init_with("info", std::io::stderr);
}

/// [`init`] with `default` as the filter when `RUST_LOG` is unset, writing to `writer`
/// (tests capture every service's logs in a file this way).
pub fn init_with<W>(default: &str, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let filter = match "tokio_postgres=info".parse() {
        Ok(cap) => filter.add_directive(cap),
        Err(_) => filter,
    };
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init();
}

/// Ends a process whose start-up or run failed: one line on stderr with the whole cause
/// chain (`what: why: root cause`), which names the setting to change, and a non-zero
/// exit code. No backtrace: a misconfiguration is not a bug.
pub fn exit_code(process: &str, outcome: anyhow::Result<std::process::ExitCode>) -> std::process::ExitCode {
    match outcome {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{process} stopped");
            eprintln!("{process}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
