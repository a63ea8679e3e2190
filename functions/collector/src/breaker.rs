//! A circuit breaker per upstream host whose state lives in the state table, so it holds
//! across invocations and cold starts: a dead upstream is not hit on every schedule tick.
//!
//! closed → (`threshold` consecutive failures) → open → (`open_for` elapsed) → half-open:
//! one probe request → success closes it, failure opens it again. Failures are 5xx,
//! timeouts, connection errors and garbage bodies; a 429 is the rate limiter's business
//! and any other answer proves the host alive.
//!
//! [`BreakerState`] is the pure state machine. [`Breaker`] keeps it for one invocation and
//! writes each transition at once with a versioned conditional write (optimistic
//! concurrency: another invocation's newer state wins and is re-evaluated).

use async_trait::async_trait;
use pricewire_pipeline::adapters::dynamodb::StoreError;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Closed,
    Open,
    HalfOpen,
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Closed => "closed",
            Phase::Open => "open",
            Phase::HalfOpen => "half_open",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        [Phase::Closed, Phase::Open, Phase::HalfOpen]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// As a metric value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(&self) -> u64 {
        match self {
            Phase::Closed => 0,
            Phase::HalfOpen => 1,
            Phase::Open => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub threshold: u32,
    /// How long it stays open before a probe is allowed.
    pub open_for: Duration,
    /// How long a probe may be in flight before another may be sent (its claimant died).
    pub probe_lease: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            // 30 % random 5xx opens a threshold-10 breaker once in ~170,000 failures.
            threshold: 10,
            open_for: Duration::from_secs(300),
            probe_lease: Duration::from_secs(60),
        }
    }
}

/// The stored state. Times are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BreakerState {
    pub phase: Phase,
    /// Consecutive failures while closed.
    pub failures: u32,
    pub open_until_ms: i64,
    /// While half-open: until when the probe in flight holds its claim.
    pub probe_until_ms: i64,
    /// Times the breaker has opened (lifetime).
    pub opened: u64,
    /// Bumped by every write; the conditional write expects the version it read.
    pub version: u64,
}

/// Where breakers are kept between invocations (`BREAKER#<host>` in the state table).
#[async_trait]
pub trait BreakerStore: Send + Sync {
    async fn load_breaker(&self, host: &str) -> Result<Option<BreakerState>, StoreError>;
    /// Writes `state` if the stored version is `expected` (`None`: nothing stored yet).
    /// `Ok(false)`: someone else wrote first.
    async fn save_breaker(
        &self,
        host: &str,
        state: &BreakerState,
        expected: Option<u64>,
    ) -> Result<bool, StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: go ahead.
    Go,
    /// Half-open and this request is the probe.
    Probe,
    /// Half-open and another request is the probe: ask again shortly.
    Wait,
    /// Open: no request before `until_ms`.
    Refused { until_ms: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub from: Phase,
    pub to: Phase,
}

impl BreakerState {
    fn go(&mut self, to: Phase) -> Option<Transition> {
        let from = self.phase;
        self.phase = to;
        (from != to).then_some(Transition { from, to })
    }

    pub fn admit(&mut self, now_ms: i64, p: &BreakerPolicy) -> (Admit, Option<Transition>) {
        match self.phase {
            Phase::Closed => (Admit::Go, None),
            Phase::Open if now_ms < self.open_until_ms => (
                Admit::Refused {
                    until_ms: self.open_until_ms,
                },
                None,
            ),
            Phase::Open => {
                self.probe_until_ms = now_ms + p.probe_lease.as_millis() as i64;
                (Admit::Probe, self.go(Phase::HalfOpen))
            }
            Phase::HalfOpen if now_ms < self.probe_until_ms => (Admit::Wait, None),
            Phase::HalfOpen => {
                self.probe_until_ms = now_ms + p.probe_lease.as_millis() as i64;
                (Admit::Probe, None)
            }
        }
    }

    pub fn success(&mut self) -> Option<Transition> {
        match self.phase {
            // A request started before the breaker opened proves little: only the probe
            // closes an open breaker.
            Phase::Open => None,
            Phase::Closed | Phase::HalfOpen => {
                self.failures = 0;
                self.probe_until_ms = 0;
                self.go(Phase::Closed)
            }
        }
    }

    /// The probe neither succeeded nor failed (a 429, or it was never sent): its claim is
    /// given up so the next request may probe.
    pub fn neutral(&mut self) -> Option<Transition> {
        if self.phase == Phase::HalfOpen {
            self.probe_until_ms = 0;
        }
        None
    }

    pub fn failure(&mut self, now_ms: i64, p: &BreakerPolicy) -> Option<Transition> {
        match self.phase {
            Phase::Closed => {
                self.failures += 1;
                if self.failures < p.threshold {
                    return None;
                }
            }
            // A late failure from before the breaker opened changes nothing.
            Phase::Open => return None,
            Phase::HalfOpen => {}
        }
        self.open_until_ms = now_ms + p.open_for.as_millis() as i64;
        self.probe_until_ms = 0;
        self.opened += 1;
        self.go(Phase::Open)
    }
}

/// What one request came to, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// 429: neither (the limiter handles it).
    Neutral,
}

/// One host's breaker for the length of an invocation.
pub struct Breaker<'a> {
    host: String,
    policy: BreakerPolicy,
    store: &'a dyn BreakerStore,
    state: tokio::sync::Mutex<BreakerState>,
    /// Whether the failure count changed without a transition (stored at the end).
    dirty: std::sync::atomic::AtomicBool,
    /// The failure count as last read from or written to the store, so that concurrent
    /// invocations' failures add up when their counts are merged.
    stored_failures: std::sync::atomic::AtomicU32,
    transitions: Mutex<Vec<Transition>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl<'a> Breaker<'a> {
    /// Reads the host's stored state. If the store cannot be read, the breaker starts
    /// closed for this invocation (an outage of the state table must not stop collection).
    pub async fn load(
        store: &'a dyn BreakerStore,
        host: &str,
        policy: BreakerPolicy,
    ) -> Breaker<'a> {
        let state = match store.load_breaker(host).await {
            Ok(state) => state.unwrap_or_default(),
            Err(e) => {
                tracing::error!(host, error = %e, "breaker state not readable; starting closed");
                BreakerState::default()
            }
        };
        let stored_failures = state.failures;
        Breaker {
            host: host.into(),
            policy,
            store,
            state: tokio::sync::Mutex::new(state),
            dirty: false.into(),
            stored_failures: stored_failures.into(),
            transitions: Mutex::default(),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub async fn phase(&self) -> Phase {
        self.state.lock().await.phase
    }

    pub fn transitions(&self) -> Vec<Transition> {
        self.transitions
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    /// Applies `change` to the state; a transition is written at once, conditionally on
    /// the version read. On conflict the stored state is reloaded and `change` re-applied.
    async fn apply<T>(
        &self,
        mut change: impl FnMut(&mut BreakerState) -> (T, Option<Transition>),
    ) -> T {
        let mut state = self.state.lock().await;
        for _ in 0..3 {
            let mut next = state.clone();
            let (result, transition) = change(&mut next);
            let Some(t) = transition else {
                if next.failures != state.failures {
                    self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                *state = next;
                return result;
            };
            next.version = state.version + 1;
            match self
                .store
                .save_breaker(&self.host, &next, Some(state.version).filter(|v| *v > 0))
                .await
            {
                Ok(true) => {
                    tracing::warn!(host = %self.host, from = t.from.as_str(), to = t.to.as_str(),
                        failures = next.failures, open_until_ms = next.open_until_ms, "circuit breaker transition");
                    if let Ok(mut ts) = self.transitions.lock() {
                        ts.push(t);
                    }
                    self.dirty
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    self.stored_failures
                        .store(next.failures, std::sync::atomic::Ordering::Relaxed);
                    *state = next;
                    return result;
                }
                Ok(false) => match self.store.load_breaker(&self.host).await {
                    Ok(Some(stored)) => {
                        self.stored_failures
                            .store(stored.failures, std::sync::atomic::Ordering::Relaxed);
                        *state = stored;
                    }
                    Ok(None) => state.version = 0,
                    Err(e) => {
                        tracing::error!(host = %self.host, error = %e, "breaker reload failed");
                        break;
                    }
                },
                Err(e) => {
                    // The breaker still works for this invocation; the next one starts
                    // from what was stored.
                    tracing::error!(host = %self.host, error = %e, "breaker state not stored");
                    let (result, _) = change(&mut state);
                    return result;
                }
            }
        }
        let (result, _) = change(&mut state);
        result
    }

    pub async fn admit(&self) -> Admit {
        let policy = self.policy;
        self.apply(|s| s.admit(now_ms(), &policy)).await
    }

    pub async fn record(&self, outcome: Outcome) {
        let policy = self.policy;
        match outcome {
            Outcome::Success => {
                self.apply(|s| ((), s.success())).await;
            }
            Outcome::Failure => {
                self.apply(|s| ((), s.failure(now_ms(), &policy))).await;
            }
            Outcome::Neutral => {
                self.apply(|s| ((), s.neutral())).await;
            }
        }
    }

    /// Stores a failure count that changed without a transition (end of invocation).
    pub async fn flush(&self) -> Result<(), StoreError> {
        if !self.dirty.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let mut state = self.state.lock().await;
        let ours = state.failures.saturating_sub(
            self.stored_failures
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        for _ in 0..3 {
            let mut next = state.clone();
            next.version = state.version + 1;
            if self
                .store
                .save_breaker(&self.host, &next, Some(state.version).filter(|v| *v > 0))
                .await?
            {
                self.stored_failures
                    .store(next.failures, std::sync::atomic::Ordering::Relaxed);
                *state = next;
                break;
            }
            // Someone else wrote since: keep theirs, adding our failures if it is closed.
            let Some(stored) = self.store.load_breaker(&self.host).await? else {
                state.version = 0;
                continue;
            };
            let mut merged = stored.clone();
            if stored.phase == Phase::Closed {
                merged.failures = stored.failures.saturating_add(ours);
            }
            *state = merged;
            if stored.phase != Phase::Closed {
                break;
            }
        }
        self.dirty
            .store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryHostState;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            threshold: 3,
            open_for: Duration::from_secs(60),
            probe_lease: Duration::from_secs(10),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_probes_then_closes_or_reopens() {
        let p = policy();
        let mut s = BreakerState::default();
        assert_eq!(s.failure(0, &p), None);
        assert_eq!(s.success(), None, "a success resets the count");
        assert_eq!(s.failures, 0);
        s.failure(0, &p);
        s.failure(0, &p);
        let t = s.failure(1_000, &p).unwrap();
        assert_eq!((t.from, t.to), (Phase::Closed, Phase::Open));
        assert_eq!(s.open_until_ms, 61_000);
        assert_eq!(
            s.success(),
            None,
            "a late success does not close an open breaker"
        );
        assert_eq!(s.phase, Phase::Open);
        assert_eq!(s.admit(60_999, &p).0, Admit::Refused { until_ms: 61_000 });
        let (admit, t) = s.admit(61_000, &p);
        assert_eq!(admit, Admit::Probe);
        assert_eq!(t.unwrap().to, Phase::HalfOpen);
        assert_eq!(s.admit(61_001, &p).0, Admit::Wait, "one probe at a time");
        s.neutral();
        assert_eq!(
            s.admit(61_002, &p).0,
            Admit::Probe,
            "a 429'd probe gives up its claim"
        );
        assert_eq!(s.failure(62_000, &p).unwrap().to, Phase::Open);
        assert_eq!(s.open_until_ms, 122_000);
        assert_eq!(s.admit(122_000, &p).0, Admit::Probe);
        assert_eq!(
            s.admit(132_000, &p).0,
            Admit::Probe,
            "a stale probe is replaced"
        );
        assert_eq!(s.success().unwrap().to, Phase::Closed);
        assert_eq!(s.admit(132_001, &p).0, Admit::Go);
        assert_eq!(s.opened, 2);
    }

    #[tokio::test]
    async fn state_survives_invocations_and_conflicting_writers() {
        let store = MemoryHostState::default();
        let p = policy();
        {
            let b = Breaker::load(&store, "up", p).await;
            b.record(Outcome::Failure).await;
            b.record(Outcome::Failure).await;
            b.flush().await.unwrap();
        }
        let b = Breaker::load(&store, "up", p).await;
        assert_eq!(store.load_breaker("up").await.unwrap().unwrap().failures, 2);
        // Another invocation opens it meanwhile.
        let other = Breaker::load(&store, "up", p).await;
        other.record(Outcome::Failure).await;
        assert_eq!(other.phase().await, Phase::Open);
        assert_eq!(other.transitions().len(), 1);
        // This one's failure lands on the newer, open state and changes nothing.
        b.record(Outcome::Failure).await;
        let stored = store.load_breaker("up").await.unwrap().unwrap();
        assert_eq!((stored.phase, stored.opened), (Phase::Open, 1));
        assert!(matches!(b.admit().await, Admit::Refused { .. }));
        let next = Breaker::load(&store, "up", p).await;
        assert!(
            matches!(next.admit().await, Admit::Refused { .. }),
            "a new invocation sees it open"
        );
    }
}
