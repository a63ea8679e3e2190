//! The DynamoDB item model. Pure: items are built and read here, written by the adapter.
//!
//! ## `prices` table (pk, sk)
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | history | `<source>#<kind>#<key>` | `H#<id>` | one per distinct observation; `ts` = observed_at in ms; TTL `expires_at` |
//! | latest | `<source>#<kind>#<key>` | `LATEST` | written only when newer (conditional put); `latest_pk`/`latest_sk` feed the sparse GSI |
//!
//! Access patterns: history of an entity in time order = Query LSI `by_time` on pk (sort `ts`);
//! latest of an entity = GetItem(pk, `LATEST`); latest of every entity of a source and kind =
//! Query GSI `latest_by_source` on `latest_pk = <source>#<kind>` (only latest items carry it).

use crate::envelope::Envelope;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

pub const LATEST_SK: &str = "LATEST";
pub const HISTORY_SK_PREFIX: &str = "H#";
/// Name of the LSI ordering an entity's history by observation time.
pub const BY_TIME_INDEX: &str = "by_time";
/// Name of the sparse GSI listing latest items per source and kind.
pub const LATEST_INDEX: &str = "latest_by_source";

/// A `latest` item is replaced only by a newer observation; equal times are ordered by id so
/// every order of delivery converges on the same item. Replays and retries write nothing.
pub const LATEST_CONDITION: &str =
    "attribute_not_exists(pk) OR ts < :ts OR (ts = :ts AND id < :id)";

pub type Item = HashMap<String, AttributeValue>;

pub fn entity_pk(e: &Envelope) -> String {
    format!("{}#{}#{}", e.source, e.kind(), e.key)
}

pub fn history_sk(e: &Envelope) -> String {
    format!("{HISTORY_SK_PREFIX}{}", e.id)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn common(e: &Envelope) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), s(entity_pk(e)));
    item.insert("ts".into(), n(e.observed_at.timestamp_millis()));
    item.insert("id".into(), s(&e.id));
    item.insert("source".into(), s(&e.source));
    item.insert("kind".into(), s(e.kind()));
    item.insert("key".into(), s(&e.key));
    item.insert("job".into(), s(&e.job));
    item.insert(
        "observed_at".into(),
        s(e.observed_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    item.insert(
        "fetched_at".into(),
        s(e.fetched_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    // DynamoDB numbers are exact decimals (38 digits): money and odds stay exact.
    item.insert("price".into(), n(e.payload.amount()));
    if let Some(currency) = e.payload.currency() {
        item.insert("currency".into(), s(currency));
    }
    item.insert("record".into(), s(String::from_utf8_lossy(&e.to_json())));
    item
}

/// One history item; it expires `ttl` after it was observed.
pub fn history_item(e: &Envelope, ttl: chrono::Duration) -> Item {
    let mut item = common(e);
    item.insert("sk".into(), s(history_sk(e)));
    item.insert("expires_at".into(), n((e.observed_at + ttl).timestamp()));
    item
}

pub fn latest_item(e: &Envelope) -> Item {
    let mut item = common(e);
    item.insert("sk".into(), s(LATEST_SK));
    item.insert("latest_pk".into(), s(format!("{}#{}", e.source, e.kind())));
    item.insert("latest_sk".into(), s(&e.key));
    item
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

/// Bytes an item holds besides the envelope JSON and the entity key (attribute names, ids,
/// times, price), rounded up generously.
const ITEM_OVERHEAD_BYTES: usize = 1024;

/// Whether an envelope can be stored: its keys within DynamoDB's key limits (`latest_sk`
/// holds the entity key) and its items within the item limit. A record that does not fit
/// would fail its whole BatchWriteItem request: it is quarantined instead. `record_bytes` is
/// the envelope's JSON length, which the caller has at hand: this runs per record, so it
/// estimates from sizes rather than building the item.
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
    // The items carry the record, and the key in `pk`, `key` and `latest_sk`.
    let size = record_bytes + 3 * e.key.len() + ITEM_OVERHEAD_BYTES;
    if size > DYNAMODB_ITEM_MAX_BYTES {
        return Err(format!(
            "item of {size} bytes exceeds DynamoDB's {DYNAMODB_ITEM_MAX_BYTES}-byte limit"
        ));
    }
    Ok(())
}

/// Values for [`LATEST_CONDITION`].
pub fn latest_condition_values(e: &Envelope) -> Item {
    HashMap::from([
        (":ts".to_string(), n(e.observed_at.timestamp_millis())),
        (":id".to_string(), s(&e.id)),
    ])
}

/// Of several observations of one entity, the one a `latest` item must end up holding.
pub fn newest<'a>(a: &'a Envelope, b: &'a Envelope) -> &'a Envelope {
    if (b.observed_at, &b.id) > (a.observed_at, &a.id) {
        b
    } else {
        a
    }
}

/// The envelope stored in an item, if it is one.
pub fn envelope_of(item: &Item) -> Option<Envelope> {
    match item.get("record") {
        Some(AttributeValue::S(json)) => Envelope::from_slice(json.as_bytes()).ok(),
        _ => None,
    }
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
    use crate::envelope::{FlightPrice, Money, Payload};
    use chrono::TimeZone;

    fn env(price: i64, hour: u32) -> Envelope {
        let t = Utc.with_ymd_and_hms(2026, 11, 21, hour, 0, 0).unwrap();
        Envelope::new(
            "travelpayouts",
            "j",
            "LED-KZN/2026-12-05/oneway".into(),
            Some(t),
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
    fn items_carry_keys_time_exact_price_ttl_and_the_record() {
        let e = env(4830, 8);
        let h = history_item(&e, chrono::Duration::days(90));
        assert_eq!(
            h["pk"],
            s("travelpayouts#flight_price#LED-KZN/2026-12-05/oneway")
        );
        assert_eq!(h["sk"], s(format!("H#{}", e.id)));
        assert_eq!(h["price"], n("4830"));
        assert_eq!(h["ts"], n(e.observed_at.timestamp_millis()));
        assert_eq!(h["expires_at"], n(e.observed_at.timestamp() + 90 * 86400));
        assert_eq!(envelope_of(&h).unwrap(), e);
        let l = latest_item(&e);
        assert_eq!(l["sk"], s("LATEST"));
        assert_eq!(l["latest_pk"], s("travelpayouts#flight_price"));
        assert!(!l.contains_key("expires_at"), "latest items never expire");
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
        let ok = env(1, 8);
        assert!(fits(&ok, ok.to_json().len()).is_ok());
        assert!(
            item_size(&latest_item(&ok))
                <= ok.to_json().len() + 3 * ok.key.len() + ITEM_OVERHEAD_BYTES,
            "the estimate is an upper bound"
        );
        let mut long_key = env(1, 8);
        long_key.key = "K".repeat(1025);
        assert!(fits(&long_key, 100).unwrap_err().contains("key limits"));
        let mut big = env(1, 8);
        let Payload::FlightPrice(f) = &mut big.payload else {
            unreachable!("a flight")
        };
        f.link = Some("x".repeat(450 * 1024));
        assert!(fits(&big, big.to_json().len())
            .unwrap_err()
            .contains("exceeds DynamoDB's"));
    }

    #[test]
    fn newest_is_order_independent() {
        let (a, b, c) = (env(1, 8), env(2, 9), env(3, 9));
        assert_eq!(newest(&a, &b).id, b.id);
        assert_eq!(newest(&b, &a).id, b.id);
        assert_eq!(newest(&b, &c).id, newest(&c, &b).id);
    }
}
