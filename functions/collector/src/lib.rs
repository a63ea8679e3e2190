//! The collector: one job (the Scheduler's input) → its source's module plans the requests
//! → the walk (`walk`) makes them through the host's circuit breaker and rate limiter, with
//! retries → every response archived raw to S3 → records normalised by the module →
//! unusable ones quarantined with their reason → the rest put on the stream. A run that
//! cannot finish before the Lambda's deadline (or meets an open breaker, a long
//! `Retry-After`, a spent quota) flushes what it has and saves a cursor; the next run
//! resumes there.
//!
//! Ports, each defined beside the code that uses it: [`fetch::Upstream`] (one request),
//! [`sink::RecordSink`] (the stream), `pricewire_pipeline::adapters::s3::Archive` (the
//! archive), [`state`]'s stores (breaker, limits, cursors, holds, runs),
//! [`secrets::SecretStore`] and [`Upstreams`] (a source's upstream). Adapters in
//! `adapters`: HTTP, Kinesis, DynamoDB, SSM, and in-memory ones.

pub mod adapters;
pub mod breaker;
pub mod config;
pub mod deadline;
pub mod fetch;
pub mod ratelimit;
pub mod secrets;
pub mod sink;
pub mod state;
mod walk;

use adapters::dynamodb::DynamoHostState;
use adapters::http::HttpUpstream;
use adapters::kinesis::KinesisSink;
use async_trait::async_trait;
use breaker::Breaker;
use config::CollectorConfig;
use fetch::{FetchError, Upstream};
use lambda_runtime::LambdaEvent;
use pricewire_pipeline::adapters::s3::{Archive, S3Archive};
use pricewire_pipeline::aws;
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::job::{Job, JobError};
use pricewire_pipeline::metrics::Emf;
use pricewire_pipeline::sources::settings::{SourceSettings, Sources};
use pricewire_pipeline::sources::{ResponseError, Step};
use ratelimit::HostGate;
use secrets::SecretStore;
use serde::Serialize;
use sink::RecordSink;
use state::HostState;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// First retry waits up to this long (full jitter), doubling per attempt.
const HTTP_BASE_DELAY: Duration = Duration::from_millis(200);
const HTTP_MAX_DELAY: Duration = Duration::from_secs(5);
const PUT_BASE_DELAY: Duration = Duration::from_millis(100);
const PUT_MAX_DELAY: Duration = Duration::from_secs(2);
const S3_ATTEMPTS: u32 = 4;
const STATE_ATTEMPTS: u32 = 3;

/// The upstream of a source: its base URL, auth and secret, ready to send.
#[async_trait]
pub trait Upstreams: Send + Sync {
    async fn upstream(&self, source: &SourceSettings) -> Result<Arc<dyn Upstream>, String>;
}

/// HTTP upstreams, one per source, built at warm-up (or the first time a job of the source
/// runs) with its secret, and kept for the life of the process; all share one client.
pub struct HttpUpstreams {
    secrets: Arc<dyn SecretStore>,
    timeout: Duration,
    built: tokio::sync::Mutex<Built>,
}

#[derive(Default)]
struct Built {
    client: Option<reqwest::Client>,
    upstreams: HashMap<String, Arc<dyn Upstream>>,
}

impl HttpUpstreams {
    pub fn new(secrets: Arc<dyn SecretStore>, timeout: Duration) -> HttpUpstreams {
        HttpUpstreams {
            secrets,
            timeout,
            built: tokio::sync::Mutex::default(),
        }
    }
}

#[async_trait]
impl Upstreams for HttpUpstreams {
    async fn upstream(&self, source: &SourceSettings) -> Result<Arc<dyn Upstream>, String> {
        if let Some(u) = self.built.lock().await.upstreams.get(&source.name) {
            return Ok(u.clone());
        }
        // The secret is read without the lock, so warm-up reads every source's at once.
        let secret = match (&source.secret_parameter, source.auth.needs_secret()) {
            (_, false) => None,
            (Some(parameter), true) => {
                let secret = self.secrets.secret(parameter).await?;
                // A placeholder or a mangled token would look like an outage or a refusal
                // from the upstream; say what it is instead.
                secret.check().map_err(|why| {
                    format!("source {}: the secret in {parameter} {why}", source.name)
                })?;
                Some(secret)
            }
            (None, true) => {
                return Err(format!(
                    "source {}: auth {} needs a secret, and the entry names no secret_parameter",
                    source.name,
                    source.auth.style()
                ))
            }
        };
        let mut built = self.built.lock().await;
        if let Some(u) = built.upstreams.get(&source.name) {
            return Ok(u.clone());
        }
        let client = match &built.client {
            Some(c) => c.clone(),
            None => {
                let c = adapters::http::client(self.timeout)?;
                built.client = Some(c.clone());
                c
            }
        };
        let u: Arc<dyn Upstream> = Arc::new(HttpUpstream::new(
            client,
            &source.base_url,
            source.auth.clone(),
            secret,
            self.timeout,
            source.max_body_bytes,
        )?);
        built.upstreams.insert(source.name.clone(), u.clone());
        Ok(u)
    }
}

pub struct Collector {
    pub sources: Sources,
    pub upstreams: Arc<dyn Upstreams>,
    pub archive: Arc<dyn Archive>,
    pub sink: Arc<dyn RecordSink>,
    /// Breakers, learned limits, cursors, holds and runs, kept between invocations.
    pub state: Arc<dyn HostState>,
    pub http_policy: RetryPolicy,
    /// The per-request timeout, to know whether a request still fits before the deadline.
    pub http_timeout: Duration,
}

/// What one run did; returned as the invocation result and logged as JSON.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub job: String,
    pub source: String,
    /// Records in the upstream's responses.
    pub fetched: usize,
    pub normalised: usize,
    pub quarantined: usize,
    pub put: usize,
    /// S3 objects written (raw responses and quarantine files).
    pub archived: usize,
    pub requests: u32,
    pub retries: u32,
    /// Rate-limited answers (429s, or a limit code inside a 200).
    pub throttled: u32,
    /// Requests not started: they could not finish before the deadline, the breaker was
    /// open, or the source was held.
    pub skipped: u32,
    /// Optional values dropped as unusable (the records were still sent).
    pub dropped_values: usize,
    /// Records seen twice in this run (the same observation on two pages): sent once.
    pub duplicates: usize,
    /// Pages (answers) collected in this run.
    pub pages: u32,
    /// Whether the whole walk was collected; if not, a cursor says where to resume.
    pub complete: bool,
    /// Why the run stopped early (deadline, open breaker, `Retry-After`, a hold), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Set when the source or its host is held (quota spent, banned): why, and until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// The step the next run starts at, when a cursor was saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume: Option<Step>,
    /// The page the next run starts at, for page walks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_page: Option<u32>,
    /// The host's breaker at the end of the run: closed, half_open or open.
    pub breaker: String,
    pub breaker_transitions: Vec<String>,
    /// The host's rate limit at the end of the run, requests per minute.
    pub rate_rpm: u32,
    /// Time spent waiting for the rate limiter, milliseconds.
    pub waited_ms: u64,
    /// Times a rate limit lowered the rate, and times the host was paused.
    pub rate_decreases: u32,
    pub host_pauses: u32,
    /// A job naming many instruments: how many parts it has (0: the job is one walk),
    /// how many failed, and why (the first few).
    #[serde(skip_serializing_if = "is_zero")]
    pub parts: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub failed_part_count: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_parts: Vec<String>,
    /// Minutes this job's runs have been stalling, and ending incomplete, in a row (0:
    /// this run did not): from its run record, for the per-source alarms.
    #[serde(skip_serializing_if = "is_zero")]
    pub stalled_minutes: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub incomplete_minutes: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Summary {
    /// Adds a part's walk to the job's totals.
    pub fn absorb(&mut self, part: Summary) {
        self.fetched += part.fetched;
        self.normalised += part.normalised;
        self.quarantined += part.quarantined;
        self.put += part.put;
        self.archived += part.archived;
        self.requests += part.requests;
        self.retries += part.retries;
        self.throttled += part.throttled;
        self.skipped += part.skipped;
        self.dropped_values += part.dropped_values;
        self.duplicates += part.duplicates;
        self.pages += part.pages;
        self.complete &= part.complete;
        if self.stopped.is_none() {
            self.stopped = part.stopped;
        }
        if self.held.is_none() {
            self.held = part.held;
        }
    }

    /// A run that ended incomplete without collecting a page, and not because its source
    /// is held (alarmed on its own): it made no progress. Every run stalling means the
    /// deadline leaves no room for a request, or the upstream never answers in time.
    pub fn stalled(&self) -> bool {
        !self.complete && self.pages == 0 && self.held.is_none()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// The job's source cannot be reached as configured (its secret is missing, say).
    #[error("job {job}: {detail}")]
    Source { job: String, detail: String },
    #[error("job {job}: {source}")]
    Put { job: String, source: sink::PutError },
    #[error("job {job}: archive failed: {detail}")]
    Archive { job: String, detail: String },
    /// Parts of a many-instrument job failed; the others were collected.
    #[error("job {job}: {failed} of {of} parts failed; first: {first}")]
    Parts {
        job: String,
        failed: u32,
        of: u32,
        first: String,
    },
}

impl Collector {
    pub fn from_config(config: &CollectorConfig, sdk: &aws::SdkConfig) -> Collector {
        let secrets = Arc::new(secrets::CachedSecrets::new(adapters::ssm::SsmSecrets::new(
            aws::ssm(sdk),
        )));
        Collector {
            sources: config.sources.clone(),
            upstreams: Arc::new(HttpUpstreams::new(secrets, config.http_timeout)),
            archive: Arc::new(S3Archive::new(
                aws::s3(sdk),
                &config.archive_bucket,
                RetryPolicy::new(S3_ATTEMPTS, PUT_BASE_DELAY, PUT_MAX_DELAY),
            )),
            sink: Arc::new(KinesisSink::new(
                aws::kinesis(sdk),
                &config.stream_name,
                RetryPolicy::new(config.put_max_attempts, PUT_BASE_DELAY, PUT_MAX_DELAY),
            )),
            state: Arc::new(DynamoHostState::new(
                aws::dynamodb(sdk),
                &config.state_table,
                RetryPolicy::new(STATE_ATTEMPTS, PUT_BASE_DELAY, PUT_MAX_DELAY),
            )),
            http_policy: RetryPolicy::new(
                config.http_max_attempts,
                HTTP_BASE_DELAY,
                HTTP_MAX_DELAY,
            ),
            http_timeout: config.http_timeout,
        }
    }

    /// Reads and checks every configured source's secret, at cold start: a placeholder or a
    /// mangled token is reported then, naming the source and the parameter, not first at
    /// the job's request (where it would look like the upstream refusing). A source with a
    /// bad secret does not stop the others; its jobs fail with the same message until the
    /// parameter is fixed (a failed read is not kept, the next job reads again).
    pub async fn warm_up(&self) -> Vec<String> {
        let reads = self.sources.entries().map(|s| self.upstreams.upstream(s));
        futures_util::future::join_all(reads)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect()
    }

    /// Runs one job. `deadline` is when the invocation must have finished (from the Lambda
    /// context); no request is started that could not finish before it.
    pub async fn run(
        &self,
        job: &Job,
        deadline: Option<std::time::Instant>,
    ) -> Result<Summary, CollectError> {
        let source = self.sources.get(&job.source)?;
        let parts = source.module.parts(job)?;
        let plans = parts
            .iter()
            .map(|(name, part)| Ok((name.clone(), source.module.plan(part, source.context())?)))
            .collect::<Result<Vec<_>, JobError>>()?;
        let plan = match plans.is_empty() {
            true => Some(source.module.plan(job, source.context())?),
            false => None,
        };
        let upstream =
            self.upstreams
                .upstream(&source)
                .await
                .map_err(|detail| CollectError::Source {
                    job: job.name.clone(),
                    detail,
                })?;
        let deadline = deadline.map(|at| deadline::Deadline {
            at,
            request_timeout: self.http_timeout,
        });
        match plan {
            Some(plan) => {
                walk::Run {
                    collector: self,
                    job,
                    source: &source,
                    plan: plan.as_ref(),
                    upstream: upstream.as_ref(),
                    deadline,
                    part: None,
                }
                .go()
                .await
            }
            None => {
                walk::Parts {
                    collector: self,
                    job,
                    source: &source,
                    plans: &plans,
                    upstream: upstream.as_ref(),
                    deadline,
                }
                .go()
                .await
            }
        }
    }

    /// Records a successful run of a job (what `pricewire status` shows) and how long its
    /// runs have been stalling or ending incomplete. Only such a run reads the record
    /// before it; a healthy run writes without reading.
    async fn record_run(&self, summary: &mut Summary) {
        let run = state::RunRecord {
            at_ms: chrono::Utc::now().timestamp_millis(),
            records_out: summary.put as u64,
            pages: summary.pages as u64,
            complete: summary.complete,
            ..state::RunRecord::default()
        };
        let before = match summary.complete {
            true => None,
            false => self.state.load_run(&summary.job).await.unwrap_or_else(|e| {
                tracing::warn!(job = %summary.job, error = %e, "last run not readable; its streak starts again");
                None
            }),
        };
        let run = state::RunRecord::after(before.as_ref(), run, summary.stalled());
        let (stalled, incomplete) = run.streak_minutes();
        summary.stalled_minutes = u32::try_from(stalled).unwrap_or(u32::MAX);
        summary.incomplete_minutes = u32::try_from(incomplete).unwrap_or(u32::MAX);
        if let Err(e) = self.state.save_run(&summary.job, &run).await {
            tracing::warn!(job = %summary.job, error = %e, "last run not recorded");
        }
    }

    /// Stores what this run learned about the host (rate, pause, breaker counts) and
    /// copies it into the summary.
    async fn remember(&self, gate: &HostGate, breaker: &Breaker<'_>, summary: &mut Summary) {
        // The limit and the breaker are separate items: written at once.
        let (limit, flushed) = tokio::join!(
            async {
                match gate.changed() {
                    true => self.state.save_limit(gate.key(), &gate.state()).await,
                    false => Ok(()),
                }
            },
            breaker.flush()
        );
        if let Err(e) = limit {
            tracing::error!(key = gate.key(), error = %e, "learned rate limit not stored");
        }
        if let Err(e) = flushed {
            tracing::error!(host = %breaker.host(), error = %e, "breaker counts not stored");
        }
        summary.breaker = breaker.phase().await.as_str().into();
        summary.breaker_transitions = breaker
            .transitions()
            .iter()
            .map(|t| format!("{}->{}", t.from.as_str(), t.to.as_str()))
            .collect();
        summary.rate_rpm = gate.rpm().round() as u32;
        let stats = gate.stats();
        summary.waited_ms = stats.waited_ms;
        summary.rate_decreases = stats.decreases;
        summary.host_pauses = stats.pauses;
    }
}

/// The Lambda handler: parse the job, run it, log and return the summary.
pub async fn handle(
    collector: &Collector,
    event: LambdaEvent<serde_json::Value>,
) -> Result<Summary, lambda_runtime::Error> {
    let job = Job::from_value(&event.payload).map_err(|e| {
        tracing::error!(error = %e, "invalid job");
        e
    })?;
    match collector
        .run(&job, deadline::of_context(&event.context))
        .await
    {
        Ok(summary) => {
            tracing::info!(job = %summary.job, source = %summary.source, fetched = summary.fetched,
                normalised = summary.normalised, quarantined = summary.quarantined, put = summary.put,
                archived = summary.archived, requests = summary.requests, retries = summary.retries,
                throttled = summary.throttled, skipped = summary.skipped, pages = summary.pages,
                complete = summary.complete, stopped = ?summary.stopped, held = ?summary.held,
                breaker = %summary.breaker, rate_rpm = summary.rate_rpm,
                dropped_values = summary.dropped_values, "collected");
            metrics(&job, Some(&summary)).emit();
            if let Some(first) = summary.failed_parts.first() {
                // The other parts were collected and delivered; the invocation still
                // fails, so the error is seen (and the schedule's retry resumes them).
                return Err(CollectError::Parts {
                    job: job.name.clone(),
                    failed: summary.failed_part_count,
                    of: summary.parts,
                    first: first.clone(),
                }
                .into());
            }
            Ok(summary)
        }
        Err(e) => {
            tracing::error!(job = %job.name, error = %e, "collection failed");
            metrics(&job, None).emit();
            Err(e.into())
        }
    }
}

/// The run's metrics as one EMF document: dimensions function and source (series grow
/// with the sources, not the jobs), the job a property of the line.
pub fn metrics(job: &Job, summary: Option<&Summary>) -> Emf {
    let emf = Emf::new(&[("function", "collector"), ("source", job.source.as_str())])
        .property("job", &job.name);
    match summary {
        // Metrics (billed series, one per source): what the alarms and the dashboard
        // read. Details: in the line for Logs Insights, no series.
        Some(s) => emf
            .count("Runs", 1)
            .count("Failures", u64::from(s.failed_part_count > 0))
            .count("Requests", s.requests.into())
            .count("Throttled", s.throttled.into())
            .count("Held", u64::from(s.held.is_some()))
            .count("StalledMinutes", s.stalled_minutes.into())
            .count("IncompleteMinutes", s.incomplete_minutes.into())
            .count("Quarantined", s.quarantined as u64)
            .count("RecordsOut", s.put as u64)
            .count(
                "BreakerState",
                breaker::Phase::parse(&s.breaker)
                    .unwrap_or_default()
                    .gauge(),
            )
            .detail("Retries", s.retries.into())
            .detail("Skipped", s.skipped.into())
            .detail("Pages", s.pages.into())
            .detail("Incomplete", u64::from(!s.complete))
            .detail("Stalled", u64::from(s.stalled()))
            .detail("Fetched", s.fetched as u64)
            .detail("Archived", s.archived as u64)
            .detail("DroppedValues", s.dropped_values as u64)
            .detail("BreakerTransitions", s.breaker_transitions.len() as u64)
            .detail("RateLimitRpm", s.rate_rpm.into())
            .detail("RateLimitDecreases", s.rate_decreases.into())
            .detail("HostPauses", s.host_pauses.into())
            .detail("RateLimitWaitMs", s.waited_ms),
        None => emf.count("Runs", 1).count("Failures", 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapters::memory::{
        reply, shown_url, MemoryHostState, MemorySink, SameUpstream, ScriptedUpstream,
    };
    use chrono::Utc;
    use fetch::TransportError;
    use lambda_runtime::Context;
    use pricewire_pipeline::adapters::memory::MemoryArchive;
    use pricewire_pipeline::archive::{self, meta};
    use pricewire_pipeline::envelope::Envelope;
    use pricewire_pipeline::sources::{RequestSpec, Response};
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::atomic::Ordering;
    use std::sync::Mutex;

    struct Parts {
        archive: Arc<MemoryArchive>,
        sink: Arc<MemorySink>,
        state: Arc<MemoryHostState>,
    }

    fn build(
        up: Arc<dyn Upstream>,
        sources: &str,
        sink: MemorySink,
        attempts: u32,
    ) -> (Collector, Parts) {
        let parts = Parts {
            archive: Arc::default(),
            sink: Arc::new(sink),
            state: Arc::default(),
        };
        let c = Collector {
            sources: Sources::parse(sources).unwrap(),
            upstreams: Arc::new(SameUpstream(up)),
            archive: parts.archive.clone(),
            sink: parts.sink.clone(),
            state: parts.state.clone(),
            http_policy: RetryPolicy::new(
                attempts,
                Duration::from_millis(1),
                Duration::from_millis(2),
            ),
            http_timeout: Duration::from_secs(1),
        };
        (c, parts)
    }

    const ONE_AT_A_TIME: &str =
        r#"{"travelpayouts": {"base_url": "https://up", "concurrency": 1}}"#;

    fn collector(script: Vec<Result<Response, ()>>, sink: MemorySink) -> (Collector, Parts) {
        build(
            Arc::new(ScriptedUpstream::new(script)),
            ONE_AT_A_TIME,
            sink,
            3,
        )
    }

    fn job() -> serde_json::Value {
        json!({"job":"led-kzn","source":"travelpayouts","params":{"origin":"LED","destination":"KZN","departure_at":"2026-12","currency":"rub"}})
    }

    fn event(v: serde_json::Value) -> LambdaEvent<serde_json::Value> {
        LambdaEvent::new(v, Context::default())
    }

    #[tokio::test]
    async fn collects_archives_quarantines_and_puts() {
        let body = json!({"success":true,"currency":"rub","data":[
            {"price":4830,"airline":"SU","flight_number":"1234","departure_at":"2026-12-05T10:30:00+03:00","transfers":0},
            {"price":null,"departure_at":"2026-12-06"},
            {"price":"5100","airline":"DP","flight_number":405,"departure_at":"2026-12-07T06:00:00+03:00","transfers":{}}]}).to_string();
        let (c, parts) = collector(
            vec![
                Ok(reply(502, "<html>bad gateway</html>", &[])),
                Ok(reply(200, &body, &[])),
            ],
            MemorySink::default(),
        );
        let summary = handle(&c, event(job())).await.unwrap();
        assert_eq!(
            (
                summary.fetched,
                summary.normalised,
                summary.quarantined,
                summary.put
            ),
            (3, 2, 1, 2)
        );
        assert_eq!(
            (summary.requests, summary.retries, summary.archived),
            (2, 1, 3)
        );

        let raw = parts.archive.under("raw/source=travelpayouts/dt=");
        assert_eq!(raw.len(), 2, "both responses archived, the 502 too");
        assert!(raw[1].key.contains("/led-kzn-") && raw[1].key.ends_with(".json.gz"));
        assert_eq!(archive::gunzip(&raw[1].body).unwrap(), body.as_bytes());
        let metadata: HashMap<_, _> = raw[1].metadata.iter().cloned().collect();
        assert_eq!(metadata[meta::STATUS], "200");
        assert!(
            metadata[meta::URL].contains("origin=LED") && !metadata[meta::URL].contains("token")
        );
        let q = &parts.archive.under("quarantine/")[0];
        let lines = String::from_utf8(archive::gunzip(&q.body).unwrap()).unwrap();
        assert_eq!(lines.lines().count(), 1);
        assert!(lines.contains(r#""reason":"price: null""#), "{lines}");

        let put = parts.sink.records();
        let envelopes: Vec<Envelope> = put
            .iter()
            .map(|r| Envelope::from_slice(&r.data).unwrap())
            .collect();
        assert_eq!(put[0].partition_key, envelopes[0].key);
        assert_eq!(
            envelopes[1].key,
            "LED-KZN/2026-12-07T06:00:00+03:00/oneway/DP405"
        );
        for e in &envelopes {
            e.verify_id().unwrap();
            assert_eq!(
                (e.job.as_str(), e.source.as_str()),
                ("led-kzn", "travelpayouts")
            );
        }
    }

    #[tokio::test]
    async fn a_run_past_its_deadline_starts_no_request_and_says_so() {
        let (c, parts) = collector(vec![Ok(reply(200, "{}", &[]))], MemorySink::default());
        // The job's runs have stalled for 90 minutes already.
        let since = Utc::now().timestamp_millis() - 90 * 60_000;
        parts.state.runs.lock().unwrap().insert(
            "led-kzn".into(),
            state::RunRecord {
                at_ms: since + 60_000,
                complete: false,
                stalled_since_ms: Some(since),
                incomplete_since_ms: Some(since),
                ..state::RunRecord::default()
            },
        );
        let mut context = Context::default();
        context.deadline = u64::try_from(Utc::now().timestamp_millis()).unwrap() + 500;
        let summary = handle(&c, LambdaEvent::new(job(), context)).await.unwrap();
        assert_eq!(
            (summary.requests, summary.skipped, summary.complete),
            (0, 1, false)
        );
        let stopped = summary.stopped.clone().unwrap();
        assert!(
            stopped.starts_with("job led-kzn: stopped after 0 attempts"),
            "{stopped}"
        );
        assert_eq!(summary.resume_page, Some(1));
        assert!(parts.archive.objects().is_empty());
        // Not a success that says nothing: the run counts as stalled, which is alarmed.
        assert!(summary.stalled());
        let line: serde_json::Value = serde_json::from_str(
            &metrics(&Job::from_value(&job()).unwrap(), Some(&summary)).to_line(0),
        )
        .unwrap();
        assert_eq!(line["Stalled"], 1.0);
        assert_eq!(line["Incomplete"], 1.0);
        // The streak goes on from the record before it: what the per-source alarm reads.
        assert_eq!(
            (
                line["StalledMinutes"].as_f64(),
                line["IncompleteMinutes"].as_f64()
            ),
            (Some(90.0), Some(90.0))
        );
        let run = parts.state.runs.lock().unwrap()["led-kzn"].clone();
        assert_eq!(
            (run.stalled_since_ms, run.incomplete_since_ms),
            (Some(since), Some(since))
        );
    }

    /// A paginating upstream: `total` offers, served by the `page` and `limit` asked for,
    /// each request taking `latency`; counts requests per page.
    struct Paged {
        total: usize,
        latency: Duration,
        requests: Mutex<BTreeMap<u32, u32>>,
        dead: std::sync::atomic::AtomicBool,
    }

    impl Paged {
        fn new(total: usize, latency: Duration) -> Paged {
            Paged {
                total,
                latency,
                requests: Mutex::default(),
                dead: false.into(),
            }
        }
    }

    #[async_trait]
    impl Upstream for Paged {
        async fn send(&self, spec: &RequestSpec) -> Result<Response, TransportError> {
            let arg = |name: &str| -> usize {
                spec.query
                    .iter()
                    .find(|(k, _)| k == name)
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap()
            };
            let (page, limit) = (arg("page"), arg("limit"));
            *self
                .requests
                .lock()
                .unwrap()
                .entry(page as u32)
                .or_default() += 1;
            tokio::time::sleep(self.latency).await;
            let (status, body) = if self.dead.load(Ordering::Relaxed) {
                (502, "<html>bad gateway</html>".to_string())
            } else {
                let data: Vec<serde_json::Value> = ((page - 1) * limit
                    ..(page * limit).min(self.total))
                    .map(|i| {
                        json!({"price": 1000 + i, "airline": "SU", "flight_number": i,
                        "departure_at": format!("2026-12-{:02}T10:00:00+03:00", 1 + i % 28)})
                    })
                    .collect();
                (200, json!({"success": true, "data": data}).to_string())
            };
            let mut r = reply(status, &body, &[]);
            r.url = shown_url(spec);
            Ok(r)
        }
    }

    const PAGED: &str = r#"{"travelpayouts": {"base_url": "https://up", "concurrency": 3,
        "breaker": {"failure_threshold": 3, "open_seconds": 1}}}"#;

    fn paged_job() -> Job {
        Job::from_value(&json!({"job":"walk","source":"travelpayouts","params":{
            "origin":"LED","destination":"KZN","departure_at":"2026-12","limit":"10","max_pages":"20"}}))
        .unwrap()
    }

    fn prices(sink: &MemorySink) -> Vec<u64> {
        let mut p: Vec<u64> = sink
            .records()
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_slice(&r.data).unwrap();
                v["fields"]["price"]["amount"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        p.sort_unstable();
        p
    }

    #[tokio::test]
    async fn walks_pages_concurrently_until_a_short_page() {
        let up = Arc::new(Paged::new(45, Duration::from_millis(5)));
        let (c, parts) = build(up.clone(), PAGED, MemorySink::default(), 2);
        let s = c.run(&paged_job(), None).await.unwrap();
        assert!(s.complete);
        assert_eq!((s.pages, s.put, s.resume_page), (5, 45, None), "{s:?}");
        assert_eq!(prices(&parts.sink), (1000..1045).collect::<Vec<_>>());
        let requests = up.requests.lock().unwrap().clone();
        assert!(requests.values().all(|n| *n == 1), "{requests:?}");
        assert!(
            requests.keys().all(|p| *p <= 5 + 2),
            "at most concurrency - 1 pages past the end are asked: {requests:?}"
        );
    }

    #[tokio::test]
    async fn a_walk_cut_by_the_deadline_resumes_from_its_cursor_losing_and_doubling_nothing() {
        let up = Arc::new(Paged::new(95, Duration::from_millis(250)));
        // 120 rpm: a request every 500 ms, so a run fits only a few.
        let sources = r#"{"travelpayouts": {"base_url": "https://up", "concurrency": 3,
            "rate_limits": {"/aviasales/v3/prices_for_dates": 120}}}"#;
        let (c, parts) = build(up.clone(), sources, MemorySink::default(), 2);
        let job = paged_job();
        let mut runs = Vec::new();
        for _ in 0..10 {
            // 1 s request timeout + 1.5 s margin: about 1 s of requests fit per run.
            let deadline = std::time::Instant::now() + Duration::from_millis(3_500);
            let s = c.run(&job, Some(deadline)).await.unwrap();
            runs.push(s.clone());
            if s.complete {
                break;
            }
            assert!(s.stopped.is_some() && s.resume_page.is_some(), "{s:?}");
        }
        assert!(runs.len() > 1, "the deadline cut the walk: {runs:?}");
        assert!(runs.last().unwrap().complete);
        assert_eq!(
            prices(&parts.sink),
            (1000..1095).collect::<Vec<_>>(),
            "every record once"
        );
        let requests = up.requests.lock().unwrap().clone();
        assert!(
            (1..=10).all(|p| requests.get(&p) == Some(&1)),
            "no page collected twice: {requests:?}"
        );
        use state::CursorStore;
        assert_eq!(
            parts.state.load_cursor("walk").await.unwrap(),
            None,
            "cursor cleared"
        );
    }

    #[tokio::test]
    async fn a_run_holds_at_most_its_record_cap_and_the_next_runs_go_on_from_the_cursor() {
        let up = Arc::new(Paged::new(450, Duration::from_millis(1)));
        let sources = r#"{"travelpayouts": {"base_url": "https://up", "concurrency": 2, "max_records_per_run": 100}}"#;
        let (c, parts) = build(up.clone(), sources, MemorySink::default(), 2);
        let job = Job::from_value(&json!({"job":"walk","source":"travelpayouts","params":{
            "origin":"LED","destination":"KZN","departure_at":"2026-12","limit":"50","max_pages":"20"}}))
        .unwrap();
        let mut runs = Vec::new();
        for _ in 0..10 {
            let s = c.run(&job, None).await.unwrap();
            runs.push(s.clone());
            if s.complete {
                break;
            }
            assert!(
                s.stopped
                    .as_deref()
                    .is_some_and(|w| w.contains("cap of 100 records")),
                "{s:?}"
            );
            // The cap, plus what the other page in flight brought.
            assert!(s.fetched <= 100 + 50, "{s:?}");
        }
        assert!(runs.len() >= 4 && runs.last().unwrap().complete, "{runs:?}");
        assert_eq!(
            prices(&parts.sink),
            (1000..1450).collect::<Vec<_>>(),
            "every record once"
        );
    }

    #[tokio::test]
    async fn a_dead_upstream_opens_the_breaker_and_is_left_alone_until_it_may_probe() {
        use breaker::BreakerStore;
        let up = Arc::new(Paged::new(15, Duration::from_millis(1)));
        up.dead.store(true, Ordering::Relaxed);
        // One page at a time and 2 failures to open: page 1's two attempts open it.
        let sources = r#"{"travelpayouts": {"base_url": "https://up", "concurrency": 1,
            "breaker": {"failure_threshold": 2, "open_seconds": 1}}}"#;
        let (c, parts) = build(up.clone(), sources, MemorySink::default(), 2);
        let job = paged_job();
        let err = c.run(&job, None).await.unwrap_err().to_string();
        assert!(err.contains("gave up after 2 attempts"), "{err}");
        let stored = parts.state.load_breaker("up").await.unwrap().unwrap();
        assert_eq!(stored.phase, breaker::Phase::Open, "{stored:?}");

        let asked = up.requests.lock().unwrap().values().sum::<u32>();
        let s = c.run(&job, None).await.unwrap();
        assert_eq!(
            (s.breaker.as_str(), s.requests, s.complete),
            ("open", 0, false)
        );
        let stopped = s.stopped.unwrap();
        assert!(
            stopped.contains("circuit breaker for up is open"),
            "{stopped}"
        );
        assert_eq!(
            up.requests.lock().unwrap().values().sum::<u32>(),
            asked,
            "not hit"
        );

        up.dead.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1050)).await;
        let s = c.run(&job, None).await.unwrap();
        assert!(s.complete, "{s:?}");
        assert_eq!(
            s.breaker_transitions,
            ["open->half_open", "half_open->closed"]
        );
        assert_eq!(s.breaker, "closed");
    }

    fn odds_job() -> Job {
        Job::from_value(&json!({"job":"nba","source":"odds","params":{"sport":"basketball_nba","regions":"us"}}))
            .unwrap()
    }

    const ODDS: &str = r#"{"odds": {"base_url": "https://up", "concurrency": 1, "quota_hold_seconds": 60,
        "breaker": {"failure_threshold": 1}}}"#;

    fn quotes(n: usize) -> String {
        let outcomes: Vec<serde_json::Value> = (0..n)
            .map(|i| json!({"name": format!("Team {i}"), "price": 1.5 + i as f64}))
            .collect();
        json!([{"id": "e1", "sport_key": "basketball_nba", "commence_time": "2026-12-02T00:30:00Z",
            "bookmakers": [{"key": "fanduel", "last_update": "2026-12-01T11:00:00Z",
                "markets": [{"key": "h2h", "outcomes": outcomes}]}]}])
        .to_string()
    }

    #[tokio::test]
    async fn a_spent_quota_holds_the_source_without_touching_the_breaker() {
        use breaker::BreakerStore;
        let spent = json!({"message": "Usage quota has been reached.", "error_code": "OUT_OF_USAGE_CREDITS"}).to_string();
        let up = Arc::new(ScriptedUpstream::new(vec![
            Ok(reply(200, &quotes(2), &[("x-requests-remaining", "1")])),
            Ok(reply(401, &spent, &[("x-requests-remaining", "0")])),
            Ok(reply(200, &quotes(2), &[])),
        ]));
        let (c, parts) = build(up.clone(), ODDS, MemorySink::default(), 3);
        let first = c.run(&odds_job(), None).await.unwrap();
        assert_eq!((first.put, first.held.as_deref()), (2, None));
        let second = c.run(&odds_job(), None).await.unwrap();
        let held = second.held.clone().unwrap();
        assert!(held.contains("OUT_OF_USAGE_CREDITS"), "{held}");
        assert_eq!(
            (second.requests, second.complete, second.put),
            (1, false, 0)
        );
        // A threshold of 1: one failure would have opened it.
        assert_eq!(second.breaker, "closed", "not a breaker failure");
        assert_eq!(
            parts
                .state
                .load_breaker("up")
                .await
                .unwrap()
                .map_or(0, |b| b.failures),
            0
        );
        let third = c.run(&odds_job(), None).await.unwrap();
        assert_eq!(
            (third.requests, third.skipped),
            (0, 1),
            "held: not asked again"
        );
        assert!(third.held.is_some());
        assert_eq!(up.requests.lock().unwrap().len(), 2);
        let line: serde_json::Value =
            serde_json::from_str(&metrics(&odds_job(), Some(&third)).to_line(0)).unwrap();
        assert_eq!(line["Held"].as_f64(), Some(1.0));
    }

    #[tokio::test]
    async fn the_last_credit_is_used_and_then_the_source_is_held() {
        let up = Arc::new(ScriptedUpstream::new(vec![Ok(reply(
            200,
            &quotes(3),
            &[("x-requests-remaining", "0")],
        ))]));
        let (c, _) = build(up.clone(), ODDS, MemorySink::default(), 3);
        let s = c.run(&odds_job(), None).await.unwrap();
        assert_eq!((s.put, s.complete), (3, true));
        assert!(s.held.unwrap().contains("x-requests-remaining: 0"));
        let again = c.run(&odds_job(), None).await.unwrap();
        assert_eq!((again.requests, again.put), (0, 0));
    }

    #[tokio::test]
    async fn an_invalid_market_fails_the_job_at_once() {
        let body = json!({"message": "Invalid market h2h_lay", "error_code": "INVALID_MARKET"})
            .to_string();
        let up = Arc::new(ScriptedUpstream::new(vec![
            Ok(reply(422, &body, &[])),
            Ok(reply(200, "[]", &[])),
        ]));
        let (c, parts) = build(up.clone(), ODDS, MemorySink::default(), 3);
        let err = c.run(&odds_job(), None).await.unwrap_err().to_string();
        assert!(err.contains("INVALID_MARKET"), "{err}");
        assert_eq!(up.requests.lock().unwrap().len(), 1, "never retried");
        assert_eq!(
            parts.archive.under("raw/source=odds/").len(),
            1,
            "archived all the same"
        );
    }

    /// A dingerodds-style upstream: `pages` pages chained by cursor, page `p` holding the
    /// events `events(p)` (`g<i>`).
    fn chained_of(pages: usize, events: impl Fn(usize) -> Vec<usize>) -> Vec<Result<Response, ()>> {
        let event = |i: usize| {
            json!({"id": format!("g{i}"), "sport": "baseball", "commence_time": "2026-12-02T00:00:00Z",
            "bookmakers": [{"key": "dinger", "markets": [{"key": "moneyline", "outcomes": [{"name": "Mets", "price": 1.8}]}]}]})
        };
        (0..pages)
            .map(|p| {
                let next = if p + 1 < pages {
                    json!(format!("c{}", p + 1))
                } else {
                    json!(null)
                };
                let data: Vec<serde_json::Value> = events(p).into_iter().map(event).collect();
                let body = json!({"data": data, "next_cursor": next});
                Ok(reply(200, &body.to_string(), &[]))
            })
            .collect()
    }

    /// One event a page.
    fn chained(pages: usize) -> Vec<Result<Response, ()>> {
        chained_of(pages, |p| vec![p])
    }

    /// Invocations of 3.6 s (at 60 rpm, about two requests each) until the walk completes
    /// (at most six); each cut one must name the cursor to resume at.
    async fn run_to_completion(c: &Collector, job: &Job) -> Vec<Summary> {
        let mut runs = Vec::new();
        for _ in 0..6 {
            let s = c
                .run(
                    job,
                    Some(std::time::Instant::now() + Duration::from_millis(3_600)),
                )
                .await
                .unwrap();
            runs.push(s.clone());
            if s.complete {
                break;
            }
            assert!(matches!(s.resume, Some(Step::Token { .. })), "{s:?}");
        }
        assert!(runs.len() > 1 && runs.last().unwrap().complete, "{runs:?}");
        runs
    }

    const DINGER: &str = r#"{"dinger": {"module": "odds", "base_url": "https://up", "auth": {"style": "none"},
        "options": {"api": "dingerodds"}, "rate_limits": {"*": 60}}}"#;

    #[tokio::test]
    async fn a_cursor_chain_is_walked_in_order_and_resumed_after_a_stop() {
        let up = Arc::new(ScriptedUpstream::new(chained(5)));
        let (c, parts) = build(up.clone(), DINGER, MemorySink::default(), 3);
        let job =
            Job::from_value(&json!({"job":"mlb","source":"dinger","params":{"sport":"baseball"}}))
                .unwrap();
        run_to_completion(&c, &job).await;
        let cursors: Vec<Option<String>> = up
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| {
                r.query
                    .iter()
                    .find(|(k, _)| k == "cursor")
                    .map(|(_, v)| v.clone())
            })
            .collect();
        let expected: Vec<Option<String>> = std::iter::once(None)
            .chain((1..5).map(|i| Some(format!("c{i}"))))
            .collect();
        assert_eq!(
            cursors, expected,
            "each page once, in order, across invocations"
        );
        let keys: Vec<String> = parts
            .sink
            .records()
            .iter()
            .map(|r| Envelope::from_slice(&r.data).unwrap().key)
            .collect();
        assert_eq!(keys.len(), 5);
        assert!(
            keys.iter()
                .all(|k| k.starts_with("baseball/g") && k.ends_with("/dinger/h2h/Mets")),
            "{keys:?}"
        );
    }

    #[tokio::test]
    async fn a_row_repeated_across_a_page_boundary_is_put_once_even_when_an_invocation_ends_there()
    {
        // Page `p` holds `g<p>` and `g<p+1>`: every page's last row is the next one's first,
        // as on Bybit's cursor pages. A chain's invocation ends at a page boundary, so some
        // repeats fall inside a run and some between two.
        let up = Arc::new(ScriptedUpstream::new(chained_of(5, |p| vec![p, p + 1])));
        let (c, parts) = build(up.clone(), DINGER, MemorySink::default(), 3);
        let job =
            Job::from_value(&json!({"job":"mlb","source":"dinger","params":{"sport":"baseball"}}))
                .unwrap();
        let runs = run_to_completion(&c, &job).await;
        let mut keys: Vec<String> = parts
            .sink
            .records()
            .iter()
            .map(|r| Envelope::from_slice(&r.data).unwrap().key)
            .collect();
        keys.sort();
        let expected: Vec<String> = (0..=5)
            .map(|i| format!("baseball/g{i}/dinger/h2h/Mets"))
            .collect();
        assert_eq!(keys, expected, "each served event once: {runs:?}");
        let repeats: usize = runs.iter().map(|r| r.duplicates).sum();
        assert_eq!(repeats, 4, "the four boundary repeats, each counted once");
    }

    /// A time-window plan, as a market-data source's: `?from=<ms>&limit=N`, points ascending;
    /// a full page names the next window, and the walk's last page the mark the next walk
    /// starts from (just after the last point seen).
    struct Points {
        source: String,
    }

    impl pricewire_pipeline::sources::Plan for Points {
        fn walk(&self) -> pricewire_pipeline::sources::Walk {
            pricewire_pipeline::sources::Walk::Chain { max_steps: 100 }
        }
        fn request(&self, step: &Step) -> RequestSpec {
            let from = match step {
                Step::Window { from_ms } => *from_ms,
                _ => 0,
            };
            RequestSpec::new(
                "/points",
                vec![
                    ("from".into(), from.to_string()),
                    ("limit".into(), "4".into()),
                ],
            )
        }
        fn parse(&self, r: &Response) -> Result<pricewire_pipeline::sources::Page, ResponseError> {
            use pricewire_pipeline::envelope::{FlightPrice, Money, Payload};
            let times: Vec<i64> = serde_json::from_slice(&r.body).unwrap_or_default();
            let records = times
                .iter()
                .map(|t| {
                    Envelope::new(
                        &self.source,
                        "points",
                        format!("P/{t}"),
                        chrono::DateTime::from_timestamp_millis(*t),
                        r.fetched_at,
                        Payload::FlightPrice(FlightPrice::new(
                            "AAA",
                            "BBB",
                            "2026-12-01",
                            Money {
                                amount: (*t).into(),
                                currency: "RUB".into(),
                            },
                        )),
                    )
                })
                .collect();
            let after_last = times.last().map(|t| Step::Window { from_ms: t + 1 });
            Ok(pricewire_pipeline::sources::Page {
                normalised: pricewire_pipeline::sources::Normalised {
                    records,
                    ..Default::default()
                },
                next: if times.len() == 4 {
                    after_last.clone()
                } else {
                    None
                },
                size: times.len(),
                resume_at: after_last,
            })
        }
    }

    /// Serves the points (epoch ms) it holds from `from`, four at a time, one request a
    /// 300 ms.
    struct PointSeries(Mutex<Vec<i64>>, Mutex<Vec<i64>>);

    #[async_trait]
    impl Upstream for PointSeries {
        async fn send(&self, spec: &RequestSpec) -> Result<Response, TransportError> {
            let from: i64 = spec.query[0].1.parse().unwrap();
            self.1.lock().unwrap().push(from);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let page: Vec<i64> = self
                .0
                .lock()
                .unwrap()
                .iter()
                .copied()
                .filter(|t| *t >= from)
                .take(4)
                .collect();
            let mut r = reply(200, &serde_json::to_string(&page).unwrap(), &[]);
            r.url = shown_url(spec);
            Ok(r)
        }
    }

    #[tokio::test]
    async fn a_time_window_walk_resumes_after_a_stop_and_the_next_walk_starts_at_its_mark() {
        use pricewire_pipeline::sources::{Context, Source};
        struct PointsSource;
        impl Source for PointsSource {
            fn module(&self) -> &'static str {
                "points"
            }
            fn kinds(&self) -> &'static [&'static str] {
                &["flight_price"]
            }
            fn defaults(&self) -> pricewire_pipeline::sources::Defaults {
                pricewire_pipeline::sources::Defaults {
                    base_url: "https://up",
                    auth: pricewire_pipeline::sources::Auth::None,
                    documented_rpm: &[],
                    unknown_path_rpm: 600,
                    rate_scope: pricewire_pipeline::sources::RateScope::Path,
                }
            }
            fn plan(
                &self,
                _: &Job,
                c: Context<'_>,
            ) -> Result<Box<dyn pricewire_pipeline::sources::Plan>, JobError> {
                Ok(Box::new(Points {
                    source: c.source.into(),
                }))
            }
        }
        let up = Arc::new(PointSeries(
            Mutex::new((1..=10).map(|i| i * 1000).collect()),
            Mutex::default(),
        ));
        let (c, parts) = build(up.clone(), "{}", MemorySink::default(), 2);
        let mut settings =
            pricewire_pipeline::sources::settings::SourceSettings::defaults_of(&PointsSource);
        settings.concurrency = 1;
        let job = Job::from_value(&json!({"job": "pts", "source": "points"})).unwrap();
        let plan = PointsSource.plan(&job, settings.context()).unwrap();
        let run = |deadline: Option<std::time::Instant>| walk::Run {
            collector: &c,
            job: &job,
            source: &settings,
            plan: plan.as_ref(),
            upstream: up.as_ref(),
            part: None,
            deadline: deadline.map(|at| deadline::Deadline {
                at,
                request_timeout: Duration::from_millis(400),
            }),
        };
        // 2.3 s: two requests of 300 ms fit (each needs its 400 ms timeout and the 1.5 s
        // margin left), the third not.
        let first = run(Some(
            std::time::Instant::now() + Duration::from_millis(2_300),
        ))
        .go()
        .await
        .unwrap();
        assert!(
            !first.complete && first.resume == Some(Step::Window { from_ms: 8001 }),
            "{first:?}"
        );
        let second = run(None).go().await.unwrap();
        assert!(second.complete, "{second:?}");
        assert_eq!(
            second.resume,
            Some(Step::Window { from_ms: 10_001 }),
            "the mark: after the last point"
        );
        // New points arrive; the next walk asks only from its mark.
        up.0.lock().unwrap().extend([11_000, 12_000]);
        let third = run(None).go().await.unwrap();
        assert_eq!((third.put, third.complete), (2, true), "{third:?}");
        assert_eq!(
            *up.1.lock().unwrap(),
            vec![0, 4001, 8001, 10_001],
            "each window asked once"
        );
        let keys: Vec<String> = parts
            .sink
            .records()
            .iter()
            .map(|r| Envelope::from_slice(&r.data).unwrap().key)
            .collect();
        let expected: Vec<String> = (1..=12).map(|i| format!("P/{}", i * 1000)).collect();
        assert_eq!(keys, expected, "every point once, in order");
    }

    #[test]
    fn metrics_carry_the_run_by_function_and_source_with_the_job_a_property() {
        let job = Job::from_value(&job()).unwrap();
        let summary = Summary {
            requests: 3,
            retries: 2,
            throttled: 1,
            put: 7,
            quarantined: 1,
            breaker: "open".into(),
            rate_decreases: 1,
            host_pauses: 2,
            ..Summary::default()
        };
        let line = metrics(&job, Some(&summary)).to_line(0);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["function", "source"]])
        );
        assert_eq!(
            (
                v["job"].as_str(),
                v["Throttled"].as_f64(),
                v["RecordsOut"].as_f64(),
                v["Held"].as_f64()
            ),
            (Some("led-kzn"), Some(1.0), Some(7.0), Some(0.0))
        );
        assert_eq!(
            (
                v["BreakerState"].as_f64(),
                v["RateLimitDecreases"].as_f64(),
                v["HostPauses"].as_f64()
            ),
            (Some(2.0), Some(1.0), Some(2.0))
        );
        let failed: serde_json::Value =
            serde_json::from_str(&metrics(&job, None).to_line(0)).unwrap();
        assert_eq!(failed["Failures"].as_f64(), Some(1.0));
    }

    #[tokio::test]
    async fn an_invalid_job_fails_naming_the_field() {
        let (c, _) = collector(vec![], MemorySink::default());
        let err = handle(
            &c,
            event(json!({"job":"led-kzn","source":"travelpayouts","params":{"origin":"LED"}})),
        )
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "invalid job: params.destination: missing");
        let err = handle(&c, event(json!({"job":"x","source":"kayak","params":{}})))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid job: source: unknown source \"kayak\""),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_placeholder_token_is_reported_at_cold_start_and_the_other_sources_still_run() {
        let secrets = Arc::new(adapters::memory::MemorySecrets(HashMap::from([
            ("/p/travelpayouts/token".to_string(), "tok-good".to_string()),
            (
                "/p/odds/token".to_string(),
                "PLACEHOLDER-set-with-aws-ssm-put-parameter".to_string(),
            ),
            ("/p/dinger/token".to_string(), "tok-bad\n".to_string()),
        ])));
        let (mut c, parts) = collector(vec![], MemorySink::default());
        c.sources = Sources::parse(
            r#"{"travelpayouts": {"base_url": "https://up", "secret_parameter": "/p/travelpayouts/token"},
                "odds": {"secret_parameter": "/p/odds/token"},
                "dinger": {"module": "odds", "secret_parameter": "/p/dinger/token"}}"#,
        )
        .unwrap();
        c.upstreams = Arc::new(HttpUpstreams::new(secrets, Duration::from_secs(1)));
        let mut problems = c.warm_up().await;
        problems.sort();
        assert_eq!(
            problems,
            [
                "source dinger: the secret in /p/dinger/token has whitespace or a character that is not printable ASCII at byte 7 of 8 (a trailing newline?)",
                "source odds: the secret in /p/odds/token is still the placeholder: set it with aws ssm put-parameter --overwrite",
            ]
        );
        // Its jobs fail saying so, before any request: the breaker never hears of it.
        let odds = Job::from_value(&json!({"job": "nba", "source": "odds",
            "params": {"sport": "basketball_nba", "regions": "us", "markets": "h2h"}}))
        .unwrap();
        let err = c.run(&odds, None).await.unwrap_err().to_string();
        assert!(
            err.starts_with(
                "job nba: source odds: the secret in /p/odds/token is still the placeholder"
            ),
            "{err}"
        );
        assert!(
            crate::breaker::BreakerStore::load_breaker(&*parts.state, "api.the-odds-api.com")
                .await
                .unwrap()
                .is_none()
        );
        // The good source's upstream was built at warm-up and is kept (no second read).
        assert!(c
            .upstreams
            .upstream(&c.sources.get("travelpayouts").unwrap())
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn a_missing_secret_fails_the_job_naming_the_source() {
        let secrets = Arc::new(adapters::memory::MemorySecrets::default());
        let (mut c, _) = collector(vec![], MemorySink::default());
        c.sources =
            Sources::parse(r#"{"travelpayouts": {"secret_parameter": "/p/travelpayouts/token"}}"#)
                .unwrap();
        c.upstreams = Arc::new(HttpUpstreams::new(secrets, Duration::from_secs(1)));
        let err = c
            .run(&Job::from_value(&job()).unwrap(), None)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "job led-kzn: SSM parameter /p/travelpayouts/token: ParameterNotFound"
        );
        c.sources = Sources::parse("{}").unwrap();
        let err = c
            .run(&Job::from_value(&job()).unwrap(), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("names no secret_parameter"), "{err}");
    }

    #[tokio::test]
    async fn an_error_envelope_fails_naming_the_job_and_is_still_archived() {
        let (c, parts) = collector(
            vec![Ok(reply(
                200,
                r#"{"success":false,"error":"Unauthorized"}"#,
                &[],
            ))],
            MemorySink::default(),
        );
        let err = handle(&c, event(job())).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "job led-kzn: upstream reported an error: Unauthorized"
        );
        assert_eq!(parts.archive.objects().len(), 1);
        assert!(parts.sink.records().is_empty());
    }

    #[tokio::test]
    async fn a_malformed_body_is_retried_then_a_clear_error() {
        let (c, parts) = collector(
            vec![
                Ok(reply(200, "<html>", &[])),
                Ok(reply(200, "{\"success\":tru", &[])),
                Ok(reply(200, "garbage", &[])),
            ],
            MemorySink::default(),
        );
        let err = handle(&c, event(job())).await.unwrap_err().to_string();
        assert!(
            err.starts_with(
                "job led-kzn: gave up after 3 attempts: job led-kzn: upstream body is not JSON"
            ),
            "{err}"
        );
        assert_eq!(parts.archive.objects().len(), 3);
    }

    #[tokio::test]
    async fn undelivered_records_fail_the_invocation() {
        let body =
            json!({"success":true,"data":[{"price":1,"departure_at":"2026-12-05"}]}).to_string();
        let (c, _) = collector(vec![Ok(reply(200, &body, &[]))], MemorySink::failing());
        let err = handle(&c, event(job())).await.unwrap_err().to_string();
        assert!(
            err.starts_with("job led-kzn: PutRecords: 1 of 1 records not accepted"),
            "{err}"
        );
    }

    /// Serves Binance-style hourly klines for the symbols it knows, from `startTime` up to
    /// now (the open candle last), 400 -1121 for any other; counts the closed candles it
    /// served per symbol and the requests in flight at once.
    #[derive(Default)]
    struct Klines {
        closed_served: Mutex<BTreeMap<String, BTreeSet<i64>>>,
        starts: Mutex<Vec<(String, i64)>>,
        in_flight: std::sync::atomic::AtomicUsize,
        most_in_flight: std::sync::atomic::AtomicUsize,
    }

    use crate::state::CursorStore;
    use std::collections::BTreeSet;

    #[async_trait]
    impl Upstream for Klines {
        async fn send(&self, spec: &RequestSpec) -> Result<Response, TransportError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let q = |k: &str| {
                spec.query
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
            };
            let symbol = q("symbol").unwrap_or_default();
            let start: i64 = q("startTime").and_then(|v| v.parse().ok()).unwrap_or(0);
            self.starts.lock().unwrap().push((symbol.clone(), start));
            let mut r = if ["BTCUSDT", "ETHUSDT", "SOLUSDT"].contains(&symbol.as_str()) {
                let hour = 3_600_000;
                let now = Utc::now().timestamp_millis();
                let first =
                    start.div_euclid(hour) * hour + if start % hour == 0 { 0 } else { hour };
                let rows: Vec<serde_json::Value> = (0..)
                    .map(|i| first + i * hour)
                    .take_while(|t| *t <= now)
                    .map(|t| {
                        if t + hour + 2_000 <= now {
                            self.closed_served
                                .lock()
                                .unwrap()
                                .entry(symbol.clone())
                                .or_default()
                                .insert(t);
                        }
                        json!([
                            t,
                            "10",
                            "12",
                            "9",
                            "11",
                            "1",
                            t + hour - 1,
                            "11",
                            3,
                            "0",
                            "0",
                            "0"
                        ])
                    })
                    .collect();
                reply(
                    200,
                    &serde_json::to_string(&rows).unwrap(),
                    &[("X-MBX-USED-WEIGHT-1M", "12")],
                )
            } else if symbol == "BANUSDT" {
                reply(
                    418,
                    r#"{"code":-1003,"msg":"Way too many requests; IP banned"}"#,
                    &[("Retry-After", "120")],
                )
            } else {
                reply(400, r#"{"code":-1121,"msg":"Invalid symbol."}"#, &[])
            };
            r.url = shown_url(spec);
            Ok(r)
        }
    }

    #[tokio::test]
    async fn a_job_of_many_symbols_walks_each_within_the_hosts_concurrency_and_resumes_each() {
        let up = Arc::new(Klines::default());
        let (c, parts) = build(
            up.clone(),
            r#"{"binance": {"base_url": "https://up", "concurrency": 2}}"#,
            MemorySink::default(),
            1,
        );
        let job = Job::from_value(&json!({"job": "majors", "source": "binance",
            "params": {"symbols": "BTCUSDT, ETHUSDT,SOLUSDT,NOPEUSDT", "interval": "1h", "lookback": "5h"}}))
        .unwrap();
        let first = c.run(&job, None).await.unwrap();
        assert_eq!((first.parts, first.failed_part_count), (4, 1));
        assert!(
            first.failed_parts[0].starts_with("NOPEUSDT: ")
                && first.failed_parts[0].contains("symbol NOPEUSDT"),
            "{:?}",
            first.failed_parts
        );
        assert!(
            up.most_in_flight.load(Ordering::SeqCst) <= 2,
            "the host's concurrency bounds all parts together"
        );
        // Every closed candle served reaches the stream once; no open one does.
        let stored = |sink: &MemorySink| -> BTreeMap<String, BTreeSet<i64>> {
            let mut by: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
            for r in sink.records() {
                let e = Envelope::from_slice(&r.data).unwrap();
                let symbol = e.key.split('/').nth(2).unwrap().to_string();
                assert!(
                    by.entry(symbol)
                        .or_default()
                        .insert(e.observed_at.timestamp_millis()),
                    "{} twice",
                    e.key
                );
            }
            by
        };
        assert_eq!(stored(&parts.sink), *up.closed_served.lock().unwrap());
        assert_eq!(first.put, parts.sink.records().len());
        // Each symbol keeps its own mark; the failed one has none.
        for symbol in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
            let cursor = parts
                .state
                .load_cursor(&format!("majors#{symbol}"))
                .await
                .unwrap()
                .unwrap();
            assert!(cursor.mark, "{symbol}: {cursor:?}");
        }
        assert!(parts
            .state
            .load_cursor("majors#NOPEUSDT")
            .await
            .unwrap()
            .is_none());
        // The next run starts each symbol at its own mark: nothing is sent twice.
        up.starts.lock().unwrap().clear();
        let second = c.run(&job, None).await.unwrap();
        let marks: BTreeMap<String, i64> = up.starts.lock().unwrap().iter().cloned().collect();
        let open_hour = Utc::now().timestamp_millis().div_euclid(3_600_000) * 3_600_000;
        for symbol in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
            assert!(
                marks[symbol] >= open_hour - 3_600_000,
                "{symbol} resumed at {}",
                marks[symbol]
            );
        }
        assert_eq!(stored(&parts.sink), *up.closed_served.lock().unwrap());
        assert_eq!(second.parts, 4);
        // The handler reports the failed part as a failed invocation, after the others.
        let err = handle(
            &c,
            event(
                serde_json::to_value(json!({"job": "majors", "source": "binance",
            "params": {"symbols": "BTCUSDT,NOPEUSDT", "interval": "1h"}}))
                .unwrap(),
            ),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("1 of 2 parts failed"), "{err}");
    }

    #[tokio::test]
    async fn a_ban_met_by_one_part_keeps_every_part_away() {
        let up = Arc::new(Klines::default());
        let (c, parts) = build(
            up.clone(),
            r#"{"binance": {"base_url": "https://up", "concurrency": 1}}"#,
            MemorySink::default(),
            1,
        );
        let job = Job::from_value(&json!({"job": "majors", "source": "binance",
            "params": {"symbols": "BTCUSDT,BANUSDT,ETHUSDT,SOLUSDT", "interval": "1h"}}))
        .unwrap();
        let s = c.run(&job, None).await.unwrap();
        // BANUSDT sorts first: its 418 is the only request of the run.
        assert_eq!(
            up.starts.lock().unwrap().len(),
            1,
            "{:?}",
            up.starts.lock().unwrap()
        );
        assert!(
            s.held.as_deref().unwrap_or_default().contains("banned"),
            "{s:?}"
        );
        assert_eq!(parts.sink.records().len(), 0);
        // And the next invocation keeps away without asking.
        let again = c.run(&job, None).await.unwrap();
        assert_eq!(up.starts.lock().unwrap().len(), 1);
        assert!(again.held.is_some());
    }
}
