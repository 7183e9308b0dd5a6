//! JSON logs through `tracing` on stderr (stdout stays clean for CLI output), filtered
//! by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are no-ops (tests call it freely).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
