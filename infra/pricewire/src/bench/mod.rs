//! `pricewire bench` (`make bench`): what pricewire costs, measured in one run on one machine
//! beside the usual Python 3.11 + boto3 Lambdas doing the same work.
//!
//! 1. Cold start: each function's release `bootstrap`, and the Python handler of the same
//!    function (`bench/baseline/`), started under the same Lambda Runtime API host until its
//!    first response, against the same fast AWS stub; interleaved runs, median, peak RSS.
//! 2. Per-record cost: CPU time of the consumer's and the alerter's process over a
//!    10,000-record Kinesis event (decode, validate, build and send the writes or messages)
//!    with AWS answered by the stub, so the function is what is measured.
//! 3. Calls per record: the local twin (moto, the simulator, the real Terraform, the release
//!    binaries) on a fixed seeded workload, every AWS call counted by the fault proxy with no
//!    faults: entries per PutRecords, items per BatchWriteItem, write units per record,
//!    publishes per alert.
//! 4. The cost model (`cost`): those measurements × list prices.
//!
//! Targets are reported against, never asserted: this is a benchmark, not a test.

pub mod cost;
pub mod render;

use crate::awsstub::{AwsStub, StubCalls, STUB_TOKEN};
use crate::demo::{self, DemoOptions};
use crate::faultproxy::{FaultPlan, FaultStats};
use crate::runtime_api::{FunctionHost, FunctionSpec, Outcome};
use crate::simulator::{SimConfig, Simulator};
use aws_lambda_events::kinesis::KinesisEvent;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use pricewire_pipeline::envelope::{Envelope, FlightPrice, Money, Payload};
use pricewire_pipeline::stream::event_record;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const FUNCTIONS: [&str; 3] = ["collector", "consumer", "alerter"];
const REGION: &str = "us-east-1";
/// Memory both implementations are configured with (Terraform's default per function).
pub const MEMORY_MB: i32 = 256;
/// Offers the simulator answers the collector's job with in the cold-start runs: one short
/// page of the job's `limit` (100), so neither implementation pages or paces.
const COLD_START_OFFERS: usize = 99;
/// Records in the cold-start event of the consumer and the alerter.
const COLD_START_RECORDS: usize = 10;
/// The event source mapping's batch size on the twin (`stream_batch_size`): the events the
/// cost model bills.
pub const BATCH_RECORDS: usize = 100;
const BATCH_INVOCATIONS: usize = 50;
/// The alert rules of both alerters (the twin's fault run uses the same two).
pub const RULES: &str = r#"[{"name":"cheap-aeroflot","source":"travelpayouts","kind":"flight_price","when":"price < 5000 && gate == \"Aeroflot\""},{"name":"direct-under-4000","source":"travelpayouts","kind":"flight_price","when":"transfers == 0 && price < 4000"}]"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Imp {
    Rust,
    Python,
}

impl Imp {
    pub fn label(self) -> &'static str {
        match self {
            Imp::Rust => "pricewire (Rust)",
            Imp::Python => "Python 3.11 + boto3",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Imp::Rust => "rust",
            Imp::Python => "python",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub repo: PathBuf,
    /// Release binaries: `<dir>/<function>/bootstrap`.
    pub lambda_dir: PathBuf,
    /// The Python 3.11 interpreter with boto3 (the project's .venv).
    pub python: PathBuf,
    /// Timed cold starts per function and implementation (after one untimed warm-up).
    pub cold_runs: usize,
    /// Records in the per-record event.
    pub records: usize,
    /// Timed invocations of the per-record event per function and implementation.
    pub repeats: usize,
    /// Run the twin for calls per record (needs terraform; about 5 minutes).
    pub twin: bool,
    pub quiet: bool,
}

/// Cold starts of one function in one implementation.
#[derive(Debug, Clone)]
pub struct ColdStart {
    pub function: &'static str,
    pub imp: Imp,
    /// Spawn → first response, per run.
    pub ms: Vec<f64>,
    /// Of it, spawn → the first `GET …/next` (init), per run; the rest is the first
    /// invocation.
    pub init_ms: Vec<f64>,
    /// Peak resident set (VmHWM) after the first response, per run.
    pub rss_kib: Vec<u64>,
    /// Where the memory is at that moment, per run: anonymous (heap, stacks) and
    /// file-backed (the binary's and libraries' pages touched) resident KiB.
    pub anon_kib: Vec<u64>,
    pub file_kib: Vec<u64>,
    /// CPU time the process spent on a core up to the first response (all its threads,
    /// `/proc/<pid>/schedstat`), per run: the rest of `ms` is waiting (stub, simulator).
    pub cpu_ms: Vec<f64>,
    /// The AWS calls of the first invocation.
    pub calls: StubCalls,
}

/// One function in one implementation over the large event.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub function: &'static str,
    pub imp: Imp,
    pub records: usize,
    /// Process CPU time (user + system, all threads) per invocation.
    pub cpu_s: Vec<f64>,
    pub wall_s: Vec<f64>,
    /// The AWS calls of one invocation.
    pub calls: StubCalls,
    /// CPU seconds per invocation of an event of the twin's batch size
    /// (`BATCH_RECORDS`), over `BATCH_INVOCATIONS` invocations: what Lambda bills.
    pub batch_cpu_s: f64,
    /// Alerter: CPU seconds per alert published, on an event whose records all match.
    pub per_alert_cpu_s: Option<f64>,
}

impl Throughput {
    pub fn records_per_cpu_second(&self) -> f64 {
        self.records as f64 / median(&self.cpu_s).max(1e-9)
    }
}

/// What the twin's seeded run did, per function, as the proxy saw it.
#[derive(Debug, Clone, Default)]
pub struct TwinRun {
    pub stats: BTreeMap<String, FaultStats>,
    /// function → (invocations, seconds busy, memory MB).
    pub busy: BTreeMap<String, (u64, f64, i32)>,
    pub history_items: usize,
    /// Records a replay of the whole run put again (every one a repeat), and the prices-table
    /// write units (index writes included) the consumer spent on them.
    pub replayed: u64,
    pub replay_consumer_units: u64,
    pub alerts: usize,
    pub failures: usize,
    /// Distinct CloudWatch metric series the functions' EMF lines define.
    pub metric_series: usize,
    /// Bytes the functions logged.
    pub log_bytes: u64,
    pub jobs: usize,
    pub alarms: usize,
    pub shards: u64,
    pub stream_mode: String,
    pub seconds: f64,
}

#[derive(Debug, Clone)]
pub struct Results {
    pub started: DateTime<Utc>,
    pub machine: String,
    pub cold: Vec<ColdStart>,
    pub throughput: Vec<Throughput>,
    pub twin: Option<TwinRun>,
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Seconds of CPU the process has used, every thread: the scheduler's nanosecond counts
/// (`/proc/<pid>/task/*/schedstat`), or, where those are missing, utime + stime in clock
/// ticks (10 ms steps), where the kernel keeps no scheduler statistics (they read 0, as on
/// this project's machines). A thread that has exited drops out of the first; the
/// functions' threads live as long as the process.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns = 0u64;
    let mut read_any = false; // schedstat exists
    for t in tasks.flatten() {
        if let Some(v) = std::fs::read_to_string(t.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            ns += v;
            read_any = true;
        }
    }
    if read_any && ns > 0 {
        return Some(ns as f64 / 1e9);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the first; utime
    // and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A live process's resident set, KiB: the peak (VmHWM), and anonymous and file-backed now.
#[derive(Debug, Clone, Copy)]
struct Rss {
    peak: u64,
    anon: u64,
    file: u64,
}

/// CPU time of a live process's threads so far (nanosecond counters, unlike `stat`'s ticks).
fn cpu_ms(pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Some(ns as f64 / 1e6)
}

fn rss_kib(pid: u32) -> Option<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(Rss {
        peak: field("VmHWM:")?,
        anon: field("RssAnon:").unwrap_or(0),
        file: field("RssFile:").unwrap_or(0),
    })
}

/// `n` flight offers on 20 routes over 60 days, as the collector would have put them on the
/// stream just now: seeded, so every run measures the same records.
///
/// With `all_match`, every offer is direct and under 4,000 RUB, so every one matches the
/// `direct-under-4000` rule of `RULES`.
pub fn offers(n: usize, seed: u64, fetched_at: DateTime<Utc>, all_match: bool) -> Vec<Envelope> {
    const PLACES: [&str; 8] = ["MOW", "LED", "KZN", "AER", "SVX", "OVB", "KGD", "IST"];
    const GATES: [&str; 4] = ["Aeroflot", "S7", "Pobeda", "UTair"];
    let mut rng = fastrand::Rng::with_seed(seed);
    let day0 = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default();
    (0..n)
        .map(|_| {
            let route = rng.usize(0..20);
            let (o, d) = (PLACES[route % 8], PLACES[(route / 8 + route % 8 + 1) % 8]);
            let date = (day0 + ChronoDuration::days(rng.i64(0..60))).to_string();
            let gate = GATES[rng.usize(0..4)];
            let offer = FlightPrice {
                gate: Some(gate.into()),
                carrier: Some("SU".into()),
                flight_number: Some(rng.u32(100..2000).to_string()),
                transfers: Some(if all_match { 0 } else { rng.u32(0..3) }),
                duration_minutes: Some(rng.u32(60..600)),
                link: Some(format!("/search/{o}{d}?t={}", rng.u32(..))),
                ..FlightPrice::new(
                    o,
                    d,
                    &date,
                    Money {
                        amount: rng.u32(1500..if all_match { 4000 } else { 30000 }).into(),
                        currency: "RUB".into(),
                    },
                )
            };
            Envelope::new(
                "travelpayouts",
                "bench",
                format!("{o}-{d}/{date}/oneway"),
                None,
                fetched_at,
                Payload::FlightPrice(offer),
            )
        })
        .collect()
}

/// The prices table's change-stream event Lambda delivers to the alerter when the consumer
/// stores these envelopes as changes (new change items, no history yet), in order.
pub fn change_event(envelopes: &[Envelope]) -> Value {
    let arn = format!("arn:aws:dynamodb:{REGION}:123456789012:table/pricewire-prices/stream/2026-12-01T00:00:00.000");
    let records: Vec<Value> = envelopes
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let change = pricewire_pipeline::table::Change::of(
                e,
                pricewire_pipeline::table::Stats::default(),
                None,
                ChronoDuration::days(90),
            );
            pricewire_pipeline::table::insert_record(
                &change.item(),
                &format!("{:021}", i + 1),
                &arn,
                REGION,
            )
        })
        .collect();
    json!({ "Records": records })
}

/// The event a stream reader gets for these envelopes: the consumer reads the Kinesis
/// stream, the alerter the prices table's change stream.
pub fn event_for(function: &str, envelopes: &[Envelope]) -> Value {
    if function == "alerter" {
        change_event(envelopes)
    } else {
        kinesis_event(envelopes)
    }
}

/// A Kinesis event as Lambda delivers it for the envelopes, in order, from one shard.
pub fn kinesis_event(envelopes: &[Envelope]) -> Value {
    let now = Utc::now();
    let mut event = KinesisEvent::default();
    event.records = envelopes
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let seq = format!("4959033827149025660855969{:031}", i + 1);
            let mut r = event_record(&seq, &e.key, e.to_json());
            r.event_source_arn = Some(format!(
                "arn:aws:kinesis:{REGION}:123456789012:stream/pricewire"
            ));
            r.aws_region = Some(REGION.into());
            r.event_version = Some("1.0".into());
            r.kinesis.kinesis_schema_version = Some("1.0".into());
            r.kinesis.approximate_arrival_timestamp =
                aws_lambda_events::encodings::SecondTimestamp(now);
            r
        })
        .collect();
    serde_json::to_value(&event).unwrap_or(Value::Null)
}

/// The collector's job in the cold-start runs.
fn job() -> Value {
    json!({"job": "led-kzn", "source": "travelpayouts", "params": {
        "origin": "LED", "destination": "KZN", "departure_at": "2026-12", "currency": "rub",
        "limit": (COLD_START_OFFERS + 1).to_string(), "max_pages": "1"}})
}

/// Where the stub-backed runs point the functions.
struct Bench {
    stub: Arc<AwsStub>,
    stub_addr: SocketAddr,
    sim_addr: SocketAddr,
    opts: BenchOptions,
    logs: PathBuf,
    /// Each function's release `bootstrap`, out of the zip Terraform deploys.
    bins: BTreeMap<&'static str, PathBuf>,
}

impl Bench {
    fn spec(&self, function: &'static str, imp: Imp) -> FunctionSpec {
        let stub = format!("http://{}", self.stub_addr);
        let mut env: Vec<(String, String)> = [
            ("AWS_ENDPOINT_URL", stub.as_str()),
            ("AWS_ACCESS_KEY_ID", "bench"),
            ("AWS_SECRET_ACCESS_KEY", "bench"),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            // No profile files, as in Lambda.
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("RUST_LOG", "info"),
            ("PRICEWIRE_STATE_TABLE", "pricewire-state"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut add = |k: &str, v: String| env.push((k.to_string(), v));
        match function {
            "collector" => {
                add("PRICEWIRE_STREAM_NAME", "pricewire".into());
                add("PRICEWIRE_ARCHIVE_BUCKET", "pricewire-archive".into());
                add(
                    "PRICEWIRE_SOURCES",
                    serde_json::json!({"travelpayouts": {
                        "base_url": format!("http://{}", self.sim_addr),
                        "secret_parameter": "/pricewire/travelpayouts/token"}})
                    .to_string(),
                );
            }
            "consumer" => {
                add("PRICEWIRE_PRICES_TABLE", "pricewire-prices".into());
                add("PRICEWIRE_ARCHIVE_BUCKET", "pricewire-archive".into());
                add(
                    "PRICEWIRE_DEAD_LETTER_QUEUE_URL",
                    format!("{stub}/123456789012/pricewire-consumer-dlq"),
                );
            }
            _ => {
                add(
                    "PRICEWIRE_TOPIC_ARN",
                    format!("arn:aws:sns:{REGION}:123456789012:pricewire-alerts"),
                );
                add("PRICEWIRE_ALERT_RULES", RULES.into());
                add("PRICEWIRE_DEDUP_WINDOW_SECONDS", "86400".into());
            }
        }
        let (bootstrap, args) = match imp {
            Imp::Rust => (self.bins[function].clone(), vec![]),
            Imp::Python => {
                env.push(("_HANDLER".into(), format!("{function}.handler")));
                let runtime = self.opts.repo.join("bench/baseline/runtime.py");
                (
                    self.opts.python.clone(),
                    vec![runtime.to_string_lossy().to_string()],
                )
            }
        };
        FunctionSpec {
            name: format!("pricewire-{function}"),
            bootstrap,
            args,
            env,
            memory_mb: MEMORY_MB,
            timeout: Duration::from_secs(300),
            log_file: self.logs.join(format!("{function}-{}.log", imp.short())),
        }
    }

    fn say(&self, s: String) {
        if !self.opts.quiet {
            println!("{s}");
        }
    }

    /// Starts a fresh process and times it to its first response.
    async fn cold_start(
        &self,
        function: &'static str,
        imp: Imp,
        event: &Value,
    ) -> Result<(f64, f64, Rss, f64, StubCalls), String> {
        self.stub.take();
        let spec = self.spec(function, imp);
        let log = spec.log_file.clone();
        let t0 = Instant::now();
        let host = FunctionHost::start(spec, REGION)
            .await
            .map_err(|e| format!("{function} ({}): cannot start: {e}", imp.label()))?;
        let outcome = host.invoke(event).await;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        let init_ms = host
            .init_time()
            .await
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
        let rss = host.pid().and_then(rss_kib);
        let cpu = host.pid().and_then(cpu_ms).unwrap_or(f64::NAN);
        let calls = self.stub.take();
        host.shutdown().await;
        check(function, imp, &outcome, &log)?;
        let rss = rss.ok_or_else(|| format!("{function} ({}): cannot read VmHWM", imp.label()))?;
        Ok((ms, init_ms, rss, cpu, calls))
    }

    async fn throughput(
        &self,
        function: &'static str,
        imp: Imp,
        events: &Events,
    ) -> Result<Throughput, String> {
        let spec = self.spec(function, imp);
        let log = spec.log_file.clone();
        let host = FunctionHost::start(spec, REGION)
            .await
            .map_err(|e| format!("{function} ({}): cannot start: {e}", imp.label()))?;
        let timed = |event, n| timed(&host, function, imp, &log, event, n);
        let result = async {
            timed(&events.small, 1).await?;
            self.stub.take();
            let mut t = Throughput {
                function,
                imp,
                records: events.records,
                cpu_s: vec![],
                wall_s: vec![],
                calls: StubCalls::default(),
                batch_cpu_s: 0.0,
                per_alert_cpu_s: None,
            };
            for run in 0..self.opts.repeats {
                let (cpu, wall) = timed(&events.big, 1).await?;
                if run == 0 {
                    t.calls = self.stub.take();
                }
                t.cpu_s.push(cpu);
                t.wall_s.push(wall);
            }
            let (cpu, _) = timed(&events.batch, BATCH_INVOCATIONS).await?;
            t.batch_cpu_s = cpu / BATCH_INVOCATIONS as f64;
            if function == "alerter" {
                self.stub.take();
                let (cpu, _) = timed(&events.matching, BATCH_INVOCATIONS).await?;
                let published = self
                    .stub
                    .take()
                    .operations
                    .get("sns.Publish")
                    .copied()
                    .unwrap_or(0);
                if published == 0 {
                    return Err(format!(
                        "alerter ({}) published nothing on records that all match",
                        imp.label()
                    ));
                }
                t.per_alert_cpu_s = Some(cpu / published as f64);
            }
            Ok::<Throughput, String>(t)
        }
        .await;
        host.shutdown().await;
        result
    }
}

/// CPU seconds and wall seconds of `n` invocations of `event`, each checked.
async fn timed(
    host: &FunctionHost,
    function: &str,
    imp: Imp,
    log: &Path,
    event: &Value,
    n: usize,
) -> Result<(f64, f64), String> {
    let pid = host.pid().ok_or("no process")?;
    let c0 = cpu_seconds(pid).ok_or("cannot read the process's CPU time")?;
    let t0 = Instant::now();
    for _ in 0..n {
        check(function, imp, &host.invoke(event).await, log)?;
    }
    let wall = t0.elapsed().as_secs_f64();
    let c1 = cpu_seconds(pid).ok_or("cannot read the process's CPU time")?;
    Ok((c1 - c0, wall))
}

/// The events of the per-record runs.
struct Events {
    records: usize,
    /// The warm-up (and cold-start) event.
    small: Value,
    /// `records` records.
    big: Value,
    /// `BATCH_RECORDS` records.
    batch: Value,
    /// `BATCH_RECORDS` records that all match a rule.
    matching: Value,
}

/// An invocation must succeed and report no failed records, or its numbers mean nothing.
fn check(function: &str, imp: Imp, outcome: &Outcome, log: &Path) -> Result<(), String> {
    match outcome {
        Outcome::Response(v) => match v.get("batchItemFailures").and_then(Value::as_array) {
            Some(f) if !f.is_empty() => Err(format!(
                "{function} ({}) reported {} failed records; see {}",
                imp.label(),
                f.len(),
                log.display()
            )),
            _ => Ok(()),
        },
        other => Err(format!(
            "{function} ({}) failed: {other:?}; see {}",
            imp.label(),
            log.display()
        )),
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!(
        "{cores} cores ({cpu}), {mem_gib:.0} GiB, {}",
        std::env::consts::ARCH
    )
}

/// Runs every measurement. Nothing is left running afterwards.
pub async fn run(opts: BenchOptions) -> Result<Results, String> {
    let started = Utc::now();
    let work = opts.repo.join(".work/bench");
    let mut bins = BTreeMap::new();
    for f in FUNCTIONS {
        bins.insert(f, crate::twin::release_binary(&opts.lambda_dir, f, &work)?);
    }
    if !opts.repo.join("bench/baseline/runtime.py").exists() {
        return Err("bench/baseline/runtime.py is missing".into());
    }
    let stub = Arc::new(AwsStub::default());
    let (stub_addr, stub_task) = stub.serve().await.map_err(|e| e.to_string())?;
    let sim = Simulator::new(SimConfig {
        seed: 7,
        offers_per_query: Some(COLD_START_OFFERS),
        token: Some(STUB_TOKEN.into()),
        ..SimConfig::default()
    });
    let (sim_addr, sim_task) = sim
        .serve(([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let bench = Bench {
        stub,
        stub_addr,
        sim_addr,
        opts: opts.clone(),
        logs,
        bins,
    };
    let measured = measure(&bench).await;
    stub_task.abort();
    sim_task.abort();
    let (cold, throughput) = measured?;
    let twin = if opts.twin {
        bench.say("● calls per record on the twin (terraform apply, 10,000 records) …".into());
        Some(twin_run(&opts).await?)
    } else {
        None
    };
    Ok(Results {
        started,
        machine: machine(),
        cold,
        throughput,
        twin,
    })
}

async fn measure(bench: &Bench) -> Result<(Vec<ColdStart>, Vec<Throughput>), String> {
    let opts = &bench.opts;
    let cold_offers = offers(COLD_START_RECORDS, 1, Utc::now(), false);
    let cold_event = |f: &str| {
        if f == "collector" {
            job()
        } else {
            event_for(f, &cold_offers)
        }
    };

    bench.say(format!(
        "● cold starts: {} runs per function, Rust and Python interleaved (after one untimed round) …",
        opts.cold_runs
    ));
    let mut cold: BTreeMap<(&'static str, Imp), ColdStart> = BTreeMap::new();
    for run in 0..=opts.cold_runs {
        // Alternate which implementation goes first, so neither always finds the caches warm.
        let order = if run % 2 == 0 {
            [Imp::Rust, Imp::Python]
        } else {
            [Imp::Python, Imp::Rust]
        };
        for function in FUNCTIONS {
            for imp in order {
                let (ms, init_ms, rss, cpu, calls) = bench
                    .cold_start(function, imp, &cold_event(function))
                    .await?;
                if run == 0 {
                    continue; // warm-up: the page cache, Python's bytecode cache
                }
                let c = cold.entry((function, imp)).or_insert_with(|| ColdStart {
                    function,
                    imp,
                    ms: vec![],
                    init_ms: vec![],
                    rss_kib: vec![],
                    anon_kib: vec![],
                    file_kib: vec![],
                    cpu_ms: vec![],
                    calls,
                });
                c.ms.push(ms);
                c.init_ms.push(init_ms);
                c.rss_kib.push(rss.peak);
                c.anon_kib.push(rss.anon);
                c.file_kib.push(rss.file);
                c.cpu_ms.push(cpu);
            }
        }
    }
    for c in cold.values() {
        bench.say(format!(
            "  {:<9} {:<20} median {:>7.1} ms (init {:.1} ms, on a core {:.1} ms), peak RSS {:>6.1} MiB (anon {:.1} / file {:.1}), {} AWS calls",
            c.function,
            c.imp.label(),
            median(&c.ms),
            median(&c.init_ms),
            median(&c.cpu_ms),
            render::mib(&c.rss_kib),
            render::mib(&c.anon_kib),
            render::mib(&c.file_kib),
            c.calls.total()
        ));
    }

    bench.say(format!(
        "● per-record cost: {} records, {} timed invocations per function and implementation …",
        opts.records, opts.repeats
    ));
    let (big, batch, matching) = (
        offers(opts.records, 2, Utc::now(), false),
        offers(BATCH_RECORDS, 3, Utc::now(), false),
        offers(BATCH_RECORDS, 4, Utc::now(), true),
    );
    let mut throughput = vec![];
    for function in ["consumer", "alerter"] {
        let events = Events {
            records: opts.records,
            small: event_for(function, &cold_offers),
            big: event_for(function, &big),
            batch: event_for(function, &batch),
            matching: event_for(function, &matching),
        };
        for imp in [Imp::Rust, Imp::Python] {
            let t = bench.throughput(function, imp, &events).await?;
            bench.say(format!(
                "  {:<9} {:<20} CPU {:>7.3} s, wall {:>7.3} s → {:>9.0} records/s/core, {} AWS calls",
                function,
                imp.label(),
                median(&t.cpu_s),
                median(&t.wall_s),
                t.records_per_cpu_second(),
                t.calls.total()
            ));
            throughput.push(t);
        }
    }
    Ok((cold.into_values().collect(), throughput))
}

/// The twin's workload: the fault run's 4 jobs × 500 offers, 5 rounds (10,000 records),
/// simulator seed 11, through the proxy with every fault rate at zero.
async fn twin_run(opts: &BenchOptions) -> Result<TwinRun, String> {
    let t0 = Instant::now();
    let started = Utc::now();
    let demo = demo::start(DemoOptions {
        lambda_dir: opts.lambda_dir.clone(),
        quiet: true,
        ..DemoOptions::ten_thousand_records(opts.repo.clone(), FaultPlan::default())
    })
    .await?;
    let ran = demo.run().await;
    let report = demo.report().await;
    let stats = || {
        demo.twin
            .proxy
            .as_ref()
            .map(|p| p.stats())
            .unwrap_or_default()
    };
    let mut out = TwinRun {
        stats: stats(),
        ..TwinRun::default()
    };
    for (name, host) in &demo.twin.functions {
        use std::sync::atomic::Ordering::Relaxed;
        let short = name.rsplit('-').next().unwrap_or(name).to_string();
        out.busy.insert(
            short,
            (
                host.invocations.load(Relaxed),
                host.busy_micros.load(Relaxed) as f64 / 1e6,
                host.spec.memory_mb,
            ),
        );
    }
    // A replay of the whole run from the raw archive: every record a repeat.
    let replay = async {
        ran.as_ref().map_err(|e| e.clone())?;
        let sdk = demo.twin.sdk.clone();
        let stack = crate::ops::Stack::discover(&sdk, "pricewire").await?;
        let day = |t: DateTime<Utc>| t.date_naive().and_hms_opt(0, 0, 0).map(|d| d.and_utc());
        let (from, to) = (
            day(started).unwrap_or(started),
            day(Utc::now()).unwrap_or(started) + ChronoDuration::days(1),
        );
        let replayed = crate::ops::replay(
            &sdk,
            &stack,
            &crate::ops::ReplayArgs {
                source: "travelpayouts".into(),
                from,
                to,
                dry_run: false,
            },
        )
        .await?;
        demo.twin.clone().drain().await?;
        let before = out.stats.get("consumer").map_or(0, |s| s.writes.len());
        let after = stats();
        out.replayed = replayed.put as u64;
        out.replay_consumer_units = after
            .get("consumer")
            .map(|s| {
                s.writes[before.min(s.writes.len())..]
                    .iter()
                    .map(|w| w.write_units + render::index_units(w))
                    .sum()
            })
            .unwrap_or(0);
        Ok::<(), String>(())
    }
    .await;
    if let Err(e) = &replay {
        eprintln!("bench: the replay of the twin run failed: {e}");
    }
    let work = demo.twin.opts.work_dir.clone();
    demo.stop().await;
    ran?;
    let report = report?;
    out.history_items = report.history_items;
    out.alerts = report.alerts.len();
    out.failures = report.check.as_ref().map_or(0, |c| c.failures());
    out.metric_series = metric_series(&work.join("logs"));
    out.log_bytes = std::fs::read_dir(work.join("logs"))
        .map(|d| {
            d.flatten()
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    read_state(&work.join("tf/terraform.tfstate"), &mut out)?;
    out.seconds = t0.elapsed().as_secs_f64();
    Ok(out)
}

/// Distinct (namespace, metric, dimension values) the EMF lines in the logs define: what
/// CloudWatch bills as custom metrics.
pub fn metric_series(logs: &Path) -> usize {
    let mut series = BTreeSet::new();
    let Ok(dir) = std::fs::read_dir(logs) else {
        return 0;
    };
    for file in dir.flatten() {
        let text = std::fs::read_to_string(file.path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("\"_aws\"")) {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            series.extend(emf_series(&v));
        }
    }
    series.len()
}

fn emf_series(v: &Value) -> Vec<String> {
    let mut out = vec![];
    let directives = v
        .pointer("/_aws/CloudWatchMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for d in directives {
        let ns = d.get("Namespace").and_then(Value::as_str).unwrap_or("");
        let sets = d
            .get("Dimensions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let metrics = d
            .get("Metrics")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for set in sets.iter().filter_map(Value::as_array) {
            let dims: Vec<String> = set
                .iter()
                .filter_map(Value::as_str)
                .map(|k| format!("{k}={}", v.get(k).and_then(Value::as_str).unwrap_or("")))
                .collect();
            for m in metrics
                .iter()
                .filter_map(|m| m.get("Name").and_then(Value::as_str))
            {
                out.push(format!("{ns}/{m}/{}", dims.join(",")));
            }
        }
    }
    out
}

/// Alarms, schedules (jobs) and shards from the applied Terraform state.
fn read_state(path: &Path, out: &mut TwinRun) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {e} (the twin's terraform state)", path.display()))?;
    let state: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let resources = state
        .get("resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let instances = |ty: &str| -> Vec<Value> {
        resources
            .iter()
            .filter(|r| r.get("mode").and_then(Value::as_str) == Some("managed"))
            .filter(|r| r.get("type").and_then(Value::as_str) == Some(ty))
            .flat_map(|r| {
                r.get("instances")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    };
    out.alarms = instances("aws_cloudwatch_metric_alarm").len();
    out.jobs = instances("aws_scheduler_schedule").len();
    if let Some(stream) = instances("aws_kinesis_stream").first() {
        let a = &stream["attributes"];
        out.shards = a["shard_count"].as_u64().unwrap_or(0);
        out.stream_mode = a
            .pointer("/stream_mode_details/0/stream_mode")
            .and_then(Value::as_str)
            .unwrap_or("PROVISIONED")
            .to_string();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn offers_are_valid_envelopes_and_seeded() {
        let t = Utc::now();
        let a = offers(50, 3, t, false);
        let b = offers(50, 3, t, false);
        assert_eq!(a, b);
        for e in &a {
            let back = Envelope::from_slice(&e.to_json()).unwrap();
            back.verify_id().unwrap();
        }
        for e in offers(30, 5, t, true) {
            let Payload::FlightPrice(f) = &e.payload else {
                panic!("offers are flights")
            };
            assert_eq!(f.transfers, Some(0));
            assert!(f.price.amount < 4000.into());
        }
        let event: KinesisEvent = serde_json::from_value(kinesis_event(&a)).unwrap();
        assert_eq!(event.records.len(), 50);
        assert_eq!(&event.records[7].kinesis.data[..], &a[7].to_json()[..]);
        // The alerter's event: the change items these records become, as the stream has them.
        let changes: aws_lambda_events::dynamodb::Event =
            serde_json::from_value(event_for("alerter", &a)).unwrap();
        assert_eq!(changes.records.len(), 50);
        let change = alerter::new_change(&changes.records[7]).unwrap();
        // (Times travel in milliseconds, as on the stream.)
        assert_eq!(
            change.envelope().unwrap(),
            Envelope::from_slice(&a[7].to_json()).unwrap()
        );
    }

    #[test]
    fn emf_series_are_one_per_metric_and_dimension_values() {
        let line = json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "pricewire",
            "Dimensions": [["source", "job"]], "Metrics": [{"Name": "Fetched"}, {"Name": "Pages"}]}]},
            "source": "travelpayouts", "job": "led-kzn", "Fetched": 3, "Pages": 1});
        assert_eq!(
            emf_series(&line),
            vec![
                "pricewire/Fetched/source=travelpayouts,job=led-kzn",
                "pricewire/Pages/source=travelpayouts,job=led-kzn"
            ]
        );
    }

    /// The baseline must do the same validation work, or the comparison means nothing: it
    /// accepts exactly the envelopes the Rust functions accept (same ids) and rejects a
    /// tampered one.
    #[test]
    fn the_python_baseline_derives_the_same_ids() {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut envelopes = offers(200, 9, Utc::now(), false);
        let mut tampered = envelopes[0].clone();
        tampered.id = "0".repeat(32);
        envelopes.push(tampered);
        let event =
            std::env::temp_dir().join(format!("pricewire-bench-{}.json", std::process::id()));
        std::fs::write(&event, kinesis_event(&envelopes).to_string()).unwrap();
        let script = "import json, sys\n\
            from envelope import Poison, decode\n\
            ok = bad = 0\n\
            for r in json.load(open(sys.argv[1]))['Records']:\n\
            \x20   try:\n\
            \x20       decode(r); ok += 1\n\
            \x20   except Poison:\n\
            \x20       bad += 1\n\
            print(ok, bad)\n";
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&event)
            .env("PYTHONPATH", repo.join("bench/baseline"))
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&event);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200 1");
    }

    /// The stub answers the SDK's calls as AWS would, and counts entries and write units.
    #[tokio::test]
    async fn the_stub_answers_the_sdk_and_counts_its_calls() {
        use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
        let stub = Arc::new(AwsStub::default());
        let (addr, task) = stub.serve().await.unwrap();
        let conf = pricewire_pipeline::aws::emulator(&format!("http://{addr}"), REGION).await;
        let db = pricewire_pipeline::aws::dynamodb(&conf);
        let writes: Vec<WriteRequest> = (0..25)
            .map(|i| {
                let item = PutRequest::builder()
                    .item("pk", AttributeValue::S(format!("k{i:02}")))
                    .item("record", AttributeValue::S("x".repeat(1100)))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(item).build()
            })
            .collect();
        let out = db
            .batch_write_item()
            .request_items("t", writes)
            .send()
            .await
            .unwrap();
        assert!(out.unprocessed_items().is_none_or(|u| u.is_empty()));
        let kinesis = pricewire_pipeline::aws::kinesis(&conf);
        let entry = aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
            .data(aws_sdk_kinesis::primitives::Blob::new(b"hello".to_vec()))
            .partition_key("k")
            .build()
            .unwrap();
        let put = kinesis
            .put_records()
            .stream_name("s")
            .records(entry.clone())
            .records(entry)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (put.failed_record_count(), put.records().len()),
            (Some(0), 2)
        );
        let calls = stub.take();
        task.abort();
        assert_eq!(calls.operations["dynamodb.BatchWriteItem"], 1);
        assert_eq!(calls.operations["kinesis.PutRecords"], 1);
        // 25 items of 2 + 3 + 6 + 1100 bytes: 2 write units each.
        assert_eq!(calls.writes[0].entries, 25);
        assert_eq!(calls.writes[0].write_units, 50);
        assert_eq!(
            (calls.writes[1].entries, calls.writes[1].kinesis_bytes),
            (2, 12)
        );
        assert!(stub.take().operations.is_empty());
    }
}
