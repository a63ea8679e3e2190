//! The local twin end to end, a short run without faults: the real terraform/ applied to
//! moto, the release `bootstrap` binaries run through the twin, exact outcomes asserted.
//!
//! Needs `make build` (release binaries) and terraform; `make e2e` runs it.

mod common;

use pricewire_cli::demo::{self, DemoOptions};
use pricewire_cli::simulator::SimConfig;
use std::path::PathBuf;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs release binaries and terraform: run `make e2e`"]
async fn twin_delivers_every_served_record_and_implied_alert_exactly_once() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let report = demo::run(DemoOptions {
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
    for source in [
        "travelpayouts",
        "odds",
        "dinger",
        "binance",
        "bybit",
        "shop",
    ] {
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
}
