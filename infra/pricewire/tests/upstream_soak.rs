//! Acceptance for surviving the upstream, for both source families at once on one moto
//! server (about three minutes: the limits are real time):
//!
//! - flights: the collector against 2,000 records behind an undocumented 60 rpm limit,
//!   30 % 502/504, 10 % null/{} fields, 5 % malformed records and 1–3 s latency spikes;
//!   then a dead and recovered upstream;
//! - odds: a dingerodds cursor chain of 1,600 events behind its own undocumented 60 rpm,
//!   30 % 502/504, 10 % null/{} odds, 5 % malformed events, the same spikes; then The Odds
//!   API v4 with seven credits (three calls of two, then a spent quota).
//!
//! - markets: Binance klines of eight symbols under a 60-weight budget a minute, Bybit
//!   open interest (cursor pages that repeat rows) and klines of four symbols under four
//!   requests per 5 s, 30 % 502/504, 5 % malformed rows, the same spikes.
//!
//! What must arrive is what the simulators counted as valid (their model), not what the
//! collector's parser makes of the bodies.

use pricewire_cli::soak::{self, SoakConfig, SoakReport};

/// What every walk must show, whatever the source.
fn every_record_once_malformed_quarantined_429s_adapted(r: &SoakReport, min_valid: usize) {
    let who = &r.source;
    assert!(
        r.complete,
        "{who}: the walk completed in {} invocations",
        r.invocations
    );
    assert!(
        r.invocations > 1,
        "{who}: the walk needed more than one invocation (cursor resume)"
    );
    assert_eq!(r.pages_served_twice, 0, "{who}: no page collected twice");
    // Every valid record reaches the stream exactly once; nothing else does.
    assert!(
        r.expected_valid > min_valid,
        "{who}: {} valid records served",
        r.expected_valid
    );
    assert_eq!(
        (r.missing, r.doubled, r.unexpected),
        (0, 0, 0),
        "{who}: {r:?}"
    );
    assert_eq!(r.on_stream, r.expected_valid, "{who}");
    // Every malformed record is quarantined, with its reason.
    assert!(
        r.expected_malformed > 20,
        "{who}: {} malformed served",
        r.expected_malformed
    );
    assert_eq!(
        r.quarantined, r.expected_malformed,
        "{who}: {:?}",
        r.quarantine_reasons
    );
    assert!(r.quarantine_reasons.keys().all(|k| !k.is_empty()), "{who}");
    // The limiter met the undocumented limit, adapted, and then stayed under it.
    assert!(
        r.throttled > 0,
        "{who}: the documented rate overshoots the real 60"
    );
    assert!(r.requests_after_adaptation > 30, "{who}: {r:?}");
    assert!(
        r.throttled_share_after_adaptation() < 0.02,
        "{who}: {} of {} requests throttled after adapting",
        r.throttled_after_adaptation,
        r.requests_after_adaptation
    );
    assert!(
        (35.0..=60.0).contains(&r.learned_rpm),
        "{who}: learned {} rpm",
        r.learned_rpm
    );
}

/// What every exchange walk must show: every closed candle (and open-interest row) once,
/// malformed rows quarantined, and never a ban.
fn every_row_once_and_never_banned(r: &SoakReport) {
    let who = &r.source;
    assert!(
        r.complete,
        "{who}: complete in {} invocations",
        r.invocations
    );
    assert!(r.invocations > 1, "{who}: resumed across invocations");
    assert!(
        r.expected_valid > 500,
        "{who}: {} valid rows served",
        r.expected_valid
    );
    assert_eq!(
        (r.missing, r.doubled, r.unexpected),
        (0, 0, 0),
        "{who}: {r:?}"
    );
    assert_eq!(r.on_stream, r.expected_valid, "{who}");
    assert!(
        r.expected_malformed > 10,
        "{who}: {} malformed",
        r.expected_malformed
    );
    assert_eq!(
        r.quarantined, r.expected_malformed,
        "{who}: {:?}",
        r.quarantine_reasons
    );
    let m = r.market.as_ref().unwrap();
    assert_eq!(m.bans, 0, "{who}: no ban is ever earned: {m:?}");
    assert!(r.server_errors > 0, "{who}: the 502/504s were met");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sources_every_record_once_malformed_quarantined_limits_learned_breaker_and_quota() {
    let cfg = SoakConfig::acceptance(4);
    let r = soak::run(&cfg, |line| println!("{line}")).await.unwrap();
    println!("{}", soak::markdown(&cfg, &r));

    let f = &r.flights;
    every_record_once_malformed_quarantined_429s_adapted(f, 1800);
    // Every page was asked for and answered once: all 2,000 records were served.
    assert_eq!(f.records_served, cfg.records, "{f:?}");
    assert_eq!(
        f.pages_served as u32,
        (cfg.records as u32).div_ceil(cfg.page_size)
    );
    assert_eq!(f.expected_valid + f.expected_malformed, cfg.records);
    // The breaker opens on a dead upstream, keeps requests away, and closes after recovery.
    let b = f.breaker.as_ref().unwrap();
    assert_eq!(b.requests_while_open, 0, "{b:?}");
    assert_eq!(b.runs_while_open, 3);
    assert_eq!(
        b.recovery_transitions,
        ["open->half_open", "half_open->closed"]
    );
    assert!(b.closed_after_recovery);

    let o = r.odds.as_ref().unwrap();
    let oc = cfg.odds.as_ref().unwrap();
    every_record_once_malformed_quarantined_429s_adapted(o, 1000);
    assert_eq!(
        o.pages_served as u32,
        (oc.events as u32).div_ceil(oc.page_size),
        "every page of the chain once"
    );
    // A spent quota holds the source: no request, the breaker untouched, back after a reset.
    let q = o.quota.as_ref().unwrap();
    assert_eq!(q.runs_collected, 3, "seven credits, two per call: {q:?}");
    assert!(
        q.held
            .as_deref()
            .is_some_and(|h| h.contains("OUT_OF_USAGE_CREDITS")),
        "{q:?}"
    );
    assert_eq!((q.requests_while_held, q.runs_while_held), (0, 3), "{q:?}");
    assert_eq!(
        (q.breaker_phase.as_str(), q.breaker_failures),
        ("closed", 0),
        "{q:?}"
    );
    assert!(q.records_after_reset > 0, "{q:?}");

    let [binance, bybit] = &r.markets[..] else {
        panic!("both exchanges ran: {:?}", r.markets.len());
    };
    every_row_once_and_never_banned(binance);
    every_row_once_and_never_banned(bybit);
    let b = binance.market.as_ref().unwrap();
    // The weight header paces the walk: the budget is never exceeded, not even once.
    assert_eq!(b.refused, 0, "{b:?}");
    assert!(b.weight_utilisation > 0.3, "the budget was used: {b:?}");
    let y = bybit.market.as_ref().unwrap();
    assert!(
        y.rows_repeated_across_pages > 0,
        "the chain repeated rows: {y:?}"
    );
}
