//! `pricewire demo`: the whole local twin on one machine. Starts moto and the upstream
//! simulator, applies the real `terraform/` to the emulator with a local variable file,
//! runs the release binaries through the twin, reports, and leaves no process behind.

use crate::faultproxy::FaultPlan;
use crate::report::{self, Report};
use crate::simulator::{Personality, Served, SimConfig, Simulator};
use crate::twin::{Twin, TwinOptions};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub repo: PathBuf,
    pub name: String,
    pub duration: Duration,
    pub speed: f64,
    pub drain_timeout: Duration,
    pub sim: SimConfig,
    /// Terraform variable file for the twin (jobs, rules, subscriptions).
    pub tfvars: PathBuf,
    pub lambda_dir: PathBuf,
    pub quiet: bool,
    /// AWS faults between the functions and the emulator.
    pub faults: Option<FaultPlan>,
    /// Raw records put on the stream as the run starts.
    pub inject: Vec<Vec<u8>>,
    /// The sources the tfvars' jobs use, each served by its own simulator (its own host,
    /// so breakers and limits stay apart): (source name, what the simulator plays).
    pub sources: Vec<(String, Personality)>,
}

/// Every source family the twin's `infra/moto/twin.tfvars` collects: flights, The Odds
/// API v4 under the module's own name, a dingerodds-style entry, both exchanges, and a
/// shop declared in the tfvars alone (the generic module).
pub fn every_source() -> Vec<(String, Personality)> {
    vec![
        ("travelpayouts".into(), Personality::Travelpayouts),
        ("odds".into(), Personality::Odds),
        ("dinger".into(), Personality::Dingerodds),
        ("binance".into(), Personality::Binance),
        ("bybit".into(), Personality::Bybit),
        ("shop".into(), Personality::Shop),
    ]
}

impl DemoOptions {
    /// The seeded 10,000-record workload of `infra/moto/faults.tfvars`: 4 v3 jobs of 500
    /// offers, rounds at 0, 5, 10, 15 and 20 s (60× speed), simulator seed 11. The fault run
    /// and the benchmark both run it, with and without AWS faults.
    pub fn ten_thousand_records(repo: PathBuf, faults: FaultPlan) -> DemoOptions {
        DemoOptions {
            name: "pricewire".into(),
            duration: Duration::from_secs(22),
            speed: 60.0,
            drain_timeout: Duration::from_secs(600),
            sim: SimConfig {
                seed: 11,
                offers_per_query: Some(500),
                ..SimConfig::default()
            },
            tfvars: repo.join("infra/moto/faults.tfvars"),
            lambda_dir: repo.join("target/lambda"),
            quiet: false,
            faults: Some(faults),
            inject: vec![],
            sources: vec![("travelpayouts".into(), Personality::Travelpayouts)],
            repo,
        }
    }
}

/// The token the demo's Terraform stores in SSM for every source and the simulators
/// require.
pub const DEMO_TOKEN: &str = "twin-demo-token";

/// A running twin: the emulator, the simulators and the stack applied to it.
pub struct Demo {
    pub moto: testkit::Moto,
    /// One simulator per source.
    pub sims: Vec<Simulator>,
    sim_tasks: Vec<tokio::task::JoinHandle<()>>,
    pub twin: Arc<Twin>,
}

impl Demo {
    /// Runs the schedules for the configured duration and drains the stream.
    pub async fn run(&self) -> Result<(), String> {
        self.twin.clone().run().await
    }

    /// What every simulator served, in one list.
    pub fn served(&self) -> Vec<Served> {
        self.sims.iter().flat_map(Simulator::served).collect()
    }

    /// The summary read back from the emulator, checked against what the simulators served.
    pub async fn report(&self) -> Result<Report, String> {
        report::report(&self.twin, Some(&self.served())).await
    }

    /// Charts the route with the most stored fare changes (its busiest entities) into
    /// `<dir>/chart-<source>-<route>.png` and `.svg`; `None` when no fare was stored.
    pub async fn chart_busiest_route(
        &self,
        dir: &std::path::Path,
    ) -> Result<Option<BusiestRoute>, String> {
        use crate::history::{self, Selector};
        let stack = crate::ops::Stack::discover(&self.twin.sdk, &self.twin.opts.name).await?;
        let db = pricewire_pipeline::aws::dynamodb(&self.twin.sdk);
        let prices = history::reader(&db, &stack.prices_table);
        // Every stored fare once, grouped by route (the key's first part).
        let mut best: Option<(
            usize,
            String,
            String,
            Vec<pricewire_pipeline::table::Change>,
        )> = None;
        for sim in &self.sims {
            if sim.personality() != Personality::Travelpayouts {
                continue;
            }
            let all = Selector {
                source: sim.source().to_string(),
                kind: Some("flight_price".into()),
                ..Selector::default()
            };
            let mut per_route: std::collections::BTreeMap<String, Vec<_>> = Default::default();
            for pk in history::entities(&db, &stack, &all).await? {
                let key = pk.rsplit('#').next().unwrap_or_default();
                let route = key.split('/').next().unwrap_or_default().to_string();
                let stored = history::changes(&prices, &pk, None, None).await?;
                per_route.entry(route).or_default().extend(stored);
            }
            for (route, changes) in per_route {
                if best.as_ref().is_none_or(|(n, ..)| changes.len() > *n) {
                    best = Some((changes.len(), sim.source().to_string(), route, changes));
                }
            }
        }
        let Some((_, source, route, changes)) = best else {
            return Ok(None);
        };
        let fired = history::fired(&db, &stack, &changes).await?;
        let rows = history::busiest(history::rows(&changes, &fired, None), CHART_ENTITIES);
        let data = crate::chart::ChartData::of(format!("{source} · {route} fares"), &rows);
        let (png, svg) =
            crate::chart::write(&data, None, &dir.join(format!("chart-{source}-{route}")))?;
        Ok(Some(BusiestRoute {
            source,
            route,
            changes: rows.len(),
            alerts: rows.iter().filter(|r| !r.rules.is_empty()).count(),
            png,
            svg,
        }))
    }

    pub async fn stop(self) {
        self.twin.shutdown().await;
        if let Some(p) = &self.twin.proxy {
            p.shutdown();
        }
        for t in self.sim_tasks {
            t.abort();
        }
        drop(self.moto);
    }
}

/// Entities of the demo's busiest route drawn in its chart.
const CHART_ENTITIES: usize = 4;

/// The chart `make demo` ends with.
#[derive(Debug, Clone)]
pub struct BusiestRoute {
    pub source: String,
    pub route: String,
    /// Stored changes drawn, and how many of them were alerted about.
    pub changes: usize,
    pub alerts: usize,
    pub png: PathBuf,
    pub svg: PathBuf,
}

/// Runs the whole demo: start, run, report, stop.
pub async fn run(o: DemoOptions) -> Result<Report, String> {
    let demo = start(o).await?;
    let ran = demo.run().await;
    let report = demo.report().await;
    demo.stop().await;
    ran?;
    report
}

/// Starts moto and the simulator, applies terraform/ and starts the functions.
pub async fn start(o: DemoOptions) -> Result<Demo, String> {
    let t0 = Instant::now();
    let say = |s: String| {
        if !o.quiet {
            println!("{s}");
        }
    };
    let moto = testkit::Moto::start();
    let mut sims = Vec::new();
    let mut sim_tasks = Vec::new();
    let mut base_urls = Vec::new();
    for (source, personality) in &o.sources {
        let sim = Simulator::playing(
            *personality,
            source,
            SimConfig {
                token: Some(DEMO_TOKEN.into()),
                ..o.sim.clone()
            },
        );
        let (addr, task) = sim
            .serve(([127, 0, 0, 1], 0).into())
            .await
            .map_err(|e| format!("simulator: {e}"))?;
        base_urls.push((source.clone(), format!("http://{addr}")));
        sims.push(sim);
        sim_tasks.push(task);
    }
    say(format!(
        "● moto on {}, upstream simulators (seed {}): {}",
        moto.endpoint(),
        o.sim.seed,
        base_urls
            .iter()
            .map(|(s, u)| format!("{s} {u}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    // Terraform maps on the command line: {name="value",…}.
    let hcl_map = |pairs: &mut dyn Iterator<Item = (String, String)>| {
        let items: Vec<String> = pairs.map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{{{}}}", items.join(","))
    };
    let urls_var = format!(
        "source_base_urls={}",
        hcl_map(&mut base_urls.iter().cloned())
    );
    let tokens_var = format!(
        "source_tokens={}",
        hcl_map(
            &mut o
                .sources
                .iter()
                .filter(|(_, p)| p.needs_token())
                .map(|(s, _)| (s.clone(), DEMO_TOKEN.to_string()))
        )
    );

    let work = o.repo.join(".work").join("twin");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let tf_log = work.join("terraform.log");
    let log = std::fs::File::create(&tf_log).map_err(|e| e.to_string())?;
    say("● terraform apply of terraform/ to the emulator …".into());
    let status = tokio::process::Command::new("bash")
        .arg(o.repo.join("infra/scripts/tf-moto.sh"))
        .args(["--scratch", &work.join("tf").to_string_lossy()])
        // Kept (under .work/, wiped by the next run): the applied state says what the stack
        // holds, which the benchmark's cost model reads (alarms, schedules, shards).
        .arg("--keep")
        .args(["--var-file", &o.tfvars.to_string_lossy()])
        .args(["--var", &urls_var])
        .args(["--var", &tokens_var])
        .arg(moto.port.to_string())
        .env("LAMBDA_ZIP_DIR", &o.lambda_dir)
        .kill_on_drop(true)
        .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
        .stderr(Stdio::from(log))
        .status()
        .await
        .map_err(|e| format!("terraform: {e}"))?;
    if !status.success() {
        let tail = std::fs::read_to_string(&tf_log).unwrap_or_default();
        let tail: Vec<&str> = tail
            .lines()
            .rev()
            .take(25)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(format!(
            "terraform apply failed ({status}); see {}:\n{}",
            tf_log.display(),
            tail.join("\n")
        ));
    }
    say(format!("  applied in {:.0} s", t0.elapsed().as_secs_f64()));

    let twin = Twin::discover(TwinOptions {
        endpoint: moto.endpoint(),
        region: "us-east-1".into(),
        name: o.name.clone(),
        lambda_dir: o.lambda_dir.clone(),
        duration: o.duration,
        speed: o.speed,
        drain_timeout: o.drain_timeout,
        work_dir: work.clone(),
        quiet: o.quiet,
        faults: o.faults.clone(),
        inject: o.inject.clone(),
    })
    .await?;
    say(format!(
        "● read back from the emulator (function logs in {}):\n{}",
        work.join("logs").display(),
        twin.describe()
    ));
    say(format!(
        "● running for {:?} at {}× speed (rate(5 minutes) fires every {:.1} s) …",
        o.duration,
        o.speed,
        300.0 / o.speed
    ));
    Ok(Demo {
        moto,
        sims,
        sim_tasks,
        twin: Arc::new(twin),
    })
}
