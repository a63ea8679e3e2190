//! The `shop` personality: an upstream no pricewire module knows, which the twin collects
//! through the `generic` module declared in `infra/moto/twin.tfvars` alone.
//! `GET /v1/offers?region=&category=&page=&per_page=` → `{"data": {"items": [{"store",
//! "item": {"sku", "price", "title"}, "currency", "updated_at"}]}, "meta": {"page",
//! "pages"}}`, pages numbered from 1. Prices move between generations (each answer to the
//! same query is the next); prices come as strings or numbers; titles and currencies go
//! `null` at `null_rate` (the records stay valid, the value is dropped); at
//! `malformed_rate` a price is `"n/a"` or the store is missing (quarantined).
//!
//! What a correct collector must make of an answer follows the entry in twin.tfvars:
//! key `store,/item/sku`, price `/item/price`, time `updated_at`, currency `currency`,
//! name `/item/title`.

use super::{h, unit, Answer, Expected, SimConfig};
use chrono::{DateTime, SecondsFormat, Utc};
use pricewire_pipeline::envelope::{Payload, Price};
use pricewire_pipeline::sources::key_part;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const PATH: &str = "/v1/offers";
const STORES: &[&str] = &["berlin", "paris/nord", "rome", "oslo"];
const ITEMS: &[(&str, &str)] = &[
    ("1001", "Sencha"),
    ("1002", "Gyokuro"),
    ("A-7", "Darjeeling"),
    ("B-12", "Assam"),
    ("C-3", "Pu-erh"),
];
/// Generation 0's time; generation n is n minutes later.
const EPOCH_S: i64 = 1_796_115_600;

fn currency(store: &str) -> &'static str {
    match store {
        "oslo" => "NOK",
        _ => "EUR",
    }
}

/// One page of the catalogue of a region and category, at generation `g`.
pub fn answer(
    config: &SimConfig,
    query: &BTreeMap<String, String>,
    g: u32,
    rng: &mut fastrand::Rng,
) -> Answer {
    let seed = config.seed;
    let region = query.get("region").cloned().unwrap_or_default();
    let category = query.get("category").cloned().unwrap_or_default();
    let page: usize = query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let per_page: usize = query
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let all: Vec<(&str, &str, &str)> = STORES
        .iter()
        .flat_map(|s| ITEMS.iter().map(move |(sku, title)| (*s, *sku, *title)))
        .collect();
    let pages = all.len().div_ceil(per_page);
    let updated = generation_time(g);
    let mut items = vec![];
    let mut expected = vec![];
    let mut malformed = vec![];
    for (index, (store, sku, title)) in all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .enumerate()
    {
        let base = 3.0 + 20.0 * unit(h(seed, &[&region, &category, store, sku]));
        let moves = unit(h(seed, &[store, sku, &g.to_string()])) < 0.3;
        let step = if moves { 0.5 * f64::from(g % 3) } else { 0.0 };
        let cents = ((base + step) * 100.0).round() as i64;
        let price = Decimal::new(cents, 2);
        let price_json = if rng.bool() {
            json!(price.to_string())
        } else {
            json!(price.to_string().parse::<f64>().unwrap_or(0.0))
        };
        let title_v = if rng.f64() < config.null_rate {
            Value::Null
        } else {
            json!(title)
        };
        let currency_v = if rng.f64() < config.null_rate {
            Value::Null
        } else {
            json!(currency(store).to_ascii_lowercase())
        };
        let mut item = json!({
            "store": store,
            "item": {"sku": sku, "price": price_json, "title": title_v},
            "currency": currency_v,
            "updated_at": updated.to_rfc3339_opts(SecondsFormat::Secs, true),
        });
        if rng.f64() < config.malformed_rate {
            if rng.bool() {
                item["item"]["price"] = json!("n/a");
                malformed.push("price is n/a".into());
            } else {
                item.as_object_mut().map(|o| o.remove("store"));
                malformed.push("no store".into());
            }
        } else {
            // A price as a JSON number is read at its text: 12.3, not 12.30.
            let served: Decimal = match &item["item"]["price"] {
                Value::String(s) => s.parse().unwrap_or_default(),
                other => other.to_string().parse().unwrap_or_default(),
            };
            expected.push(Expected {
                index,
                key: format!("{}/{}", key_part(store), key_part(sku)),
                upstream_time: Some(updated),
                payload: Payload::Price(Price {
                    price: served,
                    currency: currency_v.as_str().map(|c| c.to_ascii_uppercase()),
                    name: title_v.as_str().map(str::to_string),
                    attributes: [
                        ("store".to_string(), store.to_string()),
                        ("item/sku".to_string(), sku.to_string()),
                    ]
                    .into(),
                }),
            });
        }
        items.push(item);
    }
    let body = json!({"data": {"items": items}, "meta": {"page": page, "pages": pages}});
    Answer::ok(body.to_string(), expected, malformed)
}

/// When generation `g` was observed: a minute after the one before.
pub fn generation_time(g: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(EPOCH_S + 60 * i64::from(g), 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::query_of;
    use super::*;

    #[test]
    fn pages_cover_the_catalogue_once_and_expected_follows_the_body() {
        let config = SimConfig {
            malformed_rate: 0.2,
            null_rate: 0.2,
            ..SimConfig::default()
        };
        let mut keys = std::collections::BTreeSet::new();
        let mut served = 0;
        for page in 1..=3 {
            let q = query_of(&[
                ("region", "eu"),
                ("page", &page.to_string()),
                ("per_page", "8"),
            ]);
            let a = answer(&config, &q, 0, &mut fastrand::Rng::with_seed(page));
            let body: Value = serde_json::from_str(&a.body).unwrap();
            let items = body["data"]["items"].as_array().unwrap();
            served += items.len();
            assert_eq!(items.len(), a.expected.len() + a.malformed.len());
            for e in &a.expected {
                assert!(keys.insert(e.key.clone()), "{} twice", e.key);
                let Payload::Price(p) = &e.payload else {
                    panic!()
                };
                let raw = &items[e.index]["item"]["price"];
                assert_eq!(
                    raw.as_str().map_or_else(|| raw.to_string(), str::to_string),
                    p.price.to_string()
                );
            }
        }
        assert_eq!(served, STORES.len() * ITEMS.len());
        assert!(keys.contains("paris%2Fnord/A-7") || keys.len() < served);
        assert_eq!(
            generation_time(1).timestamp() - generation_time(0).timestamp(),
            60
        );
    }
}
