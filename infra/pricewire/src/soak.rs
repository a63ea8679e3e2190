//! The upstream soak: the collector, with its real HTTP, Kinesis, S3 and DynamoDB adapters
//! (moto), run invocation after invocation against the simulator's fault mix, the way the
//! scheduler would run it, until its paged walk is complete. Then, optionally, the upstream
//! dies and recovers, to watch the circuit breaker.
//!
//! The acceptance test (`tests/upstream_soak.rs`) checks the report; `make bench` prints it
//! (`pricewire soak`).

use crate::report::expected_from;
use crate::simulator::{Served, SimConfig, Simulator};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use collector::{Collector, Summary};
use pricewire_pipeline::adapters::dynamodb::DynamoHostState;
use pricewire_pipeline::adapters::ssm::Secret;
use pricewire_pipeline::archive;
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::breaker::Phase;
use pricewire_pipeline::config::{CollectorConfig, Vars};
use pricewire_pipeline::envelope::Envelope;
use pricewire_pipeline::job::Job;
use pricewire_pipeline::state::HostStateStore;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const STREAM: &str = "prices";
const BUCKET: &str = "archive";
const TABLE: &str = "state";
const REGION: &str = "us-east-1";
const V3_PATH: &str = "/aviasales/v3/prices_for_dates";

#[derive(Debug, Clone, Serialize)]
pub struct SoakConfig {
    pub seed: u64,
    /// v3 offers behind the job's query (paged).
    pub records: usize,
    pub page_size: u32,
    /// The simulator's undocumented limit, requests per rolling minute.
    pub limit_rpm: u32,
    pub error_rate: f64,
    pub null_rate: f64,
    pub malformed_rate: f64,
    pub spike_rate: f64,
    pub spike_ms: (u64, u64),
    pub latency_ms: (u64, u64),
    /// The Lambda timeout each invocation gets.
    pub invocation: Duration,
    /// Invocations before giving up on completing the walk.
    pub max_invocations: usize,
    /// Kill the upstream after the walk and bring it back, watching the breaker.
    pub breaker_phase: bool,
    pub breaker_open: Duration,
}

impl SoakConfig {
    /// The fault mix of the acceptance test: 2,000 records behind an undocumented 60 rpm
    /// limit, 30 % 502/504, 10 % null/{} fields, 5 % malformed records, 1–3 s spikes.
    pub fn acceptance(seed: u64) -> SoakConfig {
        SoakConfig {
            seed,
            records: 2000,
            page_size: 25,
            limit_rpm: 60,
            error_rate: 0.3,
            null_rate: 0.1,
            malformed_rate: 0.05,
            spike_rate: 0.1,
            spike_ms: (1000, 3000),
            latency_ms: (20, 120),
            invocation: Duration::from_secs(60),
            max_invocations: 20,
            breaker_phase: true,
            breaker_open: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BreakerReport {
    /// Invocations against the dead upstream until the breaker was open.
    pub runs_to_open: usize,
    /// Requests the upstream saw from invocations made while the breaker was open.
    pub requests_while_open: usize,
    pub runs_while_open: usize,
    /// Transitions in the invocation after the upstream recovered.
    pub recovery_transitions: Vec<String>,
    pub closed_after_recovery: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub invocations: usize,
    pub complete: bool,
    pub elapsed_s: f64,
    /// Requests the simulator answered during the walk, and how many were 429.
    pub requests: usize,
    pub throttled: usize,
    pub server_errors: usize,
    /// Seconds from the start until one window after the first 429.
    pub adapted_at_s: Option<f64>,
    pub requests_after_adaptation: usize,
    pub throttled_after_adaptation: usize,
    /// Non-429 answers per minute over the walk, and as a share of the limit.
    pub rpm_achieved: f64,
    pub utilisation: f64,
    pub records_per_minute: f64,
    /// The rate the collector ended with (and stored), requests per minute.
    pub learned_rpm: f64,
    /// Records in the simulator's 200 answers (valid and malformed), and the distinct
    /// pages they came from: with every page asked once, nothing was left unasked.
    pub records_served: usize,
    pub pages_served: usize,
    /// Pages answered 200 more than once (collected twice).
    pub pages_served_twice: usize,
    /// Valid records in the simulator's 200 answers, and malformed ones.
    pub expected_valid: usize,
    pub expected_malformed: usize,
    pub on_stream: usize,
    pub missing: usize,
    pub doubled: usize,
    pub unexpected: usize,
    /// Quarantine lines in S3 with their reason, and the reasons seen.
    pub quarantined: usize,
    pub quarantine_reasons: BTreeMap<String, usize>,
    pub runs: Vec<Summary>,
    pub breaker: Option<BreakerReport>,
}

impl SoakReport {
    pub fn throttled_share_after_adaptation(&self) -> f64 {
        self.throttled_after_adaptation as f64 / self.requests_after_adaptation.max(1) as f64
    }
}

async fn create_table(db: &aws_sdk_dynamodb::Client) -> Result<(), String> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| e.to_string())
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| e.to_string())
    };
    db.create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("CreateTable: {e:?}"))
}

async fn read_stream(kinesis: &aws_sdk_kinesis::Client) -> Result<Vec<Envelope>, String> {
    let shards = kinesis
        .list_shards()
        .stream_name(STREAM)
        .send()
        .await
        .map_err(|e| format!("ListShards: {e:?}"))?;
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(STREAM)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| format!("GetShardIterator: {e:?}"))?
            .shard_iterator;
        while let Some(it) = iterator {
            let page = kinesis
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .map_err(|e| format!("GetRecords: {e:?}"))?;
            for r in page.records() {
                out.push(
                    Envelope::from_slice(r.data().as_ref())
                        .map_err(|e| format!("not an envelope on the stream: {e}"))?,
                );
            }
            if page.records().is_empty() {
                break;
            }
            iterator = page.next_shard_iterator;
        }
    }
    Ok(out)
}

async fn read_quarantine(s3: &aws_sdk_s3::Client) -> Result<Vec<serde_json::Value>, String> {
    let mut lines = Vec::new();
    let mut token = None;
    loop {
        let list = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix("quarantine/")
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| format!("ListObjectsV2: {e:?}"))?;
        for o in list.contents() {
            let body = s3
                .get_object()
                .bucket(BUCKET)
                .key(o.key().unwrap_or_default())
                .send()
                .await
                .map_err(|e| format!("GetObject: {e:?}"))?
                .body
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .into_bytes();
            let text = archive::gunzip(&body).map_err(|e| e.to_string())?;
            for line in String::from_utf8_lossy(&text).lines() {
                lines.push(serde_json::from_str(line).map_err(|e| e.to_string())?);
            }
        }
        match list.next_continuation_token {
            Some(t) => token = Some(t),
            None => return Ok(lines),
        }
    }
}

/// The reason's kind: "price: null" → "price".
fn reason_kind(reason: &str) -> String {
    reason
        .split(':')
        .next()
        .unwrap_or(reason)
        .trim()
        .to_string()
}

pub async fn run(cfg: &SoakConfig, say: impl Fn(String)) -> Result<SoakReport, String> {
    let moto = testkit::Moto::start();
    let sdk = pricewire_pipeline::aws::emulator(&moto.endpoint(), REGION).await;
    let db = pricewire_pipeline::aws::dynamodb(&sdk);
    let kinesis = pricewire_pipeline::aws::kinesis(&sdk);
    let s3 = pricewire_pipeline::aws::s3(&sdk);
    create_table(&db).await?;
    kinesis
        .create_stream()
        .stream_name(STREAM)
        .shard_count(1)
        .send()
        .await
        .map_err(|e| format!("CreateStream: {e:?}"))?;
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .map_err(|e| format!("CreateBucket: {e:?}"))?;

    let healthy = SimConfig {
        seed: cfg.seed,
        rate_limit_rpm: Some(cfg.limit_rpm),
        retry_after: true,
        error_rate: cfg.error_rate,
        latency_ms: cfg.latency_ms,
        spike_rate: cfg.spike_rate,
        spike_ms: cfg.spike_ms,
        offers_per_query: Some(cfg.records),
        null_rate: cfg.null_rate,
        malformed_rate: cfg.malformed_rate,
        malformed_body_rate: 0.0,
        token: None,
    };
    let sim = Simulator::new(healthy.clone());
    let (addr, sim_task) = sim
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| format!("simulator: {e}"))?;

    let env: HashMap<&str, String> = HashMap::from([
        ("PRICEWIRE_STREAM_NAME", STREAM.to_string()),
        ("PRICEWIRE_ARCHIVE_BUCKET", BUCKET.to_string()),
        ("PRICEWIRE_TOKEN_PARAMETER", "/soak/token".to_string()),
        ("PRICEWIRE_TRAVELPAYOUTS_BASE_URL", format!("http://{addr}")),
        ("PRICEWIRE_STATE_TABLE", TABLE.to_string()),
        ("PRICEWIRE_HTTP_TIMEOUT_MS", "5000".to_string()),
        ("PRICEWIRE_HTTP_MAX_ATTEMPTS", "6".to_string()),
        (
            "PRICEWIRE_BREAKER_OPEN_SECONDS",
            cfg.breaker_open.as_secs().max(1).to_string(),
        ),
    ]);
    let config = CollectorConfig::from_vars(&Vars(|name: &str| env.get(name).cloned()))
        .map_err(|e| e.to_string())?;
    let collector = Collector::from_config(&config, &sdk, Secret::new("soak-token".into()))?;
    let job = Job::from_value(&serde_json::json!({
        "job": "soak", "source": "travelpayouts",
        "params": {"origin": "LED", "destination": "KZN", "departure_at": "2026-12",
                   "limit": cfg.page_size.to_string(), "sorting": "route",
                   "max_pages": (cfg.records as u32).div_ceil(cfg.page_size) + 1}
    }))
    .map_err(|e| e.to_string())?;
    // One page of the same host: what the schedule ticks of the breaker phase ask for.
    let probe_job = Job::from_value(&serde_json::json!({
        "job": "probe", "source": "travelpayouts",
        "params": {"origin": "MOW", "destination": "AER", "departure_at": "2026-12",
                   "limit": cfg.page_size.to_string(), "page": 1}
    }))
    .map_err(|e| e.to_string())?;

    // The walk: one invocation after another, each with its own deadline, until complete.
    let t0 = Instant::now();
    let mut runs = Vec::new();
    let mut complete = false;
    for n in 1..=cfg.max_invocations {
        let deadline = Instant::now() + cfg.invocation;
        match collector.run(&job, Some(deadline)).await {
            Ok(s) => {
                say(format!(
                    "  run {n}: pages {} requests {} 429s {} put {} quarantined {} rate {} rpm{}",
                    s.pages,
                    s.requests,
                    s.throttled,
                    s.put,
                    s.quarantined,
                    s.rate_rpm,
                    if s.complete { ", complete" } else { "" }
                ));
                complete = s.complete;
                runs.push(s);
            }
            // A job the collector rejects outright will never complete: stop here.
            Err(e @ collector::CollectError::Job(_)) => return Err(e.to_string()),
            Err(e) => say(format!("  run {n}: failed: {e}")),
        }
        if complete {
            break;
        }
    }
    let walk_s = t0.elapsed().as_secs_f64();
    let served: Vec<Served> = sim.served();

    let requests = served.len();
    let throttled = served.iter().filter(|s| s.status == 429).count();
    let server_errors = served.iter().filter(|s| s.status >= 500).count();
    let adapted_at_ms = served
        .iter()
        .find(|s| s.status == 429)
        .map(|s| s.at_ms + 60_000);
    let after: Vec<&Served> = served
        .iter()
        .filter(|s| adapted_at_ms.is_some_and(|a| s.at_ms >= a))
        .collect();
    let expected = expected_from(&served);
    let mut page_answers: BTreeMap<String, usize> = BTreeMap::new();
    for s in served.iter().filter(|s| s.status == 200 && s.records > 0) {
        *page_answers
            .entry(s.query.get("page").cloned().unwrap_or_default())
            .or_default() += 1;
    }
    let records_served: usize = served
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| s.records)
        .sum();
    let expected_malformed: usize = served
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| s.malformed.len())
        .sum();
    let stream = read_stream(&kinesis).await?;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for e in &stream {
        *counts.entry(e.id.as_str()).or_default() += 1;
    }
    let missing = expected
        .keys()
        .filter(|id| !counts.contains_key(id.as_str()))
        .count();
    let doubled = counts.values().filter(|n| **n > 1).count();
    let unexpected = counts
        .keys()
        .filter(|id| !expected.contains_key(**id))
        .count();
    let quarantine = read_quarantine(&s3).await?;
    let mut quarantine_reasons = BTreeMap::new();
    for q in &quarantine {
        if let Some(reason) = q.get("reason").and_then(|r| r.as_str()) {
            *quarantine_reasons.entry(reason_kind(reason)).or_default() += 1;
        }
    }
    let accepted = requests - throttled;
    let rpm_achieved = accepted as f64 / (walk_s / 60.0);
    let state = DynamoHostState::new(
        db.clone(),
        TABLE,
        RetryPolicy::new(3, Duration::from_millis(50), Duration::from_millis(500)),
    );
    let host = collector::host_of(&format!("http://{addr}"));
    let learned_rpm = state
        .load_limit(&format!("{host}{V3_PATH}"))
        .await
        .map_err(|e| e.to_string())?
        .map_or(0.0, |l| l.rpm);

    // The breaker: kill the upstream, run until it opens, check it is left alone, revive
    // it, wait out open_for, and see one probe close it.
    let breaker = if cfg.breaker_phase {
        sim.set_config(SimConfig {
            error_rate: 1.0,
            ..healthy.clone()
        });
        let mut runs_to_open = 0;
        for n in 1..=10 {
            let r = collector
                .run(&probe_job, Some(Instant::now() + cfg.invocation))
                .await;
            runs_to_open = n;
            let phase = state
                .load_breaker(&host)
                .await
                .map_err(|e| e.to_string())?
                .map(|b| b.phase);
            say(format!(
                "  dead upstream, run {n}: {} → breaker {:?}",
                match &r {
                    Ok(s) => format!("ok ({} requests)", s.requests),
                    Err(e) => format!("failed ({e})"),
                },
                phase
            ));
            if phase == Some(Phase::Open) {
                break;
            }
        }
        let before = sim.served().len();
        let mut runs_while_open = 0;
        for _ in 0..3 {
            let s = collector
                .run(&probe_job, Some(Instant::now() + cfg.invocation))
                .await
                .map_err(|e| format!("run while open: {e}"))?;
            if s.breaker == "open" {
                runs_while_open += 1;
            }
        }
        let requests_while_open = sim.served().len() - before;
        // Recovered: answering again, without the random 5xx (a probe that draws one
        // would rightly reopen the breaker).
        sim.set_config(SimConfig {
            error_rate: 0.0,
            ..healthy.clone()
        });
        tokio::time::sleep(cfg.breaker_open + Duration::from_millis(500)).await;
        let s = collector
            .run(&probe_job, Some(Instant::now() + cfg.invocation))
            .await
            .map_err(|e| format!("run after recovery: {e}"))?;
        say(format!(
            "  recovered: transitions {:?}, breaker {}",
            s.breaker_transitions, s.breaker
        ));
        Some(BreakerReport {
            runs_to_open,
            requests_while_open,
            runs_while_open,
            recovery_transitions: s.breaker_transitions.clone(),
            closed_after_recovery: s.breaker == "closed",
        })
    } else {
        None
    };
    sim_task.abort();

    Ok(SoakReport {
        invocations: runs.len(),
        complete,
        elapsed_s: walk_s,
        requests,
        throttled,
        server_errors,
        adapted_at_s: adapted_at_ms.map(|a| a as f64 / 1000.0),
        requests_after_adaptation: after.len(),
        throttled_after_adaptation: after.iter().filter(|s| s.status == 429).count(),
        rpm_achieved,
        utilisation: rpm_achieved / f64::from(cfg.limit_rpm),
        records_per_minute: counts.len() as f64 / (walk_s / 60.0),
        learned_rpm,
        records_served,
        pages_served: page_answers.len(),
        pages_served_twice: page_answers.values().filter(|n| **n > 1).count(),
        expected_valid: expected.len(),
        expected_malformed,
        on_stream: stream.len(),
        missing,
        doubled,
        unexpected,
        quarantined: quarantine.len(),
        quarantine_reasons,
        runs,
        breaker,
    })
}

/// The report as the Markdown `make bench` prints.
pub fn markdown(cfg: &SoakConfig, r: &SoakReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "| upstream soak (seed {}) | value |\n|---|---|\n",
        cfg.seed
    ));
    let rows: Vec<(&str, String)> = vec![
        ("records behind the query / page size", format!("{} / {}", cfg.records, cfg.page_size)),
        ("undocumented limit", format!("{} rpm", cfg.limit_rpm)),
        ("fault mix", format!("{:.0}% 502/504, {:.0}% null/{{}} fields, {:.0}% malformed, {:.0}% spikes of {}-{} ms",
            cfg.error_rate * 100.0, cfg.null_rate * 100.0, cfg.malformed_rate * 100.0, cfg.spike_rate * 100.0, cfg.spike_ms.0, cfg.spike_ms.1)),
        ("invocations to complete the walk", format!("{} ({:.0} s)", r.invocations, r.elapsed_s)),
        ("requests / 429 / 5xx", format!("{} / {} / {}", r.requests, r.throttled, r.server_errors)),
        ("429s after adapting", format!("{} of {} ({:.2} %)", r.throttled_after_adaptation, r.requests_after_adaptation, r.throttled_share_after_adaptation() * 100.0)),
        ("requests per minute achieved (non-429)", format!("{:.1} ({:.0} % of the limit)", r.rpm_achieved, r.utilisation * 100.0)),
        ("learned rate", format!("{:.1} rpm", r.learned_rpm)),
        ("records per minute collected", format!("{:.0}", r.records_per_minute)),
        ("records served / pages served (twice)", format!("{} / {} ({})", r.records_served, r.pages_served, r.pages_served_twice)),
        ("valid records served / on the stream / missing / doubled", format!("{} / {} / {} / {}", r.expected_valid, r.on_stream, r.missing, r.doubled)),
        ("malformed served / quarantined", format!("{} / {}", r.expected_malformed, r.quarantined)),
    ];
    for (k, v) in rows {
        out.push_str(&format!("| {k} | {v} |\n"));
    }
    if let Some(b) = &r.breaker {
        out.push_str(&format!(
            "| breaker | opened after {} run(s) on a dead upstream; {} request(s) in {} run(s) while open; after recovery {:?} |\n",
            b.runs_to_open, b.requests_while_open, b.runs_while_open, b.recovery_transitions
        ));
    }
    out
}
