//! One request of a walk, with bounded retries. Around every attempt, in order: the
//! deadline, the host's circuit breaker, the host's rate limiter (token, pause, concurrency
//! slot); then the request; then the answer is handed to `on_response` (the raw archive,
//! before anything is parsed), judged by the source's [`Plan::inspect`] and, when usable,
//! parsed by [`Plan::parse`].
//!
//! What the source's verdict means here, the same for every source:
//!
//! | verdict | retried | breaker | limiter |
//! |---|---|---|---|
//! | use (parsed) | — | success | accepted |
//! | use, body not JSON | yes | failure | accepted |
//! | use, body an error envelope or the wrong shape | no, the job fails | success | accepted |
//! | retry (5xx) or a transport error | yes | failure | — |
//! | throttled (429, or a limit code in a 200) | yes, after `Retry-After` | neutral | lower the rate, pause |
//! | hold (quota spent, banned) | no, the run stops | neutral | accepted |
//! | fail (401, 404, 422) | no, the job fails | success | accepted |
//! | a body over the source's cap | no, the job fails | failure | — |
//! | a redirect not followed (another host, plain http) | no, the job fails | neutral | — |
//!
//! Waits are full-jitter exponential, or the upstream's hint when it gives one (capped).

use crate::breaker::{Admit, Breaker, Outcome};
use crate::deadline::Deadline;
use crate::ratelimit::HostGate;
use async_trait::async_trait;
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::sources::{
    self, Hold, Inspection, Page, Plan, RequestSpec, Response, ResponseError, Verdict,
};
use std::time::Duration;

/// Without a deadline to judge by, the longest `Retry-After` honoured; longer means "not
/// now". With one, any wait that still leaves time for the request is honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// How often a request waiting for another's half-open probe asks again.
const PROBE_POLL: Duration = Duration::from_millis(100);

/// The one capability the walk needs of the network: send one request, get one answer.
#[async_trait]
pub trait Upstream: Send + Sync {
    async fn send(&self, spec: &RequestSpec) -> Result<Response, TransportError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("{url}: timed out")]
    Timeout { url: String },
    #[error("{url}: connection failed: {detail}")]
    Connect { url: String, detail: String },
    #[error("{url}: {detail}")]
    Other { url: String, detail: String },
    /// The body is over the source's cap: not read whole, not retried, a breaker failure
    /// (a host that answers this way is not well).
    #[error("{url}: {detail}")]
    TooLarge { url: String, detail: String },
    /// A redirect the adapter will not follow (another host, plain http): the secret was
    /// not sent there. Not retried; the host answered, so not a breaker failure.
    #[error("{url}: {detail}")]
    Refused { url: String, detail: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The source said asking again cannot help (a bad key, an unknown market, a 404).
    #[error("job {job}: {reason}")]
    Rejected { job: String, reason: String },
    /// The answer was usable HTTP but not usable data (an error envelope, the wrong shape).
    #[error(transparent)]
    Unusable(ResponseError),
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
    /// The upstream said to stay away (quota spent, address banned).
    #[error("job {job}: {}; no request for {:?}", hold.reason, hold.wait)]
    Held { job: String, hold: Hold },
}

impl FetchError {
    /// Stopped for now (deadline, a long `Retry-After`, an open breaker, a hold) rather
    /// than failed: the run flushes what it has and a later one resumes.
    pub fn is_stop(&self) -> bool {
        matches!(
            self,
            FetchError::Deadline { .. }
                | FetchError::RetryAfterTooLong { .. }
                | FetchError::CircuitOpen { .. }
                | FetchError::Held { .. }
        )
    }
}

/// The host's breaker and rate limiter, consulted around every attempt.
#[derive(Clone, Copy)]
pub struct Guards<'a> {
    pub gate: &'a HostGate,
    pub breaker: &'a Breaker<'a>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FetchStats {
    pub attempts: u32,
    pub retries: u32,
    /// Rate-limited answers (429s, or a limit code inside a 200).
    pub throttled: u32,
    /// Requests not started because they could not finish before the deadline.
    pub skipped: u32,
}

/// A parsed answer, and a hold that begins after it (the quota's last credit was spent).
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub page: Page,
    pub hold_after: Option<Hold>,
}

/// What one attempt came to, when it did not end the fetch.
enum Again {
    /// Retry after the policy's delay, or the upstream's hint if longer.
    After {
        reason: String,
        hint: Option<Duration>,
    },
}

#[allow(clippy::too_many_arguments)]
pub async fn fetch(
    upstream: &dyn Upstream,
    plan: &dyn Plan,
    spec: &RequestSpec,
    job: &str,
    policy: RetryPolicy,
    deadline: Option<Deadline>,
    guards: Option<Guards<'_>>,
    stats: &mut FetchStats,
    mut on_response: impl AsyncFnMut(&Response),
) -> Result<Fetched, FetchError> {
    let mut delays = policy.delays();
    let stop = |d: &Deadline, attempts: u32| FetchError::Deadline {
        job: job.into(),
        attempts,
        timeout: d.request_timeout,
        remaining: d.remaining(),
    };
    let record = async |outcome: Outcome| {
        if let Some(g) = guards {
            g.breaker.record(outcome).await;
        }
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
                    Ok(permit) => {
                        // Another walk through this gate was told to stay away (a ban,
                        // a spent quota) while this one waited: it stays away too.
                        if let Some(hold) = g.gate.held() {
                            drop(permit);
                            record(Outcome::Neutral).await;
                            stats.skipped += 1;
                            return Err(FetchError::Held {
                                job: job.into(),
                                hold,
                            });
                        }
                        Some(permit)
                    }
                    Err(_) => {
                        // If this request held the half-open probe, it gives the claim up.
                        record(Outcome::Neutral).await;
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
        let again = match sent {
            Err(e @ TransportError::TooLarge { .. }) => {
                record(Outcome::Failure).await;
                return Err(FetchError::Rejected {
                    job: job.into(),
                    reason: e.to_string(),
                });
            }
            Err(e @ TransportError::Refused { .. }) => {
                record(Outcome::Neutral).await;
                return Err(FetchError::Rejected {
                    job: job.into(),
                    reason: e.to_string(),
                });
            }
            Err(e) => {
                record(Outcome::Failure).await;
                Again::After {
                    reason: e.to_string(),
                    hint: None,
                }
            }
            Ok(response) => {
                let inspection = plan.inspect(&response);
                if let Some(g) = guards {
                    match &inspection.verdict {
                        Verdict::Throttled { wait, .. } => {
                            g.gate.on_throttled(*wait, inspection.rate)
                        }
                        Verdict::Hold(hold) => {
                            g.gate.hold(hold.clone());
                            g.gate.on_accepted(inspection.rate)
                        }
                        _ => g.gate.on_accepted(inspection.rate),
                    }
                }
                match &inspection.verdict {
                    Verdict::Retry(_) => record(Outcome::Failure).await,
                    Verdict::Throttled { .. } | Verdict::Hold(_) => record(Outcome::Neutral).await,
                    Verdict::Use | Verdict::Fail(_) => {}
                }
                on_response(&response).await;
                match judge(plan, &response, inspection) {
                    Judged::Use { page, hold_after } => {
                        record(Outcome::Success).await;
                        return Ok(Fetched { page, hold_after });
                    }
                    Judged::Unusable(e) => {
                        record(Outcome::Success).await;
                        return Err(FetchError::Unusable(e));
                    }
                    Judged::Fail(reason) => {
                        record(Outcome::Success).await;
                        return Err(FetchError::Rejected {
                            job: job.into(),
                            reason,
                        });
                    }
                    Judged::Hold(hold) => {
                        return Err(FetchError::Held {
                            job: job.into(),
                            hold,
                        })
                    }
                    Judged::Retry {
                        reason,
                        hint,
                        throttled,
                        garbage,
                    } => {
                        if throttled {
                            stats.throttled += 1;
                            if let Some(wait) =
                                hint.filter(|w| *w > MAX_RETRY_AFTER && deadline.is_none())
                            {
                                return Err(FetchError::RetryAfterTooLong {
                                    job: job.into(),
                                    wait,
                                    url: response.url,
                                });
                            }
                        } else if garbage {
                            record(Outcome::Failure).await;
                        }
                        Again::After { reason, hint }
                    }
                }
            }
        };
        let Again::After { reason, hint } = again;
        match delays.next() {
            Some(delay) => {
                let wait = hint.map_or(delay, |h| h.max(delay));
                if let Some(d) = deadline.filter(|d| !d.allows(wait)) {
                    stats.skipped += 1;
                    return Err(stop(&d, stats.attempts));
                }
                stats.retries += 1;
                tracing::warn!(job, attempt = stats.attempts, wait_ms = wait.as_millis() as u64, error = %reason, "upstream request failed; retrying");
                tokio::time::sleep(wait).await;
            }
            None => {
                return Err(FetchError::Exhausted {
                    job: job.into(),
                    attempts: stats.attempts,
                    last: reason,
                })
            }
        }
    }
}

/// What the walk makes of an answer, after the source's inspection: the one decision
/// `fetch` acts on and `pricewire normalise` reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Judged {
    /// Records, and a hold that begins after them.
    Use {
        page: Page,
        hold_after: Option<Hold>,
    },
    /// Try again after `hint` (if the upstream gave one): a 5xx, a rate limit
    /// (`throttled`), or a body that is not JSON (`garbage`: a sick host, as the breaker
    /// counts it).
    Retry {
        reason: String,
        hint: Option<Duration>,
        throttled: bool,
        garbage: bool,
    },
    /// Stop, and stay away.
    Hold(Hold),
    /// Never retried: the job or its configuration is wrong.
    Fail(String),
    /// Usable HTTP, unusable data (an error envelope, the wrong shape): the job fails.
    Unusable(ResponseError),
}

/// Judges an answer: pure, so what `pricewire normalise` says is what the walk does.
pub fn judge(plan: &dyn Plan, response: &Response, inspection: Inspection) -> Judged {
    match inspection.verdict {
        Verdict::Use => match plan.parse(response) {
            Ok(page) => Judged::Use {
                page,
                hold_after: inspection.hold_after,
            },
            // Garbage instead of JSON is often a proxy's error page: worth another try,
            // and a sign of a sick host.
            Err(e @ ResponseError::NotJson { .. }) => Judged::Retry {
                reason: e.to_string(),
                hint: None,
                throttled: false,
                garbage: true,
            },
            Err(e) => Judged::Unusable(e),
        },
        Verdict::Retry(reason) => Judged::Retry {
            reason,
            hint: sources::retry_after(response),
            throttled: false,
            garbage: false,
        },
        Verdict::Throttled { wait, reason } => Judged::Retry {
            reason,
            hint: wait,
            throttled: true,
            garbage: false,
        },
        Verdict::Hold(hold) => Judged::Hold(hold),
        Verdict::Fail(reason) => Judged::Fail(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{reply, ScriptedUpstream};
    use pricewire_pipeline::sources::{Normalised, Step, Walk};

    /// A plan that accepts any JSON body and reads status codes the standard way.
    struct AnyJson;

    impl Plan for AnyJson {
        fn walk(&self) -> Walk {
            Walk::Single
        }
        fn request(&self, _: &Step) -> RequestSpec {
            RequestSpec::new("/p", vec![])
        }
        fn parse(&self, r: &Response) -> Result<Page, ResponseError> {
            let v: serde_json::Value =
                serde_json::from_slice(&r.body).map_err(|e| ResponseError::NotJson {
                    job: "led-kzn".into(),
                    detail: e.to_string(),
                })?;
            if v.get("error").is_some() {
                return Err(ResponseError::ErrorEnvelope {
                    job: "led-kzn".into(),
                    message: v["error"].to_string(),
                });
            }
            Ok(Page {
                normalised: Normalised::default(),
                next: None,
                size: v.as_array().map_or(0, Vec::len),
                resume_at: None,
            })
        }
    }

    fn policy(n: u32) -> RetryPolicy {
        RetryPolicy::new(n, Duration::from_millis(1), Duration::from_millis(2))
    }

    async fn run(
        up: &ScriptedUpstream,
        attempts: u32,
        deadline: Option<Deadline>,
    ) -> (Result<Fetched, FetchError>, FetchStats, usize) {
        let mut stats = FetchStats::default();
        let mut seen = 0usize;
        let r = fetch(
            up,
            &AnyJson,
            &AnyJson.request(&Step::Start),
            "led-kzn",
            policy(attempts),
            deadline,
            None,
            &mut stats,
            async |_r: &Response| seen += 1,
        )
        .await;
        (r, stats, seen)
    }

    #[tokio::test]
    async fn retries_429_5xx_timeouts_and_garbage_then_succeeds() {
        let up = ScriptedUpstream::new(vec![
            Ok(reply(429, "", &[("retry-after", "0")])),
            Ok(reply(502, "", &[])),
            Err(()),
            Ok(reply(200, "<html>", &[])),
            Ok(reply(504, "", &[])),
            Ok(reply(200, "[1,2]", &[])),
        ]);
        let (r, stats, seen) = run(&up, 6, None).await;
        assert_eq!(r.unwrap().page.size, 2);
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
    async fn client_errors_and_error_envelopes_are_not_retried_and_name_the_job() {
        for status in [401, 403, 404] {
            let up = ScriptedUpstream::new(vec![
                Ok(reply(status, "no", &[])),
                Ok(reply(200, "[]", &[])),
            ]);
            let (r, stats, _) = run(&up, 5, None).await;
            let err = r.unwrap_err();
            assert_eq!(stats.attempts, 1);
            assert!(
                err.to_string()
                    .starts_with(&format!("job led-kzn: upstream answered HTTP {status}")),
                "{err}"
            );
        }
        let up = ScriptedUpstream::new(vec![Ok(reply(200, r#"{"error":"Unauthorized"}"#, &[]))]);
        let (r, stats, seen) = run(&up, 5, None).await;
        assert!(matches!(r, Err(FetchError::Unusable(_))), "{r:?}");
        assert_eq!((stats.attempts, seen), (1, 1));
    }

    #[tokio::test]
    async fn attempts_are_capped() {
        let up = ScriptedUpstream::new(vec![
            Ok(reply(502, "", &[])),
            Ok(reply(503, "", &[])),
            Ok(reply(504, "", &[])),
        ]);
        let (r, stats, _) = run(&up, 3, None).await;
        assert!(
            matches!(r, Err(FetchError::Exhausted { attempts: 3, .. })),
            "{r:?}"
        );
        assert_eq!(stats.attempts, 3);
    }

    #[tokio::test]
    async fn no_request_starts_that_cannot_finish_before_the_deadline() {
        // 2 s left, 200 ms per request, 1.5 s margin: one attempt fits; waiting 400 ms
        // (Retry-After) and then another 200 ms request does not.
        let deadline = Deadline {
            at: std::time::Instant::now() + Duration::from_secs(2),
            request_timeout: Duration::from_millis(200),
        };
        let up = ScriptedUpstream::new(vec![
            Ok(reply(429, "", &[("retry-after", "1")])),
            Ok(reply(200, "[]", &[])),
        ]);
        let (r, stats, _) = run(&up, 5, Some(deadline)).await;
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
        let up = ScriptedUpstream::new(vec![Ok(reply(200, "[]", &[]))]);
        let (r, _, _) = run(&up, 5, Some(late)).await;
        assert!(
            matches!(r, Err(FetchError::Deadline { attempts: 0, .. })),
            "nothing is started: {r:?}"
        );
    }

    #[tokio::test]
    async fn a_long_retry_after_ends_the_run_instead_of_sleeping_through_it() {
        let up = ScriptedUpstream::new(vec![Ok(reply(429, "", &[("retry-after", "120")]))]);
        let (r, _, _) = run(&up, 3, None).await;
        assert!(
            matches!(r, Err(FetchError::RetryAfterTooLong { .. })),
            "{r:?}"
        );
        assert!(r.unwrap_err().is_stop());
    }
}
