//! Client-side rate limiting per upstream host and method.
//!
//! - A token bucket (governor, GCRA) paces requests at the current rate, burst 1: an
//!   upstream that counts requests per rolling minute never sees more than the rate.
//! - The rate starts at the documented limit (or the configured one) and adapts: a 429
//!   lowers it to just under what the host accepted over the last minute (or by a fifth
//!   when there is too little history to tell); each minute's worth of accepted requests
//!   raises it by one request per minute, up to the ceiling. What it learned is stored
//!   between invocations ([`LimitState`]).
//! - `Retry-After` and exhausted quota headers pause the host: no request starts before.
//! - A semaphore bounds concurrent requests to the host.

use crate::deadline::Deadline;
use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use pricewire_pipeline::adapters::dynamodb::StoreError;
use pricewire_pipeline::sources::Hold;
pub use pricewire_pipeline::sources::RateWindow as QuotaHeaders;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The rate never goes below this (one request every 12 s keeps probing a host).
pub const FLOOR_RPM: f64 = 5.0;
/// After a 429 the rate becomes this share of what the host accepted in the last minute.
pub const DECREASE_TO_ACCEPTED: f64 = 0.9;
/// After a 429 with too little history to measure (typically early in an invocation,
/// when the host's window still holds the previous invocation's requests), the rate is
/// multiplied by this. Gentle, because the learned rate is usually right and the host's
/// `Retry-After` pause absorbs the overlap.
pub const DECREASE_FACTOR: f64 = 0.8;
/// 429s within one window of a decrease are the same episode (the window still holds
/// the requests that caused it): the rate drops once per window.
pub const DECREASE_COOLDOWN: Duration = WINDOW;
/// After a 429 without `Retry-After`, the host is paused this long (besides the request's
/// own backoff), so concurrent requests do not pile onto the limit.
pub const THROTTLE_PAUSE: Duration = Duration::from_secs(2);
/// Accepted requests in the window that make the measured rate trustworthy even when
/// this invocation has not yet watched a whole window (a 429 after a handful of requests
/// usually means the window still holds someone else's, e.g. the previous invocation's).
const MIN_MEASURED: usize = 20;
/// The longest pause honoured from `Retry-After` or a quota reset; beyond it the value is
/// taken as garbage (and `Instant` arithmetic stays far from overflow).
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);
/// The window the accepted rate is measured over (limits are stated per minute).
pub const WINDOW: Duration = Duration::from_secs(60);
/// Added to the rate after each minute's worth of accepted requests (requests per minute).
pub const ADDITIVE_STEP_RPM: f64 = 1.0;

/// Where learned limits are kept between invocations (`LIMIT#<host><path>`).
#[async_trait]
pub trait LimitStore: Send + Sync {
    async fn load_limit(&self, key: &str) -> Result<Option<LimitState>, StoreError>;
    async fn save_limit(&self, key: &str, state: &LimitState) -> Result<(), StoreError>;
}

/// What a host's limiter carries from one invocation to the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitState {
    /// The learned sustainable rate, requests per minute.
    pub rpm: f64,
    /// No request before this (epoch milliseconds), from `Retry-After` or quota headers.
    pub paused_until_ms: Option<i64>,
    /// Accepted requests since the rate last went up: additive increase needs a minute's
    /// worth, and a job making a few requests per run gets there over several runs.
    #[serde(default)]
    pub credit: u32,
}

/// Additive increase, multiplicative (measured) decrease. Pure: time is passed in.
#[derive(Debug, Clone)]
pub struct Aimd {
    rpm: f64,
    ceiling: f64,
    accepted: VecDeque<Instant>,
    since_increase: u32,
    last_decrease: Option<Instant>,
    /// When this limiter started watching (a whole window watched makes counts trustworthy).
    started: Option<Instant>,
}

impl Aimd {
    pub fn new(rpm: f64, ceiling: f64) -> Aimd {
        let ceiling = ceiling.max(FLOOR_RPM);
        Aimd {
            rpm: rpm.clamp(FLOOR_RPM, ceiling),
            ceiling,
            accepted: VecDeque::new(),
            since_increase: 0,
            last_decrease: None,
            started: None,
        }
    }

    /// Carries over the accepted requests counted towards the next increase.
    pub fn with_credit(mut self, credit: u32) -> Aimd {
        self.since_increase = credit;
        self
    }

    pub fn credit(&self) -> u32 {
        self.since_increase
    }

    pub fn rpm(&self) -> f64 {
        self.rpm
    }

    /// Lowers the ceiling (a quota header said what the limit is). Returns whether the
    /// rate changed.
    pub fn cap(&mut self, ceiling: f64) -> bool {
        let ceiling = ceiling.max(FLOOR_RPM);
        self.ceiling = ceiling;
        if self.rpm > ceiling {
            self.rpm = ceiling;
            return true;
        }
        false
    }

    fn trim(&mut self, now: Instant) {
        while self
            .accepted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            self.accepted.pop_front();
        }
    }

    /// A request the host accepted (anything but a 429). Returns whether the rate changed.
    pub fn accepted(&mut self, now: Instant) -> bool {
        self.started.get_or_insert(now);
        self.accepted.push_back(now);
        self.trim(now);
        self.since_increase += 1;
        if f64::from(self.since_increase) >= self.rpm && self.rpm < self.ceiling {
            self.since_increase = 0;
            self.rpm = (self.rpm + ADDITIVE_STEP_RPM).min(self.ceiling);
            return true;
        }
        false
    }

    /// A 429. Returns whether the rate changed.
    pub fn throttled(&mut self, now: Instant) -> bool {
        let watched = now.duration_since(*self.started.get_or_insert(now)) >= WINDOW;
        self.trim(now);
        self.since_increase = 0;
        if self
            .last_decrease
            .is_some_and(|t| now.duration_since(t) < DECREASE_COOLDOWN)
        {
            return false;
        }
        self.last_decrease = Some(now);
        let measured = self.accepted.len();
        let target = if measured >= MIN_MEASURED || (watched && measured > 0) {
            (measured as f64 * DECREASE_TO_ACCEPTED).min(self.rpm * DECREASE_TO_ACCEPTED)
        } else {
            self.rpm * DECREASE_FACTOR
        };
        self.rpm = target.clamp(FLOOR_RPM, self.ceiling);
        true
    }
}

/// Why a request was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotInTime {
    /// How long the host would have had to be waited for.
    pub wait: Duration,
}

/// Counters for the run's summary and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GateStats {
    /// Time spent waiting for the bucket or a pause, milliseconds.
    pub waited_ms: u64,
    /// Times the host was paused by `Retry-After` or an exhausted quota.
    pub pauses: u32,
    pub decreases: u32,
}

fn quota(rpm: f64) -> Quota {
    let period = Duration::from_secs_f64(60.0 / rpm.max(FLOOR_RPM));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::MIN)
}

/// One host (and method): bucket, adaptive rate, pause and concurrency bound.
pub struct HostGate {
    key: String,
    limiter: Mutex<Arc<DefaultDirectRateLimiter>>,
    aimd: Mutex<Aimd>,
    paused_until: Mutex<Option<Instant>>,
    slots: Semaphore,
    stats: Mutex<GateStats>,
    changed: std::sync::atomic::AtomicBool,
    /// Set when an answer said "stay away" (a ban, a spent quota): no request starts
    /// through this gate for the rest of the invocation (the hold itself is stored by the
    /// walk, for later invocations).
    held: Mutex<Option<Hold>>,
}

impl HostGate {
    /// `learned`: what earlier invocations stored; `ceiling`: the documented or configured
    /// limit (the starting rate when nothing was learned).
    pub fn new(
        key: impl Into<String>,
        ceiling_rpm: u32,
        learned: Option<&LimitState>,
        concurrency: usize,
    ) -> HostGate {
        let ceiling = f64::from(ceiling_rpm);
        let aimd = Aimd::new(learned.map_or(ceiling, |l| l.rpm), ceiling)
            .with_credit(learned.map_or(0, |l| l.credit));
        let now_ms = chrono::Utc::now().timestamp_millis();
        let paused_until = learned
            .and_then(|l| l.paused_until_ms)
            .filter(|until| *until > now_ms)
            .and_then(|until| {
                Instant::now()
                    .checked_add(Duration::from_millis((until - now_ms) as u64).min(MAX_PAUSE))
            });
        HostGate {
            key: key.into(),
            limiter: Mutex::new(Arc::new(RateLimiter::direct(quota(aimd.rpm())))),
            aimd: Mutex::new(aimd),
            paused_until: Mutex::new(paused_until),
            slots: Semaphore::new(concurrency.max(1)),
            stats: Mutex::default(),
            changed: false.into(),
            held: Mutex::default(),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn rpm(&self) -> f64 {
        self.aimd.lock().map(|a| a.rpm()).unwrap_or(FLOOR_RPM)
    }

    pub fn stats(&self) -> GateStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Whether anything worth storing changed in this invocation.
    pub fn changed(&self) -> bool {
        self.changed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What to store for the next invocation.
    pub fn state(&self) -> LimitState {
        let paused_until_ms = self
            .paused_until
            .lock()
            .ok()
            .and_then(|p| *p)
            .and_then(|p| {
                let left = p.saturating_duration_since(Instant::now());
                (!left.is_zero())
                    .then(|| chrono::Utc::now().timestamp_millis() + left.as_millis() as i64)
            });
        let (rpm, credit) = self
            .aimd
            .lock()
            .map(|a| (a.rpm(), a.credit()))
            .unwrap_or((FLOOR_RPM, 0));
        LimitState {
            rpm,
            paused_until_ms,
            credit,
        }
    }

    fn set_rate(&self, rpm: f64) {
        if let Ok(mut l) = self.limiter.lock() {
            *l = Arc::new(RateLimiter::direct(quota(rpm)));
        }
        self.changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(host = %self.key, rpm, "rate limit adjusted");
    }

    /// Waits for a concurrency slot, the end of any pause and a token. Refuses (without
    /// waiting) when the wait would leave no time for the request before the deadline.
    pub async fn acquire(
        &self,
        deadline: Option<Deadline>,
    ) -> Result<SemaphorePermit<'_>, NotInTime> {
        let permit = self.slots.acquire().await.map_err(|_| NotInTime {
            wait: Duration::MAX,
        })?;
        loop {
            let now = Instant::now();
            let paused = self
                .paused_until
                .lock()
                .ok()
                .and_then(|p| *p)
                .map(|p| p.saturating_duration_since(now))
                .filter(|w| !w.is_zero());
            let wait = match paused {
                Some(w) => w,
                None => {
                    let limiter = self.limiter.lock().map(|l| l.clone());
                    let Ok(limiter) = limiter else {
                        return Ok(permit);
                    };
                    match limiter.check() {
                        Ok(()) => return Ok(permit),
                        Err(not_until) => not_until.wait_time_from(DefaultClock::default().now()),
                    }
                }
            };
            if let Some(d) = deadline.filter(|d| !d.allows(wait)) {
                let _ = d;
                return Err(NotInTime { wait });
            }
            if let Ok(mut s) = self.stats.lock() {
                s.waited_ms += wait.as_millis() as u64;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// The host answered something other than 429.
    pub fn on_accepted(&self, quota: Option<QuotaHeaders>) {
        // The credit towards the next increase is worth storing too.
        self.changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let changed = self
            .aimd
            .lock()
            .map(|mut a| a.accepted(Instant::now()).then(|| a.rpm()))
            .ok()
            .flatten();
        if let Some(rpm) = changed {
            self.set_rate(rpm);
        }
        if let Some(q) = quota {
            self.on_quota(q);
        }
    }

    /// The host answered 429 (with `Retry-After`, if it sent one).
    pub fn on_throttled(&self, retry_after: Option<Duration>, quota: Option<QuotaHeaders>) {
        let changed = self
            .aimd
            .lock()
            .map(|mut a| a.throttled(Instant::now()).then(|| a.rpm()))
            .ok()
            .flatten();
        if let Some(rpm) = changed {
            if let Ok(mut s) = self.stats.lock() {
                s.decreases += 1;
            }
            self.set_rate(rpm);
        }
        self.pause(retry_after.unwrap_or(THROTTLE_PAUSE));
        if let Some(q) = quota {
            self.on_quota(q);
        }
    }

    fn on_quota(&self, q: QuotaHeaders) {
        if let Some(limit) = q.limit {
            let changed = self
                .aimd
                .lock()
                .map(|mut a| a.cap(f64::from(limit)).then(|| a.rpm()))
                .ok()
                .flatten();
            if let Some(rpm) = changed {
                self.set_rate(rpm);
            }
        }
        if let (Some(0), Some(reset)) = (q.remaining, q.reset) {
            self.pause(reset);
        }
    }

    /// No request starts through this gate again in this invocation.
    pub fn hold(&self, hold: Hold) {
        if let Ok(mut h) = self.held.lock() {
            h.get_or_insert(hold);
        }
    }

    /// The hold an answer imposed, if one did.
    pub fn held(&self) -> Option<Hold> {
        self.held.lock().ok().and_then(|h| h.clone())
    }

    /// No request starts on this host for `wait`.
    pub fn pause(&self, wait: Duration) {
        let Some(until) = Instant::now().checked_add(wait.min(MAX_PAUSE)) else {
            return;
        };
        if let Ok(mut p) = self.paused_until.lock() {
            if p.is_none_or(|current| current < until) {
                *p = Some(until);
                if let Ok(mut s) = self.stats.lock() {
                    s.pauses += 1;
                }
                self.changed
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(host = %self.key, wait_ms = wait.as_millis() as u64, "host paused");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host that allows `limit` requests per rolling minute, driven at `rpm` by the AIMD.
    fn simulate(limit: usize, start_rpm: f64, minutes: u64) -> (f64, usize, usize) {
        let mut aimd = Aimd::new(start_rpm, start_rpm);
        let t0 = Instant::now();
        let mut window: VecDeque<Instant> = VecDeque::new();
        let mut next = t0;
        let (mut sent, mut throttled) = (0, 0);
        let mut late_sent = 0;
        let mut late_throttled = 0;
        while next < t0 + Duration::from_secs(60 * minutes) {
            let now = next;
            while window
                .front()
                .is_some_and(|t| now.duration_since(*t) >= WINDOW)
            {
                window.pop_front();
            }
            sent += 1;
            let late = now >= t0 + Duration::from_secs(120);
            late_sent += usize::from(late);
            if window.len() >= limit {
                throttled += 1;
                late_throttled += usize::from(late);
                aimd.throttled(now);
            } else {
                window.push_back(now);
                aimd.accepted(now);
            }
            next = now + Duration::from_secs_f64(60.0 / aimd.rpm());
        }
        let _ = (sent, throttled);
        (aimd.rpm(), late_sent, late_throttled)
    }

    #[test]
    fn settles_just_under_an_undocumented_limit_and_stops_tripping_it() {
        // Documented 600 rpm, the host really allows 60 per rolling minute.
        let (rpm, sent, throttled) = simulate(60, 600.0, 30);
        assert!((50.0..=60.0).contains(&rpm), "settled at {rpm}");
        let share = throttled as f64 / sent as f64;
        assert!(
            share < 0.02,
            "{throttled} of {sent} throttled after adapting"
        );
        assert!(sent > 1500, "uses the limit: {sent} requests in 28 minutes");
    }

    #[test]
    fn a_429_without_history_backs_off_and_repeats_in_one_episode_count_once() {
        let mut a = Aimd::new(100.0, 600.0);
        let now = Instant::now();
        assert!(a.throttled(now));
        assert_eq!(a.rpm(), 80.0);
        assert!(!a.throttled(now + Duration::from_secs(1)));
        assert_eq!(a.rpm(), 80.0);
        assert!(a.throttled(now + DECREASE_COOLDOWN));
        assert_eq!(a.rpm(), 64.0);
        for _ in 0..10 {
            a.throttled(now + DECREASE_COOLDOWN * 20);
        }
        assert!(a.rpm() >= FLOOR_RPM);
    }

    #[test]
    fn increases_by_one_per_minute_of_success_up_to_the_ceiling() {
        let mut a = Aimd::new(10.0, 12.0);
        let now = Instant::now();
        for _ in 0..10 {
            a.accepted(now);
        }
        assert_eq!(a.rpm(), 11.0);
        for _ in 0..100 {
            a.accepted(now);
        }
        assert_eq!(a.rpm(), 12.0, "never above the ceiling");
        assert!(a.cap(8.0));
        assert_eq!(a.rpm(), 8.0, "a quota header lowers the ceiling");
    }

    #[tokio::test]
    async fn the_gate_paces_pauses_and_refuses_what_cannot_finish_in_time() {
        let gate = HostGate::new("up/p", 600, None, 2);
        let t = Instant::now();
        for _ in 0..4 {
            drop(gate.acquire(None).await.unwrap());
        }
        // 600 rpm, burst 1: 4 requests take at least 3 × 100 ms.
        assert!(
            t.elapsed() >= Duration::from_millis(290),
            "{:?}",
            t.elapsed()
        );

        gate.on_throttled(Some(Duration::from_secs(30)), None);
        assert_eq!(
            gate.rpm(),
            480.0,
            "a 429 early in a run lowers the rate by a fifth"
        );
        assert_eq!((gate.stats().decreases, gate.stats().pauses), (1, 1));
        let deadline = Deadline {
            at: Instant::now() + Duration::from_secs(10),
            request_timeout: Duration::from_secs(1),
        };
        let refused = gate.acquire(Some(deadline)).await.unwrap_err();
        assert!(refused.wait > Duration::from_secs(29), "{refused:?}");
        let state = gate.state();
        assert!(state.paused_until_ms.is_some(), "the pause is carried over");
        assert!(gate.changed());

        let quota = HostGate::new("up/q", 600, None, 1);
        quota.on_accepted(Some(QuotaHeaders {
            limit: Some(120),
            remaining: Some(0),
            reset: Some(Duration::from_secs(40)),
        }));
        assert_eq!(quota.rpm(), 120.0, "X-RateLimit-Limit lowers the ceiling");
        let refused = quota.acquire(Some(deadline)).await.unwrap_err();
        assert!(
            refused.wait > Duration::from_secs(39),
            "an exhausted quota pauses until its reset: {refused:?}"
        );

        let next = HostGate::new("up/p", 600, Some(&state), 2);
        assert_eq!(next.rpm(), gate.rpm(), "the learned rate is carried over");
        gate.on_throttled(Some(Duration::MAX), None);
        assert!(
            gate.state().paused_until_ms.is_some(),
            "an absurd Retry-After is capped, not a panic"
        );
        assert!(
            next.acquire(Some(deadline)).await.is_err(),
            "and so is the pause"
        );
    }
}
