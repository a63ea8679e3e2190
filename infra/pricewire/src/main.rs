//! `pricewire`: the operator CLI. `simulate` serves the upstream simulator, `twin` runs a
//! stack that Terraform applied to the emulator, `demo` does all of it on one machine.

use clap::{Args, Parser, Subcommand};
use pricewire_cli::demo::{self, DemoOptions};
use pricewire_cli::report;
use pricewire_cli::simulator::{SimConfig, Simulator};
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
    about = "pricewire operator CLI: local twin and upstream simulator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Travelpayouts upstream simulator (with fault injection) until interrupted.
    Simulate {
        /// Port on 127.0.0.1 to listen on.
        #[arg(long, default_value_t = 8765)]
        port: u16,
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
        /// Terraform variable file for the twin.
        #[arg(long, default_value = "infra/moto/twin.tfvars")]
        tfvars: PathBuf,
        /// Exit non-zero unless every served record and implied alert arrived exactly once.
        #[arg(long)]
        check: bool,
    },
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
    /// Token the X-Access-Token header must carry (simulate only).
    #[arg(long)]
    token: Option<String>,
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
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Simulate { port, faults } => {
            let sim = Simulator::new(faults.config());
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
            out,
        } => {
            let cfg = SoakConfig {
                records,
                limit_rpm,
                invocation: Duration::from_secs(invocation_seconds),
                breaker_phase: !no_breaker,
                ..SoakConfig::acceptance(seed)
            };
            println!("● upstream soak: {records} records behind {limit_rpm} rpm, seed {seed}");
            match soak::run(&cfg, |line| println!("{line}")).await {
                Ok(r) => {
                    let md = soak::markdown(&cfg, &r);
                    println!("{md}");
                    if !r.complete {
                        eprintln!(
                            "soak: the walk did not complete in {} invocations",
                            r.invocations
                        );
                        return ExitCode::FAILURE;
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
        Command::Demo {
            run,
            faults,
            tfvars,
            check,
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
            };
            match demo::run(opts).await {
                Ok(r) => {
                    report::print(&r);
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
