//! Login throttling with growing delays (OWASP's authentication guidance), per account
//! and per client address.
//!
//! Each key may fail a few times freely; after that, every further attempt must wait
//! a delay that doubles with each failure, answered `429 rate_limited` with
//! `Retry-After` (and no password check) until it has passed:
//!
//! | key | free failures | delays | cap |
//! |---|---|---|---|
//! | an account (its email) | 5 | 1 s, 2 s, 4 s, … | 60 s |
//! | a client address | 20 | 1 s, 2 s, 4 s, … | 15 min |
//!
//! The account's cap is short on purpose: an attacker who keeps failing against a
//! real customer's email can make them wait at most a minute, never lock them out. The
//! attacker's own address gets the long delays. A successful login clears its
//! account's count; a key unused for 15 minutes starts afresh. The counts live in the
//! process (with several instances each counts its own share, until the limits move to
//! Redis); both maps are bounded.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use infra::http::error::ApiError;
use sha2::{Digest, Sha256};

/// A key's count starts afresh after this long without a failure.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// At most this many keys per map; stale ones are dropped first.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Policy {
    free: u32,
    cap: Duration,
}

const ACCOUNT: Policy = Policy { free: 5, cap: Duration::from_secs(60) };
const ADDRESS: Policy = Policy { free: 20, cap: Duration::from_secs(15 * 60) };

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Policy {
    /// How long after the last failure the next attempt must wait.
    fn delay(self, count: u32) -> Duration {
        match count.checked_sub(self.free) {
            None | Some(0) => Duration::ZERO,
            Some(over) => Duration::from_secs(1u64 << (over - 1).min(20)).min(self.cap),
        }
    }
}

#[derive(Debug)]
struct Counts<K> {
    policy: Policy,
    failures: Mutex<HashMap<K, Failures>>,
}

impl<K: Hash + Eq + Clone> Counts<K> {
    fn new(policy: Policy) -> Self {
        Counts { policy, failures: Mutex::new(HashMap::new()) }
    }

    /// The time still to wait before `key` may try again.
    fn wait(&self, key: &K, now: Instant) -> Duration {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(key) {
            Some(f) if now.duration_since(f.last) < WINDOW => {
                self.policy.delay(f.count).saturating_sub(now.duration_since(f.last))
            }
            _ => Duration::ZERO,
        }
    }

    fn fail(&self, key: &K, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_KEYS && !failures.contains_key(key) {
            failures.retain(|_, f| now.duration_since(f.last) < WINDOW);
            if failures.len() >= MAX_KEYS {
                failures.clear();
            }
        }
        let f = failures.entry(key.clone()).or_insert(Failures { count: 0, last: now });
        if now.duration_since(f.last) >= WINDOW {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
    }

    fn clear(&self, key: &K) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// The failed-login counts of one process.
#[derive(Debug)]
pub struct LoginThrottle {
    accounts: Counts<[u8; 32]>,
    addresses: Counts<IpAddr>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle { accounts: Counts::new(ACCOUNT), addresses: Counts::new(ADDRESS) }
    }
}

impl LoginThrottle {
    /// `429 rate_limited` (with the seconds to wait) while either key must wait.
    pub fn check(&self, email: &str, addr: Option<IpAddr>) -> Result<(), ApiError> {
        let now = Instant::now();
        let account = self.accounts.wait(&account_key(email), now);
        let address = addr.map_or(Duration::ZERO, |a| self.addresses.wait(&a, now));
        let wait = account.max(address);
        if wait.is_zero() {
            Ok(())
        } else {
            Err(ApiError::RateLimited(wait.as_secs_f64().ceil() as u64))
        }
    }

    pub fn failed(&self, email: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        self.accounts.fail(&account_key(email), now);
        if let Some(a) = addr {
            self.addresses.fail(&a, now);
        }
    }

    pub fn succeeded(&self, email: &str) {
        self.accounts.clear(&account_key(email));
    }
}

/// A digest of the normalized email: every key costs 32 bytes, however long the email
/// a guesser sends (bodies may reach 64 KiB; 100,000 of them would be gigabytes).
fn account_key(email: &str) -> [u8; 32] {
    Sha256::digest(email.trim().to_lowercase().as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_the_free_failures_double_and_stop_at_the_cap() {
        let secs = |n| ACCOUNT.delay(n).as_secs();
        assert_eq!((0..=5).map(secs).collect::<Vec<_>>(), [0, 0, 0, 0, 0, 0]);
        assert_eq!((6..=12).map(secs).collect::<Vec<_>>(), [1, 2, 4, 8, 16, 32, 60]);
        assert_eq!(secs(1_000), 60);
        assert_eq!(ADDRESS.delay(1_000).as_secs(), 15 * 60);
    }

    #[test]
    fn an_account_past_its_free_failures_waits_and_a_success_clears_it() {
        let throttle = LoginThrottle::default();
        let addr = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..5 {
            throttle.check("Ann@Example.com", addr).expect("free failures");
            throttle.failed("ann@example.com ", addr);
        }
        throttle.check("ann@example.com", addr).expect("the fifth failure costs nothing yet");
        throttle.failed("ann@example.com", addr);
        assert!(matches!(throttle.check("ANN@example.com", addr), Err(ApiError::RateLimited(1))));
        // Another account from the same address is not held back.
        throttle.check("bob@example.com", addr).expect("other account");
        throttle.succeeded("ann@example.com");
        throttle.check("ann@example.com", addr).expect("cleared");
    }

    #[test]
    fn an_address_that_fails_across_many_accounts_waits() {
        let throttle = LoginThrottle::default();
        let addr = Some(IpAddr::from([10, 0, 0, 2]));
        for i in 0..21 {
            throttle.failed(&format!("user{i}@example.com"), addr);
        }
        assert!(matches!(throttle.check("fresh@example.com", addr), Err(ApiError::RateLimited(1))));
        throttle.check("fresh@example.com", Some(IpAddr::from([10, 0, 0, 3]))).expect("other address");
    }
}
