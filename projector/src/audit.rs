//! Audit commands that work on the event store directly.

use std::io::Write;

use infra::store::{self, Checkpoint};
use tokio_postgres::Client;

/// Prints the findings of [`store::verify`]; returns whether the store is clean.
pub async fn verify(client: &Client, json: bool) -> anyhow::Result<bool> {
    let findings = store::verify(client).await?;
    if json {
        println!("{}", serde_json::json!({ "clean": findings.is_empty(), "findings": findings }));
    } else if findings.is_empty() {
        println!("verify: every stream's hash chain and versions check out; append-only triggers present");
    } else {
        for f in &findings {
            println!("BROKEN {} v{}: {}", f.stream_id, f.version, f.problem);
        }
        println!("verify: {} finding(s)", findings.len());
    }
    Ok(findings.is_empty())
}

/// Writes every event after global position `from` as one JSON object per line, in the
/// safe global order, a batch at a time so memory stays flat.
///
/// The export covers every event committed when it starts. The safe order holds back
/// events of transactions newer than the oldest one still in flight anywhere in the
/// cluster, so the export waits for those to end rather than silently stopping short;
/// it then stops at that head, whatever is appended meanwhile.
pub async fn export(client: &Client, from: i64, out: &mut impl Write) -> anyhow::Result<u64> {
    let target = store::visible_head(client).await?;
    let mut checkpoint = Checkpoint::default();
    let mut written = 0;
    let mut waited = std::time::Duration::ZERO;
    while checkpoint < target {
        let batch = store::read_all(client, checkpoint, 1000).await?;
        let Some(last) = batch.last() else {
            if waited.as_secs() == 5 {
                tracing::warn!("export: waiting for transactions still in flight to commit or roll back");
            }
            let step = std::time::Duration::from_millis(20);
            tokio::time::sleep(step).await;
            waited += step;
            continue;
        };
        checkpoint = Checkpoint::of(last);
        for e in batch.iter().filter(|e| e.position > from && Checkpoint::of(e) <= target) {
            serde_json::to_writer(&mut *out, e)?;
            out.write_all(b"\n")?;
            written += 1;
        }
    }
    out.flush()?;
    Ok(written)
}

pub use store::HistoryFilter;

/// The matching events in global order.
pub async fn history(client: &Client, f: &HistoryFilter) -> anyhow::Result<Vec<store::RecordedEvent>> {
    Ok(store::history(client, f).await?)
}

/// Prints events with who, when and why.
pub fn print_history(events: &[store::RecordedEvent], json: bool) {
    if json {
        println!("{}", serde_json::json!({ "events": events }));
        return;
    }
    for e in events {
        let m = &e.metadata;
        let who = match m["actor"]["user_id"].as_str() {
            Some(id) => format!("{} {id}", m["actor"]["role"].as_str().unwrap_or("?")),
            None => m["actor"]["role"].as_str().unwrap_or("system").to_owned(),
        };
        println!(
            "{} {} v{} {} by {} via {} (request {})\n    {}",
            e.recorded_at.to_rfc3339(),
            e.stream_id,
            e.version,
            e.event_type,
            who,
            m["command"].as_str().unwrap_or("?"),
            m["correlation_id"].as_str().unwrap_or("?"),
            e.data
        );
    }
    println!("{} event(s)", events.len());
}
