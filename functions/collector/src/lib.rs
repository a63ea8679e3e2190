//! The collector: one job (the Scheduler's input) → upstream requests (page by page where
//! the API paginates) through the host's circuit breaker and rate limiter, with retries →
//! every response archived raw to S3 → records normalised → unusable ones quarantined with
//! their reason → the rest put on the stream. A run that cannot finish before the Lambda's
//! deadline (or meets an open breaker, or a long `Retry-After`) flushes what it has and
//! saves a cursor; the next run resumes there.

use chrono::Utc;
use futures_util::StreamExt;
use lambda_runtime::LambdaEvent;
use pricewire_pipeline::adapters::dynamodb::DynamoHostState;
use pricewire_pipeline::adapters::http::{HttpResponse, HttpUpstream, Upstream};
use pricewire_pipeline::adapters::kinesis::{KinesisSink, RecordSink, StreamRecord};
use pricewire_pipeline::adapters::s3::{Archive, Object, S3Archive};
use pricewire_pipeline::adapters::ssm::Secret;
use pricewire_pipeline::archive::{self, meta};
use pricewire_pipeline::aws;
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::breaker::{Breaker, BreakerPolicy};
use pricewire_pipeline::config::CollectorConfig;
use pricewire_pipeline::fetch::{fetch, Deadline, FetchError, FetchStats, Guards, Verdict};
use pricewire_pipeline::job::{Job, SourceKind};
use pricewire_pipeline::limits::KINESIS_RECORD_MAX_BYTES;
use pricewire_pipeline::metrics::Emf;
use pricewire_pipeline::ratelimit::{self, HostGate};
use pricewire_pipeline::sources::travelpayouts::{self, Query};
use pricewire_pipeline::sources::{Normalised, Quarantined, ResponseError};
use pricewire_pipeline::state::{Cursor, HostStateStore, RunRecord};
use pricewire_pipeline::table;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// First retry waits up to this long (full jitter), doubling per attempt.
const HTTP_BASE_DELAY: Duration = Duration::from_millis(200);
const HTTP_MAX_DELAY: Duration = Duration::from_secs(5);
const PUT_BASE_DELAY: Duration = Duration::from_millis(100);
const PUT_MAX_DELAY: Duration = Duration::from_secs(2);
const S3_ATTEMPTS: u32 = 4;
const STATE_ATTEMPTS: u32 = 3;
/// A walk not finished within a day starts over: its pages have moved on.
const CURSOR_MAX_AGE_MS: i64 = 24 * 3600 * 1000;

/// How the collector treats the upstream host: rate limits, concurrency, breaker.
#[derive(Debug, Clone, Default)]
pub struct UpstreamControl {
    /// Requests per minute by API path, over the documented defaults.
    pub rate_limits: BTreeMap<String, u32>,
    /// Requests in flight to the host at once.
    pub concurrency: usize,
    pub breaker: BreakerPolicy,
}

impl UpstreamControl {
    /// The configured limit of a method, else the documented one, else a cautious default.
    pub fn ceiling(&self, path: &str) -> u32 {
        self.rate_limits
            .get(path)
            .copied()
            .or_else(|| ratelimit::documented_rpm(path))
            .unwrap_or(ratelimit::UNKNOWN_METHOD_RPM)
    }
}

pub struct Collector {
    pub upstream: Arc<dyn Upstream>,
    pub archive: Arc<dyn Archive>,
    pub sink: Arc<dyn RecordSink>,
    /// Breaker, learned limits and cursors, kept between invocations.
    pub state: Arc<dyn HostStateStore>,
    /// The upstream's host (`api.travelpayouts.com`): names its breaker and limits.
    pub host: String,
    pub control: UpstreamControl,
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
    pub throttled: u32,
    /// Requests not started: they could not finish before the deadline, or the breaker
    /// was open.
    pub skipped: u32,
    /// Optional values dropped as unusable (the records were still sent).
    pub dropped_values: usize,
    /// Records seen twice in this run (the same observation on two pages): sent once.
    pub duplicates: usize,
    /// Pages collected in this run.
    pub pages: u32,
    /// Whether the whole query was collected; if not, a cursor says where to resume.
    pub complete: bool,
    /// Why the run stopped early (deadline, open breaker, `Retry-After`), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The page the next run starts at, when a cursor was saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_page: Option<u32>,
    /// The host's breaker at the end of the run: closed, half_open or open.
    pub breaker: String,
    pub breaker_transitions: Vec<String>,
    /// The host method's rate limit at the end of the run, requests per minute.
    pub rate_rpm: u32,
    /// Time spent waiting for the rate limiter, milliseconds.
    pub waited_ms: u64,
    /// Times a 429 lowered the rate, and times the host was paused (`Retry-After`, quota).
    pub rate_decreases: u32,
    pub host_pauses: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Job(#[from] pricewire_pipeline::job::JobError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Response(#[from] ResponseError),
    #[error("job {job}: {source}")]
    Put {
        job: String,
        source: pricewire_pipeline::adapters::kinesis::PutError,
    },
    #[error("job {job}: archive failed: {detail}")]
    Archive { job: String, detail: String },
}

/// `https://api.travelpayouts.com/x` → `api.travelpayouts.com`.
pub fn host_of(base_url: &str) -> String {
    let rest = base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_string()
}

enum PageResult {
    NotStarted,
    Done(Normalised),
    Failed(CollectError),
}

struct PageRun {
    page: Option<u32>,
    result: PageResult,
    stats: FetchStats,
    archived: usize,
    archive_errors: Vec<String>,
}

impl Collector {
    pub fn from_config(
        config: &CollectorConfig,
        sdk: &aws::SdkConfig,
        token: Secret,
    ) -> Result<Collector, String> {
        let upstream =
            HttpUpstream::new(&config.travelpayouts_base_url, token, config.http_timeout)?;
        let s3_policy = RetryPolicy::new(S3_ATTEMPTS, PUT_BASE_DELAY, PUT_MAX_DELAY);
        Ok(Collector {
            upstream: Arc::new(upstream),
            archive: Arc::new(S3Archive::new(
                aws::s3(sdk),
                &config.archive_bucket,
                s3_policy,
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
            host: host_of(&config.travelpayouts_base_url),
            control: UpstreamControl {
                rate_limits: config.rate_limits.clone(),
                concurrency: config.host_concurrency,
                breaker: BreakerPolicy {
                    threshold: config.breaker_threshold,
                    open_for: config.breaker_open,
                    // A probe holds its claim for as long as a request and its retries take.
                    probe_lease: config.http_timeout * 2,
                },
            },
            http_policy: RetryPolicy::new(
                config.http_max_attempts,
                HTTP_BASE_DELAY,
                HTTP_MAX_DELAY,
            ),
            http_timeout: config.http_timeout,
        })
    }

    async fn archive_response(
        &self,
        job: &Job,
        response: &HttpResponse,
        attempt: u32,
    ) -> Result<(), String> {
        let key = archive::raw_key(
            job.source.as_str(),
            &job.name,
            response.fetched_at,
            &uuid::Uuid::new_v4().simple().to_string(),
        );
        let object = Object {
            key,
            body: archive::gzip(&response.body),
            content_type: "application/json",
            content_encoding: Some("gzip"),
            metadata: vec![
                (meta::URL, response.url.clone()),
                (meta::STATUS, response.status.to_string()),
                (
                    meta::FETCHED_AT,
                    response
                        .fetched_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ),
                (meta::JOB, job.name.clone()),
                (meta::ATTEMPT, attempt.to_string()),
            ],
        };
        self.archive.put(object).await.map_err(|e| e.to_string())
    }

    async fn archive_quarantine(&self, job: &Job, items: &[Quarantined]) -> Result<(), String> {
        let key = archive::quarantine_key(
            job.source.as_str(),
            &job.name,
            Utc::now(),
            &uuid::Uuid::new_v4().simple().to_string(),
        );
        let object = Object {
            key,
            body: archive::gzip(&archive::json_lines(items)),
            content_type: "application/x-ndjson",
            content_encoding: Some("gzip"),
            metadata: vec![(meta::JOB, job.name.clone())],
        };
        self.archive.put(object).await.map_err(|e| e.to_string())
    }

    /// Fetches and normalises one page (or the one request of an unpaginated query).
    async fn fetch_page(
        &self,
        job: &Job,
        query: &Query,
        page: Option<u32>,
        deadline: Option<Deadline>,
        guards: Guards<'_>,
    ) -> PageRun {
        let spec = page.map_or_else(|| query.request.clone(), |p| query.page(p));
        let mut stats = FetchStats::default();
        let mut archive_errors: Vec<String> = Vec::new();
        let mut archived = 0usize;
        let mut attempt = 0u32;
        let result = fetch(
            self.upstream.as_ref(),
            &spec,
            &job.name,
            self.http_policy,
            deadline,
            Some(guards),
            &mut stats,
            async |response: &HttpResponse| {
                attempt += 1;
                match self.archive_response(job, response, attempt).await {
                    Ok(()) => archived += 1,
                    Err(e) => archive_errors.push(e),
                }
            },
            |response| match travelpayouts::parse(job, query, &response.body, response.fetched_at) {
                // Garbage instead of JSON is often a proxy's error page: worth another try.
                Err(e @ ResponseError::NotJson { .. }) => Verdict::Retry(e.to_string()),
                other => Verdict::Accept(other),
            },
        )
        .await;
        let result = match result {
            Ok(Ok(normalised)) => PageResult::Done(normalised),
            Ok(Err(e)) => PageResult::Failed(e.into()),
            Err(e) => PageResult::Failed(e.into()),
        };
        PageRun {
            page,
            result,
            stats,
            archived,
            archive_errors,
        }
    }

    /// Runs one job. `deadline` is when the invocation must have finished (from the Lambda
    /// context); no request is started that could not finish before it.
    pub async fn run(
        &self,
        job: &Job,
        deadline: Option<std::time::Instant>,
    ) -> Result<Summary, CollectError> {
        let SourceKind::Travelpayouts = job.source;
        let query = travelpayouts::query(job)?;
        let deadline = deadline.map(|at| Deadline {
            at,
            request_timeout: self.http_timeout,
        });
        let mut summary = Summary {
            job: job.name.clone(),
            source: job.source.as_str().into(),
            ..Summary::default()
        };

        let path = query.request.path;
        let limit_key = format!("{}{}", self.host, path);
        let learned = self.state.load_limit(&limit_key).await.unwrap_or_else(|e| {
            tracing::error!(key = %limit_key, error = %e, "learned rate limit not readable; starting from the ceiling");
            None
        });
        let gate = HostGate::new(
            limit_key.clone(),
            self.control.ceiling(path),
            learned.as_ref(),
            self.control.concurrency,
        );
        let breaker = Breaker::load(self.state.as_ref(), &self.host, self.control.breaker).await;
        let guards = Guards {
            gate: &gate,
            breaker: &breaker,
        };

        // The pages to walk: from a saved cursor, else from the first.
        let prior = match query.paging {
            Some(paging) => self
                .state
                .load_cursor(&job.name)
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(job = %job.name, error = %e, "cursor not readable; starting at page 1");
                    None
                })
                .filter(|c| {
                    let age = Utc::now().timestamp_millis() - c.started_ms;
                    let usable = c.page_size == paging.page_size && age < CURSOR_MAX_AGE_MS;
                    if !usable {
                        tracing::warn!(job = %job.name, page_size = c.page_size, age_ms = age,
                            "cursor from another page size or too old; starting at page 1");
                    }
                    usable
                }),
            None => None,
        };
        let started_ms = prior
            .as_ref()
            .map_or_else(|| Utc::now().timestamp_millis(), |c| c.started_ms);
        let pages: Vec<Option<u32>> = match (query.paging, &prior) {
            (None, _) => vec![None],
            (Some(p), Some(c)) => (c.next_page.max(1)..=p.max_pages)
                .filter(|n| !c.done.contains(n))
                .map(Some)
                .collect(),
            (Some(p), None) => (1..=p.max_pages).map(Some).collect(),
        };
        if let Some(c) = &prior {
            tracing::info!(job = %job.name, next_page = c.next_page, done = ?c.done, "resuming from cursor");
        }

        // Pages are requested concurrently (the gate bounds requests per host); once one
        // ends the walk (a short page) or stops it, the pages not yet started are skipped.
        let halt = AtomicBool::new(false);
        let page_size = query.paging.map(|p| p.page_size as usize);
        let concurrency = if query.paging.is_some() {
            self.control.concurrency.max(1)
        } else {
            1
        };
        let runs: Vec<PageRun> = futures_util::stream::iter(pages)
            .map(|page| {
                let (halt, query) = (&halt, &query);
                async move {
                    if halt.load(Ordering::Relaxed) {
                        return PageRun {
                            page,
                            result: PageResult::NotStarted,
                            stats: FetchStats::default(),
                            archived: 0,
                            archive_errors: vec![],
                        };
                    }
                    let run = self.fetch_page(job, query, page, deadline, guards).await;
                    let ends = match &run.result {
                        PageResult::Done(n) => page_size
                            .is_some_and(|size| n.records.len() + n.quarantined.len() < size),
                        _ => true,
                    };
                    if ends {
                        halt.store(true, Ordering::Relaxed);
                    }
                    run
                }
            })
            .buffered(concurrency)
            .collect()
            .await;

        let mut records = Vec::new();
        let mut quarantined: Vec<Quarantined> = Vec::new();
        let mut dropped_values = Vec::new();
        let mut collected: BTreeSet<u32> = BTreeSet::new();
        let mut failure: Option<CollectError> = None;
        let mut archive_errors: Vec<String> = Vec::new();
        let mut single_done = false;
        // The walk ends at the first short page; pages asked past it (concurrency) are
        // not used: in a consistent API they are empty, and if the data moved meanwhile
        // the next run sees it from page 1.
        let end_page = runs
            .iter()
            .filter_map(|r| match (&r.result, r.page) {
                (PageResult::Done(n), Some(p))
                    if page_size
                        .is_some_and(|size| n.records.len() + n.quarantined.len() < size) =>
                {
                    Some(p)
                }
                _ => None,
            })
            .min();
        for run in runs {
            summary.requests += run.stats.attempts;
            summary.retries += run.stats.retries;
            summary.throttled += run.stats.throttled;
            summary.skipped += run.stats.skipped;
            summary.archived += run.archived;
            archive_errors.extend(run.archive_errors);
            match run.result {
                PageResult::NotStarted => {}
                // Past the end: not used, whatever came of them.
                PageResult::Done(_) | PageResult::Failed(_)
                    if end_page.is_some() && run.page > end_page => {}
                PageResult::Done(n) => {
                    match run.page {
                        Some(p) => {
                            collected.insert(p);
                        }
                        None => {
                            single_done = true;
                            summary.pages = 1;
                        }
                    }
                    records.extend(n.records);
                    quarantined.extend(n.quarantined);
                    dropped_values.extend(n.dropped_values);
                }
                PageResult::Failed(e) => {
                    let stop = matches!(&e, CollectError::Fetch(f) if f.is_stop());
                    if stop && summary.stopped.is_none() && failure.is_none() {
                        tracing::warn!(job = %job.name, page = ?run.page, reason = %e, "stopping early; the next run resumes");
                        summary.stopped = Some(e.to_string());
                    } else if !stop && failure.is_none() {
                        failure = Some(e);
                    }
                }
            }
        }

        // Where the walk stands: complete, or a cursor for the next run.
        let cursor = match query.paging {
            None => {
                summary.complete = single_done;
                None
            }
            Some(p) => {
                let last = end_page.unwrap_or(p.max_pages);
                // Pages asked past the end (concurrency) were empty and do not count.
                summary.pages = collected.iter().filter(|n| **n <= last).count() as u32;
                let have = |n: u32| {
                    collected.contains(&n)
                        || prior
                            .as_ref()
                            .is_some_and(|c| n < c.next_page || c.done.contains(&n))
                };
                match (1..=last).find(|n| !have(*n)) {
                    None => {
                        summary.complete = true;
                        None
                    }
                    Some(next_page) => Some(Cursor {
                        page_size: p.page_size,
                        next_page,
                        done: (next_page + 1..=last).filter(|n| have(*n)).collect(),
                        started_ms,
                    }),
                }
            }
        };

        summary.fetched = records.len() + quarantined.len();
        summary.dropped_values = dropped_values.len();
        if !dropped_values.is_empty() {
            tracing::info!(job = %job.name, dropped = ?dropped_values, "optional values dropped as unusable");
        }
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(records.len());
        for e in records {
            if !seen.insert(e.id.clone()) {
                summary.duplicates += 1;
                continue;
            }
            let record = StreamRecord::of(&e);
            let too_big = (record.size() > KINESIS_RECORD_MAX_BYTES).then(|| {
                format!(
                    "record of {} bytes exceeds the Kinesis record limit",
                    record.size()
                )
            });
            match too_big.or_else(|| table::fits(&e, record.data.len()).err()) {
                Some(reason) => quarantined.push(Quarantined {
                    source: e.source.clone(),
                    job: job.name.clone(),
                    index: None,
                    reason,
                    record: serde_json::from_slice(&record.data).unwrap_or_default(),
                }),
                None => out.push(record),
            }
        }
        summary.normalised = out.len();
        summary.quarantined = quarantined.len();
        if !quarantined.is_empty() {
            for q in &quarantined {
                tracing::warn!(job = %job.name, index = ?q.index, reason = %q.reason, "record quarantined");
            }
            match self.archive_quarantine(job, &quarantined).await {
                Ok(()) => summary.archived += 1,
                Err(e) => archive_errors.push(e),
            }
        }
        let put = self.sink.put_records(out).await;
        self.remember(&gate, &breaker, &mut summary).await;
        match put {
            Ok(report) => summary.put = report.put,
            Err(e) => {
                // The cursor is not advanced: the next run fetches these pages again.
                summary.put = e.report.put;
                tracing::error!(summary = ?summary, "records not delivered");
                return Err(CollectError::Put {
                    job: job.name.clone(),
                    source: e,
                });
            }
        }
        if query.paging.is_some() {
            let saved = match &cursor {
                Some(c) => self.state.save_cursor(&job.name, c).await,
                None if prior.is_some() => self.state.clear_cursor(&job.name).await,
                None => Ok(()),
            };
            if let Err(e) = saved {
                tracing::error!(job = %job.name, error = %e, "cursor not saved; the next run starts over");
            }
            summary.resume_page = cursor.as_ref().map(|c| c.next_page);
        }
        if let Some(e) = failure {
            tracing::error!(summary = ?summary, "collection failed after flushing what it had");
            return Err(e);
        }
        if !archive_errors.is_empty() {
            return Err(CollectError::Archive {
                job: job.name.clone(),
                detail: archive_errors.join("; "),
            });
        }
        let run = RunRecord {
            at_ms: chrono::Utc::now().timestamp_millis(),
            records_out: summary.put as u64,
            pages: summary.pages as u64,
            complete: summary.complete,
        };
        if let Err(e) = self.state.save_run(&job.name, &run).await {
            tracing::warn!(job = %job.name, error = %e, "last run not recorded");
        }
        Ok(summary)
    }

    /// Stores what this run learned about the host (rate, pause, breaker counts) and
    /// copies it into the summary.
    async fn remember(&self, gate: &HostGate, breaker: &Breaker<'_>, summary: &mut Summary) {
        if gate.changed() {
            if let Err(e) = self.state.save_limit(gate.key(), &gate.state()).await {
                tracing::error!(key = gate.key(), error = %e, "learned rate limit not stored");
            }
        }
        if let Err(e) = breaker.flush().await {
            tracing::error!(host = %self.host, error = %e, "breaker counts not stored");
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
    match collector.run(&job, deadline_of(&event.context)).await {
        Ok(summary) => {
            tracing::info!(job = %summary.job, fetched = summary.fetched, normalised = summary.normalised,
                quarantined = summary.quarantined, put = summary.put, archived = summary.archived,
                requests = summary.requests, retries = summary.retries, throttled = summary.throttled,
                skipped = summary.skipped, pages = summary.pages, complete = summary.complete,
                stopped = ?summary.stopped, breaker = %summary.breaker, rate_rpm = summary.rate_rpm,
                dropped_values = summary.dropped_values, "collected");
            metrics(&job, Some(&summary)).emit();
            Ok(summary)
        }
        Err(e) => {
            tracing::error!(job = %job.name, error = %e, "collection failed");
            metrics(&job, None).emit();
            Err(e.into())
        }
    }
}

/// The invocation's deadline as an `Instant` (`Context::deadline` is epoch milliseconds;
/// 0, as in a default test context, means none).
fn deadline_of(context: &lambda_runtime::Context) -> Option<std::time::Instant> {
    if context.deadline == 0 {
        return None;
    }
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    Some(std::time::Instant::now() + Duration::from_millis(context.deadline.saturating_sub(now_ms)))
}

/// The run's metrics as one EMF document, dimensions source and job.
pub fn metrics(job: &Job, summary: Option<&Summary>) -> Emf {
    let emf = Emf::new(&[("source", job.source.as_str()), ("job", &job.name)]);
    match summary {
        Some(s) => emf
            .count("Runs", 1)
            .count("Failures", 0)
            .count("Requests", s.requests.into())
            .count("Retries", s.retries.into())
            .count("Throttled", s.throttled.into())
            .count("Skipped", s.skipped.into())
            .count("Pages", s.pages.into())
            .count("Incomplete", u64::from(!s.complete))
            .count("Fetched", s.fetched as u64)
            .count("Quarantined", s.quarantined as u64)
            .count("RecordsOut", s.put as u64)
            .count("Archived", s.archived as u64)
            .count("DroppedValues", s.dropped_values as u64)
            .count(
                "BreakerState",
                pricewire_pipeline::breaker::Phase::parse(&s.breaker)
                    .unwrap_or_default()
                    .gauge(),
            )
            .count("BreakerTransitions", s.breaker_transitions.len() as u64)
            .count("RateLimitRpm", s.rate_rpm.into())
            .count("RateLimitDecreases", s.rate_decreases.into())
            .count("HostPauses", s.host_pauses.into())
            .millis("RateLimitWait", s.waited_ms),
        None => emf.count("Runs", 1).count("Failures", 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use lambda_runtime::Context;
    use pricewire_pipeline::adapters::http::TransportError;
    use pricewire_pipeline::adapters::kinesis::{PutError, PutReport};
    use pricewire_pipeline::adapters::s3::ArchiveError;
    use pricewire_pipeline::envelope::Envelope;
    use pricewire_pipeline::sources::RequestSpec;
    use pricewire_pipeline::state::MemoryHostState;
    use serde_json::json;
    use std::sync::Mutex;

    struct Canned(Mutex<Vec<(u16, String)>>);
    #[async_trait]
    impl Upstream for Canned {
        async fn send(&self, spec: &RequestSpec) -> Result<HttpResponse, TransportError> {
            let (status, body) = self.0.lock().unwrap().remove(0);
            let query: Vec<String> = spec.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            Ok(HttpResponse {
                status,
                body: body.into_bytes(),
                url: format!("http://up{}?{}", spec.path, query.join("&")),
                retry_after: None,
                quota: None,
                fetched_at: Utc::now(),
            })
        }
    }

    #[derive(Default)]
    struct Bucket(Mutex<Vec<Object>>);
    #[async_trait]
    impl Archive for Bucket {
        async fn put(&self, object: Object) -> Result<(), ArchiveError> {
            self.0.lock().unwrap().push(object);
            Ok(())
        }
    }

    #[derive(Default)]
    struct Stream(Mutex<Vec<StreamRecord>>, bool);
    #[async_trait]
    impl RecordSink for Stream {
        async fn put_records(&self, records: Vec<StreamRecord>) -> Result<PutReport, PutError> {
            if self.1 {
                return Err(PutError {
                    failed: records.len(),
                    total: records.len(),
                    attempts: 3,
                    last_error: "throttled".into(),
                    report: PutReport::default(),
                });
            }
            let n = records.len();
            self.0.lock().unwrap().extend(records);
            Ok(PutReport {
                put: n,
                requests: 1,
                retried_entries: 0,
            })
        }
    }

    fn collector(
        responses: Vec<(u16, String)>,
        failing_sink: bool,
    ) -> (Collector, Arc<Bucket>, Arc<Stream>) {
        let bucket = Arc::new(Bucket::default());
        let stream = Arc::new(Stream(Mutex::new(vec![]), failing_sink));
        let c = Collector {
            upstream: Arc::new(Canned(Mutex::new(responses))),
            archive: bucket.clone(),
            sink: stream.clone(),
            state: Arc::new(MemoryHostState::default()),
            host: "up".into(),
            control: UpstreamControl {
                concurrency: 1,
                ..UpstreamControl::default()
            },
            http_policy: RetryPolicy::new(3, Duration::from_millis(1), Duration::from_millis(2)),
            http_timeout: Duration::from_secs(1),
        };
        (c, bucket, stream)
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
        let (c, bucket, stream) = collector(
            vec![
                (502, "<html>bad gateway</html>".into()),
                (200, body.clone()),
            ],
            false,
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

        let objects = bucket.0.lock().unwrap();
        let raw: Vec<&Object> = objects
            .iter()
            .filter(|o| o.key.starts_with("raw/source=travelpayouts/dt="))
            .collect();
        assert_eq!(raw.len(), 2, "both responses archived, the 502 too");
        assert!(raw[1].key.contains("/led-kzn-") && raw[1].key.ends_with(".json.gz"));
        assert_eq!(archive::gunzip(&raw[1].body).unwrap(), body.as_bytes());
        let metadata: std::collections::HashMap<_, _> = raw[1].metadata.iter().cloned().collect();
        assert_eq!(metadata[meta::STATUS], "200");
        assert!(
            metadata[meta::URL].contains("origin=LED") && !metadata[meta::URL].contains("token")
        );
        let q = objects
            .iter()
            .find(|o| o.key.starts_with("quarantine/"))
            .unwrap();
        let lines = String::from_utf8(archive::gunzip(&q.body).unwrap()).unwrap();
        assert_eq!(lines.lines().count(), 1);
        assert!(lines.contains(r#""reason":"price: null""#), "{lines}");

        let put = stream.0.lock().unwrap();
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
            assert_eq!(e.job, "led-kzn");
        }
    }

    #[tokio::test]
    async fn a_run_past_its_deadline_starts_no_request_and_says_so() {
        let (c, bucket, _) = collector(vec![(200, "{}".into())], false);
        let mut context = Context::default();
        context.deadline = u64::try_from(Utc::now().timestamp_millis()).unwrap() + 500;
        let summary = handle(&c, LambdaEvent::new(job(), context)).await.unwrap();
        assert_eq!(
            (summary.requests, summary.skipped, summary.complete),
            (0, 1, false)
        );
        let stopped = summary.stopped.unwrap();
        assert!(
            stopped.starts_with("job led-kzn: stopped after 0 attempts"),
            "{stopped}"
        );
        assert_eq!(summary.resume_page, Some(1));
        assert!(bucket.0.lock().unwrap().is_empty());
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
        async fn send(&self, spec: &RequestSpec) -> Result<HttpResponse, TransportError> {
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
            Ok(HttpResponse {
                status,
                body: body.into_bytes(),
                url: format!("http://up{}?page={page}", spec.path),
                retry_after: None,
                quota: None,
                fetched_at: Utc::now(),
            })
        }
    }

    fn paged_collector(up: Arc<Paged>, state: Arc<MemoryHostState>) -> (Collector, Arc<Stream>) {
        let stream = Arc::new(Stream(Mutex::new(vec![]), false));
        let c = Collector {
            upstream: up,
            archive: Arc::new(Bucket::default()),
            sink: stream.clone(),
            state,
            host: "up".into(),
            control: UpstreamControl {
                concurrency: 3,
                breaker: BreakerPolicy {
                    threshold: 3,
                    open_for: Duration::from_millis(300),
                    probe_lease: Duration::from_secs(1),
                },
                ..UpstreamControl::default()
            },
            http_policy: RetryPolicy::new(2, Duration::from_millis(1), Duration::from_millis(2)),
            http_timeout: Duration::from_secs(1),
        };
        (c, stream)
    }

    fn paged_job() -> Job {
        Job::from_value(&json!({"job":"walk","source":"travelpayouts","params":{
            "origin":"LED","destination":"KZN","departure_at":"2026-12","limit":"10","max_pages":"20"}}))
        .unwrap()
    }

    fn prices(stream: &Stream) -> Vec<u64> {
        let mut p: Vec<u64> = stream
            .0
            .lock()
            .unwrap()
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
        let (c, stream) = paged_collector(up.clone(), Arc::default());
        let s = c.run(&paged_job(), None).await.unwrap();
        assert!(s.complete);
        assert_eq!((s.pages, s.put, s.resume_page), (5, 45, None), "{s:?}");
        assert_eq!(prices(&stream), (1000..1045).collect::<Vec<_>>());
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
        let state = Arc::new(MemoryHostState::default());
        let (mut c, stream) = paged_collector(up.clone(), state.clone());
        // 120 rpm: a request every 500 ms, so a run fits only a few.
        c.control
            .rate_limits
            .insert("/aviasales/v3/prices_for_dates".into(), 120);
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
            prices(&stream),
            (1000..1095).collect::<Vec<_>>(),
            "every record once"
        );
        let requests = up.requests.lock().unwrap().clone();
        assert!(
            (1..=10).all(|p| requests.get(&p) == Some(&1)),
            "no page collected twice: {requests:?}"
        );
        assert_eq!(
            state.load_cursor("walk").await.unwrap(),
            None,
            "cursor cleared"
        );
    }

    #[tokio::test]
    async fn a_dead_upstream_opens_the_breaker_and_is_left_alone_until_it_may_probe() {
        let up = Arc::new(Paged::new(15, Duration::from_millis(1)));
        up.dead.store(true, Ordering::Relaxed);
        let state = Arc::new(MemoryHostState::default());
        let (mut c, _) = paged_collector(up.clone(), state.clone());
        // One page at a time and 2 failures to open: page 1's two attempts open it.
        c.control.concurrency = 1;
        c.control.breaker.threshold = 2;
        let job = paged_job();
        let err = c.run(&job, None).await.unwrap_err().to_string();
        assert!(err.contains("gave up after 2 attempts"), "{err}");
        let stored = state.load_breaker("up").await.unwrap().unwrap();
        assert_eq!(
            stored.phase,
            pricewire_pipeline::breaker::Phase::Open,
            "{stored:?}"
        );

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
        tokio::time::sleep(Duration::from_millis(350)).await;
        let s = c.run(&job, None).await.unwrap();
        assert!(s.complete, "{s:?}");
        assert_eq!(
            s.breaker_transitions,
            ["open->half_open", "half_open->closed"]
        );
        assert_eq!(s.breaker, "closed");
    }

    #[test]
    fn metrics_carry_the_run_with_source_and_job_dimensions() {
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
            json!([["source", "job"]])
        );
        assert_eq!(
            (
                v["job"].as_str(),
                v["Throttled"].as_f64(),
                v["RecordsOut"].as_f64()
            ),
            (Some("led-kzn"), Some(1.0), Some(7.0))
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
        let (c, _, _) = collector(vec![], false);
        let err = handle(
            &c,
            event(json!({"job":"led-kzn","source":"travelpayouts","params":{"origin":"LED"}})),
        )
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "invalid job: params.destination: missing");
    }

    #[tokio::test]
    async fn an_error_envelope_fails_naming_the_job_and_is_still_archived() {
        let (c, bucket, stream) = collector(
            vec![(200, r#"{"success":false,"error":"Unauthorized"}"#.into())],
            false,
        );
        let err = handle(&c, event(job())).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "job led-kzn: upstream reported an error: Unauthorized"
        );
        assert_eq!(bucket.0.lock().unwrap().len(), 1);
        assert!(stream.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_malformed_body_is_retried_then_a_clear_error() {
        let (c, bucket, _) = collector(
            vec![
                (200, "<html>".into()),
                (200, "{\"success\":tru".into()),
                (200, "garbage".into()),
            ],
            false,
        );
        let err = handle(&c, event(job())).await.unwrap_err().to_string();
        assert!(
            err.starts_with(
                "job led-kzn: gave up after 3 attempts: job led-kzn: upstream body is not JSON"
            ),
            "{err}"
        );
        assert_eq!(bucket.0.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn undelivered_records_fail_the_invocation() {
        let body =
            json!({"success":true,"data":[{"price":1,"departure_at":"2026-12-05"}]}).to_string();
        let (c, _, _) = collector(vec![(200, body)], true);
        let err = handle(&c, event(job())).await.unwrap_err().to_string();
        assert!(
            err.starts_with("job led-kzn: PutRecords: 1 of 1 records not accepted"),
            "{err}"
        );
    }
}
