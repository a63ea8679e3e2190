//! Operator commands, against AWS and the local twin alike: `status`, `replay`, `redrive`.
//!
//! They find a stack's resources from its functions' configuration (the same environment
//! the functions read), so they need only the stack's `name` and AWS credentials.

use crate::progress::Progress;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::types::ShardIteratorType;
use chrono::{DateTime, Duration as Span, NaiveDate, Utc};
use collector::adapters::dynamodb::{BREAKER_PREFIX, CURSOR_PREFIX, HOLD_PREFIX, RUN_PREFIX};
use collector::adapters::kinesis::KinesisSink;
use collector::sink::{RecordSink, StreamRecord};
use pricewire_pipeline::adapters::dynamodb::CHECKPOINT_PREFIX;
use pricewire_pipeline::archive::{self, meta};
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::config;
use pricewire_pipeline::sources::settings::Sources;
use pricewire_pipeline::sources::{self, Normalised, Response};
use pricewire_pipeline::stream::POISON_NOTICE_KIND;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Functions whose dead-letter queues `status` and `redrive` know.
pub const QUEUES: &[&str] = &["collector", "consumer", "alerter", "scheduler"];
/// Functions that read the Kinesis stream (and checkpoint it). The alerter reads the prices
/// table's change stream, whose position Lambda keeps (its IteratorAge alarm watches it).
pub const READERS: &[&str] = &["consumer"];
/// A record reaches the stream at most a Lambda timeout (15 minutes) after it was fetched:
/// how far before a failure record's first arrival the archive fallback looks.
const FETCH_TO_ARRIVAL_MAX: Span = Span::minutes(15);
/// SQS ReceiveMessage: at most 10 messages per call.
const SQS_RECEIVE_MAX: i32 = 10;
/// Kinesis GetRecords: at most 10,000 records per call.
const GET_RECORDS_MAX: i32 = 10_000;
/// How long a received dead-letter message stays invisible while it is redriven.
const REDRIVE_VISIBILITY_SECONDS: i32 = 120;

/// One stack's resources, read from its functions' environment.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub name: String,
    pub stream: String,
    pub archive_bucket: String,
    pub prices_table: String,
    pub state_table: String,
    /// function → dead-letter queue URL.
    pub dlqs: BTreeMap<String, String>,
    /// The collector's source entries (how to normalise an archived answer of each).
    pub sources: Sources,
    /// The alerter's rules (which claims to look for in a history).
    pub rules: Vec<alerter::rules::RuleSpec>,
}

fn err<E: std::error::Error + 'static>(what: &str) -> impl Fn(E) -> String + '_ {
    move |e| one_line(what, &e)
}

/// Longest error line the CLI prints (an SDK error's sources can carry whole responses).
const ERROR_LINE_MAX: usize = 400;

/// An error and its sources as one line: `what: error: cause: cause`, repeats dropped
/// (the SDK's wrappers often repeat their source), whitespace folded, at most
/// `ERROR_LINE_MAX` characters.
pub fn one_line(what: &str, e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(e) = next {
        let text = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    let line = format!("{what}: {}", parts.join(": "));
    match line.char_indices().nth(ERROR_LINE_MAX) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

/// Whether a request never left because the SDK's credential chain found nothing.
fn is_missing_credentials(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.to_string().contains("no credentials found in chain") {
            return true;
        }
        next = e.source();
    }
    false
}

impl Stack {
    pub async fn discover(sdk: &aws_config::SdkConfig, name: &str) -> Result<Stack, String> {
        let lambda = aws_sdk_lambda::Client::new(sdk);
        let mut env: HashMap<String, String> = HashMap::new();
        for f in ["collector", "consumer", "alerter"] {
            let fname = format!("{name}-{f}");
            let c = match lambda
                .get_function_configuration()
                .function_name(&fname)
                .send()
                .await
            {
                Ok(c) => c,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
                    return Err(format!(
                        "no stack {name:?} in {region}: there is no function {fname} (check --name, --region or --endpoint)"
                    ));
                }
                Err(e) if e.as_service_error().is_none() && is_missing_credentials(&e) => {
                    return Err(
                        "no AWS credentials: none in the environment, profile, web identity, container or instance (set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give --endpoint for the twin)"
                            .to_string(),
                    );
                }
                Err(e) => return Err(err(&format!("GetFunctionConfiguration {fname}"))(e)),
            };
            if let Some(vars) = c.environment().and_then(|e| e.variables()) {
                for (k, v) in vars {
                    env.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        let var = |k: &str| {
            env.get(k)
                .cloned()
                .ok_or_else(|| format!("no function of stack {name} sets {k}"))
        };
        let sqs = pricewire_pipeline::aws::sqs(sdk);
        let mut dlqs = BTreeMap::new();
        for f in QUEUES {
            if let Ok(out) = sqs
                .get_queue_url()
                .queue_name(format!("{name}-{f}-dlq"))
                .send()
                .await
            {
                if let Some(url) = out.queue_url() {
                    dlqs.insert(f.to_string(), url.to_string());
                }
            }
        }
        let sources = Sources::parse(
            env.get(collector::config::SOURCES)
                .map(String::as_str)
                .unwrap_or("{}"),
        )
        .map_err(|e| format!("stack {name}: {}: {e}", collector::config::SOURCES))?;
        let rules = serde_json::from_str(
            env.get(alerter::config::ALERT_RULES)
                .map(String::as_str)
                .unwrap_or("[]"),
        )
        .map_err(|e| format!("stack {name}: {}: {e}", alerter::config::ALERT_RULES))?;
        Ok(Stack {
            name: name.to_string(),
            stream: var(collector::config::STREAM_NAME)?,
            archive_bucket: var(config::ARCHIVE_BUCKET)?,
            prices_table: var(consumer::config::PRICES_TABLE)?,
            state_table: var(config::STATE_TABLE)?,
            dlqs,
            sources,
            rules,
        })
    }
}

/// Kinesis sequence numbers are decimal strings of up to 128 bits: compare as numbers.
pub fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    (a.len(), a).cmp(&(b.len(), b))
}

// ---------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReaderLag {
    /// The last sequence number the reader checkpointed, if it has read this shard.
    pub checkpoint: Option<String>,
    /// Age of the oldest record it has not read yet (its iterator age); 0 when caught up.
    pub behind_ms: i64,
    pub caught_up: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ShardStatus {
    pub shard_id: String,
    pub open: bool,
    /// reader → lag.
    pub lag: BTreeMap<String, ReaderLag>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub stack: String,
    pub stream: String,
    pub stream_status: String,
    pub retention_hours: i32,
    pub shards: Vec<ShardStatus>,
    /// queue → messages waiting (visible + in flight).
    pub dlq_depth: BTreeMap<String, i64>,
    /// host → (phase, consecutive failures, open until).
    pub breakers: BTreeMap<String, BreakerView>,
    /// job → last successful run.
    pub runs: BTreeMap<String, RunView>,
    /// job → where an interrupted walk resumes (`page 3`, `cursor …`).
    pub cursors: BTreeMap<String, String>,
    /// `source#<name>` / `host#<host>` → a hold in force (quota spent, banned).
    pub holds: BTreeMap<String, HoldView>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HoldView {
    pub until: Option<DateTime<Utc>>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BreakerView {
    pub phase: String,
    pub failures: i64,
    pub open_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunView {
    pub at: Option<DateTime<Utc>>,
    pub records_out: i64,
    pub pages: i64,
    pub complete: bool,
}

type Item = HashMap<String, AttributeValue>;

fn num(item: &Item, k: &str) -> i64 {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn text(item: &Item, k: &str) -> String {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

fn at_ms(ms: i64) -> Option<DateTime<Utc>> {
    (ms > 0)
        .then(|| DateTime::from_timestamp_millis(ms))
        .flatten()
}

/// The state table's operational items (not the alert claims): one filtered scan.
async fn state_items(db: &aws_sdk_dynamodb::Client, table: &str) -> Result<Vec<Item>, String> {
    let mut out = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let page = db
            .scan()
            .table_name(table)
            .filter_expression(
                "begins_with(pk, :b) OR begins_with(pk, :r) OR begins_with(pk, :c) OR begins_with(pk, :k) OR begins_with(pk, :h)",
            )
            .expression_attribute_values(":h", AttributeValue::S(HOLD_PREFIX.into()))
            .expression_attribute_values(":b", AttributeValue::S(BREAKER_PREFIX.into()))
            .expression_attribute_values(":r", AttributeValue::S(RUN_PREFIX.into()))
            .expression_attribute_values(":c", AttributeValue::S(CHECKPOINT_PREFIX.into()))
            .expression_attribute_values(":k", AttributeValue::S(CURSOR_PREFIX.into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(err(&format!("Scan {table}")))?;
        out.extend(page.items().iter().cloned());
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(out),
        }
    }
}

pub async fn status(sdk: &aws_config::SdkConfig, stack: &Stack) -> Result<Status, String> {
    let kinesis = pricewire_pipeline::aws::kinesis(sdk);
    let db = pricewire_pipeline::aws::dynamodb(sdk);
    let sqs = pricewire_pipeline::aws::sqs(sdk);
    let summary = kinesis
        .describe_stream_summary()
        .stream_name(&stack.stream)
        .send()
        .await
        .map_err(err("DescribeStreamSummary"))?;
    let mut st = Status {
        stack: stack.name.clone(),
        stream: stack.stream.clone(),
        ..Default::default()
    };
    if let Some(d) = summary.stream_description_summary() {
        st.stream_status = d.stream_status().as_str().to_string();
        st.retention_hours = d.retention_period_hours();
    }

    let mut checkpoints: BTreeMap<(String, String), String> = BTreeMap::new();
    for item in state_items(&db, &stack.state_table).await? {
        let pk = text(&item, "pk");
        if let Some(host) = pk.strip_prefix(BREAKER_PREFIX) {
            st.breakers.insert(
                host.to_string(),
                BreakerView {
                    phase: text(&item, "phase"),
                    failures: num(&item, "failures"),
                    open_until: at_ms(num(&item, "open_until_ms")),
                },
            );
        } else if let Some(job) = pk.strip_prefix(RUN_PREFIX) {
            st.runs.insert(
                job.to_string(),
                RunView {
                    at: at_ms(num(&item, "at_ms")),
                    records_out: num(&item, "records_out"),
                    pages: num(&item, "pages"),
                    complete: item
                        .get("complete")
                        .and_then(|v| v.as_bool().ok())
                        .copied()
                        .unwrap_or(false),
                },
            );
        } else if let Some(job) = pk.strip_prefix(CURSOR_PREFIX) {
            let next = serde_json::from_str::<sources::Step>(&text(&item, "next"));
            let at = match next {
                Ok(sources::Step::Page { page }) => format!("page {page}"),
                Ok(sources::Step::Token { token }) => format!("cursor {token}"),
                Ok(sources::Step::Start) => "the start".to_string(),
                Ok(sources::Step::Window { from_ms }) => format!(
                    "the window from {}",
                    at_ms(from_ms).map_or_else(|| from_ms.to_string(), |t| t.to_rfc3339())
                ),
                Err(_) => format!("page {}", num(&item, "next_page")),
            };
            st.cursors.insert(job.to_string(), at);
        } else if let Some(scope) = pk.strip_prefix(HOLD_PREFIX) {
            let until = at_ms(num(&item, "until_ms"));
            if until.is_some_and(|t| t > Utc::now()) {
                st.holds.insert(
                    scope.to_string(),
                    HoldView {
                        until,
                        reason: text(&item, "reason"),
                    },
                );
            }
        } else if let Some(rest) = pk.strip_prefix(CHECKPOINT_PREFIX) {
            if let Some((function, shard)) = rest.split_once('#') {
                checkpoints.insert(
                    (function.to_string(), shard.to_string()),
                    text(&item, "sequence_number"),
                );
            }
        }
    }

    let shards = kinesis
        .list_shards()
        .stream_name(&stack.stream)
        .send()
        .await
        .map_err(err("ListShards"))?;
    let now = Utc::now();
    for s in shards.shards() {
        let mut shard = ShardStatus {
            shard_id: s.shard_id().to_string(),
            open: s
                .sequence_number_range()
                .is_some_and(|r| r.ending_sequence_number().is_none()),
            lag: BTreeMap::new(),
        };
        for reader in READERS {
            let checkpoint = checkpoints
                .get(&(reader.to_string(), shard.shard_id.clone()))
                .cloned();
            // The oldest record the reader has not read: just after its checkpoint.
            let it = kinesis
                .get_shard_iterator()
                .stream_name(&stack.stream)
                .shard_id(&shard.shard_id)
                .shard_iterator_type(if checkpoint.is_some() {
                    ShardIteratorType::AfterSequenceNumber
                } else {
                    ShardIteratorType::TrimHorizon
                })
                .set_starting_sequence_number(checkpoint.clone())
                .send()
                .await
                .map_err(err("GetShardIterator"))?;
            let next = match it.shard_iterator() {
                Some(i) => kinesis
                    .get_records()
                    .shard_iterator(i)
                    .limit(1)
                    .send()
                    .await
                    .map_err(err("GetRecords"))?
                    .records()
                    .first()
                    .and_then(|r| r.approximate_arrival_timestamp())
                    .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                None => None,
            };
            shard.lag.insert(
                reader.to_string(),
                ReaderLag {
                    checkpoint,
                    behind_ms: next
                        .map(|t| (now - t).num_milliseconds().max(0))
                        .unwrap_or(0),
                    caught_up: next.is_none(),
                },
            );
        }
        st.shards.push(shard);
    }

    for (f, url) in &stack.dlqs {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            )
            .send()
            .await
            .map_err(err("GetQueueAttributes"))?;
        let depth: i64 = attrs
            .attributes()
            .map(|a| a.values().filter_map(|v| v.parse::<i64>().ok()).sum())
            .unwrap_or(0);
        st.dlq_depth
            .insert(format!("{}-{f}-dlq", stack.name), depth);
    }
    Ok(st)
}

pub fn print_status(s: &Status) {
    println!(
        "stack {}: stream {} ({}, {} h retention, {} shards)",
        s.stack,
        s.stream,
        s.stream_status,
        s.retention_hours,
        s.shards.len()
    );
    for shard in &s.shards {
        let lags: Vec<String> = shard
            .lag
            .iter()
            .map(|(r, l)| {
                if l.caught_up {
                    format!("{r} caught up")
                } else {
                    format!("{r} {:.1} s behind", l.behind_ms as f64 / 1000.0)
                }
            })
            .collect();
        println!(
            "  {} {}: {}",
            shard.shard_id,
            if shard.open { "open" } else { "closed" },
            lags.join(", ")
        );
    }
    for (q, d) in &s.dlq_depth {
        println!("  dead letters {q}: {d}");
    }
    for (host, b) in &s.breakers {
        println!(
            "  breaker {host}: {} ({} consecutive failures{})",
            b.phase,
            b.failures,
            b.open_until
                .map(|t| format!(", open until {}", t.to_rfc3339()))
                .unwrap_or_default()
        );
    }
    for (job, r) in &s.runs {
        println!(
            "  job {job}: last successful run {} ({} records, {} pages{})",
            r.at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "?".into()),
            r.records_out,
            r.pages,
            if r.complete { "" } else { ", stopped early" }
        );
    }
    for (job, at) in &s.cursors {
        println!("  job {job}: walk resumes at {at}");
    }
    for (scope, h) in &s.holds {
        println!(
            "  held {scope} until {}: {}",
            h.until
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "?".into()),
            h.reason
        );
    }
}

// ---------------------------------------------------------------------------------------
// replay
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct ReplayArgs {
    pub source: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Count what would be put, put nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    pub objects: usize,
    /// Archived answers that are not 200s, or cannot be read: nothing to replay.
    pub skipped: usize,
    pub records: usize,
    /// Records the normalisation rejects (they were quarantined when first fetched).
    pub quarantined: usize,
    pub put: usize,
    pub put_requests: usize,
    pub errors: Vec<String>,
}

fn hour_of(key: &str) -> Option<(NaiveDate, u32)> {
    let dt = key.split("/dt=").nth(1)?.get(..10)?;
    let hour = key.split("/hour=").nth(1)?.get(..2)?;
    Some((
        NaiveDate::parse_from_str(dt, "%Y-%m-%d").ok()?,
        hour.parse().ok()?,
    ))
}

/// Normalises one archived answer the way the collector did: the source's module rebuilds
/// the plan from the archived request URL and parses the body.
pub fn normalise_archived(
    sources: &Sources,
    source: &str,
    metadata: &HashMap<String, String>,
    body: &[u8],
) -> Result<Normalised, String> {
    let fetched_at = metadata
        .get(meta::FETCHED_AT)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or("no fetched-at metadata")?;
    let url = metadata.get(meta::URL).ok_or("no url metadata")?;
    let settings = sources.get(source).map_err(|e| e.to_string())?;
    let request = sources::request_of_url(url).ok_or_else(|| format!("url {url}: no path"))?;
    let job = metadata
        .get(meta::JOB)
        .map(String::as_str)
        .unwrap_or("replay");
    let plan = settings
        .module
        .plan_of_request(job, settings.context(), &request)
        .map_err(|e| e.to_string())?;
    let response = Response {
        status: metadata
            .get(meta::STATUS)
            .and_then(|s| s.parse().ok())
            .unwrap_or(200),
        headers: vec![],
        body: body.to_vec(),
        url: url.clone(),
        fetched_at,
    };
    plan.parse(&response)
        .map(|page| page.normalised)
        .map_err(|e| e.to_string())
}

/// Re-processes the raw archive of `source` between `from` and `to` (by fetch time)
/// through the collector's normalisation and puts the records on the stream. Record ids
/// are derived from content, so what was delivered before lands on the same items and
/// claims downstream: a replay changes nothing that was already right.
pub async fn replay(
    sdk: &aws_config::SdkConfig,
    stack: &Stack,
    args: &ReplayArgs,
) -> Result<ReplayReport, String> {
    replay_with(sdk, stack, args, &Progress::hidden()).await
}

/// [`replay`], reporting its progress (archived answers read) as it goes.
pub async fn replay_with(
    sdk: &aws_config::SdkConfig,
    stack: &Stack,
    args: &ReplayArgs,
    progress: &Progress,
) -> Result<ReplayReport, String> {
    let s3 = pricewire_pipeline::aws::s3(sdk);
    let sink = KinesisSink::new(
        pricewire_pipeline::aws::kinesis(sdk),
        &stack.stream,
        RetryPolicy::new(8, Duration::from_millis(100), Duration::from_secs(5)),
    );
    let mut report = ReplayReport::default();
    let mut day = args.from.date_naive();
    while day <= args.to.date_naive() {
        let prefix = archive::raw_day_prefix(&args.source, day);
        let mut token = None;
        loop {
            let page = s3
                .list_objects_v2()
                .bucket(&stack.archive_bucket)
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(err("ListObjectsV2"))?;
            for o in page.contents() {
                let key = o.key().unwrap_or_default();
                // Skip whole hours outside the range before reading anything.
                if let Some((d, h)) = hour_of(key) {
                    let start = d.and_hms_opt(h, 0, 0).map(|t| t.and_utc());
                    if start.is_some_and(|s| s > args.to || s + Span::hours(1) <= args.from) {
                        continue;
                    }
                }
                replay_object(&s3, &sink, stack, args, key, &mut report).await;
                progress.update(report.objects as u64, "answers", || {
                    format!("{} records, {} put", report.records, report.put)
                });
            }
            match page.next_continuation_token() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        day = day.succ_opt().unwrap_or(NaiveDate::MAX);
    }
    Ok(report)
}

async fn replay_object(
    s3: &aws_sdk_s3::Client,
    sink: &KinesisSink,
    stack: &Stack,
    args: &ReplayArgs,
    key: &str,
    report: &mut ReplayReport,
) {
    let object = match s3
        .get_object()
        .bucket(&stack.archive_bucket)
        .key(key)
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) => {
            report.errors.push(err("GetObject")(e));
            return;
        }
    };
    let metadata = object.metadata().cloned().unwrap_or_default();
    let fetched = metadata
        .get(meta::FETCHED_AT)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    if fetched.is_none_or(|t| t < args.from || t >= args.to) {
        return;
    }
    report.objects += 1;
    if metadata.get(meta::STATUS).map(String::as_str) != Some("200") {
        report.skipped += 1;
        return;
    }
    let body = match object.body.collect().await {
        Ok(b) => b.into_bytes(),
        Err(e) => {
            report.errors.push(format!("{key}: {e}"));
            return;
        }
    };
    let body = archive::gunzip(&body).unwrap_or_else(|_| body.to_vec());
    let normalised = match normalise_archived(&stack.sources, &args.source, &metadata, &body) {
        Ok(n) => n,
        Err(e) => {
            // An answer the collector could not use either (a truncated body, say).
            report.skipped += 1;
            eprintln!("replay: {key}: {e}");
            return;
        }
    };
    report.records += normalised.records.len();
    report.quarantined += normalised.quarantined.len();
    if args.dry_run || normalised.records.is_empty() {
        return;
    }
    let records: Vec<StreamRecord> = normalised.records.iter().map(StreamRecord::of).collect();
    match sink.put_records(records).await {
        Ok(r) => {
            report.put += r.put;
            report.put_requests += r.requests;
        }
        Err(e) => {
            report.put += e.report.put;
            report.errors.push(format!("{key}: {e}"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// redrive
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct RedriveArgs {
    /// Whose dead-letter queue: consumer or alerter.
    pub function: String,
    /// Also put poison records back (after the code that rejected them was fixed).
    pub include_poison: bool,
    pub max_messages: usize,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RedriveReport {
    pub messages: usize,
    /// Lambda failure records whose records were read back from the stream.
    pub from_stream: usize,
    /// … and those whose records had left the stream, recovered from the raw archive.
    pub from_archive: usize,
    pub poison_redriven: usize,
    /// Poison notices left in the queue (no `--include-poison`).
    pub poison_kept: usize,
    /// Messages that are not stream failures (collector or scheduler events): left alone.
    pub not_redrivable: usize,
    pub records_put: usize,
    pub errors: Vec<String>,
}

/// The records a Lambda failure record points at, read back from the stream; `None` when
/// they are no longer there (past retention, or the shard is gone).
async fn from_stream(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    info: &Value,
) -> Option<Vec<StreamRecord>> {
    let shard = info.get("shardId")?.as_str()?;
    let start = info.get("startSequenceNumber")?.as_str()?;
    let end = info.get("endSequenceNumber")?.as_str()?;
    let size = info.get("batchSize").and_then(Value::as_u64).unwrap_or(0) as usize;
    let mut iterator = kinesis
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(start)
        .send()
        .await
        .ok()?
        .shard_iterator()
        .map(str::to_string);
    let mut out = Vec::new();
    while let Some(it) = iterator {
        let page = kinesis
            .get_records()
            .shard_iterator(it)
            .limit(GET_RECORDS_MAX)
            .send()
            .await
            .ok()?;
        for r in page.records() {
            if seq_cmp(r.sequence_number(), end).is_gt() {
                return (out.len() >= size.max(1)).then_some(out);
            }
            if out.is_empty() && r.sequence_number() != start {
                return None; // the start was trimmed away
            }
            out.push(StreamRecord {
                partition_key: r.partition_key().unwrap_or_default().to_string(),
                data: r.data().as_ref().to_vec(),
            });
        }
        if page.records().is_empty() && page.millis_behind_latest().unwrap_or(0) == 0 {
            break;
        }
        iterator = page.next_shard_iterator().map(str::to_string);
    }
    (!out.is_empty() && out.len() >= size).then_some(out)
}

/// Sources that have raw archives (the `source=` partitions under `raw/`).
async fn archived_sources(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Vec<String>, String> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!("{}/", archive::RAW_PREFIX))
        .delimiter("/")
        .send()
        .await
        .map_err(err("ListObjectsV2"))?;
    Ok(out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .filter_map(|p| p.split("source=").nth(1))
        .map(|s| s.trim_end_matches('/').to_string())
        .collect())
}

fn time_of(v: &Value, k: &str) -> Option<DateTime<Utc>> {
    v.get(k)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Takes failure records from a stream reader's dead-letter queue and delivers the records
/// they reference again, by putting them back on the stream: read from the stream while it
/// still holds them, else recovered from the raw archive of the time they arrived. A
/// message is deleted only once its records are back on the stream.
pub async fn redrive(
    sdk: &aws_config::SdkConfig,
    stack: &Stack,
    args: &RedriveArgs,
) -> Result<RedriveReport, String> {
    redrive_with(sdk, stack, args, &Progress::hidden()).await
}

/// [`redrive`], reporting its progress (messages taken) as it goes.
pub async fn redrive_with(
    sdk: &aws_config::SdkConfig,
    stack: &Stack,
    args: &RedriveArgs,
    progress: &Progress,
) -> Result<RedriveReport, String> {
    let url = stack
        .dlqs
        .get(&args.function)
        .ok_or_else(|| format!("stack {} has no {}-dlq", stack.name, args.function))?;
    let sqs = pricewire_pipeline::aws::sqs(sdk);
    let kinesis = pricewire_pipeline::aws::kinesis(sdk);
    let s3 = pricewire_pipeline::aws::s3(sdk);
    let sink = KinesisSink::new(
        kinesis.clone(),
        &stack.stream,
        RetryPolicy::new(8, Duration::from_millis(100), Duration::from_secs(5)),
    );
    let mut report = RedriveReport::default();
    let mut kept: Vec<String> = Vec::new();
    while report.messages < args.max_messages {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(SQS_RECEIVE_MAX)
            .visibility_timeout(REDRIVE_VISIBILITY_SECONDS)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(err("ReceiveMessage"))?;
        if out.messages().is_empty() {
            break;
        }
        for m in out.messages() {
            report.messages += 1;
            progress.update(report.messages as u64, "messages", || {
                format!("{} records put", report.records_put)
            });
            let receipt = m.receipt_handle().unwrap_or_default().to_string();
            let body: Value =
                serde_json::from_str(m.body().unwrap_or_default()).unwrap_or(Value::Null);
            let records: Option<Vec<StreamRecord>> =
                if body.get("kind").and_then(Value::as_str) == Some(POISON_NOTICE_KIND) {
                    if !args.include_poison {
                        report.poison_kept += 1;
                        kept.push(receipt);
                        continue;
                    }
                    let data = body["data"].as_str().unwrap_or_default();
                    let bytes = match body["encoding"].as_str() {
                        Some("utf-8") => Some(data.as_bytes().to_vec()),
                        Some("base64") => pricewire_pipeline::stream::decode_base64(data),
                        _ => None,
                    };
                    match bytes {
                        Some(b) => {
                            report.poison_redriven += 1;
                            Some(vec![StreamRecord {
                                partition_key: body["partition_key"]
                                    .as_str()
                                    .unwrap_or("redrive")
                                    .to_string(),
                                data: b,
                            }])
                        }
                        None => {
                            report.errors.push(format!(
                                "poison {}: its bytes are only in {}",
                                body["sequence_number"], body["quarantine_key"]
                            ));
                            kept.push(receipt);
                            continue;
                        }
                    }
                } else if let Some(info) = body.get("KinesisBatchInfo") {
                    match from_stream(&kinesis, &stack.stream, info).await {
                        Some(r) => {
                            report.from_stream += 1;
                            Some(r)
                        }
                        None => {
                            let (Some(first), Some(last)) = (
                                time_of(info, "approximateArrivalOfFirstRecord"),
                                time_of(info, "approximateArrivalOfLastRecord"),
                            ) else {
                                report
                                    .errors
                                    .push(format!("failure record without arrival times: {body}"));
                                kept.push(receipt);
                                continue;
                            };
                            // Everything fetched in the window, a superset: ids make the rest no-ops.
                            for source in archived_sources(&s3, &stack.archive_bucket).await? {
                                let r = replay(
                                    sdk,
                                    stack,
                                    &ReplayArgs {
                                        source,
                                        from: first - FETCH_TO_ARRIVAL_MAX,
                                        to: last + Span::seconds(1),
                                        dry_run: args.dry_run,
                                    },
                                )
                                .await?;
                                report.records_put += r.put;
                                report.errors.extend(r.errors);
                            }
                            report.from_archive += 1;
                            None
                        }
                    }
                } else {
                    report.not_redrivable += 1;
                    kept.push(receipt);
                    continue;
                };
            if args.dry_run {
                kept.push(receipt);
                continue;
            }
            if let Some(records) = records {
                let n = records.len();
                match sink.put_records(records).await {
                    Ok(_) => report.records_put += n,
                    Err(e) => {
                        report.errors.push(e.to_string());
                        kept.push(receipt);
                        continue;
                    }
                }
            }
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(&receipt)
                .send()
                .await
                .map_err(err("DeleteMessage"))?;
        }
    }
    // What stays in the queue is visible again for the next operator.
    for receipt in kept {
        let _ = sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(seq_cmp("9", "10").is_lt());
        assert!(seq_cmp(
            "49590338271490256608559692538361571095921575989136588898",
            "49590338271490256608559692538361571095921575989136588899"
        )
        .is_lt());
        assert!(seq_cmp("100", "100").is_eq());
    }

    #[test]
    fn archive_keys_give_their_hour_and_archived_answers_their_records() {
        assert_eq!(
            hour_of("raw/source=travelpayouts/dt=2026-11-21/hour=07/led-kzn-abc.json.gz"),
            Some((NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(), 7))
        );
        let metadata = HashMap::from([
            (meta::URL.to_string(), "http://127.0.0.1:1/aviasales/v3/prices_for_dates?origin=LED&destination=KZN&departure_at=2026-12&currency=rub&limit=30&page=2".to_string()),
            (meta::FETCHED_AT.to_string(), "2026-11-21T07:00:00.000Z".to_string()),
            (meta::JOB.to_string(), "led-kzn".to_string()),
            (meta::STATUS.to_string(), "200".to_string()),
        ]);
        let body = br#"{"success":true,"data":[{"price":4830,"departure_at":"2026-12-05"},{"price":null,"departure_at":"2026-12-06"}]}"#;
        let n = normalise_archived(&Sources::default(), "travelpayouts", &metadata, body).unwrap();
        assert_eq!((n.records.len(), n.quarantined.len()), (1, 1));
        assert_eq!(
            (n.records[0].job.as_str(), n.records[0].source.as_str()),
            ("led-kzn", "travelpayouts")
        );
        let odds = HashMap::from([
            (meta::URL.to_string(), "http://127.0.0.1:1/v4/sports/basketball_nba/odds?regions=us&markets=h2h&oddsFormat=decimal&dateFormat=iso".to_string()),
            (meta::FETCHED_AT.to_string(), "2026-11-21T07:00:00.000Z".to_string()),
            (meta::JOB.to_string(), "nba".to_string()),
        ]);
        let body = br#"[{"id":"e1","commence_time":"2026-12-02T00:30:00Z","bookmakers":[{"key":"fanduel","markets":[{"key":"h2h","outcomes":[{"name":"A","price":2.5}]}]}]}]"#;
        let n = normalise_archived(&Sources::default(), "odds", &odds, body).unwrap();
        assert_eq!(n.records[0].key, "basketball_nba/e1/fanduel/h2h/A");
    }
}
