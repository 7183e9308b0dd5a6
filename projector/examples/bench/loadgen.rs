//! Load generators: closed loop (N workers, each sends when its last answer is back:
//! the maximum rate) and open loop (requests start on a fixed schedule whatever the
//! server does, and latency counts from the *scheduled* start, so a stalled server
//! cannot hide its queue: no coordinated omission).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// What one request came to: its HTTP status, or `None` for a transport error.
pub type Status = Option<u16>;

/// Latencies (µs) and status counts of one run.
pub struct Run {
    pub latencies: Histogram<u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub transport_errors: u64,
    pub elapsed: Duration,
}

impl Run {
    pub fn empty() -> Self {
        Run {
            latencies: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
            statuses: BTreeMap::new(),
            transport_errors: 0,
            elapsed: Duration::ZERO,
        }
    }

    fn record(&mut self, status: Status, latency: Duration) {
        match status {
            Some(s) => *self.statuses.entry(s).or_default() += 1,
            None => self.transport_errors += 1,
        }
        self.latencies.saturating_record(latency.as_micros().max(1) as u64);
    }

    /// Adds `other`'s answers (and its time) to this run.
    pub fn merge(&mut self, other: Run) {
        self.latencies.add(&other.latencies).expect("same bounds");
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        self.elapsed += other.elapsed;
    }

    /// Answers with a 2xx status.
    pub fn ok(&self) -> u64 {
        self.statuses.range(200..300).map(|(_, n)| n).sum()
    }

    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Every answer that was not a 2xx, transport errors included.
    pub fn failures(&self) -> u64 {
        self.latencies.len() - self.ok()
    }

    /// 2xx answers per second.
    pub fn rate(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64()
    }

    /// p50, p99 and p99.9 in milliseconds.
    pub fn percentiles_ms(&self) -> [f64; 3] {
        [50.0, 99.0, 99.9].map(|q| self.latencies.value_at_quantile(q / 100.0) as f64 / 1e3)
    }
}

/// `workers` loops, each sending `request(worker, n)` back to back for `duration`.
pub async fn closed_loop<F, Fut>(workers: usize, duration: Duration, request: F) -> Run
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Status> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut run = Run::empty();
                let mut n = 0;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let status = request(w, n).await;
                    run.record(status, sent.elapsed());
                    n += 1;
                }
                run
            })
        })
        .collect();
    let mut total = Run::empty();
    for t in tasks {
        total.merge(t.await.expect("closed-loop worker"));
    }
    total.elapsed = started.elapsed();
    total
}

/// `request(n)` started at `rate` per second for `duration`, each on its own task.
pub async fn open_loop<F, Fut>(rate: f64, duration: Duration, request: F) -> Run
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Status> + Send + 'static,
{
    let run = Arc::new(Mutex::new(Run::empty()));
    let started = tokio::time::Instant::now();
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let scheduled = started + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(scheduled).await;
        let (run, fut) = (run.clone(), request(n));
        tasks.push(tokio::spawn(async move {
            let status = fut.await;
            run.lock().expect("run").record(status, scheduled.elapsed());
        }));
    }
    for t in tasks {
        t.await.expect("open-loop request");
    }
    let mut run = Arc::try_unwrap(run).ok().expect("all requests done").into_inner().expect("run");
    run.elapsed = started.elapsed();
    run
}
