//! One row per measured target, printed as a Markdown table and written as JSON.

use serde::Serialize;

#[derive(Serialize)]
pub struct Baseline {
    pub name: &'static str,
    pub result: f64,
    pub unit: &'static str,
}

#[derive(Serialize)]
pub struct Row {
    pub target: &'static str,
    pub result: f64,
    pub unit: &'static str,
    /// p50, p99, p99.9 in milliseconds.
    pub latency_ms: Option<[f64; 3]>,
    pub baseline: Option<Baseline>,
    /// `result / baseline.result`.
    pub ratio: Option<f64>,
    pub goal: &'static str,
    /// Whether the goal was met; `None` for rows that only report.
    pub met: Option<bool>,
    pub note: String,
}

impl Row {
    pub fn new(target: &'static str, result: f64, unit: &'static str, goal: &'static str) -> Self {
        Row {
            target,
            result,
            unit,
            latency_ms: None,
            baseline: None,
            ratio: None,
            goal,
            met: None,
            note: String::new(),
        }
    }

    pub fn latency(mut self, p: [f64; 3]) -> Self {
        self.latency_ms = Some(p);
        self
    }

    pub fn against(mut self, name: &'static str, result: f64, unit: &'static str) -> Self {
        self.ratio = (result > 0.0).then(|| self.result / result);
        self.baseline = Some(Baseline { name, result, unit });
        self
    }

    pub fn met(mut self, met: bool) -> Self {
        self.met = Some(met);
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }
}

#[derive(Serialize)]
pub struct Report {
    pub machine: String,
    pub settings: String,
    pub seconds: f64,
    pub rows: Vec<Row>,
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        let s = format!("{:.0}", v);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        format!("{v:.1}")
    }
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = format!("{}; {}; whole run {:.0} s\n\n", self.machine, self.settings, self.seconds);
        out += "| target | result | p50 / p99 / p99.9 | baseline (same run) | ratio | goal | met |\n";
        out += "|---|---|---|---|---|---|---|\n";
        for r in &self.rows {
            let latency = r.latency_ms.map_or("".into(), |[a, b, c]| format!("{a:.1} / {b:.1} / {c:.1} ms"));
            let baseline = r
                .baseline
                .as_ref()
                .map_or("".into(), |b| format!("{}: {} {}", b.name, num(b.result), b.unit));
            let ratio = r.ratio.map_or("".into(), |x| format!("{:.0} %", 100.0 * x));
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            let note = if r.note.is_empty() { String::new() } else { format!(" ({})", r.note) };
            out += &format!(
                "| {} | {} {}{note} | {latency} | {baseline} | {ratio} | {} | {met} |\n",
                r.target,
                num(r.result),
                r.unit,
                r.goal
            );
        }
        out
    }
}
