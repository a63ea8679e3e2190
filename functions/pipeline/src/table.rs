//! The DynamoDB item model of the prices table. Pure: items are built and read here, written
//! and queried by the adapters. The table holds *changes*, not observations: a record whose
//! value repeats the entity's stored value costs no write (every observation stays in the
//! S3 raw archive, the full-fidelity store).
//!
//! ## `prices` table (pk, sk)
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | change | `<source>#<kind>#<key>` | `T#<ms:013>#<id:16>` (values) or `T#<ms:013>` (series) | the record's payload, price, times, and the entity's statistics as of this change |
//! | entity | `<source>#<kind>#<key>` | `E` | `lpk` = `<source>#<kind>`, `lsk` = key, first seen: the sparse GSI's only items |
//!
//! Access patterns: history of an entity in time order (and a time range) = Query pk with
//! `sk BETWEEN T#<from> AND T#<until>~`; latest of an entity = the same Query descending,
//! `Limit 1`; latest of every entity of a source and kind = Query GSI `latest_by_source`
//! (`lpk = <source>#<kind>`, KEYS_ONLY) then the latest of each. The newest change item *is*
//! the entity's latest item: there is no second copy to keep in step.
//!
//! How a kind is ordered ([`Order`]): a *value* (fare, odds, generic price) is ordered by
//! when pricewire fetched it, and a new item is written only when the value differs from
//! the one fetched before; a *series* point (candle, funding rate, open interest) is
//! ordered by its own time, and every point is one item.
//!
//! Write units: a change is one item under 1 KB (one write unit, no index write); the
//! entity's first change also writes its entity item (one table and one index write, once);
//! a repeat writes nothing, except that the newest change is rewritten once every
//! [`SEEN_REFRESH`] so its expiry follows the entity while it is still being seen.

use crate::envelope::{Envelope, Payload};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::str::FromStr;

/// Sort key of an entity's entity item (the one the GSI lists).
pub const ENTITY_SK: &str = "E";
/// Prefix of every change item's sort key.
pub const CHANGE_SK_PREFIX: &str = "T#";
/// The sort key just past every change item of an entity (`~` sorts after digits and `#`).
pub const CHANGE_SK_END: &str = "T#~";
/// Name of the sparse GSI listing entities per source and kind (KEYS_ONLY).
pub const LATEST_INDEX: &str = "latest_by_source";
/// How long a repeat may go unrecorded: the newest change's `seen` and expiry are moved on
/// at most this often while an entity keeps repeating (a write a day, not one per repeat).
pub const SEEN_REFRESH: chrono::Duration = chrono::Duration::hours(24);
/// Characters of the record id kept in a value change's sort key (64 bits of SHA-256:
/// distinct records fetched in the same millisecond stay apart).
const SK_ID_CHARS: usize = 16;

pub type Item = HashMap<String, AttributeValue>;

/// How an entity's history is ordered and what makes a new item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By fetch time; an item only when the value differs from the one before.
    Value,
    /// By the point's own time; every point is an item.
    Series,
}

pub fn order_of(kind: &str) -> Order {
    match kind {
        "candle" | "funding_rate" | "open_interest" => Order::Series,
        _ => Order::Value,
    }
}

pub fn entity_pk(e: &Envelope) -> String {
    format!("{}#{}#{}", e.source, e.kind(), e.key)
}

/// `(source, kind, key)` of an entity's partition key (source and kind never hold `#`).
pub fn split_pk(pk: &str) -> Option<(&str, &str, &str)> {
    let mut parts = pk.splitn(3, '#');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

/// When a record sits in its entity's history, in milliseconds since the epoch.
pub fn order_ms(e: &Envelope) -> i64 {
    match order_of(e.kind()) {
        Order::Value => e.fetched_at.timestamp_millis(),
        Order::Series => e.observed_at.timestamp_millis(),
    }
}

/// The sort key of a record's change item.
pub fn change_sk(e: &Envelope) -> String {
    let at = order_ms(e).max(0);
    match order_of(e.kind()) {
        Order::Value => format!(
            "{CHANGE_SK_PREFIX}{at:013}#{}",
            &e.id[..e.id.len().min(SK_ID_CHARS)]
        ),
        Order::Series => format!("{CHANGE_SK_PREFIX}{at:013}"),
    }
}

/// The sort key at which an entity's history reaches `ms` (the lower end of a range).
pub fn sk_at(ms: i64) -> String {
    format!("{CHANGE_SK_PREFIX}{:013}", ms.max(0))
}

/// What makes a value the same value: the amount (normalised, so `4830.0` is `4830`) and
/// its unit — currency for money, the line for odds. `None` for series kinds.
pub fn signature(payload: &Payload) -> Option<String> {
    match payload {
        Payload::FlightPrice(f) => Some(format!(
            "{}{}",
            f.price.amount.normalize(),
            f.price.currency
        )),
        Payload::OddsQuote(q) => Some(match q.point {
            Some(p) => format!("{}@{}", q.price.normalize(), p.normalize()),
            None => q.price.normalize().to_string(),
        }),
        Payload::Price(p) => Some(format!(
            "{}{}",
            p.price.normalize(),
            p.currency.as_deref().unwrap_or_default()
        )),
        Payload::Candle(_) | Payload::FundingRate(_) | Payload::OpenInterest(_) => None,
    }
}

/// Minimum, maximum and typical (time-weighted median) value over one window before a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub days: u32,
    pub min: Decimal,
    pub max: Decimal,
    pub typical: Decimal,
    /// Distinct stored values in force during the window.
    pub values: u32,
}

/// An entity's statistics as of one change, computed from the changes stored before it
/// (flagged ones left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// The value before this change, and when it was stored.
    pub previous: Option<(Decimal, i64)>,
    /// The line (spread or total) of the quote before this change, when it had one.
    pub previous_line: Option<Decimal>,
    /// When the entity was first stored (ms).
    pub first_ms: i64,
    pub windows: Vec<Window>,
}

/// One change item, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub pk: String,
    pub sk: String,
    pub at_ms: i64,
    pub id: String,
    pub job: String,
    pub observed_ms: i64,
    pub fetched_ms: i64,
    /// The newest fetch known to have repeated this value (refreshed at most daily).
    pub seen_ms: i64,
    pub price: Decimal,
    pub currency: Option<String>,
    pub signature: Option<String>,
    /// The payload JSON (`{"kind":…,"fields":…}`).
    pub payload: String,
    pub stats: Stats,
    /// Why the value was judged implausible: stored, kept out of statistics and alerts.
    pub flag: Option<String>,
    pub expires_at: i64,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl Change {
    /// A change built from a record, with its statistics and expiry.
    pub fn of(e: &Envelope, stats: Stats, flag: Option<String>, ttl: chrono::Duration) -> Change {
        let at_ms = order_ms(e);
        Change {
            pk: entity_pk(e),
            sk: change_sk(e),
            at_ms,
            id: e.id.clone(),
            job: e.job.clone(),
            observed_ms: e.observed_at.timestamp_millis(),
            fetched_ms: e.fetched_at.timestamp_millis(),
            seen_ms: e.fetched_at.timestamp_millis(),
            price: e.payload.amount(),
            currency: e.payload.currency().map(str::to_string),
            signature: signature(&e.payload),
            payload: serde_json::to_string(&e.payload).unwrap_or_default(),
            stats,
            flag,
            expires_at: expiry(at_ms.max(e.fetched_at.timestamp_millis()), ttl),
        }
    }

    pub fn item(&self) -> Item {
        let mut item = Item::with_capacity(24);
        item.insert("pk".into(), s(&self.pk));
        item.insert("sk".into(), s(&self.sk));
        item.insert("id".into(), s(&self.id));
        item.insert("job".into(), s(&self.job));
        item.insert("obs".into(), n(self.observed_ms));
        item.insert("fet".into(), n(self.fetched_ms));
        item.insert("seen".into(), n(self.seen_ms));
        // DynamoDB numbers are exact decimals (38 digits): money and odds stay exact.
        item.insert("price".into(), n(self.price));
        if let Some(c) = &self.currency {
            item.insert("cur".into(), s(c));
        }
        if let Some(sig) = &self.signature {
            item.insert("sig".into(), s(sig));
        }
        item.insert("p".into(), s(&self.payload));
        if let Some((value, at)) = self.stats.previous {
            item.insert("prev".into(), n(value));
            item.insert("prev_at".into(), n(at));
        }
        if let Some(line) = self.stats.previous_line {
            item.insert("prev_line".into(), n(line));
        }
        item.insert("first".into(), n(self.stats.first_ms));
        for w in &self.stats.windows {
            let d = w.days;
            item.insert(format!("min{d}"), n(w.min));
            item.insert(format!("max{d}"), n(w.max));
            item.insert(format!("typ{d}"), n(w.typical));
            item.insert(format!("cnt{d}"), n(w.values));
        }
        if let Some(f) = &self.flag {
            item.insert("flag".into(), s(f));
        }
        item.insert("expires_at".into(), n(self.expires_at));
        item
    }

    /// Reads a change item; `None` for any other item (or one this build cannot read).
    pub fn from_item(item: &Item) -> Option<Change> {
        let sk = get_s(item, "sk")?;
        let at_ms = sk
            .strip_prefix(CHANGE_SK_PREFIX)?
            .get(..13)?
            .parse::<i64>()
            .ok()?;
        let mut windows = Vec::new();
        for key in item.keys() {
            let Some(days) = key.strip_prefix("typ").and_then(|d| d.parse::<u32>().ok()) else {
                continue;
            };
            windows.push(Window {
                days,
                min: get_d(item, &format!("min{days}"))?,
                max: get_d(item, &format!("max{days}"))?,
                typical: get_d(item, &format!("typ{days}"))?,
                values: get_n(item, &format!("cnt{days}")).unwrap_or(0) as u32,
            });
        }
        windows.sort_by_key(|w| w.days);
        let previous = match (get_d(item, "prev"), get_n(item, "prev_at")) {
            (Some(v), Some(at)) => Some((v, at)),
            _ => None,
        };
        Some(Change {
            pk: get_s(item, "pk")?,
            sk,
            at_ms,
            id: get_s(item, "id")?,
            job: get_s(item, "job").unwrap_or_default(),
            observed_ms: get_n(item, "obs")?,
            fetched_ms: get_n(item, "fet")?,
            seen_ms: get_n(item, "seen").unwrap_or(at_ms),
            price: get_d(item, "price")?,
            currency: get_s(item, "cur"),
            signature: get_s(item, "sig"),
            payload: get_s(item, "p")?,
            stats: Stats {
                previous,
                previous_line: get_d(item, "prev_line"),
                first_ms: get_n(item, "first").unwrap_or(at_ms),
                windows,
            },
            flag: get_s(item, "flag"),
            expires_at: get_n(item, "expires_at").unwrap_or(0),
        })
    }

    /// The line of the quote this change stored (spreads and totals), from its payload.
    pub fn line(&self) -> Option<Decimal> {
        match serde_json::from_str::<Payload>(&self.payload).ok()? {
            Payload::OddsQuote(q) => q.point,
            _ => None,
        }
    }

    /// The record this change was stored from (source, kind and key from its partition key).
    pub fn envelope(&self) -> Option<Envelope> {
        let (source, _, key) = split_pk(&self.pk)?;
        let payload: Payload = serde_json::from_str(&self.payload).ok()?;
        Some(Envelope {
            schema: crate::envelope::SCHEMA_VERSION,
            id: self.id.clone(),
            source: source.to_string(),
            key: key.to_string(),
            job: self.job.clone(),
            observed_at: DateTime::from_timestamp_millis(self.observed_ms)?,
            fetched_at: DateTime::from_timestamp_millis(self.fetched_ms)?,
            payload,
        })
    }

    /// The statistics window of `days`, if stored.
    pub fn window(&self, days: u32) -> Option<&Window> {
        self.stats.windows.iter().find(|w| w.days == days)
    }
}

/// The entity item: what the GSI lists (written with the entity's first change).
pub fn entity_item(e: &Envelope) -> Item {
    let mut item = Item::with_capacity(5);
    item.insert("pk".into(), s(entity_pk(e)));
    item.insert("sk".into(), s(ENTITY_SK));
    item.insert("lpk".into(), s(format!("{}#{}", e.source, e.kind())));
    item.insert("lsk".into(), s(&e.key));
    item.insert("first".into(), n(order_ms(e)));
    item
}

/// Seconds since the epoch at which an item stored at `ms` expires.
pub fn expiry(ms: i64, ttl: chrono::Duration) -> i64 {
    (ms / 1000) + ttl.num_seconds()
}

fn get_s(item: &Item, k: &str) -> Option<String> {
    match item.get(k) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn get_n(item: &Item, k: &str) -> Option<i64> {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn get_d(item: &Item, k: &str) -> Option<Decimal> {
    match item.get(k) {
        Some(AttributeValue::N(v)) => Decimal::from_str(v)
            .or_else(|_| Decimal::from_scientific(v))
            .ok(),
        _ => None,
    }
}

/// An item in DynamoDB's JSON form (`{"price": {"N": "4830"}}`): what a table stream record
/// carries as its image. Change and entity items hold strings and numbers only.
pub fn dynamodb_json(item: &Item) -> serde_json::Value {
    let attributes: serde_json::Map<String, serde_json::Value> = item
        .iter()
        .filter_map(|(k, v)| {
            let v = match v {
                AttributeValue::S(s) => serde_json::json!({ "S": s }),
                AttributeValue::N(n) => serde_json::json!({ "N": n }),
                _ => return None,
            };
            Some((k.clone(), v))
        })
        .collect();
    attributes.into()
}

/// The table stream record Lambda delivers when `item` is inserted: `eventName` INSERT,
/// its keys and new image, sequence number `seq`.
pub fn insert_record(item: &Item, seq: &str, stream_arn: &str, region: &str) -> serde_json::Value {
    let image = dynamodb_json(item);
    serde_json::json!({
        "eventID": seq, "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": region, "eventSourceARN": stream_arn,
        "dynamodb": {"ApproximateCreationDateTime": Utc::now().timestamp() as f64,
            "Keys": {"pk": image["pk"], "sk": image["sk"]}, "NewImage": image,
            "SequenceNumber": seq, "SizeBytes": item_size(item), "StreamViewType": "NEW_AND_OLD_IMAGES"}
    })
}

/// Approximate stored size of an item: attribute names plus values (numbers as text).
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
                    _ => 8,
                }
        })
        .sum()
}

/// Bytes a change item holds besides the payload JSON and the entity key (attribute names,
/// ids, times, price, statistics), rounded up generously.
const ITEM_OVERHEAD_BYTES: usize = 1024;

/// Whether an envelope can be stored: its keys within DynamoDB's key limits (`lsk` holds
/// the entity key) and its item within the item limit. A record that does not fit would
/// fail its whole BatchWriteItem request: it is quarantined instead. `record_bytes` is the
/// envelope's JSON length, which the caller has at hand (an upper bound of the payload's).
pub fn fits(e: &Envelope, record_bytes: usize) -> Result<(), String> {
    use crate::limits::{
        DYNAMODB_ITEM_MAX_BYTES, DYNAMODB_PARTITION_KEY_MAX_BYTES, DYNAMODB_SORT_KEY_MAX_BYTES,
    };
    if e.key.len() > DYNAMODB_SORT_KEY_MAX_BYTES
        || entity_pk(e).len() > DYNAMODB_PARTITION_KEY_MAX_BYTES
    {
        return Err(format!(
            "entity key of {} bytes exceeds DynamoDB's key limits",
            e.key.len()
        ));
    }
    let size = record_bytes + 2 * e.key.len() + ITEM_OVERHEAD_BYTES;
    if size > DYNAMODB_ITEM_MAX_BYTES {
        return Err(format!(
            "item of {size} bytes exceeds DynamoDB's {DYNAMODB_ITEM_MAX_BYTES}-byte limit"
        ));
    }
    Ok(())
}

/// The key itself when it fits `max_bytes`, else a prefix of it plus its SHA-256 (stable).
pub fn bounded_key(key: String, max_bytes: usize) -> String {
    use sha2::{Digest, Sha256};
    if key.len() <= max_bytes {
        return key;
    }
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    let mut cut = max_bytes.saturating_sub(digest.len() + 1);
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}#{digest}", &key[..cut])
}

/// Seconds since the epoch, for TTL attributes.
pub fn epoch_seconds(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Candle, FlightPrice, Instrument, Money, Payload};
    use chrono::TimeZone;

    fn flight(price: i64, minute: u32) -> Envelope {
        let t = Utc.with_ymd_and_hms(2026, 11, 21, 8, minute, 0).unwrap();
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

    #[test]
    fn a_change_item_reads_back_as_the_record_it_was_stored_from() {
        let e = flight(4830, 5);
        let stats = Stats {
            previous: Some((Decimal::new(5100, 0), 1_700_000_000_000)),
            previous_line: Some(Decimal::new(-35, 1)),
            first_ms: 1_690_000_000_000,
            windows: vec![Window {
                days: 7,
                min: Decimal::new(4700, 0),
                max: Decimal::new(5300, 0),
                typical: Decimal::new(51005, 1),
                values: 3,
            }],
        };
        let c = Change::of(&e, stats.clone(), None, chrono::Duration::days(90));
        let item = c.item();
        assert_eq!(
            item["pk"],
            s("travelpayouts#flight_price#LED-KZN/2026-12-05/oneway")
        );
        let sk = item["sk"].as_s().unwrap();
        assert_eq!(
            sk,
            &format!("T#{:013}#{}", e.fetched_at.timestamp_millis(), &e.id[..16])
        );
        assert_eq!(item["price"], n("4830"));
        assert!(
            !item.contains_key("record"),
            "no copy of the whole envelope"
        );
        assert!(
            item_size(&item) < 1024,
            "one write unit: {}",
            item_size(&item)
        );
        let back = Change::from_item(&item).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.stats, stats);
        assert_eq!(back.envelope().unwrap(), e);
        assert_eq!(
            back.expires_at,
            e.fetched_at.timestamp() + 90 * 86400,
            "expires ttl after it was stored"
        );
        assert_eq!(Change::from_item(&entity_item(&e)), None);
    }

    #[test]
    fn values_sort_by_fetch_and_series_by_their_own_time() {
        let a = flight(1, 5);
        let b = flight(1, 6);
        assert!(change_sk(&a) < change_sk(&b));
        assert!(change_sk(&a).as_str() < CHANGE_SK_END && change_sk(&a) > sk_at(0));
        let t = Utc.with_ymd_and_hms(2026, 11, 21, 8, 0, 0).unwrap();
        let candle = Envelope::new(
            "binance",
            "j",
            "binance/linear/BTCUSDT/1h".into(),
            Some(t),
            t + chrono::Duration::hours(3),
            Payload::Candle(Candle {
                instrument: Instrument {
                    exchange: "binance".into(),
                    market: "linear".into(),
                    symbol: "BTCUSDT".into(),
                },
                interval: "1h".into(),
                open_time: t,
                open: 1.into(),
                high: 2.into(),
                low: 1.into(),
                close: 2.into(),
                volume: 1.into(),
                quote_volume: None,
                trades: None,
                derived_from: None,
            }),
        );
        assert_eq!(
            change_sk(&candle),
            format!("T#{:013}", t.timestamp_millis())
        );
        assert_eq!(signature(&candle.payload), None);
        assert_eq!(
            signature(&flight(4830, 1).payload),
            signature(
                &{
                    let mut f = flight(4830, 9);
                    if let Payload::FlightPrice(p) = &mut f.payload {
                        p.price.amount = Decimal::new(48300, 1);
                    }
                    f
                }
                .payload
            ),
            "4830 and 4830.0 are one value"
        );
    }

    #[test]
    fn bounded_keys_stay_within_the_limit_and_distinct() {
        assert_eq!(bounded_key("short".into(), 10), "short");
        let a = bounded_key("é".repeat(600), 100);
        let b = bounded_key(format!("{}x", "é".repeat(599)), 100);
        assert!(a.len() <= 100 && b.len() <= 100);
        assert_ne!(a, b);
    }

    #[test]
    fn oversized_keys_and_items_do_not_fit() {
        let ok = flight(1, 8);
        assert!(fits(&ok, ok.to_json().len()).is_ok());
        let c = Change::of(&ok, Stats::default(), None, chrono::Duration::days(1));
        assert!(
            item_size(&c.item()) <= ok.to_json().len() + 2 * ok.key.len() + ITEM_OVERHEAD_BYTES,
            "the estimate is an upper bound"
        );
        let mut long_key = flight(1, 8);
        long_key.key = "K".repeat(1025);
        assert!(fits(&long_key, 100).unwrap_err().contains("key limits"));
        let mut big = flight(1, 8);
        let Payload::FlightPrice(f) = &mut big.payload else {
            unreachable!("a flight")
        };
        f.link = Some("x".repeat(450 * 1024));
        assert!(fits(&big, big.to_json().len())
            .unwrap_err()
            .contains("exceeds DynamoDB's"));
    }
}
