//! The local twin end to end, a short run without faults: the real terraform/ applied to
//! moto, the release `bootstrap` binaries run through the twin, exact outcomes asserted.
//! On the same stack, a scripted history (flights dropping to a new 30-day low, odds
//! shortening at two of three bookmakers, a spread's line moving, a funding flip, repeats
//! of unchanged values) is
//! put on the stream: each subscriber gets exactly the alerts written out below, each once,
//! through the SNS filter policies Terraform made; repeats and a replay write nothing and
//! send nothing.
//!
//! Needs `make build` (release binaries) and terraform; `make e2e` runs it.

mod common;

use chrono::{DateTime, Duration as Span, Utc};
use pricewire_cli::demo::{self, DemoOptions};
use pricewire_cli::report;
use pricewire_cli::simulator::SimConfig;
use pricewire_pipeline::envelope::{
    Envelope, FlightPrice, FundingRate, Instrument, Money, Payload,
};
use pricewire_pipeline::table;
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// The twin's sources (`infra/moto/twin.tfvars`), each on its own simulator.
const SOURCES: [&str; 6] = [
    "travelpayouts",
    "odds",
    "dinger",
    "binance",
    "bybit",
    "shop",
];

/// The scripted fare: LED → EVN on 24 Dec, one stop, sold by Pobeda (no other rule's deal).
const FARE_KEY: &str = "LED-EVN/2026-12-24/oneway";

fn fare(rub: i64, fetched: DateTime<Utc>) -> Envelope {
    let mut f = FlightPrice::new(
        "LED",
        "EVN",
        "2026-12-24",
        Money {
            amount: rub.into(),
            currency: "RUB".into(),
        },
    );
    f.gate = Some("Pobeda".into());
    f.transfers = Some(1);
    Envelope::new(
        "travelpayouts",
        "scripted",
        FARE_KEY.into(),
        None,
        fetched,
        Payload::FlightPrice(f),
    )
}

fn odds(bookmaker: &str, price: &str, fetched: DateTime<Utc>) -> Envelope {
    quote(bookmaker, "h2h", None, price, fetched)
}

/// The home side's spread at a bookmaker: its line and price.
fn spread(bookmaker: &str, line: &str, price: &str, fetched: DateTime<Utc>) -> Envelope {
    quote(bookmaker, "spreads", Some(line), price, fetched)
}

fn quote(
    bookmaker: &str,
    market: &str,
    line: Option<&str>,
    price: &str,
    fetched: DateTime<Utc>,
) -> Envelope {
    let mut e = pricewire_pipeline::fixtures::odds_quote(
        "scripted-final",
        bookmaker,
        market,
        price,
        line,
        fetched,
    );
    e.job = "scripted".into();
    e
}

fn funding(rate: &str, at: DateTime<Utc>, fetched: DateTime<Utc>) -> Envelope {
    Envelope::new(
        "binance",
        "scripted",
        "binance/linear/SCRIPTUSDT/funding".into(),
        Some(at),
        fetched,
        Payload::FundingRate(FundingRate {
            instrument: Instrument {
                exchange: "binance".into(),
                market: "linear".into(),
                symbol: "SCRIPTUSDT".into(),
            },
            rate: dec(rate),
            funding_time: at,
            mark_price: None,
        }),
    )
}

/// The scripted history: `(old, today)`. The old part was fetched days ago (older than the
/// alerter's maximum age: it builds statistics and pages nobody); today's is fresh.
fn script(now: DateTime<Utc>) -> (Vec<Envelope>, Vec<Envelope>) {
    let day = |d: i64| now - Span::days(d) - Span::hours(1);
    let min = |m: i64| now - Span::minutes(m);
    let mut old = Vec::new();
    // 20 daily fares, lowest 8700, each seen twice (the second sighting repeats it).
    let fares = [
        9000, 9400, 8800, 9200, 9000, 9600, 8900, 9100, 9300, 8700, 9000, 9500, 8800, 9200, 9000,
        9400, 8900, 9100, 9300, 9000,
    ];
    for (i, rub) in fares.iter().enumerate() {
        let at = day(20 - i as i64);
        old.push(fare(*rub, at));
        old.push(fare(*rub, at + Span::minutes(30)));
    }
    // Funding every 8 hours, positive, one point fetched twice.
    let t0 = now - Span::minutes(10);
    for k in (3..=9).rev() {
        let at = t0 - Span::hours(8 * k);
        old.push(funding("0.0001", at, at + Span::minutes(1)));
    }
    old.push(funding(
        "0.0001",
        t0 - Span::hours(24),
        t0 - Span::hours(23),
    ));
    let today = vec![
        fare(8800, min(50)), // −2.2 % from 9000: nothing
        odds("draftkings", "2.50", min(45)),
        odds("fanduel", "2.50", min(45)),
        odds("betmgm", "2.50", min(45)),
        spread("draftkings", "-3.5", "1.91", min(45)),
        funding("0.0001", t0 - Span::hours(16), min(50)),
        fare(8800, min(48)),                              // repeat
        fare(8300, min(45)), // −5.7 %, below the 30-day low 8700: drop and new low
        fare(8300, min(42)), // repeat
        fare(8600, min(40)), // up: nothing
        fare(8100, min(35)), // −5.8 %, new low, better than 8300: both again
        fare(9000, min(30)), // up
        odds("draftkings", "2.00", min(20)), // 40 % → 50 % in 25 min: shortening
        odds("fanduel", "2.10", min(20)), // 40 % → 47.6 %: shortening
        odds("betmgm", "2.45", min(20)), // 40 % → 40.8 %: nothing
        spread("draftkings", "-5.5", "1.91", min(20)), // the line moved 2 points
        funding("-0.0002", t0 - Span::hours(8), min(20)), // the flip (and negative)
        fare(8500, min(25)), // −5.6 % but not better than 8100: held
        odds("draftkings", "2.00", min(18)), // repeat
        funding("-0.0002", t0 - Span::hours(8), min(15)), // the same point fetched again
        fare(8500, min(12)), // repeat
        funding("-0.0001", t0, min(5)), // negative, no flip
    ];
    (old, today)
}

/// The alerts the script implies, (rule, entity key, value), written out by hand.
fn scripted_alerts() -> BTreeSet<(String, String, String)> {
    let odds_key = |bk: &str| format!("basketball_nba/scripted-final/{bk}/h2h/Home");
    let funding_key = "binance/linear/SCRIPTUSDT/funding".to_string();
    [
        ("fare-drop", FARE_KEY.to_string(), "8300"),
        ("fare-30-day-low", FARE_KEY.to_string(), "8300"),
        ("fare-drop", FARE_KEY.to_string(), "8100"),
        ("fare-30-day-low", FARE_KEY.to_string(), "8100"),
        ("odds-shortening", odds_key("draftkings"), "2.00"),
        ("odds-shortening", odds_key("fanduel"), "2.10"),
        // Two of three bookmakers within 30 minutes: one market move, at the second.
        ("odds-steam", odds_key("fanduel"), "2.10"),
        (
            "line-move",
            "basketball_nba/scripted-final/draftkings/spreads/Home".to_string(),
            "1.91",
        ),
        ("funding-flip", funding_key.clone(), "-0.0002"),
        ("negative-funding", funding_key.clone(), "-0.0002"),
        ("negative-funding", funding_key, "-0.0001"),
    ]
    .into_iter()
    .map(|(r, k, v)| (r.to_string(), k, v.to_string()))
    .collect()
}

/// An alert as a queue receives it from SNS: its rule, entity key and dedup key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Received {
    rule: String,
    key: String,
    dedup: String,
}

/// Reads (and deletes) everything in a queue subscribed to the topic.
async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Received> {
    report::receive_all(sqs, url)
        .await
        .unwrap()
        .into_iter()
        .map(|envelope| {
            let alert: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
            let field = |k: &str| alert[k].as_str().unwrap_or_default().to_string();
            Received {
                rule: field("rule"),
                key: field("key"),
                dedup: alerter::dedup_key(&field("rule"), &field("entity"), &field("change")),
            }
        })
        .collect()
}

/// The consumer's DynamoDB write requests so far, from its EMF lines.
fn consumer_write_requests(work: &std::path::Path) -> f64 {
    std::fs::read_to_string(work.join("logs/consumer.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["WriteRequests"].as_f64())
        .sum()
}

/// Runs the operator CLI against the twin's emulator: (exit status, stdout, stderr).
fn cli(repo: &std::path::Path, endpoint: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pricewire"))
        .args(args)
        .args(["--endpoint", endpoint])
        .current_dir(repo)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_ok(repo: &std::path::Path, endpoint: &str, args: &[&str]) -> String {
    let (code, out, err) = cli(repo, endpoint, args);
    assert_eq!(code, 0, "pricewire {args:?}: {err}");
    out
}

/// `history`, `latest` and `chart` against what was stored: the scripted fare's history is
/// exactly its distinct values in fetch order (from the script, not from the table), with the
/// written-out alerts on the changes that raised them; `latest` lists every stored entity
/// once with its newest value (from a raw scan); the chart's files carry exactly the
/// history's points; a missing stack is one clear line and a failure.
fn views_show_what_was_stored(
    repo: &std::path::Path,
    endpoint: &str,
    old: &[Envelope],
    today: &[Envelope],
    alerts: &BTreeMap<(String, String, String), usize>,
    scanned: &[table::Change],
) {
    // The fare's changes, from the script: a value is stored when it differs from the one
    // fetched before it.
    let mut want: Vec<(i64, String)> = Vec::new();
    let mut fares: Vec<&Envelope> = old
        .iter()
        .chain(today)
        .filter(|e| e.key == FARE_KEY)
        .collect();
    fares.sort_by_key(|e| e.fetched_at);
    for e in fares {
        let price = e.payload.amount().normalize().to_string();
        if want.last().map(|(_, p)| p) != Some(&price) {
            want.push((e.fetched_at.timestamp_millis(), price));
        }
    }
    assert_eq!(want.len(), 26);
    let rules_at = |price: &str| -> Vec<String> {
        let mut r: Vec<String> = alerts
            .keys()
            .filter(|(_, k, v)| k == FARE_KEY && v == price)
            .map(|(rule, _, _)| rule.clone())
            .collect();
        r.sort();
        r
    };
    let fare = ["history", "--source", "travelpayouts", "--key", FARE_KEY];
    let rows: Vec<Value> =
        serde_json::from_str(&cli_ok(repo, endpoint, &[&fare[..], &["--json"]].concat())).unwrap();
    let got: Vec<(i64, String)> = rows
        .iter()
        .map(|r| {
            let at = DateTime::parse_from_rfc3339(r["at"].as_str().unwrap()).unwrap();
            (
                at.timestamp_millis(),
                r["price"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, want, "history: exactly the stored changes, in order");
    for r in &rows {
        let mut fired: Vec<String> = r["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        fired.sort();
        assert_eq!(fired, rules_at(r["price"].as_str().unwrap()), "{r}");
    }
    assert_eq!(
        rows.iter()
            .filter(|r| r["rules"] != Value::Array(vec![]))
            .count(),
        2
    );
    // The same as CSV, and a range: today's six changes.
    let csv = cli_ok(repo, endpoint, &[&fare[..], &["--csv"]].concat());
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let prices: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[3].to_string())
        .collect();
    assert_eq!(
        prices,
        want.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>()
    );
    let since = DateTime::from_timestamp_millis(want[20].0)
        .unwrap()
        .to_rfc3339();
    let recent: Vec<Value> = serde_json::from_str(&cli_ok(
        repo,
        endpoint,
        &[&fare[..], &["--json", "--since", &since]].concat(),
    ))
    .unwrap();
    assert_eq!(recent.len(), 6, "--since: {recent:?}");
    let table_text = cli_ok(repo, endpoint, &fare);
    println!("pricewire history --source travelpayouts --key {FARE_KEY}\n{table_text}");
    assert_eq!(table_text.lines().count(), 1 + 26, "{table_text}");

    // latest: every entity of every source once, with its newest stored value.
    let mut newest: BTreeMap<String, &table::Change> = BTreeMap::new();
    for c in scanned {
        if newest.get(&c.pk).is_none_or(|n| c.sk > n.sk) {
            newest.insert(c.pk.clone(), c);
        }
    }
    for source in SOURCES {
        let rows: Vec<Value> = serde_json::from_str(&cli_ok(
            repo,
            endpoint,
            &["latest", "--source", source, "--json", "--sort", "price"],
        ))
        .unwrap();
        let got: BTreeMap<String, String> = rows
            .iter()
            .map(|r| {
                (
                    format!(
                        "{source}#{}#{}",
                        r["kind"].as_str().unwrap(),
                        r["key"].as_str().unwrap()
                    ),
                    r["price"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(got.len(), rows.len(), "{source}: an entity listed twice");
        let want: BTreeMap<String, String> = newest
            .iter()
            .filter(|(pk, _)| pk.starts_with(&format!("{source}#")))
            .map(|(pk, c)| (pk.clone(), c.price.normalize().to_string()))
            .collect();
        assert!(!want.is_empty(), "{source} stored nothing");
        assert_eq!(got, want, "latest {source}");
        let prices: Vec<Decimal> = rows
            .iter()
            .map(|r| dec(r["price"].as_str().unwrap()))
            .collect();
        assert!(prices.windows(2).all(|w| w[0] <= w[1]), "--sort price");
    }

    // chart: PNG and SVG whose data points are exactly the history's.
    let stem = repo.join(".work/twin/charts/fare");
    let out = cli_ok(
        repo,
        endpoint,
        &[
            "chart",
            "--source",
            "travelpayouts",
            "--key",
            FARE_KEY,
            "--out",
            stem.to_str().unwrap(),
        ],
    );
    let paths: Vec<&str> = out.lines().collect();
    assert_eq!(paths.len(), 2, "{out}");
    let (png_data, size) =
        pricewire_cli::chart::data_of_png(&std::fs::read(paths[0]).unwrap()).unwrap();
    assert_eq!(size, pricewire_cli::chart::SIZE);
    let svg_data =
        pricewire_cli::chart::data_of_svg(&std::fs::read_to_string(paths[1]).unwrap()).unwrap();
    assert_eq!(png_data, svg_data);
    assert_eq!(png_data.series.len(), 1);
    let points: Vec<(i64, String)> = png_data.series[0]
        .points
        .iter()
        .map(|p| (p.at.timestamp_millis(), p.price.normalize().to_string()))
        .collect();
    assert_eq!(points, want, "the chart draws exactly the stored changes");
    let marked: Vec<String> = png_data.series[0]
        .points
        .iter()
        .filter(|p| !p.rules.is_empty())
        .map(|p| p.price.normalize().to_string())
        .collect();
    assert_eq!(marked, ["8300", "8100"], "a marker at each alerted change");

    // A stack that is not there: one line, non-zero.
    let (code, _, err) = cli(repo, endpoint, &["status", "--name", "nosuch"]);
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no stack \"nosuch\""), "{err}");
    // No credentials at all (and no endpoint): one line that says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pricewire"))
        .args(["latest", "--source", "travelpayouts"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("latest: no AWS credentials"), "{err}");
    let (code, _, err) = cli(
        repo,
        endpoint,
        &["history", "--name", "nosuch", "--source", "x"],
    );
    assert_eq!((code, err.trim().lines().count()), (1, 1), "{err}");
    println!(
        "views: history {} changes ({} alerted), latest of 6 sources, chart {} and {}",
        rows.len(),
        marked.len(),
        paths[0],
        paths[1]
    );
}

/// What `make demo` ends with: the chart of the route with the most stored fare changes,
/// drawing exactly that route's busiest entities' changes (from a raw scan).
async fn demo_charts_its_busiest_route(
    demo: &demo::Demo,
    repo: &std::path::Path,
    scanned: &[table::Change],
) {
    let c = demo
        .chart_busiest_route(&repo.join(".work/twin/charts"))
        .await
        .unwrap()
        .expect("fares were stored");
    let mut per_route: BTreeMap<String, usize> = BTreeMap::new();
    for ch in scanned {
        if let Some(key) = ch.pk.strip_prefix("travelpayouts#flight_price#") {
            *per_route
                .entry(key.split('/').next().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    let most = per_route.values().max().copied().unwrap();
    assert_eq!(
        per_route[&c.route], most,
        "{c:?} is not the busiest of {per_route:?}"
    );
    let (data, _) = pricewire_cli::chart::data_of_png(&std::fs::read(&c.png).unwrap()).unwrap();
    assert!(!data.series.is_empty() && data.series.len() <= 4);
    for s in &data.series {
        let mut want: Vec<String> = scanned
            .iter()
            .filter(|ch| ch.pk == format!("travelpayouts#flight_price#{}", s.key))
            .map(|ch| ch.sk.clone())
            .collect();
        want.sort();
        let got: Vec<String> = s.points.iter().map(|p| p.sk.clone()).collect();
        assert_eq!(got, want, "{}", s.key);
        assert!(s.key.starts_with(&format!("{}/", c.route)));
    }
    println!(
        "demo chart: {} ({} changes, {} alerted) {}",
        c.route,
        c.changes,
        c.alerts,
        c.png.display()
    );
}

/// Every `pricewire` metric the dashboard draws (name, dimensions and their values) is one
/// the functions emitted in this run's EMF lines; metrics of AWS namespaces are AWS's own.
fn dashboard_names_only_emitted_metrics(work: &std::path::Path) {
    let outputs: Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("tf/outputs.json")).unwrap())
            .unwrap();
    let body: Value =
        serde_json::from_str(outputs["dashboard_body"]["value"].as_str().unwrap()).unwrap();
    type Series = (String, BTreeMap<String, String>);
    let mut emitted: BTreeSet<Series> = BTreeSet::new();
    for f in ["collector", "consumer", "alerter"] {
        let log = std::fs::read_to_string(work.join(format!("logs/{f}.log"))).unwrap_or_default();
        for line in log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        {
            let Some(spec) = line["_aws"]["CloudWatchMetrics"].as_array() else {
                continue;
            };
            for d in spec {
                if d["Namespace"] != "pricewire" {
                    continue;
                }
                for dims in d["Dimensions"].as_array().unwrap() {
                    let dims: BTreeMap<String, String> = dims
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|k| {
                            let k = k.as_str().unwrap();
                            (
                                k.to_string(),
                                line[k].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect();
                    for m in d["Metrics"].as_array().unwrap() {
                        emitted.insert((m["Name"].as_str().unwrap().to_string(), dims.clone()));
                    }
                }
            }
        }
    }
    assert!(emitted.len() >= 20, "EMF lines in the logs: {emitted:?}");
    let mut referenced = 0;
    for w in body["widgets"].as_array().unwrap() {
        let Some(metrics) = w["properties"]["metrics"].as_array() else {
            continue;
        };
        let mut previous: Vec<Value> = Vec::new();
        for m in metrics {
            // [namespace, name, dim, value, …, {options}]; "." repeats the row above.
            let mut row: Vec<Value> = m
                .as_array()
                .unwrap()
                .iter()
                .filter(|v| !v.is_object())
                .cloned()
                .collect();
            for (i, v) in row.iter_mut().enumerate() {
                if v == "." {
                    *v = previous.get(i).cloned().unwrap_or(Value::Null);
                }
            }
            previous = row.clone();
            if row.first().and_then(Value::as_str) != Some("pricewire") {
                continue;
            }
            let name = row[1].as_str().unwrap().to_string();
            let dims: BTreeMap<String, String> = row[2..]
                .chunks(2)
                .map(|p| {
                    (
                        p[0].as_str().unwrap().to_string(),
                        p[1].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            assert!(
                emitted.contains(&(name.clone(), dims.clone())),
                "the dashboard draws {name} {dims:?}, which no function emitted"
            );
            referenced += 1;
        }
    }
    assert!(
        referenced >= 10,
        "the dashboard draws {referenced} pricewire metrics"
    );
    println!("dashboard: {referenced} pricewire metrics, each emitted by a function");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs release binaries and terraform: run `make e2e`"]
async fn twin_delivers_every_served_record_and_implied_alert_exactly_once() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let demo = demo::start(DemoOptions {
        repo: repo.clone(),
        name: "pricewire".into(),
        duration: Duration::from_secs(12),
        speed: 60.0,
        drain_timeout: Duration::from_secs(60),
        sim: SimConfig {
            seed: 7,
            ..SimConfig::default()
        },
        tfvars: repo.join("infra/moto/twin.tfvars"),
        lambda_dir: repo.join("target/lambda"),
        quiet: false,
        faults: None,
        inject: vec![],
        sources: demo::every_source(),
    })
    .await
    .unwrap();
    demo.run().await.unwrap();

    // The scripted history on the same stack: the old part first, then today's, each
    // drained before the next, so every entity's changes are stored and alerted in order.
    let (old, today) = script(Utc::now());
    let raw = |es: &[Envelope]| -> Vec<Vec<u8>> {
        es.iter().map(|e| serde_json::to_vec(e).unwrap()).collect()
    };
    demo.twin.put_raw(&raw(&old)).await.unwrap();
    demo.twin.clone().drain().await.unwrap();
    demo.twin.put_raw(&raw(&today)).await.unwrap();
    demo.twin.clone().drain().await.unwrap();

    let report = demo.report().await.unwrap();
    pricewire_cli::report::print(&report);
    let check = report.check.as_ref().unwrap();
    assert!(
        check.served_responses >= 8,
        "the schedules fired: {} answers",
        check.served_responses
    );
    assert!(check.expected_records > 100, "{}", check.expected_records);
    common::assert_exactly_once(&report);
    // Each source family on its own simulator, each checked on its own.
    for source in SOURCES {
        let b = &check.by_source[source];
        assert!(b.answers > 0 && b.expected_records > 0, "{source}: {b:?}");
        assert_eq!(b.delivered_records, b.expected_records, "{source}: {b:?}");
        assert!(b.expected_changes > 0, "{source}: {b:?}");
        assert_eq!(b.stored_changes, b.expected_changes, "{source}: {b:?}");
        assert_eq!(b.alerts, b.expected_alerts, "{source}: {b:?}");
    }
    assert!(
        report.dlq_depth.values().all(|d| *d == 0),
        "{:?}",
        report.dlq_depth
    );
    assert!(report.raw_objects >= check.served_responses);

    // Repeats wrote nothing: the scripted entities hold one change item per new value.
    let sdk = demo.twin.sdk.clone();
    let db = pricewire_pipeline::aws::dynamodb(&sdk);
    let prices = demo
        .twin
        .function_env("consumer", "PRICEWIRE_PRICES_TABLE")
        .unwrap();
    let items = report::scan_all(&db, &prices).await.unwrap();
    let changes: Vec<table::Change> = items.iter().filter_map(table::Change::from_item).collect();
    let count = |key: &str| changes.iter().filter(|c| c.pk.ends_with(key)).count();
    assert_eq!(
        count(FARE_KEY),
        20 + 6,
        "20 old fares and 6 new values today"
    );
    assert_eq!(count("scripted-final/draftkings/h2h/Home"), 2);
    assert_eq!(count("scripted-final/betmgm/h2h/Home"), 2);
    assert_eq!(count("scripted-final/draftkings/spreads/Home"), 2);
    assert_eq!(
        count("SCRIPTUSDT/funding"),
        7 + 3,
        "one item per funding time"
    );

    // Each subscriber got exactly what it asked for, once, through its filter policy.
    let sqs = pricewire_pipeline::aws::sqs(&sdk);
    let tap = |name: &str| {
        let sqs = sqs.clone();
        let name = name.to_string();
        async move {
            let url = sqs
                .get_queue_url()
                .queue_name(format!("pricewire-tap-{name}"))
                .send()
                .await
                .unwrap()
                .queue_url()
                .unwrap()
                .to_string();
            (url.clone(), receive_all(&sqs, &url).await)
        }
    };
    let value_of = |r: &Received| -> String {
        let (rule, key) = (&r.rule, &r.key);
        changes
            .iter()
            .find(|c| alerter::dedup_key(rule, &c.pk, &c.sk) == r.dedup)
            .map(|c| c.price.normalize().to_string())
            .unwrap_or_else(|| format!("{rule} {key}: no stored change"))
    };
    let scripted = |rs: &[Received]| -> BTreeMap<(String, String, String), usize> {
        let mut m = BTreeMap::new();
        for r in rs.iter().filter(|r| {
            r.key == FARE_KEY || r.key.contains("scripted-final") || r.key.contains("SCRIPTUSDT")
        }) {
            let v = Decimal::from_str(&value_of(r)).map(|d| d.normalize().to_string());
            *m.entry((r.rule.clone(), r.key.clone(), v.unwrap_or_default()))
                .or_insert(0) += 1;
        }
        m
    };
    let want: BTreeMap<(String, String, String), usize> = scripted_alerts()
        .into_iter()
        .map(|(r, k, v)| ((r, k, dec(&v).normalize().to_string()), 1))
        .collect();
    let (ann_url, ann) = tap("ann-sms").await;
    let (ops_url, ops) = tap("ops-email").await;
    let ann_want: BTreeMap<_, _> = want
        .iter()
        .filter(|((r, _, _), _)| r == "fare-30-day-low")
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(
        scripted(&ann),
        ann_want,
        "ann: her rule on her route, each once"
    );
    assert_eq!(ann.len(), 2, "ann gets nothing else: {ann:?}");
    assert_eq!(scripted(&ops), want, "ops: every scripted alert, each once");
    let ops_keys: Vec<String> = {
        let mut k: Vec<String> = ops.iter().map(|r| r.dedup.clone()).collect();
        k.sort();
        k
    };
    assert_eq!(
        ops_keys, report.alert_keys,
        "ops gets every alert the inbox got"
    );
    println!(
        "scripted history: {} alerts as written, ann {} SMS, ops {} e-mails",
        want.len(),
        ann.len(),
        ops.len()
    );

    // The operator's views of the same stack, through the CLI binary.
    views_show_what_was_stored(&repo, &demo.moto.endpoint(), &old, &today, &want, &changes);
    dashboard_names_only_emitted_metrics(&repo.join(".work/twin"));
    demo_charts_its_busiest_route(&demo, &repo, &changes).await;

    // A replay of the scripted day writes nothing and sends nothing.
    let work = repo.join(".work/twin");
    let writes_before = consumer_write_requests(&work);
    let before: BTreeMap<(String, String), _> = items
        .iter()
        .map(|i| {
            (
                (
                    i["pk"].as_s().unwrap().clone(),
                    i["sk"].as_s().unwrap().clone(),
                ),
                i.clone(),
            )
        })
        .collect();
    demo.twin
        .put_raw(&raw(&[old.clone(), today.clone()].concat()))
        .await
        .unwrap();
    demo.twin.clone().drain().await.unwrap();
    let after: BTreeMap<(String, String), _> = report::scan_all(&db, &prices)
        .await
        .unwrap()
        .into_iter()
        .map(|i| {
            (
                (
                    i["pk"].as_s().unwrap().clone(),
                    i["sk"].as_s().unwrap().clone(),
                ),
                i,
            )
        })
        .collect();
    assert!(before == after, "the replay changed the prices table");
    assert_eq!(
        consumer_write_requests(&work),
        writes_before,
        "the replay wrote"
    );
    assert!(receive_all(&sqs, &ann_url).await.is_empty());
    assert!(receive_all(&sqs, &ops_url).await.is_empty());
    let again = demo.report().await.unwrap();
    assert!(
        again.alerts.is_empty(),
        "the replay sent {:?}",
        again.alerts
    );
    demo.stop().await;
}
