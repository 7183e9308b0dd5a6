//! A circuit breaker: after `threshold` consecutive failures the provider is not called
//! for `cooldown`; then one trial call decides whether it closes again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker { threshold: threshold.max(1), cooldown, state: Mutex::default() }
    }

    /// Whether a call may go out now.
    pub fn allow(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.open_until.is_none_or(|t| Instant::now() >= t)
    }

    pub fn is_open(&self) -> bool {
        !self.allow()
    }

    pub fn success(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = State::default();
    }

    pub fn failure(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.failures += 1;
        if state.failures >= self.threshold {
            state.open_until = Some(Instant::now() + self.cooldown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_half_opens_after_the_cooldown() {
        let b = Breaker::new(2, Duration::from_millis(30));
        b.failure();
        assert!(b.allow());
        b.failure();
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "one trial call after the cooldown");
        b.failure();
        assert!(!b.allow(), "a failed trial opens it again");
        std::thread::sleep(Duration::from_millis(40));
        b.success();
        b.failure();
        assert!(b.allow(), "a success resets the count");
    }
}
