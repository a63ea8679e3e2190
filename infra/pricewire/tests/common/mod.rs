//! What every twin end-to-end run must show, whatever it injected.

use pricewire_cli::report::Report;

/// Every valid served record delivered, exactly the changes their values imply stored (one
/// item each, none for a repeat), every entity's newest change right, every alert the rules
/// imply in the inbox exactly once.
pub fn assert_exactly_once(report: &Report) {
    let check = report
        .check
        .as_ref()
        .expect("a run checked against what was served");
    assert!(check.lost.is_empty(), "lost: {:?}", check.lost);
    assert!(
        check.unexpected.is_empty(),
        "unexpected: {:?}",
        check.unexpected
    );
    let implied: usize = check.by_source.values().map(|b| b.expected_changes).sum();
    assert_eq!(
        report.history_items, implied,
        "one item per implied change, none per repeat"
    );
    assert!(
        implied < check.delivered_fetches,
        "repeats were delivered and not stored: {implied} changes of {} fetches",
        check.delivered_fetches
    );
    assert!(
        check.latest_wrong.is_empty(),
        "latest: {:?}",
        check.latest_wrong
    );
    assert!(check.expected_alerts > 0, "the seed yields deals");
    assert!(
        check.missing_alerts.is_empty(),
        "missing alerts: {:?}",
        check.missing_alerts
    );
    assert!(
        check.doubled_alerts.is_empty(),
        "doubled alerts: {:?}",
        check.doubled_alerts
    );
    assert!(
        check.unexpected_alerts.is_empty(),
        "unexpected alerts: {:?}",
        check.unexpected_alerts
    );
    assert_eq!(report.alerts.len(), check.expected_alerts);
}
