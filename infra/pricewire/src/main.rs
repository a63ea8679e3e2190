//! `pricewire`: the operator CLI. `status`, `replay` and `redrive` operate a stack (on AWS or
//! the emulator); `simulate` serves the upstream simulator, `twin` runs a stack that
//! Terraform applied to the emulator, `demo` does all of it on one machine.

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand};
use pricewire_cli::bench::{self, BenchOptions};
use pricewire_cli::demo::{self, DemoOptions};
use pricewire_cli::faultproxy::{FaultPlan, KillAt};
use pricewire_cli::ops::{self, RedriveArgs, ReplayArgs, Stack};
use pricewire_cli::progress::Progress;
use pricewire_cli::report;
use pricewire_cli::simulator::{Personality, SimConfig, Simulator};
use pricewire_cli::soak::{self, SoakConfig};
use pricewire_cli::twin::{Twin, TwinOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "pricewire",
    version,
    about = "pricewire operator CLI: status, replay and redrive; local twin and upstream simulator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Shards and consumer lag, dead-letter depth, breaker states, last successful run per job.
    Status {
        #[command(flatten)]
        target: Target,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-process the raw archive of a source and time range through the collector's
    /// normalisation and put the records on the stream (idempotent downstream).
    Replay {
        #[command(flatten)]
        target: Target,
        /// Source whose archive to replay.
        #[arg(long, default_value = "travelpayouts")]
        source: String,
        /// A whole day (UTC), e.g. 2026-11-21; or use --from/--to.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        day: Option<NaiveDate>,
        /// Start of the range (RFC 3339), by fetch time.
        #[arg(long, requires = "to")]
        from: Option<DateTime<Utc>>,
        /// End of the range (RFC 3339), exclusive.
        #[arg(long, requires = "from")]
        to: Option<DateTime<Utc>>,
        /// Count what would be replayed; put nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Take failure records from a stream reader's dead-letter queue and deliver the
    /// records they reference again (from the stream while retained, else the raw archive).
    Redrive {
        #[command(flatten)]
        target: Target,
        /// Whose dead-letter queue.
        #[arg(long, value_parser = ["consumer", "alerter"], default_value = "consumer")]
        function: String,
        /// Also put poison records back (once the code that rejected them is fixed).
        #[arg(long)]
        include_poison: bool,
        #[arg(long, default_value_t = 1000)]
        max_messages: usize,
        #[arg(long)]
        dry_run: bool,
    },
    /// An entity's or a route's stored history: time, price, change, the rolling minimum
    /// and typical value, and which rules fired (alerts within the de-duplication window).
    History {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        output: Output,
    },
    /// The latest value of every entity of a source (and kind), each once.
    Latest {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        select: Select,
        /// Order of the rows.
        #[arg(long, value_enum, default_value = "key")]
        sort: pricewire_cli::history::SortBy,
        /// Largest first (for --sort change: the biggest rise first).
        #[arg(long)]
        desc: bool,
        #[command(flatten)]
        output: Output,
    },
    /// A price-history chart (PNG and SVG) of one or several entities: the price, the
    /// rolling minimum and typical value, a marker at each alert.
    Chart {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        select: Select,
        #[command(flatten)]
        range: Range,
        /// With a route or prefix: chart the N entities with the most changes.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=20))]
        top: u64,
        /// Write <OUT>.png and <OUT>.svg (default: charts/<source>-<key or route>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// What would the collector make of this response? Prints one JSON document: records,
    /// quarantined (with reasons), dropped values, the next page or cursor, and the verdict
    /// (use, retry or fail). Exits 0 when the answer is usable, 1 otherwise.
    Normalise {
        /// The job as its schedule sends it (JSON), or @FILE. With --archive-key it may be
        /// left out: the archived request says it.
        #[arg(long)]
        job: Option<String>,
        /// The answer's HTTP status.
        #[arg(long, default_value_t = 200)]
        status: u16,
        /// An answer header, 'name: value' (repeatable).
        #[arg(long = "header", value_parser = pricewire_cli::normalise::header)]
        headers: Vec<(String, String)>,
        /// Source entries as Terraform's `sources` (JSON, or @FILE); default: every module
        /// with its defaults, or the stack's own with --archive-key.
        #[arg(long)]
        sources: Option<String>,
        /// Read the answer from the raw archive of a stack instead of BODY_FILE (its status,
        /// URL and fetch time too).
        #[arg(long, conflicts_with = "body")]
        archive_key: Option<String>,
        #[command(flatten)]
        target: Target,
        /// The answer's body (`-` for standard input).
        #[arg(required_unless_present = "archive_key")]
        body: Option<PathBuf>,
    },
    /// Serve an upstream simulator (with fault injection) until interrupted.
    Simulate {
        /// Port on 127.0.0.1 to listen on.
        #[arg(long, default_value_t = 8765)]
        port: u16,
        /// Which upstream to play.
        #[arg(long, value_enum, default_value = "travelpayouts")]
        personality: Personality,
        #[command(flatten)]
        faults: Faults,
    },
    /// Run a stack that terraform applied to the emulator: functions, schedules, mappings.
    Twin {
        /// The emulator's endpoint, e.g. http://127.0.0.1:5000.
        #[arg(long)]
        endpoint: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// The collector against the simulator's fault mix (moto for the stream, archive and
    /// state table), invocation after invocation until its paged walk is complete; then a
    /// dead and recovered upstream for the breaker. Prints a Markdown report.
    Soak {
        #[arg(long, default_value_t = 4)]
        seed: u64,
        /// Records behind the query.
        #[arg(long, default_value_t = 2000)]
        records: usize,
        /// The simulator's undocumented limit, requests per rolling minute.
        #[arg(long, default_value_t = 60)]
        limit_rpm: u32,
        /// The Lambda timeout of each invocation, seconds.
        #[arg(long, default_value_t = 60)]
        invocation_seconds: u64,
        /// Skip the dead-upstream phase.
        #[arg(long)]
        no_breaker: bool,
        /// Events behind the odds (dingerodds) listing.
        #[arg(long, default_value_t = 1600)]
        odds_events: usize,
        /// Skip the odds scenario.
        #[arg(long)]
        no_odds: bool,
        /// Skip the exchanges' scenario (Binance and Bybit).
        #[arg(long)]
        no_markets: bool,
        /// Binance symbols in the exchanges' scenario (of the simulator's 20).
        #[arg(long, default_value_t = 8)]
        market_symbols: usize,
        /// Also write the report to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Everything on one machine: moto, simulator, terraform apply, twin, summary.
    Demo {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        faults: Faults,
        #[command(flatten)]
        aws: AwsFaults,
        /// Terraform variable file for the twin.
        #[arg(long, default_value = "infra/moto/twin.tfvars")]
        tfvars: PathBuf,
        /// A source of the tfvars' jobs and what its simulator plays, NAME=PERSONALITY
        /// (repeatable; default: travelpayouts=travelpayouts odds=odds dinger=dingerodds).
        #[arg(long = "source", value_parser = source_spec)]
        sources: Vec<(String, Personality)>,
        /// Exit non-zero unless every served record and implied alert arrived exactly once.
        #[arg(long)]
        check: bool,
    },
    /// Benchmarks beside a Python 3.11 + boto3 baseline: cold start, CPU per record, calls
    /// per record on the twin, and the cost model; writes bench/RESULTS.md.
    Bench {
        /// Where the release binaries are (`<dir>/<function>/bootstrap`).
        #[arg(long, default_value = "target/lambda")]
        lambda_dir: PathBuf,
        /// Python 3.11 with boto3 for the baseline.
        #[arg(long, default_value = ".venv/bin/python")]
        python: PathBuf,
        /// Timed cold starts per function and implementation (at least 5).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(5..))]
        cold_runs: u64,
        /// Records in the per-record event.
        #[arg(long, default_value_t = 10_000)]
        records: usize,
        /// Timed invocations of that event per function and implementation.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
        repeats: u64,
        /// Skip the twin run (calls per record and the cost model).
        #[arg(long)]
        no_twin: bool,
        /// Write the results here.
        #[arg(long, default_value = "bench/RESULTS.md")]
        out: PathBuf,
    },
}

/// Which stack, where.
#[derive(Args, Clone)]
struct Target {
    /// Terraform `name` of the stack.
    #[arg(long, default_value = "pricewire")]
    name: String,
    /// An emulator endpoint (the twin's moto), with fake credentials; without it the usual
    /// AWS configuration (environment, profile, role) is used.
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

impl Target {
    async fn connect(&self) -> Result<(aws_config::SdkConfig, Stack), String> {
        let sdk = match &self.endpoint {
            Some(e) => pricewire_pipeline::aws::emulator(e, &self.region).await,
            None => pricewire_pipeline::aws::load().await,
        };
        let stack = Stack::discover(&sdk, &self.name).await?;
        Ok((sdk, stack))
    }
}

/// How `history` and `latest` print their rows: a table by default.
#[derive(Args, Clone, Copy)]
struct Output {
    /// Print JSON (an array of rows) instead of a table.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV with a header line instead of a table.
    #[arg(long)]
    csv: bool,
}

/// Which entities `history`, `latest` and `chart` read.
#[derive(Args, Clone)]
struct Select {
    /// The source (a key of Terraform's `sources`, or a module used by jobs).
    #[arg(long)]
    source: String,
    /// The record kind (flight_price, odds_quote, price, candle, funding_rate,
    /// open_interest); default: every kind stored under the key.
    #[arg(long)]
    kind: Option<String>,
    /// One entity's key, e.g. LED-KZN/2026-12-24/oneway.
    #[arg(long, conflicts_with_all = ["route", "key_prefix"])]
    key: Option<String>,
    /// A flight route, ORIGIN-DESTINATION: every fare of it.
    #[arg(long, conflicts_with = "key_prefix")]
    route: Option<String>,
    /// Every entity whose key starts with this.
    #[arg(long)]
    key_prefix: Option<String>,
    /// The statistics window (days) of the minimum and typical columns; default 30 when
    /// stored, else the longest.
    #[arg(long)]
    window: Option<u32>,
}

impl Select {
    fn selector(&self) -> pricewire_cli::history::Selector {
        use pricewire_cli::history::Selector;
        Selector {
            source: self.source.clone(),
            kind: self.kind.clone(),
            key: self.key.clone(),
            key_prefix: self
                .route
                .as_deref()
                .map(Selector::route_prefix)
                .or_else(|| self.key_prefix.clone()),
        }
    }
}

type Since = Option<DateTime<Utc>>;
type Until = Option<DateTime<Utc>>;

/// A time range, by when each value took effect.
#[derive(Args, Clone)]
struct Range {
    /// From (inclusive): RFC 3339, a date (2026-12-01) or an age (90m, 36h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Until (exclusive), in the same forms.
    #[arg(long)]
    until: Option<String>,
}

impl Range {
    fn bounds(&self) -> Result<(Since, Until), String> {
        let now = Utc::now();
        let at = |s: &Option<String>, what: &str| {
            s.as_deref()
                .map(|s| {
                    pricewire_cli::history::parse_when(s, now).map_err(|e| format!("{what}: {e}"))
                })
                .transpose()
        };
        let (since, until) = (at(&self.since, "--since")?, at(&self.until, "--until")?);
        if let (Some(a), Some(b)) = (since, until) {
            if a >= b {
                return Err("--since must be before --until".into());
            }
        }
        Ok((since, until))
    }
}

/// `history`: rows of the selected entities' changes in the range.
async fn history_rows(
    target: &Target,
    select: &Select,
    range: &Range,
) -> Result<Vec<pricewire_cli::history::Row>, String> {
    use pricewire_cli::history;
    let (since, until) = range.bounds()?;
    let (sdk, stack) = target.connect().await?;
    let changes = history::history(&sdk, &stack, &select.selector(), since, until).await?;
    let db = pricewire_pipeline::aws::dynamodb(&sdk);
    let fired = history::fired(&db, &stack, &changes).await?;
    Ok(history::rows(&changes, &fired, select.window))
}

/// `latest`: the newest change of every selected entity.
async fn latest_rows(
    target: &Target,
    select: &Select,
) -> Result<Vec<pricewire_cli::history::Row>, String> {
    use pricewire_cli::history;
    let (sdk, stack) = target.connect().await?;
    let db = pricewire_pipeline::aws::dynamodb(&sdk);
    let pks = history::entities(&db, &stack, &select.selector()).await?;
    let newest = history::newest(&history::reader(&db, &stack.prices_table), &pks).await?;
    let fired = history::fired(&db, &stack, &newest).await?;
    Ok(history::rows(&newest, &fired, select.window))
}

/// Prints rows as a table, JSON or CSV.
fn print_rows(rows: &[pricewire_cli::history::Row], output: Output) -> Result<(), String> {
    use pricewire_cli::history;
    if output.json {
        println!(
            "{}",
            serde_json::to_string_pretty(rows).map_err(|e| e.to_string())?
        );
    } else if output.csv {
        print!("{}", history::csv(rows)?);
    } else {
        let keys: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        print!("{}", history::table(rows, keys.len() > 1));
        eprintln!("{} rows", rows.len());
    }
    Ok(())
}

/// `chart`: the chart's data from the history, the top entities by changes, two files.
async fn chart_command(
    target: &Target,
    select: &Select,
    range: &Range,
    top: usize,
    out: Option<PathBuf>,
) -> Result<(PathBuf, PathBuf, usize), String> {
    use pricewire_cli::chart::{self, ChartData};
    let rows = history_rows(target, select, range).await?;
    let rows = pricewire_cli::history::busiest(rows, top);
    let what = select
        .key
        .clone()
        .or_else(|| select.route.clone())
        .or_else(|| select.key_prefix.clone())
        .unwrap_or_else(|| "all".into());
    let data = ChartData::of(format!("{} · {what}", select.source), &rows);
    let (_, until) = range.bounds()?;
    let stem = out.unwrap_or_else(|| {
        let slug: String = format!("{}-{what}", select.source)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        PathBuf::from("charts").join(slug)
    });
    let (png, svg) = chart::write(&data, until, &stem)?;
    Ok((png, svg, rows.len()))
}

/// Faults between the functions and AWS (the fault proxy), for `demo`.
#[derive(Args, Clone)]
struct AwsFaults {
    /// Seed of the AWS fault draws.
    #[arg(long, default_value_t = 1)]
    aws_seed: u64,
    /// Share of PutRecords entries failed with ProvisionedThroughputExceededException.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    put_failure_rate: f64,
    /// Share of BatchWriteItem items returned unprocessed.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    unprocessed_rate: f64,
    /// Share of AWS calls throttled.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    throttle_rate: f64,
    /// Share of AWS calls answered 500.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    aws_error_rate: f64,
    /// Added latency per AWS call, e.g. 5-50 (milliseconds).
    #[arg(long, value_parser = range)]
    aws_latency_ms: Option<(u64, u64)>,
    /// Kill the consumer process right after its n-th BatchWriteItem.
    #[arg(long)]
    kill_consumer_after: Option<u64>,
}

impl AwsFaults {
    fn plan(&self) -> Option<FaultPlan> {
        let plan = FaultPlan {
            seed: self.aws_seed,
            put_records_failure_rate: self.put_failure_rate,
            unprocessed_rate: self.unprocessed_rate,
            throttle_rate: self.throttle_rate,
            error_rate: self.aws_error_rate,
            latency_ms: self.aws_latency_ms.unwrap_or((0, 0)),
            kill: self.kill_consumer_after.map(|n| KillAt {
                function: "consumer".into(),
                after_batch_writes: n,
            }),
        };
        (plan
            != FaultPlan {
                seed: self.aws_seed,
                ..FaultPlan::default()
            })
        .then_some(plan)
    }
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Terraform `name` of the stack.
    #[arg(long, default_value = "pricewire")]
    name: String,
    /// Directory with <function>/bootstrap release binaries (cargo lambda build).
    #[arg(long, default_value = "target/lambda")]
    lambda_dir: PathBuf,
    /// Seconds the schedules fire for.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Clock acceleration: rate(5 minutes) fires every 300/speed seconds.
    #[arg(long, default_value_t = 60.0, value_parser = positive)]
    speed: f64,
    /// Seconds to wait for the stream to drain after the schedules stop.
    #[arg(long, default_value_t = 60)]
    drain_timeout: u64,
}

/// `pricewire normalise`: the answer from a file or the archive, judged as the walk would.
async fn normalise_command(
    job: Option<String>,
    status: u16,
    headers: Vec<(String, String)>,
    sources: Option<String>,
    archive_key: Option<String>,
    target: Target,
    body: Option<PathBuf>,
) -> Result<(serde_json::Value, bool), String> {
    use pricewire_cli::normalise::{self, Answer, For};
    use pricewire_pipeline::sources::settings::Sources;
    let job = job.as_deref().map(normalise::job_arg).transpose()?;
    let explicit = sources
        .map(|s| match s.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}")),
            None => Ok(s),
        })
        .transpose()?
        .map(|json| Sources::parse(&json).map_err(|e| format!("--sources: {e}")))
        .transpose()?;
    match archive_key {
        None => {
            let path = body.ok_or("BODY_FILE is needed without --archive-key")?;
            let bytes = if path.as_os_str() == "-" {
                use std::io::Read;
                let mut b = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut b)
                    .map_err(|e| format!("standard input: {e}"))?;
                b
            } else {
                std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?
            };
            let job = job.ok_or("--job is needed for an answer from a file")?;
            let answer = Answer {
                status,
                headers,
                body: bytes,
                fetched_at: chrono::Utc::now(),
                url: None,
            };
            normalise::normalise(&explicit.unwrap_or_default(), For::Job(&job), answer)
        }
        Some(key) => {
            let (sdk, stack) = target.connect().await?;
            let s3 = pricewire_pipeline::aws::s3(&sdk);
            let (mut answer, source, name) =
                normalise::archived(&s3, &stack.archive_bucket, &key).await?;
            answer.headers = headers;
            let sources = explicit.unwrap_or(stack.sources);
            match &job {
                Some(job) => normalise::normalise(&sources, For::Job(job), answer),
                None => normalise::normalise(
                    &sources,
                    For::Archived {
                        source: &source,
                        job: &name,
                    },
                    answer,
                ),
            }
        }
    }
}

/// `dinger=dingerodds` → ("dinger", Dingerodds).
fn source_spec(s: &str) -> Result<(String, Personality), String> {
    use clap::ValueEnum;
    let (name, personality) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=PERSONALITY"))?;
    let p = Personality::from_str(personality, true).map_err(|_| {
        format!("{personality:?} is not travelpayouts, odds, dingerodds, binance or bybit")
    })?;
    Ok((name.to_string(), p))
}

/// Prints an operation's per-item errors; any makes the exit status a failure.
fn exit_for(errors: &[String]) -> ExitCode {
    for e in errors {
        eprintln!("  error: {e}");
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a rate from 0 to 1")),
    }
}

fn range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    match (a.trim().parse::<u64>(), b.trim().parse::<u64>()) {
        (Ok(a), Ok(b)) if a <= b => Ok((a, b)),
        _ => Err(format!("{s:?} is not MIN-MAX milliseconds")),
    }
}

#[derive(Args, Clone)]
struct Faults {
    /// Seed of the simulated data and faults.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Requests per rolling minute before 429 (an undocumented limit).
    #[arg(long)]
    rate_limit_rpm: Option<u32>,
    /// Send 429s without Retry-After.
    #[arg(long)]
    no_retry_after: bool,
    /// Share of requests answered 502/504.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    error_rate: f64,
    /// Latency per request, MIN-MAX milliseconds.
    #[arg(long, default_value = "0-0", value_parser = range)]
    latency_ms: (u64, u64),
    /// Share of requests that take a latency spike (--spike-ms) instead.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    spike_rate: f64,
    /// Latency of a spike, MIN-MAX milliseconds.
    #[arg(long, default_value = "1000-3000", value_parser = range)]
    spike_ms: (u64, u64),
    /// v3 offers per query (paged by `page`/`limit`); default two flights a day.
    #[arg(long)]
    offers_per_query: Option<usize>,
    /// Share of optional fields sent as null / {} / "" / missing.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    null_rate: f64,
    /// Share of records with an unusable required field.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    malformed_rate: f64,
    /// Share of answers whose body is truncated JSON.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    malformed_body_rate: f64,
    /// The secret the upstream requires (X-Access-Token, apiKey or Bearer, by
    /// personality; simulate only).
    #[arg(long)]
    token: Option<String>,
    /// Odds: events per sport (v4) or in the listing (dingerodds).
    #[arg(long, default_value_t = 6)]
    odds_events: usize,
    /// Odds v4: credits of the key's quota (a call costs markets × regions).
    #[arg(long)]
    quota: Option<u64>,
    /// Binance: request weight per calendar minute (429 beyond, then a 418 ban).
    #[arg(long)]
    weight_budget: Option<u32>,
    /// Bybit: requests per 5-second window (retCode 10006 beyond, then 403).
    #[arg(long)]
    window_limit: Option<u32>,
    /// Exchanges: how long a ban lasts, seconds.
    #[arg(long, default_value_t = 120)]
    ban_seconds: u64,
}

impl Faults {
    fn config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            rate_limit_rpm: self.rate_limit_rpm,
            retry_after: !self.no_retry_after,
            error_rate: self.error_rate,
            latency_ms: self.latency_ms,
            spike_rate: self.spike_rate,
            spike_ms: self.spike_ms,
            offers_per_query: self.offers_per_query,
            null_rate: self.null_rate,
            malformed_rate: self.malformed_rate,
            malformed_body_rate: self.malformed_body_rate,
            token: self.token.clone(),
            odds_events: self.odds_events,
            quota: self.quota,
            weight_budget: self.weight_budget,
            window_limit: self.window_limit,
            ban_seconds: self.ban_seconds,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Status { target, json } => {
            let st = match target.connect().await {
                Ok((sdk, stack)) => ops::status(&sdk, &stack).await,
                Err(e) => Err(e),
            };
            match st {
                Ok(st) if json => {
                    println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Ok(st) => {
                    ops::print_status(&st);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("status: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::History {
            target,
            select,
            range,
            output,
        } => match history_rows(&target, &select, &range)
            .await
            .and_then(|rows| print_rows(&rows, output))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("history: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Latest {
            target,
            select,
            sort,
            desc,
            output,
        } => match latest_rows(&target, &select).await.and_then(|mut rows| {
            pricewire_cli::history::sort(&mut rows, sort, desc);
            print_rows(&rows, output)
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("latest: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Chart {
            target,
            select,
            range,
            top,
            out,
        } => match chart_command(&target, &select, &range, top as usize, out).await {
            Ok((png, svg, points)) => {
                println!("{}\n{}", png.display(), svg.display());
                eprintln!("chart: {points} stored changes drawn");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("chart: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Replay {
            target,
            source,
            day,
            from,
            to,
            dry_run,
        } => {
            let (from, to) = match (day, from, to) {
                (Some(d), _, _) => {
                    let start = d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
                    (start, start + chrono::Duration::days(1))
                }
                (None, Some(f), Some(t)) if f < t => (f, t),
                _ => {
                    eprintln!("replay: give --day, or --from before --to");
                    return ExitCode::FAILURE;
                }
            };
            let args = ReplayArgs {
                source,
                from,
                to,
                dry_run,
            };
            let progress = Progress::new(&format!("replay {}", args.source), None);
            let r = match target.connect().await {
                Ok((sdk, stack)) => ops::replay_with(&sdk, &stack, &args, &progress).await,
                Err(e) => Err(e),
            };
            progress.finish();
            let secs = progress.elapsed().as_secs_f64();
            match r {
                Ok(r) => {
                    println!(
                        "replay {} {} .. {}: {} archived answers ({} skipped), {} records ({} quarantined), {} put in {} requests{}; {secs:.1} s, {:.0} records/s",
                        args.source, from.to_rfc3339(), to.to_rfc3339(), r.objects, r.skipped, r.records, r.quarantined, r.put, r.put_requests,
                        if dry_run { " (dry run)" } else { "" },
                        r.records as f64 / secs.max(0.001)
                    );
                    exit_for(&r.errors)
                }
                Err(e) => {
                    eprintln!("replay: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Redrive {
            target,
            function,
            include_poison,
            max_messages,
            dry_run,
        } => {
            let args = RedriveArgs {
                function,
                include_poison,
                max_messages,
                dry_run,
            };
            let progress = Progress::new(&format!("redrive {}", args.function), None);
            let r = match target.connect().await {
                Ok((sdk, stack)) => ops::redrive_with(&sdk, &stack, &args, &progress).await,
                Err(e) => Err(e),
            };
            progress.finish();
            let secs = progress.elapsed().as_secs_f64();
            match r {
                Ok(r) => {
                    println!(
                        "redrive {}: {} messages; {} from the stream, {} from the archive, {} records put; poison: {} redriven, {} kept; {} not redrivable{}; {secs:.1} s",
                        args.function, r.messages, r.from_stream, r.from_archive, r.records_put, r.poison_redriven, r.poison_kept, r.not_redrivable,
                        if dry_run { " (dry run)" } else { "" }
                    );
                    exit_for(&r.errors)
                }
                Err(e) => {
                    eprintln!("redrive: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Normalise {
            job,
            status,
            headers,
            sources,
            archive_key,
            target,
            body,
        } => {
            match normalise_command(job, status, headers, sources, archive_key, target, body).await
            {
                Ok((doc, usable)) => {
                    println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
                    if usable {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("normalise: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Simulate {
            port,
            personality,
            faults,
        } => {
            let sim = Simulator::playing(personality, personality.as_str(), faults.config());
            match sim.serve(([127, 0, 0, 1], port).into()).await {
                Ok((addr, task)) => {
                    println!("upstream simulator on http://{addr} (served log: /_sim/served)");
                    let _ = tokio::signal::ctrl_c().await;
                    task.abort();
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("simulate: cannot listen on 127.0.0.1:{port}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Soak {
            seed,
            records,
            limit_rpm,
            invocation_seconds,
            no_breaker,
            odds_events,
            no_odds,
            no_markets,
            market_symbols,
            out,
        } => {
            let base = SoakConfig::acceptance(seed);
            // The limit applies to each simulated upstream, as the line below says.
            let faults = soak::FaultMix {
                limit_rpm,
                ..base.faults.clone()
            };
            let cfg = SoakConfig {
                records,
                faults: faults.clone(),
                invocation: Duration::from_secs(invocation_seconds),
                breaker_phase: !no_breaker,
                odds: (!no_odds).then(|| soak::OddsSoakConfig {
                    events: odds_events,
                    faults,
                    ..soak::OddsSoakConfig::acceptance(seed)
                }),
                markets: (!no_markets).then(|| {
                    let m = soak::MarketSoakConfig::acceptance(seed);
                    soak::MarketSoakConfig {
                        binance_symbols: pricewire_cli::simulator::market::SYMBOLS
                            [..market_symbols
                                .clamp(1, pricewire_cli::simulator::market::SYMBOLS.len())]
                            .iter()
                            .map(|s| s.to_string())
                            .collect(),
                        ..m
                    }
                }),
                ..base
            };
            println!("● upstream soak: {records} flight records and {} odds events behind {limit_rpm} rpm each, seed {seed}",
                if no_odds { 0 } else { odds_events });
            match soak::run(&cfg, |line| println!("{line}")).await {
                Ok(r) => {
                    let md = soak::markdown(&cfg, &r);
                    println!("{md}");
                    for w in std::iter::once(&r.flights).chain(&r.odds).chain(&r.markets) {
                        if !w.complete {
                            eprintln!(
                                "soak: the {} walk did not complete in {} invocations",
                                w.source, w.invocations
                            );
                            return ExitCode::FAILURE;
                        }
                    }
                    if let Some(path) = out {
                        if let Err(e) = std::fs::write(&path, md) {
                            eprintln!("soak: cannot write {}: {e}", path.display());
                            return ExitCode::FAILURE;
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("soak: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Twin { endpoint, run } => {
            let opts = TwinOptions {
                endpoint,
                region: "us-east-1".into(),
                name: run.name,
                lambda_dir: run.lambda_dir,
                duration: Duration::from_secs(run.duration),
                speed: run.speed,
                drain_timeout: Duration::from_secs(run.drain_timeout),
                work_dir: PathBuf::from(".work/twin"),
                quiet: false,
                faults: None,
                inject: vec![],
            };
            let twin = match Twin::discover(opts).await {
                Ok(t) => Arc::new(t),
                Err(e) => {
                    eprintln!("twin: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!("{}", twin.describe());
            let ran = twin.clone().run().await;
            let r = report::report(&twin, None).await;
            twin.shutdown().await;
            match (ran, r) {
                (Ok(()), Ok(r)) => {
                    report::print(&r);
                    ExitCode::SUCCESS
                }
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("twin: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench {
            lambda_dir,
            python,
            cold_runs,
            records,
            repeats,
            no_twin,
            out,
        } => {
            let repo = std::env::current_dir().unwrap_or_default();
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            let opts = BenchOptions {
                lambda_dir: repo.join(lambda_dir),
                python: repo.join(python),
                repo: repo.clone(),
                cold_runs: cold_runs as usize,
                records,
                repeats: repeats as usize,
                twin: !no_twin,
                quiet: false,
            };
            match bench::run(opts).await {
                Ok(results) => {
                    let commit = std::process::Command::new("git")
                        .args(["describe", "--always", "--dirty"])
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                        .unwrap_or_default();
                    let md = bench::render::markdown(&results, &commit, &command);
                    if let Err(e) = std::fs::write(&out, &md) {
                        eprintln!("bench: cannot write {}: {e}", out.display());
                        return ExitCode::FAILURE;
                    }
                    println!("wrote {}", out.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo {
            run,
            faults,
            aws,
            tfvars,
            check,
            sources,
        } => {
            let repo = std::env::current_dir().unwrap_or_default();
            let opts = DemoOptions {
                repo: repo.clone(),
                name: run.name,
                duration: Duration::from_secs(run.duration),
                speed: run.speed,
                drain_timeout: Duration::from_secs(run.drain_timeout),
                sim: faults.config(),
                tfvars: repo.join(tfvars),
                lambda_dir: repo.join(run.lambda_dir),
                quiet: false,
                faults: aws.plan(),
                inject: vec![],
                sources: if sources.is_empty() {
                    demo::every_source()
                } else {
                    sources
                },
            };
            let run = async {
                let d = demo::start(opts).await?;
                let ran = d.run().await;
                let report = d.report().await;
                // The demo ends with a chart of its busiest route.
                let chart = match (&ran, &report) {
                    (Ok(()), Ok(_)) => d.chart_busiest_route(&repo.join(".work/demo")).await,
                    _ => Ok(None),
                };
                d.stop().await;
                ran?;
                Ok::<_, String>((report?, chart))
            };
            match run.await {
                Ok((r, chart)) => {
                    report::print(&r);
                    match chart {
                        Ok(Some(c)) => println!(
                            "● chart of the busiest route, {} {} ({} stored changes, {} alerted):\n  {}\n  {}",
                            c.source, c.route, c.changes, c.alerts, c.png.display(), c.svg.display()
                        ),
                        Ok(None) => println!("● no fares stored: no chart"),
                        Err(e) => {
                            eprintln!("demo: chart: {e}");
                            return ExitCode::FAILURE;
                        }
                    }
                    let failures = r.check.as_ref().map(|c| c.failures()).unwrap_or(0);
                    if check && failures > 0 {
                        eprintln!("demo: {failures} check(s) failed");
                        return ExitCode::FAILURE;
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
