//! Retry delays: exponential growth from `backon`, with *full* jitter.
//!
//! backon's own jitter adds a random amount on top of the exponential delay (so the delay is
//! never below it); AWS's "Exponential Backoff and Jitter" analysis recommends full jitter —
//! a uniform delay between zero and the exponential cap — which spreads synchronized
//! retriers best. We take backon's schedule and apply full jitter to each step.

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::time::Duration;

/// How many times to try, and how long to wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Cap of the first delay.
    pub base_delay: Duration,
    /// Cap of any delay.
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub const fn new(max_attempts: u32, base_delay: Duration, max_delay: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay,
            max_delay,
        }
    }

    /// The delays before attempts 2, 3, …, `max_attempts`: full jitter over an exponential
    /// cap of `base_delay * 2^n`, at most `max_delay`.
    pub fn delays(&self) -> FullJitter {
        FullJitter(
            ExponentialBuilder::default()
                .with_min_delay(self.base_delay)
                .with_max_delay(self.max_delay)
                .with_factor(2.0)
                .with_max_times(self.max_attempts.saturating_sub(1) as usize)
                .build(),
        )
    }
}

/// backon's exponential schedule with full jitter applied to each delay.
pub struct FullJitter(ExponentialBackoff);

impl Iterator for FullJitter {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        self.0.next().map(full_jitter)
    }
}

/// So `RetryPolicy` plugs into backon's `Retryable` for whole-request retries.
impl BackoffBuilder for RetryPolicy {
    type Backoff = FullJitter;
    fn build(self) -> FullJitter {
        self.delays()
    }
}

/// A uniformly random duration in `[0, cap]`.
pub fn full_jitter(cap: Duration) -> Duration {
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_bounded_by_an_exponential_cap_and_counted() {
        let p = RetryPolicy::new(5, Duration::from_millis(100), Duration::from_millis(350));
        for _ in 0..200 {
            let d: Vec<Duration> = p.delays().collect();
            assert_eq!(d.len(), 4, "4 delays between 5 attempts");
            let caps = [100, 200, 350, 350];
            for (delay, cap) in d.iter().zip(caps) {
                assert!(*delay <= Duration::from_millis(cap), "{delay:?} > {cap}ms");
            }
        }
        assert_eq!(
            RetryPolicy::new(1, Duration::ZERO, Duration::ZERO)
                .delays()
                .count(),
            0
        );
    }

    #[test]
    fn jitter_spreads_delays() {
        let cap = Duration::from_millis(1000);
        let samples: Vec<Duration> = (0..100).map(|_| full_jitter(cap)).collect();
        assert!(samples.iter().all(|d| *d <= cap));
        assert!(samples.iter().any(|d| *d < cap / 2) && samples.iter().any(|d| *d > cap / 2));
    }
}
