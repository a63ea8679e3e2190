//! Acceptance for surviving the upstream: the collector against 2,000 records behind an
//! undocumented 60 rpm limit, 30 % 502/504, 10 % null/{} fields, 5 % malformed records and
//! 1–3 s latency spikes, with the stream, archive and state table on moto. Takes about
//! three minutes: the limit is real time.

use pricewire_cli::soak::{self, SoakConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_once_malformed_quarantined_429s_adapted_breaker_opens_and_closes() {
    let cfg = SoakConfig::acceptance(4);
    let r = soak::run(&cfg, |line| println!("{line}")).await.unwrap();
    println!("{}", soak::markdown(&cfg, &r));

    assert!(
        r.complete,
        "the walk completed in {} invocations",
        r.invocations
    );
    assert!(
        r.invocations > 1,
        "the walk needed more than one invocation (cursor resume)"
    );
    // Every page was asked for and answered once: all 2,000 records were served.
    assert_eq!(r.records_served, cfg.records, "{r:?}");
    assert_eq!(
        r.pages_served as u32,
        (cfg.records as u32).div_ceil(cfg.page_size)
    );
    assert_eq!(r.pages_served_twice, 0);
    assert_eq!(r.expected_valid + r.expected_malformed, cfg.records);
    // Every valid record reaches the stream exactly once; nothing else does.
    assert!(
        r.expected_valid > 1800,
        "{} valid records served",
        r.expected_valid
    );
    assert_eq!((r.missing, r.doubled, r.unexpected), (0, 0, 0), "{r:?}");
    assert_eq!(r.on_stream, r.expected_valid);
    // Every malformed record is quarantined, with its reason.
    assert!(
        r.expected_malformed > 50,
        "{} malformed served",
        r.expected_malformed
    );
    assert_eq!(
        r.quarantined, r.expected_malformed,
        "{:?}",
        r.quarantine_reasons
    );
    assert!(r.quarantine_reasons.keys().all(|k| !k.is_empty()));
    // The limiter met the undocumented limit, adapted, and then stayed under it.
    assert!(
        r.throttled > 0,
        "the documented 600 rpm overshoots the real 60"
    );
    assert!(r.requests_after_adaptation > 60, "{r:?}");
    assert!(
        r.throttled_share_after_adaptation() < 0.02,
        "{} of {} requests throttled after adapting",
        r.throttled_after_adaptation,
        r.requests_after_adaptation
    );
    assert!(
        (40.0..=60.0).contains(&r.learned_rpm),
        "learned {} rpm",
        r.learned_rpm
    );
    // The breaker opens on a dead upstream, keeps requests away, and closes after recovery.
    let b = r.breaker.as_ref().unwrap();
    assert_eq!(b.requests_while_open, 0, "{b:?}");
    assert_eq!(b.runs_while_open, 3);
    assert_eq!(
        b.recovery_transitions,
        ["open->half_open", "half_open->closed"]
    );
    assert!(b.closed_after_recovery);
}
