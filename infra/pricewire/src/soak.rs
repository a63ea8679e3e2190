//! The upstream soak: the collector, with its real HTTP, Kinesis, S3 and DynamoDB adapters
//! (moto), run invocation after invocation against the simulator's fault mix, the way the
//! scheduler would run it, until its walk is complete. Two sources at once on one moto
//! server, each behind its own simulated host:
//!
//! - **flights** (Travelpayouts v3, a concurrent page walk), then optionally a dead and
//!   recovered upstream, to watch the circuit breaker;
//! - **odds** (dingerodds style, a sequential cursor chain behind an undocumented limit),
//!   then The Odds API v4 with a small quota, to watch a spent quota hold the source
//!   without touching the breaker, and release it when the credits are back.
//!
//! What must reach the stream is what each simulator counted as valid (its model), never
//! what the collector's parser makes of the bodies. The acceptance test
//! (`tests/upstream_soak.rs`) checks the reports; `make bench` prints them (`pricewire soak`).

use crate::report::expected_from;
use crate::simulator::{Personality, Served, SimConfig, Simulator};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use collector::adapters::dynamodb::DynamoHostState;
use collector::adapters::memory::MemorySecrets;
use collector::breaker::{BreakerStore, Phase};
use collector::config::CollectorConfig;
use collector::ratelimit::LimitStore;
use collector::{Collector, HttpUpstreams, Summary};
use pricewire_pipeline::archive;
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::config::vars_from;
use pricewire_pipeline::envelope::Envelope;
use pricewire_pipeline::job::Job;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TABLE: &str = "state";
const REGION: &str = "us-east-1";
const V3_PATH: &str = "/aviasales/v3/prices_for_dates";
const TOKEN: &str = "soak-token";

/// What a simulated upstream does wrong, the same knobs for every source.
#[derive(Debug, Clone, Serialize)]
pub struct FaultMix {
    /// The simulator's undocumented limit, requests per rolling minute.
    pub limit_rpm: u32,
    /// Share of requests answered 502 or 504.
    pub error_rate: f64,
    /// Share of optional values (odds: bookmakers, markets, outcomes) sent null or `{}`.
    pub null_rate: f64,
    /// Share of malformed records (odds: events).
    pub malformed_rate: f64,
    /// Share of requests that take a latency spike, and its range.
    pub spike_rate: f64,
    pub spike_ms: (u64, u64),
    pub latency_ms: (u64, u64),
}

impl FaultMix {
    /// The acceptance mix: an undocumented 60 rpm, 30 % 502/504, 10 % null/{} values, 5 %
    /// malformed records, 10 % of requests with a 1–3 s spike.
    pub fn acceptance() -> FaultMix {
        FaultMix {
            limit_rpm: 60,
            error_rate: 0.3,
            null_rate: 0.1,
            malformed_rate: 0.05,
            spike_rate: 0.1,
            spike_ms: (1000, 3000),
            latency_ms: (20, 120),
        }
    }

    /// The simulator's configuration for this mix (it asks for the soak's token).
    fn sim(&self, seed: u64) -> SimConfig {
        SimConfig {
            seed,
            rate_limit_rpm: Some(self.limit_rpm),
            retry_after: true,
            error_rate: self.error_rate,
            latency_ms: self.latency_ms,
            spike_rate: self.spike_rate,
            spike_ms: self.spike_ms,
            null_rate: self.null_rate,
            malformed_rate: self.malformed_rate,
            token: Some(TOKEN.into()),
            ..SimConfig::default()
        }
    }

    /// `30% 502/504, 10% null/{} <what>, 5% malformed <records>, 10% spikes of 1000-3000 ms`.
    fn describe(&self, nulls: &str, records: &str) -> String {
        format!(
            "{:.0}% 502/504, {:.0}% null/{{}} {nulls}, {:.0}% malformed {records}, {:.0}% spikes of {}-{} ms",
            self.error_rate * 100.0,
            self.null_rate * 100.0,
            self.malformed_rate * 100.0,
            self.spike_rate * 100.0,
            self.spike_ms.0,
            self.spike_ms.1
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OddsSoakConfig {
    pub seed: u64,
    /// Events behind the dingerodds listing (one quote each: a moneyline of two outcomes).
    pub events: usize,
    pub page_size: u32,
    pub faults: FaultMix,
    /// Credits of the v4 key in the quota phase (each call costs 2: two markets, one
    /// region); `None` skips the phase.
    pub quota_credits: Option<u64>,
}

impl OddsSoakConfig {
    /// The acceptance fault mix over odds (null/{} odds, malformed events); then a
    /// 7-credit quota (three calls of two credits, and a fourth that finds one).
    pub fn acceptance(seed: u64) -> OddsSoakConfig {
        OddsSoakConfig {
            seed,
            events: 1600,
            page_size: 20,
            faults: FaultMix::acceptance(),
            quota_credits: Some(7),
        }
    }
}

/// The exchanges' scenario: many-symbol jobs against each exchange's own limit model.
#[derive(Debug, Clone, Serialize)]
pub struct MarketSoakConfig {
    pub seed: u64,
    /// Binance klines: one job over these symbols, 1-minute candles.
    pub binance_symbols: Vec<String>,
    /// The simulated request-weight budget per minute (the source is configured with it,
    /// as an operator copies it from `exchangeInfo`).
    pub weight_budget: u32,
    /// Bybit: open interest (5-minute, cursor pages) and klines over these symbols.
    pub bybit_symbols: Vec<String>,
    /// The simulated Bybit requests per 5-second window.
    pub window_limit: u32,
    /// How far the first run looks back (`5h`).
    pub lookback: String,
    /// Candles per request (Binance: 100-499 weigh 2).
    pub page_size: u32,
    /// 502/504, malformed rows, spikes (`limit_rpm` and `null_rate` are not used: the
    /// exchanges' limits are their own, and a null in a row is a malformed row).
    pub faults: FaultMix,
}

impl MarketSoakConfig {
    /// Eight Binance symbols under a 60-weight budget; four Bybit symbols under 4
    /// requests per 5 s; five hours of 1-minute candles; the acceptance mix's 502/504,
    /// malformed rows and spikes.
    pub fn acceptance(seed: u64) -> MarketSoakConfig {
        let symbols = |n: usize| {
            crate::simulator::market::SYMBOLS[..n]
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        MarketSoakConfig {
            seed,
            binance_symbols: symbols(8),
            weight_budget: 60,
            bybit_symbols: symbols(4),
            window_limit: 4,
            lookback: "5h".into(),
            page_size: 100,
            faults: FaultMix::acceptance(),
        }
    }
}

/// What the exchanges' limit models saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MarketFigures {
    pub symbols: usize,
    /// Bans earned (418, 403) and requests refused for the limit (429, retCode 10006).
    pub bans: usize,
    pub refused: usize,
    /// Binance: weight spent over the walk against the budget it had, and symbols
    /// collected per minute.
    pub weight_used: u64,
    pub weight_utilisation: f64,
    pub symbols_per_minute: f64,
    /// Rows served on two pages of a cursor chain (they must arrive once).
    pub rows_repeated_across_pages: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakConfig {
    pub seed: u64,
    /// v3 offers behind the flights job's query (paged).
    pub records: usize,
    pub page_size: u32,
    pub faults: FaultMix,
    /// The Lambda timeout each invocation gets.
    pub invocation: Duration,
    /// Invocations before giving up on completing a walk.
    pub max_invocations: usize,
    /// Kill the flights upstream after the walk and bring it back, watching the breaker.
    pub breaker_phase: bool,
    pub breaker_open: Duration,
    /// The odds scenario, run at the same time; `None` skips it.
    pub odds: Option<OddsSoakConfig>,
    /// The exchanges' scenario, run at the same time; `None` skips it.
    pub markets: Option<MarketSoakConfig>,
}

impl SoakConfig {
    /// The acceptance test: 2,000 flight records behind the acceptance fault mix; and the
    /// odds scenario beside it.
    pub fn acceptance(seed: u64) -> SoakConfig {
        SoakConfig {
            seed,
            records: 2000,
            page_size: 25,
            faults: FaultMix::acceptance(),
            invocation: Duration::from_secs(60),
            max_invocations: 20,
            breaker_phase: true,
            breaker_open: Duration::from_secs(10),
            odds: Some(OddsSoakConfig::acceptance(seed)),
            markets: Some(MarketSoakConfig::acceptance(seed)),
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
pub struct QuotaReport {
    /// Runs that collected before the quota ran out, and the one that met the 401.
    pub runs_collected: usize,
    /// What the run that met the spent quota said.
    pub held: Option<String>,
    /// Requests the upstream saw from runs made while the source was held.
    pub requests_while_held: usize,
    pub runs_while_held: usize,
    /// The host's breaker after it all (a spent quota is not a failure).
    pub breaker_phase: String,
    pub breaker_failures: u32,
    /// Records put by the first run after the credits came back and the hold ended.
    pub records_after_reset: usize,
}

/// One source's walk under the fault mix.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub source: String,
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
    /// Valid records the simulator served (distinct observations), and malformed ones.
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
    pub quota: Option<QuotaReport>,
    pub market: Option<MarketFigures>,
}

impl SoakReport {
    pub fn throttled_share_after_adaptation(&self) -> f64 {
        self.throttled_after_adaptation as f64 / self.requests_after_adaptation.max(1) as f64
    }
}

/// Both scenarios' reports.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReports {
    pub flights: SoakReport,
    pub odds: Option<SoakReport>,
    /// Binance and Bybit, when the scenario ran.
    pub markets: Vec<SoakReport>,
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

async fn read_stream(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<Vec<Envelope>, String> {
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| format!("ListShards: {e:?}"))?;
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
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

async fn read_quarantine(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Vec<serde_json::Value>, String> {
    let mut lines = Vec::new();
    let mut token = None;
    loop {
        let list = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix("quarantine/")
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| format!("ListObjectsV2: {e:?}"))?;
        for o in list.contents() {
            let body = s3
                .get_object()
                .bucket(bucket)
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

/// The reason's kind: "price: null" → "price"; "event e1: bookmakers[0]…price: null" →
/// "price".
fn reason_kind(reason: &str) -> String {
    let field = reason.rsplit_once(": ").map_or(reason, |(head, _)| head);
    let last = field.rsplit(['.', ' ']).next().unwrap_or(field);
    last.split('[').next().unwrap_or(last).trim().to_string()
}

/// One scenario's own stream, bucket and collector on the shared moto server.
struct Lane {
    stream: String,
    bucket: String,
    collector: Collector,
}

async fn lane(
    sdk: &aws_config::SdkConfig,
    name: &str,
    sources: serde_json::Value,
) -> Result<Lane, String> {
    let kinesis = pricewire_pipeline::aws::kinesis(sdk);
    let s3 = pricewire_pipeline::aws::s3(sdk);
    let stream = format!("prices-{name}");
    let bucket = format!("archive-{name}");
    kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .map_err(|e| format!("CreateStream: {e:?}"))?;
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .map_err(|e| format!("CreateBucket: {e:?}"))?;
    let sources = sources.to_string();
    let config = CollectorConfig::from_vars(&vars_from(&[
        ("PRICEWIRE_STREAM_NAME", &stream),
        ("PRICEWIRE_ARCHIVE_BUCKET", &bucket),
        ("PRICEWIRE_STATE_TABLE", TABLE),
        ("PRICEWIRE_HTTP_TIMEOUT_MS", "5000"),
        ("PRICEWIRE_HTTP_MAX_ATTEMPTS", "6"),
        ("PRICEWIRE_SOURCES", &sources),
    ]))
    .map_err(|e| e.to_string())?;
    let mut collector = Collector::from_config(&config, sdk);
    // The soak's secrets are in memory: the same HTTP adapter, no SSM.
    let secrets = MemorySecrets(HashMap::from([(
        "/soak/token".to_string(),
        TOKEN.to_string(),
    )]));
    collector.upstreams = Arc::new(HttpUpstreams::new(Arc::new(secrets), config.http_timeout));
    Ok(Lane {
        stream,
        bucket,
        collector,
    })
}

fn state(sdk: &aws_config::SdkConfig) -> DynamoHostState {
    DynamoHostState::new(
        pricewire_pipeline::aws::dynamodb(sdk),
        TABLE,
        RetryPolicy::new(3, Duration::from_millis(50), Duration::from_millis(500)),
    )
}

/// A walk's runs, whether it completed, and how long it took (seconds).
type Walked = (Vec<Summary>, bool, f64);

/// Runs `job` invocation after invocation, each with its own deadline, until complete.
async fn walk(
    collector: &Collector,
    job: &Job,
    invocation: Duration,
    max: usize,
    say: &(impl Fn(String) + Sync),
) -> Result<Walked, String> {
    let t0 = Instant::now();
    let mut runs = Vec::new();
    for n in 1..=max {
        match collector.run(job, Some(Instant::now() + invocation)).await {
            Ok(s) => {
                say(format!(
                    "  {} run {n}: pages {} requests {} 429s {} put {} quarantined {} rate {} rpm{}",
                    job.source,
                    s.pages,
                    s.requests,
                    s.throttled,
                    s.put,
                    s.quarantined,
                    s.rate_rpm,
                    if s.complete { ", complete" } else { "" }
                ));
                let complete = s.complete;
                runs.push(s);
                if complete {
                    return Ok((runs, true, t0.elapsed().as_secs_f64()));
                }
            }
            // A job the collector rejects outright will never complete: stop here.
            Err(e @ collector::CollectError::Job(_)) => return Err(e.to_string()),
            Err(e) => say(format!("  {} run {n}: failed: {e}", job.source)),
        }
    }
    Ok((runs, false, t0.elapsed().as_secs_f64()))
}

/// What a walk came to, measured from what the simulator served and what reached the
/// stream and the quarantine.
#[allow(clippy::too_many_arguments)]
async fn measure(
    sdk: &aws_config::SdkConfig,
    lane: &Lane,
    source: &str,
    served: &[Served],
    limit_rpm: u32,
    page_of: impl Fn(&Served) -> String,
    limit_key: &str,
    (runs, complete, walk_s): Walked,
) -> Result<SoakReport, String> {
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
    let expected = expected_from(served);
    let mut page_answers: BTreeMap<String, usize> = BTreeMap::new();
    for s in served.iter().filter(|s| s.status == 200 && s.records > 0) {
        *page_answers.entry(page_of(s)).or_default() += 1;
    }
    let ok: Vec<&Served> = served.iter().filter(|s| s.status == 200).collect();
    let records_served: usize = ok.iter().map(|s| s.records).sum();
    let expected_malformed: usize = ok.iter().map(|s| s.malformed.len()).sum();
    let stream = read_stream(&pricewire_pipeline::aws::kinesis(sdk), &lane.stream).await?;
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
    let quarantine = read_quarantine(&pricewire_pipeline::aws::s3(sdk), &lane.bucket).await?;
    let mut quarantine_reasons = BTreeMap::new();
    for q in &quarantine {
        if let Some(reason) = q.get("reason").and_then(|r| r.as_str()) {
            *quarantine_reasons.entry(reason_kind(reason)).or_default() += 1;
        }
    }
    let accepted = requests - throttled;
    let rpm_achieved = accepted as f64 / (walk_s / 60.0);
    let learned_rpm = state(sdk)
        .load_limit(limit_key)
        .await
        .map_err(|e| e.to_string())?
        .map_or(0.0, |l| l.rpm);
    Ok(SoakReport {
        source: source.to_string(),
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
        utilisation: rpm_achieved / f64::from(limit_rpm),
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
        breaker: None,
        quota: None,
        market: None,
    })
}

async fn flights(
    cfg: &SoakConfig,
    sdk: &aws_config::SdkConfig,
    say: &(impl Fn(String) + Sync),
) -> Result<SoakReport, String> {
    let healthy = SimConfig {
        offers_per_query: Some(cfg.records),
        ..cfg.faults.sim(cfg.seed)
    };
    let sim = Simulator::new(healthy.clone());
    let (addr, sim_task) = sim
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    let lane = lane(
        sdk,
        "flights",
        serde_json::json!({"travelpayouts": {"base_url": format!("http://{addr}"),
            "secret_parameter": "/soak/token",
            "breaker": {"open_seconds": cfg.breaker_open.as_secs().max(1)}}}),
    )
    .await?;
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

    let walked = walk(
        &lane.collector,
        &job,
        cfg.invocation,
        cfg.max_invocations,
        say,
    )
    .await?;
    let host = format!("127.0.0.1:{}", addr.port());
    let mut report = measure(
        sdk,
        &lane,
        "travelpayouts",
        &sim.served(),
        cfg.faults.limit_rpm,
        |s| s.query.get("page").cloned().unwrap_or_default(),
        &format!("{host}{V3_PATH}"),
        walked,
    )
    .await?;

    // The breaker: kill the upstream, run until it opens, check it is left alone, revive
    // it, wait out open_for, and see one probe close it.
    if cfg.breaker_phase {
        let store = state(sdk);
        sim.set_config(SimConfig {
            error_rate: 1.0,
            ..healthy.clone()
        });
        let mut runs_to_open = 0;
        for n in 1..=10 {
            let r = lane
                .collector
                .run(&probe_job, Some(Instant::now() + cfg.invocation))
                .await;
            runs_to_open = n;
            let phase = store
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
            let s = lane
                .collector
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
        let s = lane
            .collector
            .run(&probe_job, Some(Instant::now() + cfg.invocation))
            .await
            .map_err(|e| format!("run after recovery: {e}"))?;
        say(format!(
            "  recovered: transitions {:?}, breaker {}",
            s.breaker_transitions, s.breaker
        ));
        report.breaker = Some(BreakerReport {
            runs_to_open,
            requests_while_open,
            runs_while_open,
            recovery_transitions: s.breaker_transitions.clone(),
            closed_after_recovery: s.breaker == "closed",
        });
    }
    sim_task.abort();
    Ok(report)
}

/// How long the quota phase's hold lasts (the source's `quota_hold_seconds`).
const QUOTA_HOLD: Duration = Duration::from_secs(3);

async fn odds(
    cfg: &SoakConfig,
    o: &OddsSoakConfig,
    sdk: &aws_config::SdkConfig,
    say: &(impl Fn(String) + Sync),
) -> Result<SoakReport, String> {
    let dinger = Simulator::playing(
        Personality::Dingerodds,
        "dinger",
        SimConfig {
            odds_events: o.events,
            ..o.faults.sim(o.seed)
        },
    );
    let v4 = Simulator::playing(
        Personality::Odds,
        "odds",
        SimConfig {
            odds_events: 4,
            quota: o.quota_credits,
            token: Some(TOKEN.into()),
            seed: o.seed,
            ..SimConfig::default()
        },
    );
    let (dinger_addr, dinger_task) = dinger
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    let (v4_addr, v4_task) = v4
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    let lane = lane(
        sdk,
        "odds",
        serde_json::json!({
            "dinger": {"module": "odds", "base_url": format!("http://{dinger_addr}"),
                "auth": {"style": "bearer"}, "secret_parameter": "/soak/token",
                "options": {"api": "dingerodds"}},
            "odds": {"base_url": format!("http://{v4_addr}"), "secret_parameter": "/soak/token",
                "quota_hold_seconds": QUOTA_HOLD.as_secs(), "breaker": {"failure_threshold": 1}},
        }),
    )
    .await?;
    let pages = (o.events as u32).div_ceil(o.page_size);
    let job = Job::from_value(&serde_json::json!({
        "job": "soak-odds", "source": "dinger",
        "params": {"sport": "baseball", "market": "moneyline", "limit": o.page_size.to_string(),
                   "max_pages": (pages + 1).to_string()}
    }))
    .map_err(|e| e.to_string())?;
    let walked = walk(
        &lane.collector,
        &job,
        cfg.invocation,
        cfg.max_invocations,
        say,
    )
    .await?;
    let mut report = measure(
        sdk,
        &lane,
        "dinger",
        &dinger.served(),
        o.faults.limit_rpm,
        |s| {
            s.query
                .get("cursor")
                .cloned()
                .unwrap_or_else(|| "(first)".into())
        },
        &format!("127.0.0.1:{}*", dinger_addr.port()),
        walked,
    )
    .await?;
    dinger_task.abort();

    // The quota: collect until the credits run out, then watch the source stay held (no
    // request, breaker untouched), give the credits back and see it collect again.
    if o.quota_credits.is_some() {
        let quota_job = Job::from_value(&serde_json::json!({
            "job": "soak-quota", "source": "odds",
            "params": {"sport": "basketball_nba", "regions": "us", "markets": "h2h,spreads"}
        }))
        .map_err(|e| e.to_string())?;
        let run = || {
            lane.collector
                .run(&quota_job, Some(Instant::now() + cfg.invocation))
        };
        let mut runs_collected = 0;
        let mut held = None;
        for _ in 0..10 {
            let s = run().await.map_err(|e| format!("quota run: {e}"))?;
            if s.put > 0 {
                runs_collected += 1;
            }
            if s.held.is_some() {
                held = s.held.clone();
                break;
            }
        }
        say(format!(
            "  odds quota: {runs_collected} runs collected, then held: {held:?}"
        ));
        let before = v4.served().len();
        let mut runs_while_held = 0;
        for _ in 0..3 {
            let s = run().await.map_err(|e| format!("run while held: {e}"))?;
            if s.held.is_some() && s.requests == 0 {
                runs_while_held += 1;
            }
        }
        let requests_while_held = v4.served().len() - before;
        let host = format!("127.0.0.1:{}", v4_addr.port());
        let breaker = state(sdk)
            .load_breaker(&host)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        v4.reset_quota();
        tokio::time::sleep(QUOTA_HOLD + Duration::from_millis(300)).await;
        let after = run()
            .await
            .map_err(|e| format!("run after the quota reset: {e}"))?;
        say(format!(
            "  odds quota: after the reset {} records, breaker {}",
            after.put, after.breaker
        ));
        report.quota = Some(QuotaReport {
            runs_collected,
            held,
            requests_while_held,
            runs_while_held,
            breaker_phase: breaker.phase.as_str().to_string(),
            breaker_failures: breaker.failures,
            records_after_reset: after.put,
        });
    }
    v4_task.abort();
    Ok(report)
}

/// Binance and Bybit at once, each behind its own simulated host and limit model: the
/// jobs walk every symbol's window invocation after invocation until complete.
async fn markets(
    cfg: &SoakConfig,
    m: &MarketSoakConfig,
    sdk: &aws_config::SdkConfig,
    say: &(impl Fn(String) + Sync),
) -> Result<Vec<SoakReport>, String> {
    let sim_config = SimConfig {
        rate_limit_rpm: None,
        null_rate: 0.0,
        weight_budget: Some(m.weight_budget),
        window_limit: Some(m.window_limit),
        ban_seconds: 600,
        token: None,
        ..m.faults.sim(m.seed)
    };
    let binance = Simulator::playing(Personality::Binance, "binance", sim_config.clone());
    let bybit = Simulator::playing(Personality::Bybit, "bybit", sim_config);
    let (binance_addr, binance_task) = binance
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    let (bybit_addr, bybit_task) = bybit
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    let job = |name: &str, source: &str, params: serde_json::Value| {
        Job::from_value(&serde_json::json!({"job": name, "source": source, "params": params}))
            .map_err(|e| e.to_string())
    };
    let binance_run = async {
        let lane = lane(
            sdk,
            "binance",
            serde_json::json!({"binance": {"base_url": format!("http://{binance_addr}"),
                "concurrency": 2, "options": {"weight_budget": m.weight_budget}}}),
        )
        .await?;
        let klines = job(
            "soak-binance",
            "binance",
            serde_json::json!({"symbols": m.binance_symbols.join(","), "interval": "1m",
                "lookback": m.lookback, "limit": m.page_size.to_string(), "max_steps": "100"}),
        )?;
        let walked = walk(
            &lane.collector,
            &klines,
            cfg.invocation,
            cfg.max_invocations,
            say,
        )
        .await?;
        let walk_s = walked.2;
        let served = binance.served();
        // Weight 2 a call at this page size: the budget in requests a minute.
        let weight = crate::simulator::market::binance_weight(
            "/fapi/v1/klines",
            &BTreeMap::from([("limit".to_string(), m.page_size.to_string())]),
        );
        let mut report = measure(
            sdk,
            &lane,
            "binance",
            &served,
            m.weight_budget / weight,
            |s| format!("{:?}", s.query),
            &format!("127.0.0.1:{}*", binance_addr.port()),
            walked,
        )
        .await?;
        admitted_rate(
            &mut report,
            &served,
            f64::from(m.weight_budget / weight),
            walk_s,
        );
        let weight_used: u64 = served
            .iter()
            .filter(|s| s.status == 200 || s.status == 400)
            .map(|s| u64::from(crate::simulator::market::binance_weight(&s.path, &s.query)))
            .sum();
        report.market = Some(MarketFigures {
            symbols: m.binance_symbols.len(),
            bans: served
                .iter()
                .filter(|s| s.status == 418 || s.status == 403)
                .count(),
            refused: served.iter().filter(|s| s.status == 429).count(),
            weight_used,
            weight_utilisation: weight_used as f64
                / (f64::from(m.weight_budget) * (walk_s / 60.0).max(1.0 / 60.0)),
            symbols_per_minute: m.binance_symbols.len() as f64 / (walk_s / 60.0),
            rows_repeated_across_pages: repeated(&served),
        });
        Ok::<_, String>(report)
    };
    let bybit_run = async {
        let lane = lane(
            sdk,
            "bybit",
            serde_json::json!({"bybit": {"base_url": format!("http://{bybit_addr}"), "concurrency": 2}}),
        )
        .await?;
        let symbols = m.bybit_symbols.join(",");
        let oi = job(
            "soak-bybit-oi",
            "bybit",
            serde_json::json!({"symbols": symbols, "data": "open_interest", "period": "5m",
                "lookback": "1d", "limit": "50", "max_steps": "100"}),
        )?;
        let klines = job(
            "soak-bybit",
            "bybit",
            serde_json::json!({"symbols": symbols, "interval": "1m", "lookback": m.lookback,
                "limit": m.page_size.to_string(), "max_steps": "100"}),
        )?;
        let (mut runs, mut complete, mut walk_s) = walk(
            &lane.collector,
            &oi,
            cfg.invocation,
            cfg.max_invocations,
            say,
        )
        .await?;
        let (more, done, s) = walk(
            &lane.collector,
            &klines,
            cfg.invocation,
            cfg.max_invocations,
            say,
        )
        .await?;
        runs.extend(more);
        complete &= done;
        walk_s += s;
        let served = bybit.served();
        let mut report = measure(
            sdk,
            &lane,
            "bybit",
            &served,
            m.window_limit * 12,
            |s| format!("{:?}", s.query),
            &format!("127.0.0.1:{}*", bybit_addr.port()),
            (runs, complete, walk_s),
        )
        .await?;
        admitted_rate(&mut report, &served, f64::from(m.window_limit * 12), walk_s);
        report.market = Some(MarketFigures {
            symbols: m.bybit_symbols.len(),
            bans: served
                .iter()
                .filter(|s| s.status == 403 || s.status == 418)
                .count(),
            refused: served
                .iter()
                .filter(|s| {
                    s.status == 429
                        || s.body
                            .as_deref()
                            .is_some_and(|b| b.contains("\"retCode\":10006"))
                })
                .count(),
            symbols_per_minute: m.bybit_symbols.len() as f64 * 2.0 / (walk_s / 60.0),
            rows_repeated_across_pages: repeated(&served),
            ..MarketFigures::default()
        });
        Ok::<_, String>(report)
    };
    let (binance_report, bybit_report) = tokio::join!(binance_run, bybit_run);
    binance_task.abort();
    bybit_task.abort();
    Ok(vec![binance_report?, bybit_report?])
}

/// The exchanges' limit models count only the requests they let through (not the 502s
/// injected before them, nor the ones they refused): the rate and utilisation are of those.
fn admitted_rate(report: &mut SoakReport, served: &[Served], limit_rpm: f64, walk_s: f64) {
    let admitted = served
        .iter()
        .filter(|s| {
            (s.status == 200 || s.status == 400)
                && !s
                    .body
                    .as_deref()
                    .is_some_and(|b| b.contains("\"retCode\":10006"))
        })
        .count();
    report.rpm_achieved = admitted as f64 / (walk_s / 60.0).max(1.0 / 60.0);
    report.utilisation = report.rpm_achieved / limit_rpm.max(1.0);
}

/// Valid rows served in more than one answer (a row repeated across a page boundary).
fn repeated(served: &[Served]) -> usize {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for s in served.iter().filter(|s| s.status == 200) {
        for x in &s.expected {
            *seen.entry(x.envelope(&s.source).id).or_default() += 1;
        }
    }
    seen.values().filter(|n| **n > 1).count()
}

/// Every scenario at once, on one moto server.
pub async fn run(cfg: &SoakConfig, say: impl Fn(String) + Sync) -> Result<SoakReports, String> {
    let moto = testkit::Moto::start();
    let sdk = pricewire_pipeline::aws::emulator(&moto.endpoint(), REGION).await;
    create_table(&pricewire_pipeline::aws::dynamodb(&sdk)).await?;
    let (flights, odds, markets) = tokio::join!(
        flights(cfg, &sdk, &say),
        async {
            match &cfg.odds {
                Some(o) => Some(odds(cfg, o, &sdk, &say).await),
                None => None,
            }
        },
        async {
            match &cfg.markets {
                Some(m) => markets(cfg, m, &sdk, &say).await,
                None => Ok(vec![]),
            }
        }
    );
    Ok(SoakReports {
        flights: flights?,
        odds: odds.transpose()?,
        markets: markets?,
    })
}

/// The reports as the Markdown `make bench` prints.
pub fn markdown(cfg: &SoakConfig, r: &SoakReports) -> String {
    let mut out = String::new();
    let mut table = |title: String, limit: String, mix: String, w: &SoakReport| {
        out.push_str(&format!("| {title} | value |\n|---|---|\n"));
        let rows: Vec<(&str, String)> = vec![
            ("limit", limit),
            ("fault mix", mix),
            (
                "invocations to complete the walk",
                format!("{} ({:.0} s)", w.invocations, w.elapsed_s),
            ),
            (
                "requests / 429 / 5xx",
                format!("{} / {} / {}", w.requests, w.throttled, w.server_errors),
            ),
            (
                "429s after adapting",
                format!(
                    "{} of {} ({:.2} %)",
                    w.throttled_after_adaptation,
                    w.requests_after_adaptation,
                    w.throttled_share_after_adaptation() * 100.0
                ),
            ),
            (
                "requests per minute the limit counted",
                format!(
                    "{:.1} ({:.0} % of the limit)",
                    w.rpm_achieved,
                    w.utilisation * 100.0
                ),
            ),
            ("learned rate", format!("{:.1} rpm", w.learned_rpm)),
            (
                "records per minute collected",
                format!("{:.0}", w.records_per_minute),
            ),
            (
                "records served / pages served (twice)",
                format!(
                    "{} / {} ({})",
                    w.records_served, w.pages_served, w.pages_served_twice
                ),
            ),
            (
                "valid records served / on the stream / missing / doubled",
                format!(
                    "{} / {} / {} / {}",
                    w.expected_valid, w.on_stream, w.missing, w.doubled
                ),
            ),
            (
                "malformed served / quarantined",
                format!("{} / {}", w.expected_malformed, w.quarantined),
            ),
        ];
        for (k, v) in rows {
            out.push_str(&format!("| {k} | {v} |\n"));
        }
        if let Some(b) = &w.breaker {
            out.push_str(&format!(
                "| breaker | opened after {} run(s) on a dead upstream; {} request(s) in {} run(s) while open; after recovery {:?} |\n",
                b.runs_to_open, b.requests_while_open, b.runs_while_open, b.recovery_transitions
            ));
        }
        if let Some(m) = &w.market {
            out.push_str(&format!(
                "| exchange limits | {} ban(s) earned; {} request(s) refused for the limit; {} row(s) repeated across cursor pages, each on the stream once |\n",
                m.bans, m.refused, m.rows_repeated_across_pages
            ));
            out.push_str(&format!(
                "| symbols | {} ({:.1} symbols per minute){} |\n",
                m.symbols,
                m.symbols_per_minute,
                if m.weight_used > 0 {
                    format!(
                        "; weight {} used, {:.0} % of the budget over the walk",
                        m.weight_used,
                        m.weight_utilisation * 100.0
                    )
                } else {
                    String::new()
                }
            ));
        }
        if let Some(q) = &w.quota {
            out.push_str(&format!(
                "| quota (v4, credits spent) | {} run(s) collected, then held ({}); {} request(s) in {} held run(s); breaker {} with {} failures; {} records after the reset |\n",
                q.runs_collected,
                q.held.as_deref().unwrap_or("never held"),
                q.requests_while_held,
                q.runs_while_held,
                q.breaker_phase,
                q.breaker_failures,
                q.records_after_reset
            ));
        }
        out.push('\n');
    };
    table(
        format!(
            "flights soak (Travelpayouts v3, {} records / pages of {}, seed {})",
            cfg.records, cfg.page_size, cfg.seed
        ),
        format!("{} rpm, undocumented", cfg.faults.limit_rpm),
        cfg.faults.describe("fields", "records"),
        &r.flights,
    );
    if let (Some(o), Some(w)) = (&cfg.odds, &r.odds) {
        table(
            format!(
                "odds soak (dingerodds, {} events / pages of {}, seed {})",
                o.events, o.page_size, o.seed
            ),
            format!("{} rpm, undocumented", o.faults.limit_rpm),
            o.faults.describe("odds", "events").replacen(
                "502/504",
                "502/504 (twice that on pages over 50)",
                1,
            ),
            w,
        );
    }
    if let Some(m) = &cfg.markets {
        let mix = format!(
            "{:.0}% 502/504, {:.0}% malformed rows, {:.0}% spikes of {}-{} ms",
            m.faults.error_rate * 100.0,
            m.faults.malformed_rate * 100.0,
            m.faults.spike_rate * 100.0,
            m.faults.spike_ms.0,
            m.faults.spike_ms.1
        );
        for w in &r.markets {
            let (title, limit) = match w.source.as_str() {
                "binance" => (
                    format!(
                        "binance soak ({} symbols, 1m klines over {}, weight budget {}/min, seed {})",
                        m.binance_symbols.len(),
                        m.lookback,
                        m.weight_budget,
                        m.seed
                    ),
                    format!(
                        "{} request weight a minute (weight 2 a call: {} requests), from the weight header",
                        m.weight_budget,
                        m.weight_budget / 2
                    ),
                ),
                _ => (
                    format!(
                        "bybit soak ({} symbols, 5m open interest by cursor and 1m klines over {}, {} requests / 5 s, seed {})",
                        m.bybit_symbols.len(),
                        m.lookback,
                        m.window_limit,
                        m.seed
                    ),
                    format!(
                        "{} requests per 5 s ({} a minute), from X-Bapi-Limit-Status",
                        m.window_limit,
                        m.window_limit * 12
                    ),
                ),
            };
            table(title, limit, mix.clone(), w);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_grouped_by_their_field() {
        assert_eq!(reason_kind("price: null"), "price");
        assert_eq!(
            reason_kind("event e1: bookmakers[0].markets[1].outcomes[0].price: empty object {}"),
            "price"
        );
        assert_eq!(
            reason_kind("commence_time: \"TBD\" is not an RFC 3339 time"),
            "commence_time"
        );
        assert_eq!(reason_kind("id: missing"), "id");
    }
}
