//! `bench/RESULTS.md` from the measurements: derived figures (ratios, calls per record,
//! fill of batch calls) and the cost model. Pure, so the arithmetic is tested.

use super::cost::{self, Arch, Classic, Month, Rates, WORKLOADS};
use super::{median, ColdStart, Imp, Results, Throughput, TwinRun, BATCH_RECORDS, MEMORY_MB};
use crate::wire::WriteCall;
use pricewire_pipeline::limits::{DYNAMODB_BATCH_WRITE_MAX_ITEMS, KINESIS_PUT_RECORDS_MAX_ENTRIES};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The issue's targets (reported against, never asserted).
pub const TARGET_COLD_START_RATIO: f64 = 25.0;
/// Peak RSS per function, MiB.
pub const TARGET_PEAK_RSS_MIB: f64 = 15.0;
pub const TARGET_CONSUMER_RECORDS_PER_CORE_SECOND: f64 = 50_000.0;
pub const TARGET_ALERTER_RECORDS_PER_CORE_SECOND: f64 = 30_000.0;
/// The classic design's month over pricewire's at the user's workload, at least.
pub const TARGET_CLASSIC_RATIO_USER: f64 = 5.0;
/// Pricewire's dollars per million records at 100 million a month, at most.
pub const TARGET_USD_PER_MILLION_AT_100M: f64 = 0.50;
pub const TARGET_BATCH_FILL: f64 = 0.95;
/// Prices-table write units (index writes included) per stored change, and per repeat.
pub const TARGET_WCU_PER_CHANGE: f64 = 1.2;
pub const TARGET_WCU_PER_REPEAT: f64 = 0.05;

/// How full a function's batch calls were.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Fill {
    pub calls: u64,
    pub entries: u64,
    /// Calls made while at least `max` entries were still to be sent in that invocation,
    /// and the entries they carried.
    pub eligible_calls: u64,
    pub eligible_entries: u64,
    pub max: u64,
}

impl Fill {
    pub fn mean(&self) -> f64 {
        self.entries as f64 / self.calls.max(1) as f64
    }
    /// Entries per call / the maximum, over the calls that could have been full.
    pub fn eligible_ratio(&self) -> Option<f64> {
        (self.eligible_calls > 0)
            .then(|| self.eligible_entries as f64 / (self.eligible_calls * self.max) as f64)
    }
}

/// Fill of one operation's calls. Calls are grouped by invocation (trace id) in the order they
/// were made; a call is eligible when the entries it and the later calls of its invocation
/// carry add up to at least `max` — that is, when enough records were waiting.
pub fn fill(writes: &[WriteCall], operation: &str, max: usize) -> Fill {
    let mut f = Fill {
        max: max as u64,
        ..Fill::default()
    };
    let mut by_trace: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for w in writes.iter().filter(|w| w.operation == operation) {
        f.calls += 1;
        f.entries += w.entries;
        by_trace
            .entry(w.trace.as_str())
            .or_default()
            .push(w.entries);
    }
    for calls in by_trace.values() {
        let mut remaining: u64 = calls.iter().sum();
        for &n in calls {
            if remaining >= max as u64 {
                f.eligible_calls += 1;
                f.eligible_entries += n;
            }
            remaining -= n;
        }
    }
    f
}

/// Index writes DynamoDB adds to a write of the `prices` table (terraform/storage.tf): only
/// its sparse KEYS_ONLY GSI `latest_by_source`, whose items are the entity items
/// (`wire::measure` counts them per call). Other tables have no indexes.
pub const PRICES_TABLE_SUFFIX: &str = "-prices";

pub fn index_units(w: &WriteCall) -> u64 {
    if w.table.ends_with(PRICES_TABLE_SUFFIX) {
        w.index_units
    } else {
        0
    }
}

fn sum(writes: &[WriteCall], op: Option<&str>, field: impl Fn(&WriteCall) -> u64) -> u64 {
    writes
        .iter()
        .filter(|w| op.is_none_or(|o| w.operation == o))
        .map(field)
        .sum()
}

/// Per-record figures from the twin run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TwinFigures {
    pub records: u64,
    pub put_records: Fill,
    pub batch_write: Fill,
    /// Write units per record, index writes included: consumer, alerter, collector (its
    /// state), all; and the base-table writes alone.
    pub wcu_consumer: f64,
    pub wcu_alerter: f64,
    pub wcu_collector: f64,
    pub wcu_total: f64,
    pub wcu_base_tables: f64,
    /// The consumer's write units over the changes it stored (every write of the run is
    /// charged to a change: an upper bound), and a replay's over the records replayed
    /// (every one a repeat).
    pub wcu_per_change: f64,
    /// The same without the entity items and their index entries (written once per entity,
    /// on its first change): what a change of an entity already tracked costs.
    pub wcu_per_known_change: f64,
    /// Entity items written, and their write units with the index entries, per entity.
    pub entities: u64,
    pub wcu_per_entity: f64,
    pub wcu_per_repeat: Option<f64>,
    pub changes: usize,
    pub replayed: u64,
    pub put_units: f64,
    pub kinesis_bytes: f64,
    pub s3_puts: f64,
    pub publishes: u64,
    pub publishes_per_alert: f64,
    /// Collector runs, and the seconds one took (its wall time on the twin).
    pub runs: u64,
    pub run_seconds: f64,
    /// Invocations per record of the consumer and the alerter (the twin's batches).
    pub consumer_invocations: f64,
    pub alerter_invocations: f64,
    /// Bytes the consumer's puts stored per change item; raw archive bytes per record.
    pub item_bytes: f64,
    pub archive_bytes: f64,
    pub log_bytes: f64,
    pub alerts_per_record: f64,
}

pub fn twin_figures(t: &TwinRun) -> TwinFigures {
    let writes = |f: &str| t.stats.get(f).map(|s| s.writes.clone()).unwrap_or_default();
    let op = |f: &str, o: &str| {
        t.stats
            .get(f)
            .and_then(|s| s.operations.get(o).copied())
            .unwrap_or(0)
    };
    let (collector, consumer, alerter) =
        (writes("collector"), writes("consumer"), writes("alerter"));
    let records = sum(&collector, Some("PutRecords"), |w| w.entries);
    let per = |n: u64| n as f64 / records.max(1) as f64;
    let wcu = |w: &[WriteCall]| per(sum(w, None, |w| w.write_units + index_units(w)));
    let busy = |f: &str| t.busy.get(f).copied().unwrap_or_default();
    let publishes = op("alerter", "sns.Publish");
    let (runs, run_busy, _) = busy("collector");
    let put_units = per(sum(&collector, Some("PutRecords"), |w| w.put_units));
    let s3_puts = per(op("collector", "s3.PUT"));
    let wcu_total = wcu(&collector) + wcu(&consumer) + wcu(&alerter);
    TwinFigures {
        records,
        put_records: fill(&collector, "PutRecords", KINESIS_PUT_RECORDS_MAX_ENTRIES),
        batch_write: fill(&consumer, "BatchWriteItem", DYNAMODB_BATCH_WRITE_MAX_ITEMS),
        wcu_consumer: wcu(&consumer),
        wcu_alerter: wcu(&alerter),
        wcu_collector: wcu(&collector),
        wcu_total,
        wcu_per_change: sum(&consumer, None, |w| w.write_units + index_units(w)) as f64
            / t.history_items.max(1) as f64,
        wcu_per_known_change: sum(&consumer, None, |w| w.write_units - w.entity_units) as f64
            / t.history_items.max(1) as f64,
        entities: sum(&consumer, None, index_units),
        wcu_per_entity: sum(&consumer, None, |w| w.entity_units + index_units(w)) as f64
            / sum(&consumer, None, index_units).max(1) as f64,
        wcu_per_repeat: (t.replayed > 0)
            .then(|| t.replay_consumer_units as f64 / t.replayed as f64),
        changes: t.history_items,
        replayed: t.replayed,
        wcu_base_tables: [&collector, &consumer, &alerter]
            .iter()
            .map(|w| per(sum(w, None, |w| w.write_units)))
            .sum(),
        put_units,
        kinesis_bytes: per(sum(&collector, Some("PutRecords"), |w| w.kinesis_bytes)),
        s3_puts,
        publishes,
        publishes_per_alert: publishes as f64 / t.alerts.max(1) as f64,
        runs,
        run_seconds: run_busy / runs.max(1) as f64,
        consumer_invocations: per(busy("consumer").0),
        alerter_invocations: per(busy("alerter").0),
        item_bytes: sum(&consumer, None, |w| w.item_bytes) as f64 / t.history_items.max(1) as f64,
        archive_bytes: per(sum(&collector, Some("PUT"), |w| w.object_bytes)),
        log_bytes: per(t.log_bytes),
        alerts_per_record: per(t.alerts as u64),
    }
}

fn find<'a>(r: &'a Results, function: &str, imp: Imp) -> Option<&'a Throughput> {
    r.throughput
        .iter()
        .find(|t| t.function == function && t.imp == imp)
}

fn cold<'a>(r: &'a Results, function: &str, imp: Imp) -> Option<&'a ColdStart> {
    r.cold
        .iter()
        .find(|c| c.function == function && c.imp == imp)
}

pub fn mib(kib: &[u64]) -> f64 {
    median(&kib.iter().map(|k| *k as f64).collect::<Vec<_>>()) / 1024.0
}

fn yes(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**not met**"
    }
}

fn calls_line(calls: &crate::awsstub::StubCalls) -> String {
    calls
        .operations
        .iter()
        .map(|(op, n)| format!("{op} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn usd(v: f64) -> String {
    if v == 0.0 {
        "—".into()
    } else if v < 0.01 {
        format!("${v:.5}")
    } else {
        format!("${v:.2}")
    }
}

/// A price as people read it: tiny unit prices per million units.
fn price_text(usd: f64) -> String {
    let trim = |v: f64| {
        let t = format!("{v:.7}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    if usd < 0.001 {
        format!("${} per million", trim(usd * 1e6))
    } else {
        format!("${}", trim(usd))
    }
}

/// The rows of one cost table and its total.
fn cost_rows(o: &mut String, lines: &[cost::Line], total: &str) {
    for l in lines {
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            l.item,
            usd(l.pricewire),
            usd(l.classic)
        );
    }
    let (p, c) = cost::total(lines);
    let _ = writeln!(o, "| **{total}** | **{}** | **{}** |", usd(p), usd(c));
}

/// The cost model's rates from the results, when the twin ran: the twin's calls and
/// bytes, the stub's CPU (each function's own work; see the method notes) on events of the
/// twin's batch size, the Python baseline's own writes.
pub fn model(r: &Results) -> Option<(TwinFigures, Rates, Classic)> {
    let t = r.twin.as_ref()?;
    let f = twin_figures(t);
    let per_record = |t: &Throughput| t.batch_cpu_s / super::BATCH_RECORDS as f64;
    let changes_per_record = f.changes as f64 / f.records.max(1) as f64;
    let rates = Rates {
        run_seconds: f.run_seconds,
        records_per_s3_put: 1.0 / f.s3_puts.max(f64::MIN_POSITIVE),
        run_state_units: f.wcu_collector * f.records as f64 / f.runs.max(1) as f64,
        put_units: f.put_units,
        log_bytes: f.log_bytes,
        consumer_cpu: find(r, "consumer", Imp::Rust).map_or(0.0, per_record),
        // The bench's alerter events are changes (table-stream INSERTs).
        alerter_cpu: find(r, "alerter", Imp::Rust).map_or(0.0, per_record),
        units_per_change: f.wcu_per_known_change,
        units_per_repeat: f.wcu_per_repeat.unwrap_or(f.wcu_per_known_change),
        alerts_per_change: f.alerts_per_record / changes_per_record.max(f64::MIN_POSITIVE),
        publishes_per_alert: f.publishes_per_alert,
        units_per_alert: f.wcu_alerter / f.alerts_per_record.max(f64::MIN_POSITIVE),
        item_bytes: f.item_bytes,
        archive_bytes: f.archive_bytes,
        shards: t.shards as f64,
        alarms: t.alarms as f64,
        metric_series: t.metric_series as f64,
        memory_mb: MEMORY_MB as f64,
    };
    let python = find(r, "consumer", Imp::Python);
    let classic = Classic {
        consumer_cpu: python.map_or(0.0, per_record),
        // KDA hands the output Lambda matched rows only: one invocation per alert, each
        // the Python alerter's CPU per published alert (measured on records that all match).
        alert_cpu: find(r, "alerter", Imp::Python)
            .and_then(|a| a.per_alert_cpu_s)
            .unwrap_or(0.0),
        // Its own puts: a new item per record and the latest item per entity and batch,
        // measured on its requests (an index on the latest items is not charged: a lower
        // bound for the classic design).
        units_per_record: python.map_or(0.0, |p| {
            p.calls.writes.iter().map(|w| w.write_units).sum::<u64>() as f64
                / p.records.max(1) as f64
        }),
        item_bytes: python.map_or(0.0, |p| {
            p.calls.writes.iter().map(|w| w.item_bytes).sum::<u64>() as f64
                / p.records.max(1) as f64
        }),
    };
    Some((f, rates, classic))
}

pub fn markdown(r: &Results, commit: &str, command: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# pricewire benchmarks\n");
    let _ = writeln!(
        o,
        "Generated by `make bench` (`{command}`); do not edit by hand.\n"
    );
    let _ = writeln!(
        o,
        "- date: {} (UTC)\n- machine: {}\n- commit: {commit}\n- memory configured for every function, both implementations: {MEMORY_MB} MB\n",
        r.started.format("%Y-%m-%d %H:%M"),
        r.machine
    );

    // Targets.
    let _ = writeln!(o, "## Targets\n");
    let _ = writeln!(o, "| target | measured | |\n|---|---|---|");
    let ratios: Vec<(&str, f64)> = super::FUNCTIONS
        .iter()
        .filter_map(|f| {
            let rust = median(&cold(r, f, Imp::Rust)?.ms);
            let py = median(&cold(r, f, Imp::Python)?.ms);
            Some((*f, py / rust))
        })
        .collect();
    let worst_ratio = ratios.iter().map(|(_, x)| *x).fold(f64::INFINITY, f64::min);
    let _ = writeln!(
        o,
        "| cold start ≤ 1/{TARGET_COLD_START_RATIO:.0} of the boto3 baseline | {} | {} |",
        ratios
            .iter()
            .map(|(f, x)| format!("{f} 1/{x:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        yes(worst_ratio >= TARGET_COLD_START_RATIO)
    );
    let rss: Vec<(&str, f64)> = super::FUNCTIONS
        .iter()
        .filter_map(|f| Some((*f, mib(&cold(r, f, Imp::Rust)?.rss_kib))))
        .collect();
    let worst_rss = rss.iter().map(|(_, m)| *m).fold(0.0, f64::max);
    let _ = writeln!(
        o,
        "| peak RSS ≤ {TARGET_PEAK_RSS_MIB:.0} MiB per function | {} | {} |",
        rss.iter()
            .map(|(f, m)| format!("{f} {m:.1} MiB"))
            .collect::<Vec<_>>()
            .join(", "),
        yes(worst_rss <= TARGET_PEAK_RSS_MIB)
    );
    for (function, target) in [
        ("consumer", TARGET_CONSUMER_RECORDS_PER_CORE_SECOND),
        ("alerter", TARGET_ALERTER_RECORDS_PER_CORE_SECOND),
    ] {
        if let Some(c) = find(r, function, Imp::Rust) {
            let rate = c.records_per_cpu_second();
            let batch = super::BATCH_RECORDS as f64 / c.batch_cpu_s.max(f64::MIN_POSITIVE);
            let _ = writeln!(
                o,
                "| {function} ≥ {target:.0} records/s per core on {}-record events | {rate:.0} records/s per core ({batch:.0} on events of {}, the mapping's batch size) | {} |",
                c.records,
                super::BATCH_RECORDS,
                yes(rate >= target)
            );
        }
    }
    let modelled = model(r);
    if let Some((f, _, _)) = &modelled {
        for (name, fl) in [
            ("PutRecords", f.put_records),
            ("BatchWriteItem", f.batch_write),
        ] {
            let ratio = fl.eligible_ratio();
            let _ = writeln!(
                o,
                "| ≥ {:.0} % of the maximum entries per {name} call when enough records wait | {} | {} |",
                TARGET_BATCH_FILL * 100.0,
                ratio.map_or("no call had enough waiting".into(), |x| format!(
                    "{:.1} % ({} of {} calls eligible)",
                    x * 100.0,
                    fl.eligible_calls,
                    fl.calls
                )),
                ratio.map_or("n/a", |x| yes(x >= TARGET_BATCH_FILL))
            );
        }
    }

    if let Some((f, _, _)) = &modelled {
        let _ = writeln!(
            o,
            "| prices-table write units per change ≤ {TARGET_WCU_PER_CHANGE} (index writes included) | {:.3} per change of an entity already tracked; {:.3} per change overall ({} changes of {} records, {} of them an entity's first, which also writes the entity item and its index entry: {:.2} units once per entity) | {} |",
            f.wcu_per_known_change,
            f.wcu_per_change,
            f.changes,
            f.records,
            f.entities,
            f.wcu_per_entity,
            yes(f.wcu_per_known_change <= TARGET_WCU_PER_CHANGE)
        );
        let _ = writeln!(
            o,
            "| prices-table write units per repeat ≤ {TARGET_WCU_PER_REPEAT} | {} | {} |",
            f.wcu_per_repeat.map_or("no replay".into(), |x| format!(
                "{x:.4} (a replay of all {} records)",
                f.replayed
            )),
            f.wcu_per_repeat
                .map_or("n/a", |x| yes(x <= TARGET_WCU_PER_REPEAT))
        );
    }
    if let Some((_, rates, classic)) = &modelled {
        let user = Month::of(&cost::USER, rates, classic);
        let big = Month::of(&cost::HUNDRED_MILLION, rates, classic);
        let _ = writeln!(
            o,
            "| ≥ {TARGET_CLASSIC_RATIO_USER:.0}× cheaper than the classic design per month at {} | {:.1}× ({} against {}) | {} |",
            cost::USER.says,
            user.ratio(),
            usd(user.x86_64),
            usd(user.classic),
            yes(user.ratio() >= TARGET_CLASSIC_RATIO_USER)
        );
        let _ = writeln!(
            o,
            "| ≤ ${TARGET_USD_PER_MILLION_AT_100M:.2} per million records at 100 million a month | ${:.3} per million ({} a month) | {} |",
            big.per_million(),
            usd(big.x86_64),
            yes(big.per_million() <= TARGET_USD_PER_MILLION_AT_100M)
        );
    }

    // 1. Cold start.
    let _ = writeln!(o, "\n## 1. Cold start\n");
    let _ = writeln!(
        o,
        "Spawn → first response through the same Lambda Runtime API host, against the same AWS stub; \
         median of {} interleaved runs per function (min–max), after one untimed round. The Python \
         handler imports boto3 and builds its clients at module level, as usual.\n",
        r.cold.first().map_or(0, |c| c.ms.len())
    );
    let _ = writeln!(
        o,
        "| function | pricewire (Rust) | Python 3.11 + boto3 | ratio | init: spawn → first /next (Rust / Python) | first invocation (Rust / Python) | peak RSS Rust (anon / file) | peak RSS Python | AWS calls of the first invocation (Rust / Python) |\n|---|---|---|---|---|---|---|---|---|"
    );
    for f in super::FUNCTIONS {
        let (Some(rc), Some(pc)) = (cold(r, f, Imp::Rust), cold(r, f, Imp::Python)) else {
            continue;
        };
        let range = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(0.0, f64::max);
            format!("{:.1} ms ({lo:.1}–{hi:.1})", median(v))
        };
        let first = |c: &ColdStart| {
            let rest: Vec<f64> = c.ms.iter().zip(&c.init_ms).map(|(a, b)| a - b).collect();
            median(&rest)
        };
        let _ = writeln!(
            o,
            "| {f} | {} | {} | 1/{:.0} | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.1} MiB ({:.1} / {:.1}) | {:.1} MiB | {} / {} |",
            range(&rc.ms),
            range(&pc.ms),
            median(&pc.ms) / median(&rc.ms),
            median(&rc.init_ms),
            median(&pc.init_ms),
            first(rc),
            first(pc),
            mib(&rc.rss_kib),
            mib(&rc.anon_kib),
            mib(&rc.file_kib),
            mib(&pc.rss_kib),
            calls_line(&rc.calls),
            calls_line(&pc.calls)
        );
    }

    // 2. Per-record cost.
    let _ = writeln!(o, "\n## 2. Per-record cost\n");
    let _ = writeln!(
        o,
        "One warm process per function and implementation; CPU time of the whole process (user + system, \
         every thread, from /proc) over each invocation of a {}-record Kinesis event, AWS answered by the stub. \
         Median of {} invocations.\n",
        r.throughput.first().map_or(0, |t| t.records),
        r.throughput.first().map_or(0, |t| t.cpu_s.len())
    );
    let _ = writeln!(
        o,
        "| function | implementation | CPU per invocation | CPU per record | records/s per core | wall per invocation | CPU per record in events of {BATCH_RECORDS} | CPU per alert | AWS calls per invocation |\n|---|---|---|---|---|---|---|---|---|"
    );
    for t in &r.throughput {
        let cpu = median(&t.cpu_s);
        let _ = writeln!(
            o,
            "| {} | {} | {:.3} s | {:.1} µs | {:.0} | {:.3} s | {:.1} µs | {} | {} |",
            t.function,
            t.imp.label(),
            cpu,
            cpu / t.records as f64 * 1e6,
            t.records_per_cpu_second(),
            median(&t.wall_s),
            t.batch_cpu_s / BATCH_RECORDS as f64 * 1e6,
            t.per_alert_cpu_s
                .map_or("—".into(), |s| format!("{:.0} µs", s * 1e6)),
            calls_line(&t.calls)
        );
    }
    for f in ["consumer", "alerter"] {
        if let (Some(rt), Some(pt)) = (find(r, f, Imp::Rust), find(r, f, Imp::Python)) {
            let _ = writeln!(
                o,
                "\n{f}: Rust does {:.1}× the records per CPU second of the boto3 baseline.",
                rt.records_per_cpu_second() / pt.records_per_cpu_second()
            );
        }
    }

    // 3. Calls per record.
    if let (Some(t), Some((f, rates, classic))) = (&r.twin, &modelled) {
        let _ = writeln!(o, "\n## 3. Calls per record on the twin\n");
        let _ = writeln!(
            o,
            "The local twin (moto, the upstream simulator, the real Terraform with `infra/moto/faults.tfvars`, \
             the release binaries): {} jobs × 500 offers × 5 rounds, simulator seed 11, every AWS call counted by the \
             fault proxy with all fault rates at zero. Took {:.0} s including terraform apply.\n",
            t.jobs, t.seconds
        );
        let _ = writeln!(o, "| figure | value |\n|---|---|");
        let rows = [
            ("records put on the stream", format!("{}", f.records)),
            (
                "distinct history items stored",
                format!("{}", t.history_items),
            ),
            (
                "entries per PutRecords call (mean; max 500)",
                format!(
                    "{:.1} over {} calls",
                    f.put_records.mean(),
                    f.put_records.calls
                ),
            ),
            (
                "items per BatchWriteItem call (mean; max 25)",
                format!(
                    "{:.1} over {} calls",
                    f.batch_write.mean(),
                    f.batch_write.calls
                ),
            ),
            (
                "BatchWriteItem calls made while ≥ 25 items waited: items per call",
                f.batch_write.eligible_ratio().map_or("—".into(), |x| {
                    format!(
                        "{:.1} % of 25 ({} calls)",
                        x * 100.0,
                        f.batch_write.eligible_calls
                    )
                }),
            ),
            (
                "DynamoDB write units per record, index writes included: consumer / alerter / collector state / all",
                format!(
                    "{:.2} / {:.3} / {:.4} / {:.2} (base tables alone: {:.2})",
                    f.wcu_consumer, f.wcu_alerter, f.wcu_collector, f.wcu_total, f.wcu_base_tables
                ),
            ),
            (
                "log bytes per record (JSON logs and EMF)",
                format!("{:.0} B", f.log_bytes),
            ),
            (
                "Kinesis bytes and PUT payload units per record",
                format!("{:.0} B, {:.2}", f.kinesis_bytes, f.put_units),
            ),
            (
                "S3 PUTs per record (raw archive)",
                format!("{:.4}", f.s3_puts),
            ),
            (
                "SNS publishes per alert",
                format!(
                    "{:.2} ({} publishes, {} alerts delivered)",
                    f.publishes_per_alert, f.publishes, t.alerts
                ),
            ),
            (
                "invocations per record: collector / consumer / alerter",
                format!(
                    "{:.4} / {:.4} / {:.4}",
                    f.runs as f64 / f.records.max(1) as f64,
                    f.consumer_invocations,
                    f.alerter_invocations
                ),
            ),
            (
                "exactly-once check of the run (lost + doubled + wrong)",
                format!("{}", t.failures),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(o, "| {k} | {v} |");
        }
        let _ = writeln!(o, "\nCalls per function:\n");
        for (function, s) in &t.stats {
            let _ = writeln!(
                o,
                "- {function}: {}",
                s.operations
                    .iter()
                    .map(|(op, n)| format!("{op} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }

        // 4. Cost.
        let _ = writeln!(
            o,
            "\n## 4. Cost model (us-east-1 list prices, no free tier)\n"
        );
        let _ = writeln!(
            o,
            "| price | value | unit | read | source |\n|---|---|---|---|---|"
        );
        for (name, p) in cost::PRICES {
            let _ = writeln!(
                o,
                "| `{name}` | {} | {} | {} | {} |",
                price_text(p.usd),
                p.unit,
                p.read,
                p.source
            );
        }
        let _ = writeln!(
            o,
            "\nMeasured rates (pricewire, from the twin's run and the stub): a collector run {:.2} s and {:.2} state write units, {:.0} records per raw-archive object; \
             per record {:.2} PUT payload units, {:.0} B of logs, {:.1} µs consumer CPU (events of {}); per change {:.3} write units, \
             {:.1} µs alerter CPU, {:.3} alerts; per repeat {:.4} write units; per alert {:.2} publishes and {:.2} state write units; \
             {:.0} B stored per change item, {:.0} B of gzip archive per record; {} shard, {} alarms, {} metric series. \
             Classic (the Python baseline's own requests): {:.2} write units and {:.0} B stored per record, {:.1} µs consumer CPU per record, \
             {:.0} µs per alert in KDA's output Lambda.\n",
            rates.run_seconds, rates.run_state_units, rates.records_per_s3_put,
            rates.put_units, rates.log_bytes, rates.consumer_cpu * 1e6, super::BATCH_RECORDS,
            rates.units_per_change, rates.alerter_cpu * 1e6, rates.alerts_per_change,
            rates.units_per_repeat, rates.publishes_per_alert, rates.units_per_alert,
            rates.item_bytes, rates.archive_bytes, rates.shards, rates.alarms, rates.metric_series,
            classic.units_per_record, classic.item_bytes, classic.consumer_cpu * 1e6, classic.alert_cpu * 1e6,
        );
        let _ = writeln!(
            o,
            "| workload | records a month | pricewire x86_64 | pricewire arm64 | classic | classic / pricewire | pricewire per million records | SMS to one subscriber of every alert: Russia / US |\n|---|---|---|---|---|---|---|---|"
        );
        for w in &WORKLOADS {
            let m = Month::of(w, rates, classic);
            let (ru, us) = m.sms();
            let _ = writeln!(
                o,
                "| {} | {:.0} | {} | {} | {} | {:.1}× | ${:.3} | {} / {} ({:.0} alerts) |",
                w.says,
                w.records(),
                usd(m.x86_64),
                usd(m.arm64),
                usd(m.classic),
                m.ratio(),
                m.per_million(),
                usd(ru),
                usd(us),
                m.alerts
            );
        }
        for w in [cost::USER, cost::HUNDRED_MILLION] {
            let _ = writeln!(
                o,
                "\nA month of {} (x86_64):\n\n| item | pricewire | classic |\n|---|---|---|",
                w.says
            );
            cost_rows(
                &mut o,
                &cost::monthly(&w, rates, classic, Arch::X86_64),
                "total per month",
            );
        }
        let _ = writeln!(
            o,
            "\nSMS is outside the totals: the same in both designs, per subscriber and alert (`SNS_SMS_RU`; `SNS_SMS_US` + `SMS_US_CARRIER_FEE`)."
        );
    } else {
        let _ = writeln!(
            o,
            "\n## 3–4. Calls per record and cost\n\nNot run (`--no-twin`)."
        );
    }

    let _ = writeln!(o, "\n## Method and limits\n");
    for line in METHOD {
        let _ = writeln!(o, "- {line}");
    }
    o
}

const METHOD: &[&str] = &[
    "Both implementations run under the same Runtime API host (`infra/pricewire/src/runtime_api.rs`) with the same environment, against the same AWS stub (`awsstub.rs`), which answers at once and counts every call; the tables show the calls each made. The Python baseline is `bench/baseline/` (benchmark only): the same envelope checks (fields, types, SHA-256 id), items, keys and calls, written the usual Python way. It is leaner in places: no GSM-7 SMS fitting, no poison path on this clean data, no logging; the Rust functions log as deployed (`RUST_LOG=info`).",
    "Cold start is spawn → first response, including the first invocation's work (the collector fetches one page of 99 offers from the simulator); peak RSS is VmHWM of the process after that response.",
    "CPU is the process's own, every thread: the scheduler's nanosecond counters (`/proc/<pid>/task/*/schedstat`) where the kernel keeps them, else utime + stime in 10 ms ticks (this machine: the counters read 0), so short runs are summed over many invocations. It includes receiving and parsing the event JSON, decoding base64, validating each envelope and its id, building the items or messages, signing and sending the calls. The stub runs in the bench process and is not counted. A 10,000-record event of this size exceeds Lambda's 6 MB invocation payload; the figure is per record either way.",
    "The Rust consumer writes `latest` items 16 at a time; the baseline one at a time, as the usual handler does. That changes wall time, not CPU.",
    "Lambda's bill: each invocation's CPU time (per record, measured on events of the twin's batch size, 100 records), times the records an invocation of the workload holds (each run's records, at most 100), divided by the function's share of a vCPU (256 MB / 1,769 MB), rounded up to the millisecond. Waiting on AWS is not in it: the same calls add their latency to both designs (more to the baseline's one-at-a-time puts). The collector is billed at its wall time per run on the twin (dominated by the simulator and moto). arm64 is priced at the same CPU time (not measured here).",
    "Workloads: the rates above applied to each reference workload's runs, records, changes (the share not unchanged), repeats and alerts (the twin's alerts per change). Storage is the steady state: 90 days of change items (pricewire) or of every record's item (classic) with point-in-time recovery, a year of gzip raw archive at S3 Standard (an upper bound: it moves to Standard-IA after 30 days). The classic design writes every record as a new item (a fresh uuid key: no change detection, so repeats and redeliveries are items too) and the latest item per entity and batch, charged at the write units of its own requests; an index on its latest items is not charged (a lower bound for it).",
    "Write units per change: every prices-table write of the run (change items, entity items, statistics rewrites, deletes, index writes) divided by the change items it stored, an upper bound, and the same without the entity items and their index entries (written once per entity, on its first change: in a short run most entities are new); per repeat: the same after a replay of the whole run from the raw archive (`pricewire replay`), divided by the records it put, every one of which repeats a stored value.",
    "Write units are estimated from the request item sizes by DynamoDB's rules (`wire.rs`), plus the index writes of the prices table (its KEYS_ONLY GSI `latest_by_source` holds only entity items, one unit per entity item put; `render::index_units`). A conditional put that fails is counted as if it succeeded (an upper bound).",
    "The classic design's Lambdas: the consumer is the Python baseline's consumer; the alert Lambda is invoked by KDA with matched rows only, at most once per alert, each billed at the Python alerter's CPU per published alert. KDA for SQL applications is end-of-life (no new applications since 2025-10-15); its last list price is used.",
    "Calls per record come from one seeded workload: 500 offers per job answer in one PutRecords call; consumer batches of 100 records (the event source mapping's batch size) give the BatchWriteItem fill. The Kinesis stream is provisioned (1 shard); on-demand streams are not modelled.",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn call(trace: &str, op: &str, entries: u64) -> WriteCall {
        WriteCall {
            operation: op.into(),
            trace: trace.into(),
            entries,
            ..WriteCall::default()
        }
    }

    #[test]
    fn fill_counts_only_calls_made_while_enough_waited() {
        let writes = vec![
            call("a", "BatchWriteItem", 25),
            call("a", "BatchWriteItem", 25),
            call("a", "BatchWriteItem", 10), // the remainder: not eligible
            call("b", "BatchWriteItem", 20), // 20 + 10 waiting: eligible, 80 % full
            call("b", "BatchWriteItem", 10),
            call("c", "PutItem", 1),
        ];
        let f = fill(&writes, "BatchWriteItem", 25);
        assert_eq!((f.calls, f.entries), (5, 90));
        assert_eq!((f.eligible_calls, f.eligible_entries), (3, 70));
        assert!((f.eligible_ratio().unwrap() - 70.0 / 75.0).abs() < 1e-12);
        assert_eq!(
            fill(&[call("a", "PutRecords", 300)], "PutRecords", 500).eligible_ratio(),
            None
        );
    }

    #[test]
    fn only_entity_items_add_index_writes() {
        let body = |items: &str| format!(r#"{{"RequestItems":{{"pricewire-prices":[{items}]}}}}"#);
        let change =
            r#"{"PutRequest":{"Item":{"pk":{"S":"a"},"sk":{"S":"T#1"},"price":{"N":"5"}}}}"#;
        let entity = r#"{"PutRequest":{"Item":{"pk":{"S":"a"},"sk":{"S":"E"},"lpk":{"S":"s#k"},"lsk":{"S":"a"}}}}"#;
        let delete = r#"{"DeleteRequest":{"Key":{"pk":{"S":"a"},"sk":{"S":"T#0"}}}}"#;
        let m = crate::wire::measure(
            "dynamodb",
            "BatchWriteItem",
            body(&format!("{change},{entity},{delete}")).as_bytes(),
            "",
        )
        .unwrap();
        assert_eq!((m.entries, m.write_units, index_units(&m)), (3, 3, 1));
        let state = WriteCall {
            table: "pricewire-state".into(),
            index_units: 4,
            ..m
        };
        assert_eq!(index_units(&state), 0, "no indexes there");
    }

    #[test]
    fn write_units_are_charged_to_changes_and_to_a_replays_repeats() {
        let prices = |units, index| WriteCall {
            operation: "BatchWriteItem".into(),
            table: "pricewire-prices".into(),
            write_units: units,
            index_units: index,
            entity_units: index,
            ..WriteCall::default()
        };
        let mut stats = BTreeMap::new();
        stats.insert(
            "consumer".to_string(),
            crate::faultproxy::FaultStats {
                writes: vec![prices(25, 5), prices(10, 2)],
                ..Default::default()
            },
        );
        let t = TwinRun {
            stats,
            history_items: 35,
            replayed: 1000,
            replay_consumer_units: 3,
            ..TwinRun::default()
        };
        let f = twin_figures(&t);
        assert!((f.wcu_per_change - 42.0 / 35.0).abs() < 1e-12);
        // 7 entity items of 1 unit, with 7 index entries: 2 per entity; the rest per change.
        assert_eq!((f.entities, f.wcu_per_entity), (7, 2.0));
        assert!((f.wcu_per_known_change - 28.0 / 35.0).abs() < 1e-12);
        assert_eq!(f.wcu_per_repeat, Some(0.003));
        let none = twin_figures(&TwinRun::default());
        assert_eq!(none.wcu_per_repeat, None, "no replay, no figure");
    }

    #[test]
    fn prices_read_as_people_write_them() {
        assert_eq!(price_text(0.20 / 1e6), "$0.2 per million");
        assert_eq!(price_text(0.000_016_666_7), "$16.6667 per million");
        assert_eq!(price_text(0.0116), "$0.0116");
        assert_eq!(price_text(0.11), "$0.11");
    }
}
