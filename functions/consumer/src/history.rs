//! What one batch changes in one entity's history. Pure: given the changes already stored
//! around the incoming records, decide which records are changes (one item each), which
//! repeat the value before them (no write), which are implausible, and what each stored
//! change's statistics are. Every decision is a function of what was stored and what
//! arrived, so a redelivered or replayed record writes nothing and a crash mid-batch is
//! repaired by the retry.
//!
//! Statistics of a change are computed from the stored changes *before* it: the previous
//! value, first seen, and per window (7 and 30 days by default) the
//! minimum, maximum and typical value — the median weighted by how long each value was in
//! force, so a price that held for a week outweighs one seen for a minute. Values flagged
//! implausible stay out of them.

use crate::plausibility::{Plausibility, Verdict};
use pricewire_pipeline::envelope::Envelope;
use pricewire_pipeline::table::{self, Change, Item, Order, Stats, Window};
use rust_decimal::Decimal;

const DAY_MS: i64 = 86_400_000;

/// What the consumer's history keeping is configured with.
#[derive(Debug, Clone)]
pub struct HistoryRules {
    /// Statistics windows, in days, ascending.
    pub windows: Vec<u32>,
    pub plausibility: Plausibility,
    /// How long a change item lives after it was stored (or last seen, for the newest).
    pub ttl: chrono::Duration,
}

impl HistoryRules {
    /// How far back before the earliest incoming record the statistics reach.
    pub fn reach_ms(&self) -> i64 {
        i64::from(self.windows.iter().copied().max().unwrap_or(0)) * DAY_MS
    }
}

/// One write of a plan, with the positions (in the batch) of the records that caused it.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Put(Item),
    Delete { pk: String, sk: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub write: Write,
    pub origins: Vec<usize>,
}

/// What a batch does to one entity.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    pub writes: Vec<Planned>,
    pub changes: usize,
    pub repeats: usize,
    pub duplicates: usize,
    pub flagged: usize,
    /// (position, reason) of records refused as implausible: quarantined, not stored.
    pub implausible: Vec<(usize, String)>,
    /// Whether the newest change was rewritten to record that it is still being seen.
    pub refreshed: bool,
}

/// Plans one entity. `stored` are its stored changes from the one in force before the
/// reach of the incoming records onwards, in sort-key order; `existed` says whether the
/// entity has any stored change at all (its entity item then exists). `incoming` are
/// (position, record) of this batch, all of this entity.
pub fn plan(
    mut stored: Vec<Change>,
    existed: bool,
    incoming: &[(usize, &Envelope)],
    rules: &HistoryRules,
) -> Plan {
    let mut out = Plan::default();
    let mut order: Vec<(String, usize, &Envelope)> = incoming
        .iter()
        .map(|&(pos, e)| (table::change_sk(e), pos, e))
        .collect();
    order.sort_by(|a, b| (&a.0, &a.2.id).cmp(&(&b.0, &b.2.id)));
    let mut entity_written = existed;
    // New changes (sort key → the record's position), and the first index whose
    // statistics may have moved.
    let mut origins: std::collections::BTreeMap<String, usize> = Default::default();
    let mut touched = usize::MAX;
    // Repeats of the newest stored value: positions and the latest fetch among them.
    let mut newest_repeats: Vec<usize> = Vec::new();
    let mut newest_seen = i64::MIN;
    for (sk, pos, e) in order {
        let kind_order = table::order_of(e.kind());
        if let Verdict::Refuse(reason) = rules.plausibility.bounds(e) {
            out.implausible.push((pos, reason));
            continue;
        }
        let insert_at = match stored.binary_search_by(|c| c.sk.as_str().cmp(&sk)) {
            Ok(i) => {
                let existing = &stored[i];
                let newer = (e.fetched_at.timestamp_millis(), e.id.as_str())
                    > (existing.fetched_ms, existing.id.as_str());
                if existing.id == e.id || kind_order == Order::Value || !newer {
                    out.duplicates += 1;
                    continue;
                }
                // A series point revised by a later fetch: the later one stands.
                stored.remove(i);
                i
            }
            Err(i) => i,
        };
        let signature = table::signature(&e.payload);
        if kind_order == Order::Value && insert_at > 0 {
            let pred = &stored[insert_at - 1];
            if pred.signature.is_some() && pred.signature == signature {
                out.repeats += 1;
                if insert_at == stored.len() {
                    newest_repeats.push(pos);
                    newest_seen = newest_seen.max(e.fetched_at.timestamp_millis());
                }
                continue;
            }
        }
        // Statistics and the outlier test are settled in one pass below, once every
        // record of the batch is in place.
        let change = Change::of(e, Stats::default(), None, rules.ttl);
        out.changes += 1;
        stored.insert(insert_at, change);
        origins.insert(stored[insert_at].sk.clone(), pos);
        touched = touched.min(insert_at);
        if insert_at + 1 < stored.len() {
            // A late record may make the change after it a repeat of it.
            let succ = &stored[insert_at + 1];
            if kind_order == Order::Value && succ.signature == signature {
                if origins.remove(&succ.sk).is_some() {
                    // New in this batch itself: never written, now a repeat.
                    out.changes -= 1;
                    out.repeats += 1;
                } else {
                    out.writes.push(Planned {
                        write: Write::Delete {
                            pk: succ.pk.clone(),
                            sk: succ.sk.clone(),
                        },
                        origins: vec![pos],
                    });
                }
                stored.remove(insert_at + 1);
            }
        } else {
            // The newest moved on: repeats of the one before are no longer about the newest.
            newest_repeats.clear();
            newest_seen = i64::MIN;
        }
        if !entity_written {
            out.writes.push(Planned {
                write: Write::Put(table::entity_item(e)),
                origins: vec![pos],
            });
            entity_written = true;
        }
    }
    // Statistics of every change from the first one this batch touched: new changes get
    // theirs, and later ones whose window now holds a late change are rewritten, so what
    // is stored does not depend on the order records arrived in.
    let windows: &[u32] = match incoming.first() {
        Some((_, e)) if table::order_of(e.kind()) == Order::Series => &[],
        _ => &rules.windows,
    };
    let mut rewritten_newest = false;
    for i in touched..stored.len() {
        let stats = stats_before(&stored[..i], stored[i].at_ms, windows);
        let origin = origins.get(&stored[i].sk).copied();
        let record = origin.and_then(|p| incoming.iter().find(|(q, _)| *q == p));
        let flag = match record {
            Some((_, e)) => rules.plausibility.outlier(e, &stats),
            None => stored[i].flag.clone(),
        };
        if origin.is_none() && stats == stored[i].stats && flag == stored[i].flag {
            continue;
        }
        if origin.is_some() && flag.is_some() {
            out.flagged += 1;
        }
        stored[i].stats = stats;
        stored[i].flag = flag;
        rewritten_newest |= i + 1 == stored.len();
        out.writes.push(Planned {
            write: Write::Put(stored[i].item()),
            origins: origin
                .map(|p| vec![p])
                .unwrap_or_else(|| origins.values().copied().collect()),
        });
    }
    // An entity that keeps repeating: move its newest change's `seen` and expiry on, at
    // most once per `SEEN_REFRESH`, so the latest value never expires while it is observed.
    if let Some(newest) = stored.last_mut() {
        if !rewritten_newest
            && !newest_repeats.is_empty()
            && newest_seen - newest.seen_ms >= table::SEEN_REFRESH.num_milliseconds()
        {
            newest.seen_ms = newest_seen;
            newest.expires_at = table::expiry(newest_seen, rules.ttl);
            out.writes.push(Planned {
                write: Write::Put(newest.item()),
                origins: newest_repeats,
            });
            out.refreshed = true;
        }
    }
    out
}

/// The statistics of a change at `at` given the stored changes before it (sorted).
pub fn stats_before(prior: &[Change], at: i64, windows: &[u32]) -> Stats {
    let plausible: Vec<&Change> = prior.iter().filter(|c| c.flag.is_none()).collect();
    let previous = plausible.last().map(|c| (c.price, c.at_ms));
    let previous_line = plausible.last().and_then(|c| c.line());
    let first_ms = prior
        .first()
        .map(|c| c.stats.first_ms.min(c.at_ms))
        .unwrap_or(at);
    let windows = windows
        .iter()
        .filter_map(|&days| window(&plausible, at, days))
        .collect();
    Stats {
        previous,
        previous_line,
        first_ms,
        windows,
    }
}

/// Minimum, maximum and time-weighted median of the values in force during the `days`
/// before `at`. Each value is in force from its change until the next plausible change
/// (or `at`). `None` when no value was in force in the window.
fn window(plausible: &[&Change], at: i64, days: u32) -> Option<Window> {
    let start = at - i64::from(days) * DAY_MS;
    let mut weighted: Vec<(Decimal, i64)> = Vec::new();
    for (i, c) in plausible.iter().enumerate() {
        let until = plausible.get(i + 1).map(|n| n.at_ms).unwrap_or(at).min(at);
        let from = c.at_ms.max(start);
        if until > from || (c.at_ms >= start && c.at_ms <= at) {
            weighted.push((c.price, (until - from).max(0)));
        }
    }
    if weighted.is_empty() {
        return None;
    }
    let min = weighted.iter().map(|w| w.0).min()?;
    let max = weighted.iter().map(|w| w.0).max()?;
    let values = weighted.len() as u32;
    let total: i64 = weighted.iter().map(|w| w.1).sum();
    weighted.sort();
    let typical = if total == 0 {
        // Every value at one instant: the plain median (the lower middle one).
        weighted[(weighted.len() - 1) / 2].0
    } else {
        let mut acc = 0i64;
        let mut pick = weighted[weighted.len() - 1].0;
        for (v, w) in &weighted {
            acc += w;
            if acc * 2 >= total {
                pick = *v;
                break;
            }
        }
        pick
    };
    Some(Window {
        days,
        min,
        max,
        typical,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plausibility::Plausibility;
    use chrono::{DateTime, Utc};
    use pricewire_pipeline::envelope::{FlightPrice, Money, Payload};

    const T0: i64 = 1_795_000_000_000;

    fn rules() -> HistoryRules {
        HistoryRules {
            windows: vec![7, 30],
            plausibility: Plausibility::default(),
            ttl: chrono::Duration::days(90),
        }
    }

    /// The one flight entity, `price` fetched `minutes` after T0.
    fn obs(price: i64, minutes: i64) -> Envelope {
        let t = DateTime::<Utc>::from_timestamp_millis(T0 + minutes * 60_000).unwrap();
        Envelope::new(
            "travelpayouts",
            "j",
            "LED-KZN/2026-12-05/oneway".into(),
            None,
            t,
            Payload::FlightPrice(FlightPrice::new(
                "LED",
                "KZN",
                "2026-12-05",
                Money {
                    amount: price.into(),
                    currency: "RUB".into(),
                },
            )),
        )
    }

    /// An in-memory history: applies plans, as the table would.
    #[derive(Default)]
    struct History(std::collections::BTreeMap<String, Item>);

    impl History {
        fn changes(&self) -> Vec<Change> {
            self.0.values().filter_map(Change::from_item).collect()
        }
        fn apply(&mut self, records: &[Envelope]) -> Plan {
            let incoming: Vec<(usize, &Envelope)> = records.iter().enumerate().collect();
            let existed = !self.changes().is_empty();
            let p = plan(self.changes(), existed, &incoming, &rules());
            for w in &p.writes {
                match &w.write {
                    Write::Put(item) => {
                        self.0
                            .insert(item["sk"].as_s().unwrap().clone(), item.clone());
                    }
                    Write::Delete { sk, .. } => {
                        self.0.remove(sk);
                    }
                }
            }
            p
        }
        fn prices(&self) -> Vec<i64> {
            self.changes()
                .iter()
                .map(|c| c.price.try_into().unwrap())
                .collect()
        }
    }

    #[test]
    fn a_quotes_change_carries_the_line_before_it() {
        let spread = |line: &str, minutes: i64| {
            let t = DateTime::<Utc>::from_timestamp_millis(T0 + minutes * 60_000).unwrap();
            pricewire_pipeline::fixtures::odds_quote(
                "e1",
                "draftkings",
                "spreads",
                "1.91",
                Some(line),
                t,
            )
        };
        let mut h = History::default();
        // Same price, the line moves: a change, which remembers the line it moved from.
        h.apply(&[spread("-3.5", 0), spread("-3.5", 5), spread("-5.5", 10)]);
        let changes = h.changes();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].stats.previous_line, None);
        assert_eq!(
            changes[1].stats.previous_line,
            Some("-3.5".parse().unwrap())
        );
    }

    #[test]
    fn repeats_write_nothing_and_changes_one_item_each() {
        let mut h = History::default();
        let first = h.apply(&[obs(5000, 0), obs(5000, 5), obs(5000, 10)]);
        assert_eq!((first.changes, first.repeats), (1, 2));
        assert_eq!(first.writes.len(), 2, "the change and the entity item");
        let again = h.apply(&[obs(5000, 15), obs(5000, 20)]);
        assert_eq!((again.changes, again.repeats), (0, 2));
        assert!(again.writes.is_empty(), "{:?}", again.writes);
        let drop = h.apply(&[obs(4500, 25), obs(4500, 30), obs(5200, 35)]);
        assert_eq!((drop.changes, drop.repeats, drop.writes.len()), (2, 1, 2));
        assert_eq!(h.prices(), vec![5000, 4500, 5200]);
        let c = h.changes();
        assert_eq!(c[1].stats.previous, Some((5000.into(), T0)));
        assert_eq!(c[2].stats.previous, Some((4500.into(), T0 + 25 * 60_000)));
        assert_eq!(c[2].stats.first_ms, T0);
        // Window before the third change: 5000 for 25 min, 4500 for 10 min.
        let w = c[2].window(7).unwrap();
        assert_eq!(
            (w.min, w.max, w.typical, w.values),
            (4500.into(), 5000.into(), 5000.into(), 2)
        );
    }

    #[test]
    fn redelivery_and_replay_write_nothing() {
        let day: Vec<Envelope> = [5000, 5000, 4800, 4800, 4800, 5100, 4700, 4700]
            .iter()
            .enumerate()
            .map(|(i, p)| obs(*p, i as i64 * 5))
            .collect();
        let mut h = History::default();
        h.apply(&day[..5]);
        h.apply(&day[5..]);
        let stored = h.0.clone();
        for chunk in [&day[..], &day[2..4], &day[6..]] {
            let p = h.apply(chunk);
            assert!(p.writes.is_empty(), "{:?}", p.writes);
            assert_eq!(p.changes, 0);
        }
        assert_eq!(h.0, stored);
        assert_eq!(h.prices(), vec![5000, 4800, 5100, 4700]);
    }

    #[test]
    fn any_order_of_delivery_converges_on_the_same_items() {
        // Distinct values: a record is only skipped as a repeat of what is stored before
        // it, so a value that returns later (5000, 4800, 5000) can be skipped while the
        // 4800 between them is still in flight — the one order dependence, which Kinesis
        // ordering per entity rules out (see the README on delivery order).
        let day: Vec<Envelope> = [5000, 4800, 5100, 4700, 4900, 4600, 5050]
            .iter()
            .enumerate()
            .map(|(i, p)| obs(*p, i as i64 * 60))
            .collect();
        let mut in_order = History::default();
        in_order.apply(&day);
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20 {
            let mut shuffled = day.clone();
            rng.shuffle(&mut shuffled);
            let mut h = History::default();
            for chunk in shuffled.chunks(rng.usize(1..4)) {
                h.apply(chunk);
            }
            assert_eq!(h.prices(), in_order.prices());
            let keys: Vec<_> = h.changes().iter().map(|c| c.sk.clone()).collect();
            let expected: Vec<_> = in_order.changes().iter().map(|c| c.sk.clone()).collect();
            assert_eq!(keys, expected);
            // The newest item's statistics depend on what was stored, not the order.
            assert_eq!(
                h.changes().last().unwrap().stats.windows,
                in_order.changes().last().unwrap().stats.windows
            );
        }
    }

    #[test]
    fn a_late_record_that_makes_its_successor_a_repeat_takes_its_place() {
        let mut h = History::default();
        h.apply(&[obs(5000, 0), obs(4500, 20)]);
        // Fetched at minute 10 but delivered late: 4500 happened earlier than we knew.
        let p = h.apply(&[obs(4500, 10)]);
        assert_eq!(p.changes, 1);
        assert!(p
            .writes
            .iter()
            .any(|w| matches!(&w.write, Write::Delete { .. })));
        let c = h.changes();
        assert_eq!(h.prices(), vec![5000, 4500]);
        assert_eq!(c[1].at_ms, T0 + 10 * 60_000);
    }

    #[test]
    fn implausible_values_are_refused_or_flagged_and_kept_out_of_statistics() {
        let mut h = History::default();
        let p = h.apply(&[obs(5000, 0), obs(1_000_000_000_000_000, 5)]);
        assert_eq!(p.implausible.len(), 1);
        assert!(p.implausible[0].1.contains("above"), "{:?}", p.implausible);
        h.apply(&[obs(5200, 60), obs(4900, 120), obs(5100, 180)]);
        // 80,000 RUB is within bounds, but 16× the typical fare: stored, flagged.
        let p = h.apply(&[obs(80_000, 240)]);
        assert_eq!((p.changes, p.flagged), (1, 1));
        let outlier = h.changes().last().unwrap().clone();
        assert!(outlier.flag.as_deref().unwrap().contains("typical"));
        // The next normal fare compares with the last plausible one, not the outlier.
        h.apply(&[obs(4800, 300)]);
        let next = h.changes().last().unwrap().clone();
        assert_eq!(next.stats.previous.unwrap().0, 5100.into());
        assert_eq!(next.window(30).unwrap().max, 5200.into());
    }

    #[test]
    fn the_newest_is_refreshed_once_a_day_while_it_repeats() {
        let mut h = History::default();
        h.apply(&[obs(5000, 0)]);
        let p = h.apply(&[obs(5000, 60 * 23)]);
        assert!(p.writes.is_empty());
        let p = h.apply(&[obs(5000, 60 * 25)]);
        assert!(p.refreshed && p.writes.len() == 1);
        let c = h.changes();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].seen_ms, T0 + 60 * 25 * 60_000);
        assert_eq!(c[0].at_ms, T0, "still the change it was");
        let p = h.apply(&[obs(5000, 60 * 26)]);
        assert!(p.writes.is_empty(), "not again within the day");
    }

    #[test]
    fn the_typical_value_is_weighted_by_time_in_force() {
        let c = |price: i64, minutes: i64| {
            Change::of(
                &obs(price, minutes),
                Stats::default(),
                None,
                chrono::Duration::days(1),
            )
        };
        // 100 held 50 minutes, 900 five, 200 forty-five: by value 100 (50), 200 (45),
        // 900 (5), and half of the 100 minutes is reached within 100.
        let prior = vec![c(100, 0), c(900, 50), c(200, 55)];
        let s = stats_before(&prior, T0 + 100 * 60_000, &[7]);
        assert_eq!(s.windows[0].typical, 100.into());
        let prior = vec![c(100, 0), c(900, 40), c(200, 45)];
        let s = stats_before(&prior, T0 + 100 * 60_000, &[7]);
        assert_eq!(
            s.windows[0].typical,
            200.into(),
            "200 held 55 of 100 minutes"
        );
        // Older than the window: only the value in force at its start counts.
        let s = stats_before(&prior, T0 + 8 * DAY_MS, &[7]);
        assert_eq!(
            (s.windows[0].min, s.windows[0].max, s.windows[0].values),
            (200.into(), 200.into(), 1)
        );
    }
}
