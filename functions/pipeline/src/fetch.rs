//! Fetching one request from an upstream with bounded retries.
//!
//! Retried: 429, 5xx, timeouts, connection errors, and a 2xx body the caller rejects as
//! transient (garbage instead of JSON). Not retried: other 4xx (401/403/404 cannot succeed
//! by asking again). Waits are full-jitter exponential, or `Retry-After` when the upstream
//! says so (capped). Every response received is handed to `on_response` (the archive).
//!
//! With [`Guards`], every attempt first asks the host's circuit breaker, then waits for the
//! host's rate limiter (token, pause, concurrency slot), and reports its outcome to both.

use crate::adapters::http::{HttpResponse, TransportError, Upstream};
use crate::backoff::RetryPolicy;
use crate::breaker::{Admit, Breaker, Outcome};
use crate::ratelimit::HostGate;
use crate::sources::RequestSpec;
use std::time::Duration;

/// Without a deadline to judge by, the longest `Retry-After` honoured; longer means "not
/// now". With one, any wait that still leaves time for the request is honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("job {job}: upstream answered HTTP {status} for {url}; not retried")]
    Rejected {
        job: String,
        status: u16,
        url: String,
    },
    #[error("job {job}: upstream asked to wait {wait:?} (Retry-After) for {url}; giving up for this run")]
    RetryAfterTooLong {
        job: String,
        wait: Duration,
        url: String,
    },
    #[error("job {job}: gave up after {attempts} attempts: {last}")]
    Exhausted {
        job: String,
        attempts: u32,
        last: String,
    },
    #[error("job {job}: circuit breaker for {host} is open until {until}; not requested")]
    CircuitOpen {
        job: String,
        host: String,
        until: String,
    },
    #[error("job {job}: stopped after {attempts} attempts: another request ({timeout:?}) cannot finish before the invocation's deadline ({remaining:?} left)")]
    Deadline {
        job: String,
        attempts: u32,
        timeout: Duration,
        remaining: Duration,
    },
}

impl FetchError {
    /// Stopped for now (deadline, a long `Retry-After`, an open breaker) rather than
    /// failed: the run flushes what it has and the next one resumes.
    pub fn is_stop(&self) -> bool {
        matches!(
            self,
            FetchError::Deadline { .. }
                | FetchError::RetryAfterTooLong { .. }
                | FetchError::CircuitOpen { .. }
        )
    }
}

/// The host's breaker and rate limiter, consulted around every attempt.
#[derive(Clone, Copy)]
pub struct Guards<'a> {
    pub gate: &'a HostGate,
    pub breaker: &'a Breaker<'a>,
}

/// How often a request waiting for another's half-open probe asks again.
const PROBE_POLL: Duration = Duration::from_millis(100);

/// When the invocation must be done, and how long one request may take: no request is
/// started, and no backoff slept, that could not finish before the deadline (less a margin
/// to flush what was fetched and report).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: std::time::Instant,
    pub request_timeout: Duration,
}

/// Kept free at the end of an invocation to archive, put and report.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1500);

impl Deadline {
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(std::time::Instant::now())
    }

    /// Whether a request started after `wait` could still finish in time.
    pub fn allows(&self, wait: Duration) -> bool {
        wait.saturating_add(self.request_timeout)
            .saturating_add(DEADLINE_MARGIN)
            <= self.remaining()
    }
}

/// What the caller makes of a 2xx body.
pub enum Verdict<T> {
    Accept(T),
    /// Transient: worth another attempt (the reason is kept if attempts run out).
    Retry(String),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FetchStats {
    pub attempts: u32,
    pub retries: u32,
    pub throttled: u32,
    /// Requests not started because they could not finish before the deadline.
    pub skipped: u32,
}

#[allow(clippy::too_many_arguments)]
pub async fn fetch<T>(
    upstream: &dyn Upstream,
    spec: &RequestSpec,
    job: &str,
    policy: RetryPolicy,
    deadline: Option<Deadline>,
    guards: Option<Guards<'_>>,
    stats: &mut FetchStats,
    mut on_response: impl AsyncFnMut(&HttpResponse),
    mut accept: impl FnMut(&HttpResponse) -> Verdict<T>,
) -> Result<T, FetchError> {
    let mut delays = policy.delays();
    let stop = |d: &Deadline, attempts: u32| FetchError::Deadline {
        job: job.into(),
        attempts,
        timeout: d.request_timeout,
        remaining: d.remaining(),
    };
    loop {
        if let Some(d) = deadline.filter(|d| !d.allows(Duration::ZERO)) {
            stats.skipped += 1;
            return Err(stop(&d, stats.attempts));
        }
        let permit = match guards {
            None => None,
            Some(g) => {
                loop {
                    match g.breaker.admit().await {
                        Admit::Go | Admit::Probe => break,
                        Admit::Wait => {
                            if let Some(d) = deadline.filter(|d| !d.allows(PROBE_POLL)) {
                                stats.skipped += 1;
                                return Err(stop(&d, stats.attempts));
                            }
                            tokio::time::sleep(PROBE_POLL).await;
                        }
                        Admit::Refused { until_ms } => {
                            stats.skipped += 1;
                            return Err(FetchError::CircuitOpen {
                                job: job.into(),
                                host: g.breaker.host().into(),
                                until: chrono::DateTime::from_timestamp_millis(until_ms)
                                    .map(|t| t.to_rfc3339())
                                    .unwrap_or_default(),
                            });
                        }
                    }
                }
                match g.gate.acquire(deadline).await {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        // If this request held the half-open probe, it gives the claim up.
                        g.breaker.record(Outcome::Neutral).await;
                        stats.skipped += 1;
                        let d = deadline.unwrap_or(Deadline {
                            at: std::time::Instant::now(),
                            request_timeout: Duration::ZERO,
                        });
                        return Err(stop(&d, stats.attempts));
                    }
                }
            }
        };
        stats.attempts += 1;
        let sent = upstream.send(spec).await;
        drop(permit);
        if let Some(g) = guards {
            let outcome = match &sent {
                Ok(r) if r.status == 429 => {
                    g.gate.on_throttled(r.retry_after, r.quota);
                    Outcome::Neutral
                }
                Ok(r) => {
                    g.gate.on_accepted(r.quota);
                    if r.status >= 500 {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    }
                }
                Err(_) => Outcome::Failure,
            };
            if outcome != Outcome::Success {
                g.breaker.record(outcome).await;
            }
        }
        let (last, hinted) = match sent {
            Ok(response) => {
                on_response(&response).await;
                match response.status {
                    200..=299 => match accept(&response) {
                        Verdict::Accept(value) => {
                            if let Some(g) = guards {
                                g.breaker.record(Outcome::Success).await;
                            }
                            return Ok(value);
                        }
                        Verdict::Retry(reason) => {
                            if let Some(g) = guards {
                                g.breaker.record(Outcome::Failure).await;
                            }
                            (reason, None)
                        }
                    },
                    429 | 500..=599 => {
                        if response.status == 429 {
                            stats.throttled += 1;
                        }
                        if let Some(wait) = response
                            .retry_after
                            .filter(|w| *w > MAX_RETRY_AFTER && deadline.is_none())
                        {
                            return Err(FetchError::RetryAfterTooLong {
                                job: job.into(),
                                wait,
                                url: response.url,
                            });
                        }
                        (
                            format!("HTTP {} from {}", response.status, response.url),
                            response.retry_after,
                        )
                    }
                    status => {
                        if let Some(g) = guards {
                            g.breaker.record(Outcome::Success).await;
                        }
                        return Err(FetchError::Rejected {
                            job: job.into(),
                            status,
                            url: response.url,
                        });
                    }
                }
            }
            Err(
                e @ (TransportError::Timeout { .. }
                | TransportError::Connect { .. }
                | TransportError::Other { .. }),
            ) => (e.to_string(), None),
        };
        match delays.next() {
            Some(delay) => {
                let wait = hinted.map_or(delay, |h| h.max(delay));
                if let Some(d) = deadline.filter(|d| !d.allows(wait)) {
                    stats.skipped += 1;
                    return Err(stop(&d, stats.attempts));
                }
                stats.retries += 1;
                tracing::warn!(job, attempt = stats.attempts, wait_ms = wait.as_millis() as u64, error = %last, "upstream request failed; retrying");
                tokio::time::sleep(wait).await;
            }
            None => {
                return Err(FetchError::Exhausted {
                    job: job.into(),
                    attempts: stats.attempts,
                    last,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// Answers from a script: a status, or a timeout.
    /// Ok((status, body, retry-after ms)) or Err(()) for a timeout.
    type Step = Result<(u16, &'static str, Option<u64>), ()>;

    struct Scripted(Mutex<Vec<Step>>);

    #[async_trait]
    impl Upstream for Scripted {
        async fn send(&self, spec: &RequestSpec) -> Result<HttpResponse, TransportError> {
            let next = self.0.lock().unwrap().remove(0);
            match next {
                Ok((status, body, retry_after)) => Ok(HttpResponse {
                    status,
                    body: body.as_bytes().to_vec(),
                    url: format!("http://up{}", spec.path),
                    retry_after: retry_after.map(Duration::from_millis),
                    quota: None,
                    fetched_at: chrono::Utc::now(),
                }),
                Err(()) => Err(TransportError::Timeout {
                    url: "http://up".into(),
                }),
            }
        }
    }

    fn spec() -> RequestSpec {
        RequestSpec {
            path: "/p",
            query: vec![],
        }
    }

    fn policy(n: u32) -> RetryPolicy {
        RetryPolicy::new(n, Duration::from_millis(1), Duration::from_millis(2))
    }

    async fn run(
        script: Vec<Step>,
        attempts: u32,
    ) -> (Result<String, FetchError>, FetchStats, usize) {
        let up = Scripted(Mutex::new(script));
        let mut stats = FetchStats::default();
        let mut seen = 0usize;
        let r = fetch(
            &up,
            &spec(),
            "led-kzn",
            policy(attempts),
            None,
            None,
            &mut stats,
            async |_r: &HttpResponse| seen += 1,
            |r| {
                let body = String::from_utf8_lossy(&r.body).to_string();
                if body.starts_with('{') {
                    Verdict::Accept(body)
                } else {
                    Verdict::Retry("garbage".into())
                }
            },
        )
        .await;
        (r, stats, seen)
    }

    #[tokio::test]
    async fn retries_429_5xx_timeouts_and_garbage_then_succeeds() {
        let (r, stats, seen) = run(
            vec![
                Ok((429, "", Some(1))),
                Ok((502, "", None)),
                Err(()),
                Ok((200, "<html>", None)),
                Ok((504, "", None)),
                Ok((200, "{}", None)),
            ],
            6,
        )
        .await;
        assert_eq!(r.unwrap(), "{}");
        assert_eq!(
            stats,
            FetchStats {
                attempts: 6,
                retries: 5,
                throttled: 1,
                skipped: 0
            }
        );
        assert_eq!(seen, 5, "every response received is archived");
    }

    #[tokio::test]
    async fn client_errors_are_not_retried_and_name_job_and_status() {
        for status in [401, 403, 404] {
            let (r, stats, _) = run(vec![Ok((status, "no", None)), Ok((200, "{}", None))], 5).await;
            let err = r.unwrap_err();
            assert_eq!(stats.attempts, 1);
            assert!(
                err.to_string()
                    .starts_with(&format!("job led-kzn: upstream answered HTTP {status}")),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn attempts_are_capped() {
        let (r, stats, _) = run(
            vec![
                Ok((502, "", None)),
                Ok((503, "", None)),
                Ok((504, "", None)),
            ],
            3,
        )
        .await;
        assert!(
            matches!(r, Err(FetchError::Exhausted { attempts: 3, .. })),
            "{r:?}"
        );
        assert_eq!(stats.attempts, 3);
    }

    async fn run_until(
        script: Vec<Step>,
        deadline: Deadline,
    ) -> (Result<(), FetchError>, FetchStats) {
        let up = Scripted(Mutex::new(script));
        let mut stats = FetchStats::default();
        let r = fetch(
            &up,
            &spec(),
            "led-kzn",
            policy(5),
            Some(deadline),
            None,
            &mut stats,
            async |_r: &HttpResponse| {},
            |_| Verdict::Accept(()),
        )
        .await;
        (r, stats)
    }

    #[tokio::test]
    async fn no_request_starts_that_cannot_finish_before_the_deadline() {
        // 2 s left, 200 ms per request, 1.5 s margin: one attempt fits; waiting 400 ms
        // (Retry-After) and then another 200 ms request does not.
        let deadline = Deadline {
            at: std::time::Instant::now() + Duration::from_secs(2),
            request_timeout: Duration::from_millis(200),
        };
        let (r, stats) = run_until(
            vec![Ok((502, "", Some(400))), Ok((200, "{}", None))],
            deadline,
        )
        .await;
        assert!(
            matches!(r, Err(FetchError::Deadline { attempts: 1, .. })),
            "{r:?}"
        );
        assert_eq!((stats.attempts, stats.skipped), (1, 1));
        assert!(r
            .unwrap_err()
            .to_string()
            .starts_with("job led-kzn: stopped after 1 attempts"));

        let late = Deadline {
            at: std::time::Instant::now() + Duration::from_millis(500),
            request_timeout: Duration::from_millis(200),
        };
        let (r, _) = run_until(vec![Ok((200, "{}", None))], late).await;
        assert!(
            matches!(r, Err(FetchError::Deadline { attempts: 0, .. })),
            "nothing is started: {r:?}"
        );
    }

    #[tokio::test]
    async fn a_long_retry_after_ends_the_run_instead_of_sleeping_through_it() {
        let (r, _, _) = run(vec![Ok((429, "", Some(120_000)))], 3).await;
        assert!(
            matches!(r, Err(FetchError::RetryAfterTooLong { .. })),
            "{r:?}"
        );
    }
}
