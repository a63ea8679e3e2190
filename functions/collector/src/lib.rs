//! The collector: one job (the Scheduler's input) → upstream request with retries → every
//! response archived raw to S3 → records normalised → unusable ones quarantined with their
//! reason → the rest put on the stream.

use chrono::Utc;
use lambda_runtime::LambdaEvent;
use pricewire_pipeline::adapters::http::{HttpResponse, HttpUpstream, Upstream};
use pricewire_pipeline::adapters::kinesis::{partition_key, KinesisSink, RecordSink, StreamRecord};
use pricewire_pipeline::adapters::s3::{Archive, Object, S3Archive};
use pricewire_pipeline::adapters::ssm::Secret;
use pricewire_pipeline::archive::{self, meta};
use pricewire_pipeline::aws;
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::config::CollectorConfig;
use pricewire_pipeline::fetch::{fetch, Deadline, FetchStats, Verdict};
use pricewire_pipeline::job::{Job, SourceKind};
use pricewire_pipeline::limits::KINESIS_RECORD_MAX_BYTES;
use pricewire_pipeline::metrics::Emf;
use pricewire_pipeline::sources::{travelpayouts, Normalised, Quarantined, ResponseError};
use pricewire_pipeline::table;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// First retry waits up to this long (full jitter), doubling per attempt.
const HTTP_BASE_DELAY: Duration = Duration::from_millis(200);
const HTTP_MAX_DELAY: Duration = Duration::from_secs(5);
const PUT_BASE_DELAY: Duration = Duration::from_millis(100);
const PUT_MAX_DELAY: Duration = Duration::from_secs(2);
const S3_ATTEMPTS: u32 = 4;

pub struct Collector {
    pub upstream: Arc<dyn Upstream>,
    pub archive: Arc<dyn Archive>,
    pub sink: Arc<dyn RecordSink>,
    pub http_policy: RetryPolicy,
    /// The per-request timeout, to know whether a request still fits before the deadline.
    pub http_timeout: Duration,
}

/// What one run did; returned as the invocation result and logged as JSON.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub job: String,
    pub source: String,
    /// Records in the upstream's response.
    pub fetched: usize,
    pub normalised: usize,
    pub quarantined: usize,
    pub put: usize,
    /// S3 objects written (raw responses and quarantine files).
    pub archived: usize,
    pub requests: u32,
    pub retries: u32,
    pub throttled: u32,
    /// Optional values dropped as unusable (the records were still sent).
    pub dropped_values: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Job(#[from] pricewire_pipeline::job::JobError),
    #[error(transparent)]
    Fetch(#[from] pricewire_pipeline::fetch::FetchError),
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

    /// Runs one job. `deadline` is when the invocation must have finished (from the Lambda
    /// context); no request is started that could not finish before it.
    pub async fn run(
        &self,
        job: &Job,
        deadline: Option<std::time::Instant>,
    ) -> Result<Summary, CollectError> {
        let SourceKind::Travelpayouts = job.source;
        let query = travelpayouts::query(job)?;
        let mut summary = Summary {
            job: job.name.clone(),
            source: job.source.as_str().into(),
            ..Summary::default()
        };
        let mut stats = FetchStats::default();
        let mut archive_errors: Vec<String> = Vec::new();
        let mut archived = 0usize;
        let mut attempt = 0u32;
        let result = fetch(
            self.upstream.as_ref(),
            &query.request,
            &job.name,
            self.http_policy,
            deadline.map(|at| Deadline {
                at,
                request_timeout: self.http_timeout,
            }),
            &mut stats,
            async |response: &HttpResponse| {
                attempt += 1;
                match self.archive_response(job, response, attempt).await {
                    Ok(()) => archived += 1,
                    Err(e) => archive_errors.push(e),
                }
            },
            |response| match travelpayouts::parse(job, &query, &response.body, response.fetched_at)
            {
                // Garbage instead of JSON is often a proxy's error page: worth another try.
                Err(e @ ResponseError::NotJson { .. }) => Verdict::Retry(e.to_string()),
                other => Verdict::Accept(other),
            },
        )
        .await;
        summary.requests = stats.attempts;
        summary.retries = stats.retries;
        summary.throttled = stats.throttled;
        summary.archived = archived;
        let Normalised {
            records,
            mut quarantined,
            dropped_values,
        } = result??;
        summary.fetched = records.len() + quarantined.len();
        summary.dropped_values = dropped_values.len();
        if !dropped_values.is_empty() {
            tracing::info!(job = %job.name, dropped = ?dropped_values, "optional values dropped as unusable");
        }

        let mut out = Vec::with_capacity(records.len());
        for e in records {
            let record = StreamRecord {
                partition_key: partition_key(&e.key),
                data: e.to_json(),
            };
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
        match put {
            Ok(report) => summary.put = report.put,
            Err(e) => {
                summary.put = e.report.put;
                tracing::error!(summary = ?summary, "records not delivered");
                return Err(CollectError::Put {
                    job: job.name.clone(),
                    source: e,
                });
            }
        }
        if !archive_errors.is_empty() {
            return Err(CollectError::Archive {
                job: job.name.clone(),
                detail: archive_errors.join("; "),
            });
        }
        Ok(summary)
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
            .count("Fetched", s.fetched as u64)
            .count("Quarantined", s.quarantined as u64)
            .count("RecordsOut", s.put as u64)
            .count("Archived", s.archived as u64)
            .count("DroppedValues", s.dropped_values as u64),
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
    async fn a_run_past_its_deadline_starts_no_request() {
        let (c, bucket, _) = collector(vec![(200, "{}".into())], false);
        let mut context = Context::default();
        context.deadline = u64::try_from(Utc::now().timestamp_millis()).unwrap() + 500;
        let err = handle(&c, LambdaEvent::new(job(), context))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("job led-kzn: stopped after 0 attempts"),
            "{err}"
        );
        assert!(bucket.0.lock().unwrap().is_empty());
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
