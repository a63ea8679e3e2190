//! `pricewire history` and `pricewire latest`: what a stack stored, read back for people
//! (a table) and for other tools (`--json`, `--csv`), without reading DynamoDB items.
//!
//! The reads are the table's documented access patterns (`pipeline::table`): an entity's
//! history is one Query of its partition in time order; the entities of a source and kind
//! (or of a key prefix such as a route) come from the sparse GSI `latest_by_source`; an
//! entity's latest is its newest change item. Which rule fired on a change comes from the
//! alerter's claims in the state table (`ALERT#<rule>#<entity>#<change>`, status `sent`),
//! kept for the de-duplication window: older alerts are no longer known.
//!
//! Turning changes into rows and rendering them is pure and tested here without AWS.

use crate::ops::Stack;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::{DateTime, Utc};
use consumer::adapters::dynamodb::DynamoPrices;
use consumer::ports::HistoryReader;
use futures_util::{StreamExt, TryStreamExt};
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::table::{self, Change, CHANGE_SK_PREFIX};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// DynamoDB BatchGetItem: at most 100 keys per call.
const BATCH_GET_MAX: usize = 100;
/// Newest-change Queries in flight at once for `latest` (each is one read unit or less).
const LATEST_CONCURRENCY: usize = 16;
/// Rounds of BatchGetItem for keys DynamoDB returned unprocessed before giving up.
const UNPROCESSED_ROUNDS: usize = 8;

/// Which entities: one source and kind, and one key, a key prefix, or all of them.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub source: String,
    /// A record kind (`flight_price`, `odds_quote`, `candle`, …); `None`: every kind the
    /// source has stored under the key or prefix.
    pub kind: Option<String>,
    pub key: Option<String>,
    pub key_prefix: Option<String>,
}

impl Selector {
    /// A flight route `LED-KZN` as a key prefix (fare keys are `LED-KZN/<date>/<trip>`).
    pub fn route_prefix(route: &str) -> String {
        format!("{}/", route.trim_end_matches('/').to_ascii_uppercase())
    }
}

/// A point in time for `--since`/`--until`: RFC 3339 (`2026-12-01T10:00:00Z`), a UTC date
/// (`2026-12-01`, its midnight) or an age before `now` (`90m`, `36h`, `7d`).
pub fn parse_when(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let span = match (n.parse::<i64>(), unit) {
        (Ok(n), "m") if n >= 0 => chrono::Duration::try_minutes(n),
        (Ok(n), "h") if n >= 0 => chrono::Duration::try_hours(n),
        (Ok(n), "d") if n >= 0 => chrono::Duration::try_days(n),
        _ => None,
    };
    span.and_then(|d| now.checked_sub_signed(d)).ok_or_else(|| {
        format!("{s:?} is not a time: give RFC 3339, a date (2026-12-01) or an age (90m, 36h, 7d)")
    })
}

/// One stored change, as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The entity's key (`LED-KZN/2026-12-24/oneway`).
    pub key: String,
    pub kind: String,
    /// When the value took effect: its fetch time (values) or its own time (series).
    pub at: DateTime<Utc>,
    pub price: Decimal,
    pub currency: Option<String>,
    /// The stored value before this one, and the difference to it.
    pub previous: Option<Decimal>,
    pub change: Option<Decimal>,
    /// The difference in per cent of the previous value (two decimals).
    pub change_percent: Option<Decimal>,
    /// The rolling minimum and typical value of the chosen window before this change.
    pub window_days: Option<u32>,
    pub min: Option<Decimal>,
    pub typical: Option<Decimal>,
    /// Rules whose alert about this change was sent.
    pub rules: Vec<String>,
    /// Why the value was judged implausible (stored, kept out of statistics and alerts).
    pub flag: Option<String>,
    /// The change item's sort key and the record id, for tools that go further.
    pub sk: String,
    pub id: String,
}

/// Rows of changes in time order (then by key). `window` picks the statistics window; by
/// default 30 days when stored, else the longest stored.
pub fn rows(
    changes: &[Change],
    fired: &BTreeMap<(String, String), Vec<String>>,
    window: Option<u32>,
) -> Vec<Row> {
    let mut out: Vec<Row> = changes
        .iter()
        .filter_map(|c| {
            let (_, kind, key) = table::split_pk(&c.pk)?;
            let at = DateTime::from_timestamp_millis(c.at_ms)?;
            let previous = c.stats.previous.map(|(v, _)| v);
            let change = previous.map(|p| c.price - p);
            let change_percent = match (change, previous) {
                (Some(d), Some(p)) if !p.is_zero() => {
                    Some((d * Decimal::ONE_HUNDRED / p).round_dp(2).normalize())
                }
                _ => None,
            };
            let w = match window {
                Some(d) => c.window(d),
                None => c.window(30).or_else(|| c.stats.windows.last()),
            };
            Some(Row {
                key: key.to_string(),
                kind: kind.to_string(),
                at,
                price: c.price.normalize(),
                currency: c.currency.clone(),
                previous: previous.map(|p| p.normalize()),
                change: change.map(|d| d.normalize()),
                change_percent,
                window_days: w.map(|w| w.days),
                min: w.map(|w| w.min.normalize()),
                typical: w.map(|w| w.typical.normalize()),
                rules: fired
                    .get(&(c.pk.clone(), c.sk.clone()))
                    .cloned()
                    .unwrap_or_default(),
                flag: c.flag.clone(),
                sk: c.sk.clone(),
                id: c.id.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.at, &a.key, &a.sk).cmp(&(b.at, &b.key, &b.sk)));
    out
}

/// The rows of the `n` entities with the most changes (ties by key), still in time order.
pub fn busiest(rows: Vec<Row>, n: usize) -> Vec<Row> {
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in &rows {
        *counts.entry((&r.key, &r.kind)).or_insert(0) += 1;
    }
    let mut ranked: Vec<((&str, &str), usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let keep: BTreeSet<(String, String)> = ranked
        .iter()
        .take(n)
        .map(|((k, kind), _)| (k.to_string(), kind.to_string()))
        .collect();
    rows.into_iter()
        .filter(|r| keep.contains(&(r.key.clone(), r.kind.clone())))
        .collect()
}

/// How `latest` orders its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortBy {
    Key,
    Price,
    /// By the last change in per cent (entities without one last).
    Change,
    Time,
}

pub fn sort(rows: &mut [Row], by: SortBy, descending: bool) {
    rows.sort_by(|a, b| {
        let o = match by {
            SortBy::Key => a.key.cmp(&b.key),
            SortBy::Price => a.price.cmp(&b.price),
            SortBy::Time => a.at.cmp(&b.at),
            // Entities without a previous value sort last either way.
            SortBy::Change => match (a.change_percent, b.change_percent) {
                (Some(x), Some(y)) if descending => y.cmp(&x),
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            },
        };
        let o = if descending && by != SortBy::Change {
            o.reverse()
        } else {
            o
        };
        o.then_with(|| a.key.cmp(&b.key))
    });
}

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn signed(d: Decimal) -> String {
    if d.is_sign_positive() && !d.is_zero() {
        format!("+{d}")
    } else {
        d.to_string()
    }
}

/// A terminal table: time (UTC), the key when several entities are shown, price, change,
/// change %, the window's minimum and typical value, the rules that fired, the flag.
pub fn table(rows: &[Row], with_key: bool) -> String {
    let window = rows.iter().find_map(|r| r.window_days);
    let mut head = vec!["time (UTC)".to_string()];
    if with_key {
        head.push("key".into());
    }
    head.extend([
        "price".to_string(),
        "change".into(),
        "change %".into(),
        window.map_or("min".into(), |d| format!("min {d}d")),
        window.map_or("typical".into(), |d| format!("typical {d}d")),
        "rules fired".into(),
    ]);
    let mut lines: Vec<Vec<String>> = vec![head];
    for r in rows {
        let mut l = vec![time(&r.at)];
        if with_key {
            l.push(r.key.clone());
        }
        let price = match &r.currency {
            Some(c) => format!("{} {c}", r.price),
            None => r.price.to_string(),
        };
        let mut rules = r.rules.join(", ");
        if let Some(f) = &r.flag {
            rules = format!(
                "{rules}{}flagged: {f}",
                if rules.is_empty() { "" } else { "; " }
            );
        }
        l.extend([
            price,
            r.change.map(signed).unwrap_or_else(|| "—".into()),
            r.change_percent.map(signed).unwrap_or_else(|| "—".into()),
            r.min.map(|d| d.to_string()).unwrap_or_default(),
            r.typical.map(|d| d.to_string()).unwrap_or_default(),
            rules,
        ]);
        lines.push(l);
    }
    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    // Numbers right-aligned, text left-aligned.
    let numeric = |i: usize| {
        let first_number = if with_key { 2 } else { 1 };
        (first_number..first_number + 5).contains(&i)
    };
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i] - c.chars().count();
                if numeric(i) {
                    format!("{}{c}", " ".repeat(pad))
                } else {
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The rows as CSV with a header line (times RFC 3339, numbers exact, rules `;`-separated).
pub fn csv(rows: &[Row]) -> Result<String, String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record([
        "time",
        "key",
        "kind",
        "price",
        "currency",
        "previous",
        "change",
        "change_percent",
        "window_days",
        "min",
        "typical",
        "rules",
        "flag",
        "sk",
        "id",
    ])
    .map_err(|e| e.to_string())?;
    let opt = |d: Option<Decimal>| d.map(|d| d.to_string()).unwrap_or_default();
    for r in rows {
        w.write_record([
            r.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            r.key.clone(),
            r.kind.clone(),
            r.price.to_string(),
            r.currency.clone().unwrap_or_default(),
            opt(r.previous),
            opt(r.change),
            opt(r.change_percent),
            r.window_days.map(|d| d.to_string()).unwrap_or_default(),
            opt(r.min),
            opt(r.typical),
            r.rules.join(";"),
            r.flag.clone().unwrap_or_default(),
            r.sk.clone(),
            r.id.clone(),
        ])
        .map_err(|e| e.to_string())?;
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

fn err<E: std::error::Error + 'static>(what: &str) -> impl Fn(E) -> String + '_ {
    move |e| crate::ops::one_line(what, &e)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// The entities a selector names, as partition keys: an exact key is checked against its
/// entity item for each candidate kind; a prefix (or nothing) lists the GSI.
pub async fn entities(
    db: &aws_sdk_dynamodb::Client,
    stack: &Stack,
    sel: &Selector,
) -> Result<Vec<String>, String> {
    let kinds: Vec<String> = match &sel.kind {
        Some(k) => vec![k.clone()],
        None => pricewire_pipeline::envelope::KINDS
            .iter()
            .map(|k| k.to_string())
            .collect(),
    };
    let mut pks = Vec::new();
    if let Some(key) = &sel.key {
        let keys: Vec<HashMap<String, AttributeValue>> = kinds
            .iter()
            .map(|k| {
                HashMap::from([
                    ("pk".to_string(), s(format!("{}#{k}#{key}", sel.source))),
                    ("sk".to_string(), s(table::ENTITY_SK)),
                ])
            })
            .collect();
        for item in batch_get(db, &stack.prices_table, keys, &["pk"]).await? {
            if let Some(AttributeValue::S(pk)) = item.get("pk") {
                pks.push(pk.clone());
            }
        }
    } else {
        for kind in &kinds {
            let mut q = db
                .query()
                .table_name(&stack.prices_table)
                .index_name(table::LATEST_INDEX)
                .expression_attribute_values(":l", s(format!("{}#{kind}", sel.source)));
            q = match &sel.key_prefix {
                Some(p) => q
                    .key_condition_expression("lpk = :l AND begins_with(lsk, :p)")
                    .expression_attribute_values(":p", s(p)),
                None => q.key_condition_expression("lpk = :l"),
            };
            let items: Vec<_> = q
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(err(&format!("Query {}", table::LATEST_INDEX)))?;
            for item in items {
                if let Some(AttributeValue::S(pk)) = item.get("pk") {
                    pks.push(pk.clone());
                }
            }
        }
    }
    pks.sort();
    pks.dedup();
    Ok(pks)
}

/// The consumer's reader of the prices table (its documented Queries, retried): the CLI
/// reads an entity's history the way the consumer does.
pub fn reader(db: &aws_sdk_dynamodb::Client, prices_table: &str) -> DynamoPrices {
    DynamoPrices::new(
        db.clone(),
        prices_table,
        RetryPolicy::new(8, Duration::from_millis(100), Duration::from_secs(5)),
    )
}

/// An entity's changes from `since` (inclusive) to `until` (exclusive), in time order.
pub async fn changes(
    prices: &DynamoPrices,
    pk: &str,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<Change>, String> {
    let from = since.map_or(CHANGE_SK_PREFIX.to_string(), |t| {
        table::sk_at(t.timestamp_millis())
    });
    let until_ms = until.map(|t| t.timestamp_millis());
    Ok(prices
        .since(pk, &from)
        .await
        .map_err(|e| format!("Query {pk}: {}", e.0))?
        .into_iter()
        .filter(|c| until_ms.is_none_or(|u| c.at_ms < u))
        .collect())
}

/// The newest change of each entity (its latest value), `LATEST_CONCURRENCY` at a time.
pub async fn newest(prices: &DynamoPrices, pks: &[String]) -> Result<Vec<Change>, String> {
    let found: Vec<Option<Change>> = futures_util::stream::iter(pks.iter().cloned())
        .map(|pk| async move {
            prices
                .newest(&pk)
                .await
                .map_err(|e| format!("Query {pk}: {}", e.0))
        })
        .buffer_unordered(LATEST_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// Which of the stack's rules sent an alert about each change: (pk, sk) → rule names.
/// Only rules of the change's source and kind are asked about.
pub async fn fired(
    db: &aws_sdk_dynamodb::Client,
    stack: &Stack,
    changes: &[Change],
) -> Result<BTreeMap<(String, String), Vec<String>>, String> {
    let mut wanted: HashMap<String, (String, String, String)> = HashMap::new();
    for c in changes {
        let Some((source, kind, _)) = table::split_pk(&c.pk) else {
            continue;
        };
        for r in stack
            .rules
            .iter()
            .filter(|r| r.source == source && r.kind == kind)
        {
            wanted.insert(
                alerter::dedup_key(&r.name, &c.pk, &c.sk),
                (c.pk.clone(), c.sk.clone(), r.name.clone()),
            );
        }
    }
    let keys: Vec<HashMap<String, AttributeValue>> = wanted
        .keys()
        .map(|k| {
            HashMap::from([
                ("pk".to_string(), s(k)),
                ("sk".to_string(), s(alerter::adapters::dynamodb::CLAIM_SK)),
            ])
        })
        .collect();
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for item in batch_get(db, &stack.state_table, keys, &["pk", "#st"]).await? {
        let (Some(AttributeValue::S(key)), Some(AttributeValue::S(status))) =
            (item.get("pk"), item.get("status"))
        else {
            continue;
        };
        if status != "sent" {
            continue;
        }
        if let Some((pk, sk, rule)) = wanted.get(key) {
            out.entry((pk.clone(), sk.clone()))
                .or_default()
                .insert(rule.clone());
        }
    }
    Ok(out
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect())
}

/// BatchGetItem in chunks of `BATCH_GET_MAX`, unprocessed keys asked again.
/// `projection` names attributes; `#st` stands for `status` (a reserved word).
async fn batch_get(
    db: &aws_sdk_dynamodb::Client,
    table_name: &str,
    keys: Vec<HashMap<String, AttributeValue>>,
    projection: &[&str],
) -> Result<Vec<HashMap<String, AttributeValue>>, String> {
    let mut out = Vec::new();
    for chunk in keys.chunks(BATCH_GET_MAX) {
        let mut ka = KeysAndAttributes::builder()
            .set_keys(Some(chunk.to_vec()))
            .projection_expression(projection.join(", "));
        if projection.contains(&"#st") {
            ka = ka.expression_attribute_names("#st", "status");
        }
        let mut request = HashMap::from([(
            table_name.to_string(),
            ka.build().map_err(|e| e.to_string())?,
        )]);
        for round in 0.. {
            let r = db
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(err(&format!("BatchGetItem {table_name}")))?;
            if let Some(items) = r.responses().and_then(|m| m.get(table_name)) {
                out.extend(items.iter().cloned());
            }
            match r.unprocessed_keys() {
                Some(u) if !u.is_empty() && round < UNPROCESSED_ROUNDS => {
                    tokio::time::sleep(std::time::Duration::from_millis(50 << round)).await;
                    request = u.clone();
                }
                Some(u) if !u.is_empty() => {
                    return Err(format!(
                        "BatchGetItem {table_name}: keys still unprocessed after {UNPROCESSED_ROUNDS} rounds"
                    ))
                }
                _ => break,
            }
        }
    }
    Ok(out)
}

/// `history`: the changes of the selected entities in the range, with the rules that fired.
pub async fn history(
    sdk: &aws_config::SdkConfig,
    stack: &Stack,
    sel: &Selector,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<Change>, String> {
    let db = pricewire_pipeline::aws::dynamodb(sdk);
    let pks = entities(&db, stack, sel).await?;
    if pks.is_empty() {
        return Err(match (&sel.key, &sel.key_prefix) {
            (Some(k), _) => format!("no entity {k:?} of source {} is stored", sel.source),
            (None, Some(p)) => format!(
                "no entity of source {} with a key starting {p:?} is stored",
                sel.source
            ),
            (None, None) => format!("source {} has stored nothing", sel.source),
        });
    }
    let prices = reader(&db, &stack.prices_table);
    let mut all = Vec::new();
    for pk in &pks {
        all.extend(changes(&prices, pk, since, until).await?);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pricewire_pipeline::table::{Stats, Window};
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn change(key: &str, at_ms: i64, price: &str, prev: Option<&str>) -> Change {
        Change {
            pk: format!("travelpayouts#flight_price#{key}"),
            sk: format!("T#{at_ms:013}#abcd"),
            at_ms,
            id: format!("id{at_ms}"),
            job: "led-kzn".into(),
            observed_ms: at_ms,
            fetched_ms: at_ms,
            seen_ms: at_ms,
            price: dec(price),
            currency: Some("RUB".into()),
            signature: None,
            payload: "{}".into(),
            stats: Stats {
                previous: prev.map(|p| (dec(p), at_ms - 1000)),
                previous_line: None,
                first_ms: 0,
                windows: vec![
                    Window {
                        days: 7,
                        min: dec("100"),
                        max: dec("900"),
                        typical: dec("500"),
                        values: 3,
                    },
                    Window {
                        days: 30,
                        min: dec("80"),
                        max: dec("990"),
                        typical: dec("450"),
                        values: 9,
                    },
                ],
            },
            flag: None,
            expires_at: 0,
        }
    }

    #[test]
    fn rows_are_in_time_order_with_changes_windows_and_rules() {
        let a = change("LED-KZN/2026-12-24/oneway", 2_000, "4500", Some("5000"));
        let b = change("LED-KZN/2026-12-24/oneway", 1_000, "5000.00", None);
        let fired = BTreeMap::from([((a.pk.clone(), a.sk.clone()), vec!["drop".to_string()])]);
        let rs = rows(&[a, b], &fired, None);
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].price, dec("5000"));
        assert_eq!(rs[0].price.to_string(), "5000", "normalised");
        assert_eq!(rs[0].change, None);
        assert_eq!(rs[1].change, Some(dec("-500")));
        assert_eq!(rs[1].change_percent, Some(dec("-10")));
        assert_eq!(rs[1].rules, vec!["drop"]);
        assert_eq!(rs[1].window_days, Some(30), "30 days by default");
        assert_eq!(rs[1].min, Some(dec("80")));
        let seven = rows(&[change("K", 1, "1", None)], &BTreeMap::new(), Some(7));
        assert_eq!(seven[0].typical, Some(dec("500")));
        assert_eq!(
            rows(&[change("K", 1, "1", None)], &BTreeMap::new(), Some(3))[0].min,
            None
        );
    }

    #[test]
    fn the_table_aligns_and_marks_rules_and_flags() {
        let mut c = change("K", 60_000, "4500", Some("5000"));
        c.flag = Some("below the floor".into());
        let fired = BTreeMap::from([((c.pk.clone(), c.sk.clone()), vec!["drop".to_string()])]);
        let t = table(&rows(&[c], &fired, None), false);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("time (UTC)"), "{t}");
        assert!(lines[0].contains("min 30d"), "{t}");
        assert!(lines[1].starts_with("1970-01-01 00:01:00"), "{t}");
        assert!(lines[1].contains("4500 RUB"), "{t}");
        assert!(lines[1].contains("-500"), "{t}");
        assert!(lines[1].contains("drop; flagged: below the floor"), "{t}");
    }

    #[test]
    fn csv_quotes_what_needs_it_and_keeps_numbers_exact() {
        let mut c = change("A,B", 1_000, "0.000123", Some("0.0001"));
        c.currency = None;
        let fired = BTreeMap::from([(
            (c.pk.clone(), c.sk.clone()),
            vec!["r1".to_string(), "r2".to_string()],
        )]);
        let out = csv(&rows(&[c], &fired, None)).unwrap();
        let mut r = ::csv::Reader::from_reader(out.as_bytes());
        let rec = r.records().next().unwrap().unwrap();
        assert_eq!(&rec[0], "1970-01-01T00:00:01.000Z");
        assert_eq!(&rec[1], "A,B");
        assert_eq!(&rec[3], "0.000123");
        assert_eq!(&rec[6], "0.000023");
        assert_eq!(&rec[7], "23");
        assert_eq!(&rec[11], "r1;r2");
    }

    #[test]
    fn sorting_by_change_puts_entities_without_one_last() {
        let mut rs = rows(
            &[
                change("a", 1, "90", Some("100")),
                change("b", 1, "120", Some("100")),
                change("c", 1, "50", None),
            ],
            &BTreeMap::new(),
            None,
        );
        sort(&mut rs, SortBy::Change, false);
        let keys: Vec<&str> = rs.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        sort(&mut rs, SortBy::Change, true);
        let keys: Vec<&str> = rs.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["b", "a", "c"]);
        sort(&mut rs, SortBy::Price, true);
        let keys: Vec<&str> = rs.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["b", "a", "c"]);
    }

    #[test]
    fn times_are_instants_dates_or_ages() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z")
            .unwrap()
            .to_utc();
        let at = |s: &str| parse_when(s, now).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2026-12-01T10:00:00+03:00").unwrap(),
            "2026-12-01T07:00:00+00:00"
        );
        assert_eq!(at("2026-11-30").unwrap(), "2026-11-30T00:00:00+00:00");
        assert_eq!(at("36h").unwrap(), "2026-12-01T00:00:00+00:00");
        assert_eq!(at("7d").unwrap(), "2026-11-25T12:00:00+00:00");
        assert_eq!(at("90m").unwrap(), "2026-12-02T10:30:00+00:00");
        assert!(at("yesterday").unwrap_err().contains("is not a time"));
        assert!(at("-5d").is_err());
    }

    #[test]
    fn the_busiest_entities_are_those_with_the_most_changes() {
        let rs = rows(
            &[
                change("b", 1, "1", None),
                change("a", 2, "1", None),
                change("b", 3, "2", Some("1")),
                change("c", 4, "1", None),
            ],
            &BTreeMap::new(),
            None,
        );
        let keys: Vec<String> = busiest(rs, 2).into_iter().map(|r| r.key).collect();
        assert_eq!(
            keys,
            ["b", "a", "b"],
            "b (2 changes), then a before c by key"
        );
    }

    #[test]
    fn a_route_is_a_key_prefix() {
        assert_eq!(Selector::route_prefix("led-kzn"), "LED-KZN/");
        assert_eq!(Selector::route_prefix("LED-KZN/"), "LED-KZN/");
    }
}
