//! Nothing lost, nothing doubled: 10,000 records through the real stack on the twin with
//! AWS misbehaving — 20 % of PutRecords entries failed, 30 % of BatchWriteItem items left
//! unprocessed, 5 % of all calls throttled, a few 500s, the consumer killed in the middle
//! of a batch, 3 poison records on the stream — then a replay of the whole day.
//!
//! Needs `make build` (release binaries) and terraform; `make e2e` runs it.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use pricewire_cli::demo::{self, DemoOptions};
use pricewire_cli::faultproxy::{FaultPlan, FaultStats, KillAt};
use pricewire_cli::ops::{self, RedriveArgs, ReplayArgs, Stack};
use pricewire_cli::report;
use pricewire_pipeline::envelope::{Envelope, FlightPrice, Money, Payload};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

type Snapshot = BTreeMap<(String, String), HashMap<String, AttributeValue>>;

async fn snapshot(db: &aws_sdk_dynamodb::Client, table: &str) -> Snapshot {
    let items = report::scan_all(db, table).await.unwrap();
    items
        .into_iter()
        .map(|item| {
            let k = |n: &str| item[n].as_s().unwrap().clone();
            let key = (k("pk"), k("sk"));
            (key, item)
        })
        .collect()
}

/// Three records no consumer can use: not text, not an envelope, and an envelope whose id
/// does not match its content.
fn poison() -> Vec<Vec<u8>> {
    let t = Utc::now();
    let e = Envelope::new(
        "travelpayouts",
        "tampered",
        "LED-KZN/2026-12-05/oneway".into(),
        None,
        t,
        Payload::FlightPrice(FlightPrice::new(
            "LED",
            "KZN",
            "2026-12-05",
            Money {
                amount: 1000.into(),
                currency: "RUB".into(),
            },
        )),
    );
    let mut tampered: Value = serde_json::from_slice(&e.to_json()).unwrap();
    tampered["id"] = Value::String("0".repeat(32));
    vec![
        b"\xff\xfe\x00 not even text".to_vec(),
        br#"{"schema":1,"hello":"world"}"#.to_vec(),
        serde_json::to_vec(&tampered).unwrap(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs release binaries and terraform: run `make e2e`"]
async fn ten_thousand_records_through_aws_faults_land_exactly_once_and_a_replay_changes_nothing() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let started = Utc::now();
    let plan = FaultPlan {
        seed: 5,
        put_records_failure_rate: 0.2,
        unprocessed_rate: 0.3,
        throttle_rate: 0.05,
        error_rate: 0.01,
        latency_ms: (0, 3),
        kill: Some(KillAt {
            function: "consumer".into(),
            after_batch_writes: 5,
        }),
    };
    // Rounds at 0, 5, 10, 15 and 20 s: 5 × 4 jobs × 500 offers.
    let demo = demo::start(DemoOptions {
        inject: poison(),
        ..DemoOptions::ten_thousand_records(repo.clone(), plan.clone())
    })
    .await
    .unwrap();
    demo.run().await.unwrap();

    // What Lambda gave up on (retries exhausted) an operator redrives; then it drains.
    let sdk = demo.twin.sdk.clone();
    let stack = Stack::discover(&sdk, "pricewire").await.unwrap();
    for function in ["consumer", "alerter"] {
        let r = ops::redrive(
            &sdk,
            &stack,
            &RedriveArgs {
                function: function.into(),
                include_poison: false,
                max_messages: 1000,
                dry_run: false,
            },
        )
        .await
        .unwrap();
        println!("redrive {function}: {r:?}");
        assert!(r.errors.is_empty(), "{:?}", r.errors);
    }
    demo.twin.clone().drain().await.unwrap();

    let report = demo.report().await.unwrap();
    pricewire_cli::report::print(&report);
    let check = report.check.as_ref().unwrap();
    let served: usize = demo
        .served()
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| s.records)
        .sum();
    let faults = demo.twin.proxy.as_ref().unwrap().total();
    // The counts; the log of every write call (thousands) is the benchmark's, not this test's.
    let counts = FaultStats {
        writes: vec![],
        ..faults.clone()
    };
    println!(
        "served {served} records ({} distinct observations); AWS faults: {counts:?} ({} write calls)",
        check.expected_records,
        faults.writes.len()
    );
    assert!(served >= 10_000, "the workload is 10,000 records: {served}");

    // The faults happened at the rates asked for, and the consumer died mid-batch.
    let share = |a: u64, b: u64| a as f64 / b.max(1) as f64;
    assert!(
        (share(faults.entries_failed, faults.entries) - 0.2).abs() < 0.03,
        "{faults:?}"
    );
    assert!(
        (share(faults.items_unprocessed, faults.items) - 0.3).abs() < 0.03,
        "{faults:?}"
    );
    assert!(
        (share(faults.throttled, faults.calls) - 0.05).abs() < 0.02,
        "{faults:?}"
    );
    assert_eq!(faults.kills, 1);
    let consumer = &demo.twin.functions["pricewire-consumer"];
    assert!(
        consumer.starts.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "the killed consumer was replaced"
    );

    // DynamoDB holds exactly the expected set (0 lost, 0 doubled); every alert exactly once.
    common::assert_exactly_once(&report);

    // The 3 poison records are in the consumer's dead-letter queue with their reasons, and
    // nothing else is in any dead-letter queue.
    let dlq = &report.dlq_messages["pricewire-consumer-dlq"];
    let poison: BTreeMap<String, String> = dlq
        .iter()
        .filter(|m| m["kind"] == "poison")
        .map(|m| {
            (
                m["sequence_number"].as_str().unwrap().to_string(),
                m["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    println!("poison in the DLQ: {poison:#?}");
    assert_eq!(poison.len(), 3, "{dlq:?}");
    assert!(poison.values().all(|r| !r.is_empty()));
    assert!(
        poison
            .values()
            .any(|r| r.contains("does not match its content")),
        "{poison:?}"
    );
    assert!(dlq.iter().all(|m| m["kind"] == "poison"), "{dlq:?}");
    for (q, messages) in &report.dlq_messages {
        if q != "pricewire-consumer-dlq" {
            assert!(messages.is_empty(), "{q}: {messages:?}");
        }
    }

    // A replay of the whole day: DynamoDB unchanged, no alert sent.
    let db = pricewire_pipeline::aws::dynamodb(&sdk);
    let before = snapshot(&db, &stack.prices_table).await;
    let from = started.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let to = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        + chrono::Duration::days(1);
    let replayed = ops::replay(
        &sdk,
        &stack,
        &ReplayArgs {
            source: "travelpayouts".into(),
            from,
            to,
            dry_run: false,
        },
    )
    .await
    .unwrap();
    println!("replay: {replayed:?}");
    assert!(replayed.errors.is_empty(), "{:?}", replayed.errors);
    assert!(replayed.put >= 10_000, "{replayed:?}");
    demo.twin.clone().drain().await.unwrap();
    let after = snapshot(&db, &stack.prices_table).await;
    assert_eq!(before.len(), after.len(), "no item added or removed");
    for (key, item) in &before {
        assert_eq!(
            Some(item),
            after.get(key),
            "item {key:?} rewritten by the replay"
        );
    }
    println!(
        "after the replay: all {} items exactly as they were",
        after.len()
    );
    let again = demo.report().await.unwrap();
    assert!(
        again.alerts.is_empty(),
        "the replay sent {:?}",
        again.alerts
    );
    assert_eq!(again.history_items, report.history_items);

    let status = ops::status(&sdk, &stack).await.unwrap();
    ops::print_status(&status);
    assert_eq!(
        status.runs.len(),
        4,
        "every job's last run: {:?}",
        status.runs
    );
    assert!(
        status
            .shards
            .iter()
            .all(|s| s.lag.values().all(|l| l.caught_up)),
        "{status:?}"
    );
    assert!(
        status.dlq_depth["pricewire-consumer-dlq"] >= 3,
        "{:?}",
        status.dlq_depth
    );
    demo.stop().await;
}
