//! The local twin's runner: plays the parts of AWS that the emulator stores but does not
//! execute. It reads back what Terraform created (functions, event source mappings,
//! schedules), runs each function's release `bootstrap` behind the Lambda Runtime API,
//! fires schedules on an accelerated clock, and polls every shard of every Kinesis stream
//! and DynamoDB table stream a mapping reads (the emulator keeps their records, as AWS
//! does: `infra/moto/moto_server.py`), delivering batches to
//! the mapped functions with Lambda's documented semantics: batch size and window; on
//! `batchItemFailures` checkpoint before the lowest failed sequence number and retry from
//! there; on a function error bisect if enabled (splitting does not use the retry quota);
//! past the retry limit or the maximum record age, a failure record to the on-failure
//! destination; filter criteria applied where set.

use crate::faultproxy::{FaultPlan, FaultProxy};
use crate::runtime_api::{FunctionHost, FunctionSpec, Outcome};
use aws_lambda_events::kinesis::KinesisEvent;
use chrono::{DateTime, Utc};
use pricewire_pipeline::envelope::Envelope;
use pricewire_pipeline::stream::event_record;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a shard poller asks for records when the shard is idle.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// GetRecords: at most 10,000 records per call.
const GET_RECORDS_MAX: i32 = 10_000;
/// DynamoDB Streams GetRecords: at most 1,000 records per call.
const TABLE_GET_RECORDS_MAX: i32 = 1_000;

#[derive(Debug, Clone)]
pub struct TwinOptions {
    pub endpoint: String,
    pub region: String,
    /// The Terraform `name` prefix of the stack to run.
    pub name: String,
    /// Where `<fn>/bootstrap` release binaries are (cargo-lambda's `target/lambda`).
    pub lambda_dir: PathBuf,
    /// How long schedules fire, in wall-clock time.
    pub duration: Duration,
    /// Clock acceleration: `rate(5 minutes)` fires every 300/speed seconds.
    pub speed: f64,
    /// After the schedules stop, how long to wait for the stream to drain.
    pub drain_timeout: Duration,
    pub work_dir: PathBuf,
    pub quiet: bool,
    /// AWS faults between the functions and the emulator (the runner's own calls, standing
    /// in for Lambda's event source mappings and the operator, go straight to the emulator).
    pub faults: Option<FaultPlan>,
    /// Raw records put on the stream when the run starts (poison, for instance).
    pub inject: Vec<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct Mapping {
    pub uuid: String,
    pub function: String,
    pub stream_arn: String,
    pub batch_size: usize,
    pub window: Duration,
    pub starting_position: String,
    pub bisect: bool,
    pub max_retries: i64,
    pub max_record_age: i64,
    pub on_failure: Option<String>,
    pub report_item_failures: bool,
    pub filters: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub expression: String,
    pub input: Value,
    pub function: String,
    /// The schedule's own retry policy and DLQ cover failures to *invoke*; the function
    /// is invoked asynchronously, so its errors follow its event-invoke config below.
    pub max_retries: i64,
    pub dead_letter: Option<String>,
    /// Lambda's asynchronous retries of a function error (0-2, default 2).
    pub async_retries: i64,
    /// Lambda's asynchronous on-failure destination.
    pub async_failure: Option<String>,
}

/// Counters shown while running.
#[derive(Default)]
pub struct Progress {
    pub fired: AtomicU64,
    pub collector_errors: AtomicU64,
    pub fetched: AtomicU64,
    pub put: AtomicU64,
    pub quarantined: AtomicU64,
    pub upstream_retries: AtomicU64,
    pub stored: AtomicU64,
    pub evaluated: AtomicU64,
    pub batch_retries: AtomicU64,
    pub bisections: AtomicU64,
    pub discarded: AtomicU64,
    pub filtered: AtomicU64,
    pub poll_errors: AtomicU64,
}

/// What the runner observed itself (the summary's other figures are read from the emulator).
#[derive(Default)]
pub struct Observed {
    /// record id → fetched_at, for every record delivered.
    pub fetched_at: HashMap<String, DateTime<Utc>>,
    /// (record id, fetched_at ms) of every fetch of every record delivered: what the
    /// consumer's change detection orders values by.
    pub fetches: std::collections::BTreeSet<(String, i64)>,
    /// fetch → consumer success, per record (ms).
    pub store_latency_ms: Vec<i64>,
}

pub struct Twin {
    pub opts: TwinOptions,
    pub sdk: aws_config::SdkConfig,
    pub functions: BTreeMap<String, Arc<FunctionHost>>,
    pub env: BTreeMap<String, HashMap<String, String>>,
    pub mappings: Vec<Mapping>,
    pub schedules: Vec<Schedule>,
    pub progress: Arc<Progress>,
    pub observed: Arc<Mutex<Observed>>,
    pub proxy: Option<Arc<FaultProxy>>,
    /// For the DynamoDB Streams API (see `streams_call`).
    http: reqwest::Client,
    stop_schedules: Arc<AtomicBool>,
    /// Per (mapping, shard), the last sequence number delivered: a later `drain` resumes there.
    positions: Mutex<HashMap<(String, String), String>>,
    /// Every raw record put on the stream by `put_raw` (the injected ones included), in order.
    pub put_log: Mutex<Vec<Vec<u8>>>,
}

fn last_segment(arn: &str, sep: char) -> String {
    arn.rsplit(sep).next().unwrap_or(arn).to_string()
}

/// `rate(5 minutes)` → 300 s. `cron(...)` is fired every hour of twin time; `at(...)` once.
pub fn schedule_period(expression: &str) -> Option<Duration> {
    let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let mut parts = inner.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    let unit = parts.next()?;
    let secs = match unit.trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n * secs))
}

/// Lambda event filtering for Kinesis: a pattern's `data` keys are matched against the
/// record's JSON data; values are lists of allowed exact values. (The subset pricewire uses:
/// exact-value lists, nested objects.)
pub fn filter_matches(pattern: &Value, data: &Value) -> bool {
    fn matches(p: &Value, d: &Value) -> bool {
        match p {
            Value::Object(map) => map
                .iter()
                .all(|(k, sub)| d.get(k).is_some_and(|v| matches(sub, v))),
            Value::Array(allowed) => allowed.iter().any(|a| a == d),
            other => other == d,
        }
    }
    match pattern.get("data") {
        Some(p) => matches(p, data),
        None => true,
    }
}

/// Lambda event filtering for DynamoDB Streams: the pattern is matched against the whole
/// stream record (`eventName`, `dynamodb.Keys`, `dynamodb.NewImage`, …); values are lists of
/// allowed exact values or `{"prefix": …}`. (The subset pricewire uses.)
pub fn table_filter_matches(pattern: &Value, record: &Value) -> bool {
    fn allowed(a: &Value, d: &Value) -> bool {
        match (a.get("prefix").and_then(Value::as_str), d.as_str()) {
            (Some(prefix), Some(text)) => text.starts_with(prefix),
            (Some(_), None) => false,
            _ => a == d,
        }
    }
    fn matches(p: &Value, d: &Value) -> bool {
        match p {
            Value::Object(map) => map
                .iter()
                .all(|(k, sub)| d.get(k).is_some_and(|v| matches(sub, v))),
            Value::Array(list) => list.iter().any(|a| allowed(a, d)),
            other => other == d,
        }
    }
    matches(pattern, record)
}

/// Whether a mapping reads a DynamoDB stream (else a Kinesis stream).
pub fn is_table_stream(arn: &str) -> bool {
    arn.starts_with("arn:aws:dynamodb:")
}

/// The function's release `bootstrap`: taken out of the very zip Terraform deployed
/// (`<lambda_dir>/<fn>/bootstrap.zip`), or the bare binary if cargo-lambda left one.
pub fn release_binary(
    lambda_dir: &std::path::Path,
    function: &str,
    work_dir: &std::path::Path,
) -> Result<PathBuf, String> {
    let zip = lambda_dir.join(function).join("bootstrap.zip");
    if zip.exists() {
        let dir = work_dir.join("bin").join(function);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let status = std::process::Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(&zip)
            .arg(&dir)
            .status()
            .map_err(|e| format!("unzip {}: {e}", zip.display()))?;
        let binary = dir.join("bootstrap");
        if !status.success() || !binary.exists() {
            return Err(format!("{} holds no bootstrap", zip.display()));
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        return Ok(binary);
    }
    let bare = lambda_dir.join(function).join("bootstrap");
    if bare.exists() {
        Ok(bare)
    } else {
        Err(format!(
            "no release build of {function} in {} (make build)",
            lambda_dir.display()
        ))
    }
}

#[derive(Clone)]
struct Rec {
    seq: String,
    partition_key: String,
    data: Vec<u8>,
    arrival: DateTime<Utc>,
}

impl Twin {
    /// Reads back what Terraform created and starts every function's `bootstrap`.
    pub async fn discover(opts: TwinOptions) -> Result<Twin, String> {
        let sdk = pricewire_pipeline::aws::emulator(&opts.endpoint, &opts.region).await;
        let lambda = aws_sdk_lambda::Client::new(&sdk);
        let scheduler = aws_sdk_scheduler::Client::new(&sdk);
        let prefix = format!("{}-", opts.name);
        let listed = lambda.list_functions().send().await.map_err(|e| {
            format!(
                "ListFunctions: {}",
                aws_sdk_lambda::error::DisplayErrorContext(&e)
            )
        })?;
        let mut functions = BTreeMap::new();
        let mut env = BTreeMap::new();
        let mut arns: BTreeMap<String, String> = BTreeMap::new();
        std::fs::create_dir_all(opts.work_dir.join("logs")).map_err(|e| e.to_string())?;
        let proxy = opts
            .faults
            .clone()
            .map(|plan| FaultProxy::new(opts.endpoint.clone(), plan));
        for f in listed.functions() {
            let Some(name) = f.function_name() else {
                continue;
            };
            let Some(short) = name.strip_prefix(&prefix) else {
                continue;
            };
            let config = lambda
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "GetFunctionConfiguration {name}: {}",
                        aws_sdk_lambda::error::DisplayErrorContext(&e)
                    )
                })?;
            let vars: HashMap<String, String> = config
                .environment()
                .and_then(|e| e.variables())
                .cloned()
                .unwrap_or_default();
            let mut process_env: Vec<(String, String)> =
                vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let endpoint = match &proxy {
                Some(p) => format!(
                    "http://{}",
                    p.listen(short)
                        .await
                        .map_err(|e| format!("fault proxy: {e}"))?
                ),
                None => opts.endpoint.clone(),
            };
            process_env.extend([
                ("AWS_ENDPOINT_URL".to_string(), endpoint),
                ("AWS_REGION".to_string(), opts.region.clone()),
                ("AWS_DEFAULT_REGION".to_string(), opts.region.clone()),
                ("AWS_ACCESS_KEY_ID".to_string(), "test".to_string()),
                ("AWS_SECRET_ACCESS_KEY".to_string(), "test".to_string()),
            ]);
            let bootstrap = release_binary(&opts.lambda_dir, short, &opts.work_dir)?;
            let spec = FunctionSpec {
                name: name.to_string(),
                bootstrap,
                args: vec![],
                env: process_env,
                memory_mb: config.memory_size().unwrap_or(128),
                timeout: Duration::from_secs(config.timeout().unwrap_or(3).max(1) as u64),
                log_file: opts.work_dir.join("logs").join(format!("{short}.log")),
            };
            let host = FunctionHost::start(spec, &opts.region)
                .await
                .map_err(|e| format!("start {name}: {e}"))?;
            env.insert(name.to_string(), vars);
            arns.insert(
                name.to_string(),
                config.function_arn().unwrap_or(name).to_string(),
            );
            functions.insert(name.to_string(), host);
        }
        if let Some(p) = &proxy {
            let by_tag: HashMap<String, Arc<FunctionHost>> = functions
                .iter()
                .map(|(name, h)| {
                    (
                        name.strip_prefix(&prefix).unwrap_or(name).to_string(),
                        h.clone(),
                    )
                })
                .collect();
            p.on_kill(move |tag| {
                if let Some(h) = by_tag.get(tag) {
                    eprintln!(
                        "twin: killing {tag} (pid {:?}) in the middle of its batch",
                        h.pid()
                    );
                    h.kill_now();
                }
            });
        }
        if functions.is_empty() {
            return Err(format!(
                "no functions named {prefix}* in the emulator: was terraform applied?"
            ));
        }

        let mut mappings = Vec::new();
        for name in functions.keys() {
            // By ARN: moto matches FunctionName only against the full ARN.
            let listed = lambda
                .list_event_source_mappings()
                .function_name(&arns[name])
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "ListEventSourceMappings: {}",
                        aws_sdk_lambda::error::DisplayErrorContext(&e)
                    )
                })?;
            for m in listed.event_source_mappings() {
                let filters = m
                    .filter_criteria()
                    .map(|f| {
                        f.filters()
                            .iter()
                            .filter_map(|f| f.pattern())
                            .filter_map(|p| serde_json::from_str(p).ok())
                            .collect()
                    })
                    .unwrap_or_default();
                mappings.push(Mapping {
                    uuid: m.uuid().unwrap_or_default().to_string(),
                    function: name.clone(),
                    stream_arn: m.event_source_arn().unwrap_or_default().to_string(),
                    batch_size: m.batch_size().unwrap_or(100).max(1) as usize,
                    window: Duration::from_secs(
                        m.maximum_batching_window_in_seconds().unwrap_or(0).max(0) as u64,
                    ),
                    starting_position: m
                        .starting_position()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_else(|| "TRIM_HORIZON".into()),
                    bisect: m.bisect_batch_on_function_error().unwrap_or(false),
                    max_retries: m.maximum_retry_attempts().map(i64::from).unwrap_or(-1),
                    max_record_age: m
                        .maximum_record_age_in_seconds()
                        .map(i64::from)
                        .unwrap_or(-1),
                    on_failure: m
                        .destination_config()
                        .and_then(|d| d.on_failure())
                        .and_then(|o| o.destination())
                        .map(str::to_string),
                    report_item_failures: m
                        .function_response_types()
                        .iter()
                        .any(|t| t.as_str() == "ReportBatchItemFailures"),
                    filters,
                });
            }
        }

        let mut schedules = Vec::new();
        let groups = scheduler.list_schedule_groups().send().await.map_err(|e| {
            format!(
                "ListScheduleGroups: {}",
                aws_sdk_scheduler::error::DisplayErrorContext(&e)
            )
        })?;
        for g in groups.schedule_groups() {
            let Some(group) = g.name() else { continue };
            let listed = scheduler
                .list_schedules()
                .group_name(group)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "ListSchedules: {}",
                        aws_sdk_scheduler::error::DisplayErrorContext(&e)
                    )
                })?;
            for s in listed.schedules() {
                let Some(sname) = s.name() else { continue };
                let full = scheduler
                    .get_schedule()
                    .name(sname)
                    .group_name(group)
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "GetSchedule {sname}: {}",
                            aws_sdk_scheduler::error::DisplayErrorContext(&e)
                        )
                    })?;
                let Some(target) = full.target() else {
                    continue;
                };
                let function = last_segment(target.arn(), ':');
                if !functions.contains_key(&function)
                    || full.state().is_some_and(|s| s.as_str() == "DISABLED")
                {
                    continue;
                }
                let invoke_config = lambda
                    .get_function_event_invoke_config()
                    .function_name(&function)
                    .send()
                    .await
                    .ok();
                schedules.push(Schedule {
                    async_retries: invoke_config
                        .as_ref()
                        .and_then(|c| c.maximum_retry_attempts())
                        .map(i64::from)
                        .unwrap_or(2),
                    async_failure: invoke_config
                        .as_ref()
                        .and_then(|c| c.destination_config())
                        .and_then(|d| d.on_failure())
                        .and_then(|o| o.destination())
                        .map(str::to_string),
                    name: sname.to_string(),
                    expression: full.schedule_expression().unwrap_or_default().to_string(),
                    input: target
                        .input()
                        .and_then(|i| serde_json::from_str(i).ok())
                        .unwrap_or(Value::Null),
                    function,
                    max_retries: target
                        .retry_policy()
                        .and_then(|r| r.maximum_retry_attempts())
                        .map(i64::from)
                        .unwrap_or(185),
                    dead_letter: target
                        .dead_letter_config()
                        .and_then(|d| d.arn())
                        .map(str::to_string),
                });
            }
        }
        Ok(Twin {
            opts,
            sdk,
            functions,
            env,
            mappings,
            schedules,
            progress: Arc::default(),
            observed: Arc::default(),
            proxy,
            http: reqwest::Client::new(),
            stop_schedules: Arc::default(),
            positions: Mutex::default(),
            put_log: Mutex::default(),
        })
    }

    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (name, f) in &self.functions {
            out.push_str(&format!(
                "  function  {name}: {} MB, timeout {:?}, {} env vars\n",
                f.spec.memory_mb,
                f.spec.timeout,
                self.env[name].len()
            ));
        }
        for m in &self.mappings {
            out.push_str(&format!(
                "  mapping   {} ← {}: batch {}, window {:?}, {}, bisect {}, retries {}, max age {}s, on-failure {}, {}{}\n",
                m.function, last_segment(&m.stream_arn, '/'), m.batch_size, m.window, m.starting_position, m.bisect, m.max_retries, m.max_record_age,
                m.on_failure.as_deref().map(|a| last_segment(a, ':')).unwrap_or_else(|| "none".into()),
                if m.report_item_failures { "ReportBatchItemFailures" } else { "whole-batch" },
                if m.filters.is_empty() { String::new() } else { format!(", filter {}", Value::Array(m.filters.clone())) }
            ));
        }
        for s in &self.schedules {
            out.push_str(&format!(
                "  schedule  {}: {} → {} (async retries {}, on failure {}; invoke retries {}), input {}\n",
                s.name,
                s.expression,
                s.function,
                s.async_retries,
                s.async_failure.as_deref().map(|a| last_segment(a, ':')).unwrap_or_else(|| "none".into()),
                s.max_retries,
                s.input
            ));
        }
        out
    }

    /// Sends a failure record to an SQS destination given by ARN (queue name = last segment).
    async fn send_to(&self, arn: &str, body: &Value) {
        let sqs = pricewire_pipeline::aws::sqs(&self.sdk);
        let url = sqs
            .get_queue_url()
            .queue_name(last_segment(arn, ':'))
            .send()
            .await
            .ok()
            .and_then(|o| o.queue_url().map(str::to_string));
        let sent = match url {
            Some(url) => sqs
                .send_message()
                .queue_url(url)
                .message_body(body.to_string())
                .send()
                .await
                .is_ok(),
            None => false,
        };
        if !sent {
            eprintln!("twin: could not deliver a failure record to {arn}");
        }
    }

    /// Fires one schedule: an asynchronous invoke with its input. A function error is
    /// retried as Lambda retries async events (its event-invoke config: up to 2 retries,
    /// 1 and 2 minutes apart, accelerated), then the event goes to the function's async
    /// on-failure destination.
    async fn fire(self: &Arc<Self>, s: &Schedule) {
        let host = &self.functions[&s.function];
        self.progress.fired.fetch_add(1, Ordering::Relaxed);
        let attempts = s.async_retries.clamp(0, 2) + 1;
        let mut last = None;
        for attempt in 0..attempts {
            match host.invoke(&s.input).await {
                Outcome::Response(summary) => {
                    let n = |k: &str| summary.get(k).and_then(Value::as_u64).unwrap_or(0);
                    self.progress
                        .fetched
                        .fetch_add(n("fetched"), Ordering::Relaxed);
                    self.progress.put.fetch_add(n("put"), Ordering::Relaxed);
                    self.progress
                        .quarantined
                        .fetch_add(n("quarantined"), Ordering::Relaxed);
                    self.progress
                        .upstream_retries
                        .fetch_add(n("retries"), Ordering::Relaxed);
                    return;
                }
                other => {
                    self.progress
                        .collector_errors
                        .fetch_add(1, Ordering::Relaxed);
                    last = Some(other);
                    if attempt + 1 < attempts {
                        tokio::time::sleep(Duration::from_secs_f64(
                            (60.0 * 2f64.powi(attempt as i32)) / self.opts.speed,
                        ))
                        .await;
                    }
                }
            }
        }
        if let Some(dlq) = &s.dead_letter {
            self.send_to(
                dlq,
                &json!({"schedule": s.name, "input": s.input, "error": format!("{last:?}")}),
            )
            .await;
        }
    }

    async fn run_schedule(self: Arc<Self>, s: Schedule) {
        let period = schedule_period(&s.expression)
            .map(|p| Duration::from_secs_f64(p.as_secs_f64() / self.opts.speed));
        let mut tasks = Vec::new();
        loop {
            if self.stop_schedules.load(Ordering::Relaxed) {
                break;
            }
            let me = self.clone();
            let sched = s.clone();
            tasks.push(tokio::spawn(async move { me.fire(&sched).await }));
            let Some(period) = period else { break };
            let until = Instant::now() + period;
            while Instant::now() < until && !self.stop_schedules.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(50).min(period)).await;
            }
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// The event Lambda gives the function for a batch of the mapping's stream.
    fn event(&self, m: &Mapping, shard: &str, records: &[Rec]) -> Value {
        if !is_table_stream(&m.stream_arn) {
            return self.kinesis_event(m, shard, records);
        }
        let records: Vec<Value> = records
            .iter()
            .map(|r| serde_json::from_slice(&r.data).unwrap_or(Value::Null))
            .collect();
        json!({ "Records": records })
    }

    fn kinesis_event(&self, m: &Mapping, shard: &str, records: &[Rec]) -> Value {
        let mut event = KinesisEvent::default();
        event.records = records
            .iter()
            .map(|r| {
                let mut e = event_record(&r.seq, &r.partition_key, r.data.clone());
                e.event_source_arn = Some(m.stream_arn.clone());
                e.event_id = Some(format!("{shard}:{}", r.seq));
                e.aws_region = Some(self.opts.region.clone());
                e.kinesis.approximate_arrival_timestamp =
                    aws_lambda_events::encodings::SecondTimestamp(r.arrival);
                e
            })
            .collect();
        serde_json::to_value(&event).unwrap_or(Value::Null)
    }

    fn record_success(&self, m: &Mapping, records: &[Rec]) {
        let consumer = m.function.ends_with("-consumer");
        if consumer {
            self.progress
                .stored
                .fetch_add(records.len() as u64, Ordering::Relaxed);
        } else {
            self.progress
                .evaluated
                .fetch_add(records.len() as u64, Ordering::Relaxed);
        }
        let now = Utc::now();
        if let Ok(mut o) = self.observed.lock() {
            for r in records {
                // Only what the consumer takes as a record (poison is set aside).
                if let Some(e) = Envelope::from_slice(&r.data)
                    .ok()
                    .filter(|e| e.verify_id().is_ok())
                {
                    if consumer {
                        o.store_latency_ms
                            .push((now - e.fetched_at).num_milliseconds());
                    }
                    o.fetches
                        .insert((e.id.clone(), e.fetched_at.timestamp_millis()));
                    let at = o.fetched_at.entry(e.id).or_insert(e.fetched_at);
                    *at = (*at).max(e.fetched_at);
                }
            }
        }
    }

    async fn discard(
        &self,
        m: &Mapping,
        shard: &str,
        records: &[Rec],
        condition: &str,
        invokes: u32,
        function_error: bool,
    ) {
        self.progress
            .discarded
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return;
        };
        if let Some(dest) = &m.on_failure {
            let info = if is_table_stream(&m.stream_arn) {
                "DDBStreamBatchInfo"
            } else {
                "KinesisBatchInfo"
            };
            let mut failure = json!({
                "requestContext": {"requestId": format!("twin-{}", m.uuid), "functionArn": format!("arn:aws:lambda:{}:123456789012:function:{}", self.opts.region, m.function),
                    "condition": condition, "approximateInvokeCount": invokes},
                "responseContext": if function_error {
                    json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"})
                } else {
                    json!({"statusCode": 200, "executedVersion": "$LATEST"})
                },
                "version": "1.0",
                "timestamp": Utc::now().to_rfc3339(),
            });
            failure[info] = json!({"shardId": shard, "startSequenceNumber": first.seq, "endSequenceNumber": last.seq,
                "approximateArrivalOfFirstRecord": first.arrival.to_rfc3339(), "approximateArrivalOfLastRecord": last.arrival.to_rfc3339(),
                "batchSize": records.len(), "streamArn": m.stream_arn});
            self.send_to(dest, &failure).await;
        }
    }

    /// Delivers one batch with Lambda's stream semantics; returns when every record of it is
    /// either processed or discarded to the on-failure destination.
    async fn deliver(&self, m: &Mapping, shard: &str, batch: Vec<Rec>) {
        let host = &self.functions[&m.function];
        // (records, retries used, invocations)
        let mut work: VecDeque<(Vec<Rec>, i64, u32)> = VecDeque::from([(batch, 0, 0)]);
        while let Some((pending, retries, invokes)) = work.pop_front() {
            if pending.is_empty() {
                continue;
            }
            let oldest = pending[0].arrival;
            if m.max_record_age >= 0 && (Utc::now() - oldest).num_seconds() > m.max_record_age {
                self.discard(m, shard, &pending, "RecordAgeExceeded", invokes, false)
                    .await;
                continue;
            }
            let outcome = host.invoke(&self.event(m, shard, &pending)).await;
            let failed_from: Option<usize> = match &outcome {
                Outcome::Response(body) if m.report_item_failures => {
                    let ids: Option<Vec<String>> = body
                        .get("batchItemFailures")
                        .and_then(Value::as_array)
                        .map(|items| {
                            items
                                .iter()
                                .map(|i| {
                                    i.get("itemIdentifier")
                                        .and_then(Value::as_str)
                                        .unwrap_or("")
                                        .to_string()
                                })
                                .collect()
                        });
                    match ids {
                        None => None,
                        Some(ids) if ids.is_empty() => None,
                        Some(ids) => {
                            // An identifier that is not in the batch makes the whole batch a failure.
                            let positions: Option<Vec<usize>> = ids
                                .iter()
                                .map(|id| pending.iter().position(|r| &r.seq == id))
                                .collect();
                            Some(positions.and_then(|p| p.into_iter().min()).unwrap_or(0))
                        }
                    }
                }
                Outcome::Response(_) => None,
                _ => Some(usize::MAX),
            };
            match failed_from {
                None => self.record_success(m, &pending),
                Some(usize::MAX) if m.bisect && pending.len() > 1 => {
                    // Function error: split in two; splitting does not use the retry quota.
                    self.progress.bisections.fetch_add(1, Ordering::Relaxed);
                    let mut first = pending;
                    let second = first.split_off(first.len() / 2);
                    work.push_front((second, retries, invokes + 1));
                    work.push_front((first, retries, invokes + 1));
                }
                Some(from) => {
                    // A function error (no bisect possible) fails the whole batch.
                    let from = if from == usize::MAX {
                        0
                    } else {
                        from.min(pending.len())
                    };
                    let (done, rest) = pending.split_at(from);
                    if !done.is_empty() {
                        self.record_success(m, done);
                    }
                    let rest = rest.to_vec();
                    if m.max_retries >= 0 && retries >= m.max_retries {
                        let errored = !outcome.is_success();
                        self.discard(
                            m,
                            shard,
                            &rest,
                            "RetryAttemptsExhausted",
                            invokes + 1,
                            errored,
                        )
                        .await;
                    } else {
                        self.progress.batch_retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        work.push_front((rest, retries + 1, invokes + 1));
                    }
                }
            }
        }
    }

    /// What a poller does after each poll, for both kinds of stream: delivers a batch when
    /// the buffer holds a full one, the batching window has passed, or the stream drains;
    /// else waits. `true` when the shard is drained (nothing buffered, nothing fetched,
    /// caught up, and told to drain): the poller stops.
    #[allow(clippy::too_many_arguments)]
    async fn after_poll(
        &self,
        m: &Mapping,
        shard: &str,
        buffer: &mut VecDeque<Rec>,
        first_waiting: &mut Option<Instant>,
        fetched_any: bool,
        draining: bool,
        caught_up: bool,
    ) -> bool {
        if buffer.is_empty() {
            *first_waiting = None;
            if !fetched_any {
                if draining && caught_up {
                    return true;
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            return false;
        }
        let waited = first_waiting.get_or_insert_with(Instant::now).elapsed();
        let window = Duration::from_secs_f64(m.window.as_secs_f64() / self.opts.speed.max(1.0));
        if buffer.len() < m.batch_size && waited < window && !draining {
            tokio::time::sleep(POLL_INTERVAL.min(window)).await;
            return false;
        }
        let take = buffer.len().min(m.batch_size);
        let batch: Vec<Rec> = buffer.drain(..take).collect();
        *first_waiting = None;
        let last = batch.last().map(|r| r.seq.clone());
        self.deliver(m, shard, batch).await;
        if let (Some(last), Ok(mut p)) = (last, self.positions.lock()) {
            p.insert((m.uuid.clone(), shard.to_string()), last);
        }
        false
    }

    /// Polls one shard for one mapping until told to stop and the shard is drained.
    async fn poll_shard(
        self: Arc<Self>,
        m: Mapping,
        shard: String,
        draining: Arc<AtomicBool>,
        idle: Arc<AtomicU64>,
    ) {
        let kinesis = pricewire_pipeline::aws::kinesis(&self.sdk);
        let stream = last_segment(&m.stream_arn, '/');
        let resume = self
            .positions
            .lock()
            .ok()
            .and_then(|p| p.get(&(m.uuid.clone(), shard.clone())).cloned());
        let kind = if resume.is_some() {
            aws_sdk_kinesis::types::ShardIteratorType::AfterSequenceNumber
        } else if m.starting_position == "LATEST" {
            aws_sdk_kinesis::types::ShardIteratorType::Latest
        } else {
            aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon
        };
        let mut iterator = match kinesis
            .get_shard_iterator()
            .stream_name(&stream)
            .shard_id(&shard)
            .shard_iterator_type(kind)
            .set_starting_sequence_number(resume)
            .send()
            .await
        {
            Ok(o) => o.shard_iterator().map(str::to_string),
            Err(e) => {
                eprintln!(
                    "twin: GetShardIterator {stream}/{shard}: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(&e)
                );
                self.progress.poll_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let mut buffer: VecDeque<Rec> = VecDeque::new();
        let mut first_waiting: Option<Instant> = None;
        loop {
            let mut fetched_any = false;
            // Until a poll comes back empty *and* caught up, the shard is not drained.
            let mut caught_up = false;
            if let Some(it) = iterator.clone() {
                if buffer.len() < m.batch_size {
                    match kinesis
                        .get_records()
                        .shard_iterator(it)
                        .limit(GET_RECORDS_MAX)
                        .send()
                        .await
                    {
                        Ok(out) => {
                            caught_up = out.millis_behind_latest().unwrap_or(0) == 0;
                            for r in out.records() {
                                fetched_any = true;
                                let arrival = r
                                    .approximate_arrival_timestamp()
                                    .and_then(|t| {
                                        DateTime::from_timestamp(t.secs(), t.subsec_nanos())
                                    })
                                    .unwrap_or_else(Utc::now);
                                buffer.push_back(Rec {
                                    seq: r.sequence_number().to_string(),
                                    partition_key: r
                                        .partition_key()
                                        .unwrap_or_default()
                                        .to_string(),
                                    data: r.data().as_ref().to_vec(),
                                    arrival,
                                });
                            }
                            iterator = out.next_shard_iterator().map(str::to_string);
                        }
                        Err(e) => {
                            eprintln!(
                                "twin: GetRecords {stream}/{shard}: {}",
                                aws_sdk_kinesis::error::DisplayErrorContext(&e)
                            );
                            self.progress.poll_errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(POLL_INTERVAL).await;
                        }
                    }
                }
            } else {
                caught_up = true; // a closed shard has nothing more
            }
            // Filter criteria: records that match no filter are skipped (checkpointed) unseen.
            if !m.filters.is_empty() {
                let before = buffer.len();
                buffer.retain(|r| {
                    let data: Value = serde_json::from_slice(&r.data).unwrap_or(Value::Null);
                    m.filters.iter().any(|p| filter_matches(p, &data))
                });
                self.progress
                    .filtered
                    .fetch_add((before - buffer.len()) as u64, Ordering::Relaxed);
            }
            let draining_now = draining.load(Ordering::Relaxed);
            if self
                .after_poll(
                    &m,
                    &shard,
                    &mut buffer,
                    &mut first_waiting,
                    fetched_any,
                    draining_now,
                    caught_up,
                )
                .await
            {
                idle.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }

    /// One DynamoDB Streams API call to the emulator (`testkit::dynamodb_streams`).
    async fn streams_call(&self, op: &str, body: Value) -> Result<Value, String> {
        testkit::dynamodb_streams(&self.http, &self.opts.endpoint, &self.opts.region, op, body)
            .await
    }

    /// Polls one shard of a table's stream for one mapping until told to stop and the
    /// shard is drained, with the semantics of `poll_shard`.
    async fn poll_table_shard(
        self: Arc<Self>,
        m: Mapping,
        shard: String,
        draining: Arc<AtomicBool>,
    ) {
        let resume = self
            .positions
            .lock()
            .ok()
            .and_then(|p| p.get(&(m.uuid.clone(), shard.clone())).cloned());
        let mut request = json!({"StreamArn": m.stream_arn, "ShardId": shard});
        match &resume {
            Some(seq) => {
                request["ShardIteratorType"] = json!("AFTER_SEQUENCE_NUMBER");
                request["SequenceNumber"] = json!(seq);
            }
            None if m.starting_position == "LATEST" => {
                request["ShardIteratorType"] = json!("LATEST");
            }
            None => request["ShardIteratorType"] = json!("TRIM_HORIZON"),
        }
        let mut iterator = match self.streams_call("GetShardIterator", request).await {
            Ok(v) => v["ShardIterator"].as_str().map(str::to_string),
            Err(e) => {
                eprintln!("twin: {e}");
                self.progress.poll_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let mut buffer: VecDeque<Rec> = VecDeque::new();
        let mut first_waiting: Option<Instant> = None;
        loop {
            let mut fetched_any = false;
            if let Some(it) = iterator.clone() {
                if buffer.len() < m.batch_size {
                    match self
                        .streams_call(
                            "GetRecords",
                            json!({"ShardIterator": it, "Limit": TABLE_GET_RECORDS_MAX}),
                        )
                        .await
                    {
                        Ok(out) => {
                            for mut r in out["Records"].as_array().cloned().unwrap_or_default() {
                                fetched_any = true;
                                let seq = r["dynamodb"]["SequenceNumber"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_string();
                                let arrival = r["dynamodb"]["ApproximateCreationDateTime"]
                                    .as_f64()
                                    .and_then(|t| {
                                        DateTime::from_timestamp_millis((t * 1000.0) as i64)
                                    })
                                    .unwrap_or_else(Utc::now);
                                r["eventSourceARN"] = json!(m.stream_arn);
                                // Filter criteria: records matching no filter are skipped unseen.
                                if !m.filters.is_empty()
                                    && !m.filters.iter().any(|p| table_filter_matches(p, &r))
                                {
                                    self.progress.filtered.fetch_add(1, Ordering::Relaxed);
                                    if let Ok(mut p) = self.positions.lock() {
                                        p.insert((m.uuid.clone(), shard.clone()), seq);
                                    }
                                    continue;
                                }
                                buffer.push_back(Rec {
                                    seq,
                                    partition_key: String::new(),
                                    data: r.to_string().into_bytes(),
                                    arrival,
                                });
                            }
                            iterator = out["NextShardIterator"].as_str().map(str::to_string);
                        }
                        Err(e) => {
                            eprintln!("twin: {e}");
                            self.progress.poll_errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(POLL_INTERVAL).await;
                        }
                    }
                }
            }
            // A table stream has no MillisBehindLatest: an empty poll is caught up.
            let draining_now = draining.load(Ordering::Relaxed);
            if self
                .after_poll(
                    &m,
                    &shard,
                    &mut buffer,
                    &mut first_waiting,
                    fetched_any,
                    draining_now,
                    true,
                )
                .await
            {
                return;
            }
        }
    }

    /// One poller per (mapping, shard), each resuming where the last one stopped: those of
    /// Kinesis streams, then those of table streams (which drain after the Kinesis ones,
    /// when `tables_draining` is set: the consumer's writes are what they carry).
    async fn spawn_pollers(
        self: &Arc<Self>,
        draining: &Arc<AtomicBool>,
        tables_draining: &Arc<AtomicBool>,
    ) -> Result<
        (
            Vec<tokio::task::JoinHandle<()>>,
            Vec<tokio::task::JoinHandle<()>>,
        ),
        String,
    > {
        let kinesis = pricewire_pipeline::aws::kinesis(&self.sdk);
        let idle = Arc::new(AtomicU64::new(0));
        let mut pollers = Vec::new();
        let mut table_pollers = Vec::new();
        for m in &self.mappings {
            if is_table_stream(&m.stream_arn) {
                let described = self
                    .streams_call("DescribeStream", json!({"StreamArn": m.stream_arn}))
                    .await?;
                for s in described["StreamDescription"]["Shards"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    let Some(shard) = s["ShardId"].as_str() else {
                        continue;
                    };
                    table_pollers.push(tokio::spawn(self.clone().poll_table_shard(
                        m.clone(),
                        shard.to_string(),
                        tables_draining.clone(),
                    )));
                }
                continue;
            }
            let stream = last_segment(&m.stream_arn, '/');
            let shards = kinesis
                .list_shards()
                .stream_name(&stream)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "ListShards {stream}: {}",
                        aws_sdk_kinesis::error::DisplayErrorContext(&e)
                    )
                })?;
            for s in shards.shards() {
                pollers.push(tokio::spawn(self.clone().poll_shard(
                    m.clone(),
                    s.shard_id().to_string(),
                    draining.clone(),
                    idle.clone(),
                )));
            }
        }
        Ok((pollers, table_pollers))
    }

    /// Waits for the pollers to find their shards drained, at most `drain_timeout`.
    async fn wait_drained(&self, pollers: Vec<tokio::task::JoinHandle<()>>) -> Result<(), String> {
        let aborts: Vec<_> = pollers.iter().map(|p| p.abort_handle()).collect();
        let drained = tokio::time::timeout(self.opts.drain_timeout, async {
            for p in pollers {
                let _ = p.await;
            }
        })
        .await;
        for a in aborts {
            a.abort();
        }
        drained.map_err(|_| {
            format!(
                "the stream did not drain within {:?}",
                self.opts.drain_timeout
            )
        })
    }

    /// Puts `opts.inject` on the stream, as something other than the collector would.
    async fn inject(&self) -> Result<(), String> {
        self.put_raw(&self.opts.inject).await
    }

    /// Puts raw records on the collector's stream, in order; a record that is an envelope
    /// goes under its entity's partition key as the collector's would (one entity, one
    /// shard, in order), anything else under `injected-<i>`.
    pub async fn put_raw(&self, records: &[Vec<u8>]) -> Result<(), String> {
        let Some(stream) = self
            .mappings
            .iter()
            .find(|m| !is_table_stream(&m.stream_arn))
            .map(|m| last_segment(&m.stream_arn, '/'))
        else {
            return Ok(());
        };
        let kinesis = pricewire_pipeline::aws::kinesis(&self.sdk);
        for (i, data) in records.iter().enumerate() {
            let key = serde_json::from_slice::<Envelope>(data)
                .map(|e| collector::sink::partition_key(&e.key))
                .unwrap_or_else(|_| format!("injected-{i}"));
            kinesis
                .put_record()
                .stream_name(&stream)
                .partition_key(key)
                .data(aws_sdk_kinesis::primitives::Blob::new(data.clone()))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "PutRecord {stream}: {}",
                        aws_sdk_kinesis::error::DisplayErrorContext(&e)
                    )
                })?;
            if let Ok(mut log) = self.put_log.lock() {
                log.push(data.clone());
            }
        }
        Ok(())
    }

    /// Runs the stack: schedules for `duration`, then drains the stream.
    pub async fn run(self: Arc<Self>) -> Result<(), String> {
        let started = Instant::now();
        let draining = Arc::new(AtomicBool::new(false));
        let tables_draining = Arc::new(AtomicBool::new(false));
        let (pollers, table_pollers) = self.spawn_pollers(&draining, &tables_draining).await?;
        self.inject().await?;
        let schedulers: Vec<_> = self
            .schedules
            .iter()
            .map(|s| tokio::spawn(self.clone().run_schedule(s.clone())))
            .collect();
        let ticker = {
            let me = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    if !me.opts.quiet {
                        println!("  {}", me.progress_line(started.elapsed()));
                    }
                }
            })
        };
        tokio::time::sleep(self.opts.duration).await;
        self.stop_schedules.store(true, Ordering::Relaxed);
        for s in schedulers {
            let _ = s.await;
        }
        // Everything put is on the stream now: drain it, then what it wrote to the tables.
        draining.store(true, Ordering::Relaxed);
        let mut drained = self.wait_drained(pollers).await;
        tables_draining.store(true, Ordering::Relaxed);
        drained = drained.and(self.wait_drained(table_pollers).await);
        ticker.abort();
        if !self.opts.quiet {
            println!("  {}", self.progress_line(started.elapsed()));
        }
        drained
    }

    /// Delivers what was put on the stream since the last run or drain (a replay, a
    /// redrive), without firing schedules, until every shard is drained.
    pub async fn drain(self: Arc<Self>) -> Result<(), String> {
        let draining = Arc::new(AtomicBool::new(true));
        let tables_draining = Arc::new(AtomicBool::new(false));
        let (pollers, table_pollers) = self.spawn_pollers(&draining, &tables_draining).await?;
        let drained = self.wait_drained(pollers).await;
        tables_draining.store(true, Ordering::Relaxed);
        drained.and(self.wait_drained(table_pollers).await)
    }

    pub fn progress_line(&self, t: Duration) -> String {
        let p = &self.progress;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "t={:>4.1}s  runs {:>3} (errors {})  fetched {:>5}  put {:>5}  quarantined {:>3}  stored {:>5}  evaluated {:>5}  retried {:>3} (upstream {}, batches {}, bisected {})  discarded {}",
            t.as_secs_f64(), g(&p.fired), g(&p.collector_errors), g(&p.fetched), g(&p.put), g(&p.quarantined), g(&p.stored), g(&p.evaluated),
            g(&p.upstream_retries) + g(&p.batch_retries), g(&p.upstream_retries), g(&p.batch_retries), g(&p.bisections), g(&p.discarded)
        )
    }

    pub async fn shutdown(&self) {
        for f in self.functions.values() {
            f.shutdown().await;
        }
    }

    pub fn function_env(&self, suffix: &str, var: &str) -> Option<String> {
        self.env
            .get(&format!("{}-{suffix}", self.opts.name))
            .and_then(|e| e.get(var))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_rates_and_filters() {
        assert_eq!(
            schedule_period("rate(5 minutes)"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            schedule_period("rate(1 hour)"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(schedule_period("cron(0 * * * ? *)"), None);
        let pattern = json!({"data": {"kind": ["flight_price"]}});
        assert!(filter_matches(
            &pattern,
            &json!({"kind": "flight_price", "x": 1})
        ));
        assert!(!filter_matches(&pattern, &json!({"kind": "odds"})));
        assert!(!filter_matches(&pattern, &json!({})));
    }
}
