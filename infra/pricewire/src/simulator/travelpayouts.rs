//! The Travelpayouts personality: `/aviasales/v3/prices_for_dates` and
//! `/v2/prices/month-matrix`, with real city codes, RUB prices from route distance, a share
//! under the classic 5000 RUB threshold, and prices that change between generations.
//!
//! Every offer is generated from a model, and the model is what the simulator counts as
//! valid: each served offer that is not broken on purpose comes with the record a correct
//! collector must make of it ([`Expected`]), written from the model in the envelope's
//! vocabulary — never by running the collector's parser over the body.

use super::{h, mix, unit, Answer, Expected, SimConfig};
use chrono::{DateTime, Datelike, Duration as Days, NaiveDate, NaiveDateTime, Utc};
use pricewire_pipeline::envelope::{FlightPrice, Money, Payload};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Routes the simulator knows: (origin, destination, great-circle km).
pub const ROUTES: &[(&str, &str, u32)] = &[
    ("LED", "KZN", 1200),
    ("MOW", "AER", 1360),
    ("MOW", "LED", 650),
    ("LED", "AER", 1950),
    ("MOW", "KZN", 720),
    ("SVX", "MOW", 1420),
    ("OVB", "MOW", 2810),
    ("KGD", "MOW", 1090),
    ("MOW", "KRR", 1200),
    ("LED", "MRV", 1900),
    ("KZN", "AER", 1500),
    ("MOW", "IKT", 4200),
];
const AIRLINES: &[&str] = &["SU", "DP", "S7", "U6", "UT", "FV", "N4"];
pub const GATES: &[&str] = &[
    "Aeroflot",
    "Pobeda",
    "S7 Airlines",
    "Ozon.travel",
    "Biletix",
    "Uralairlines",
];
/// The simulator's clock starts here: generation n is `n` × 5 minutes later.
const EPOCH: &str = "2026-11-20T06:00:00Z";
/// Where relative links point, and what month-matrix links are built on (the API's
/// documented behaviour, written out here independently of the collector).
const SITE: &str = "https://www.aviasales.com";
pub const V3_PATH: &str = "/aviasales/v3/prices_for_dates";
pub const MONTH_MATRIX_PATH: &str = "/v2/prices/month-matrix";

fn route_km(origin: &str, destination: &str) -> u32 {
    ROUTES
        .iter()
        .find(|(o, d, _)| {
            (*o == origin && *d == destination) || (*o == destination && *d == origin)
        })
        .map(|r| r.2)
        .unwrap_or(1500)
}

/// The price of one offer at a generation: base from distance and day, then a random walk
/// in which about 30 % of offers change by up to ±12 % per generation.
fn price(seed: u64, offer: &str, km: u32, generation: u32) -> u32 {
    let base = 1500.0 + f64::from(km) * 2.6;
    let spread = 0.55 + unit(h(seed, &[offer, "base"])) * 0.9;
    let mut p = base * spread;
    for g in 1..=generation {
        let r = h(seed, &[offer, "gen", &g.to_string()]);
        if unit(r) < 0.3 {
            p *= 0.88 + unit(mix(r)) * 0.24;
        }
    }
    ((p / 10.0).round() * 10.0).max(500.0) as u32
}

fn days_of(month_or_date: &str) -> Vec<NaiveDate> {
    if let Ok(d) = NaiveDate::parse_from_str(month_or_date, "%Y-%m-%d") {
        if month_or_date.len() == 10 && !month_or_date.ends_with("-01") {
            return vec![d];
        }
    }
    let first = NaiveDate::parse_from_str(
        &format!("{}-01", month_or_date.get(..7).unwrap_or(month_or_date)),
        "%Y-%m-%d",
    );
    match first {
        Ok(first) => first
            .iter_days()
            .take_while(|d| d.month() == first.month())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn generation_time(generation: u32) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(EPOCH)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now())
        + chrono::Duration::minutes(5 * i64::from(generation))
}

/// One offer as modelled: its JSON as the API writes it, and the record it must become.
pub struct Offer {
    pub json: Map<String, Value>,
    pub flight: FlightPrice,
    pub found_at: Option<DateTime<Utc>>,
}

fn rub(p: u32, currency: &str) -> Money {
    Money {
        amount: Decimal::from(p),
        currency: currency.to_ascii_uppercase(),
    }
}

/// The v3 `prices_for_dates` offers for a query at a generation, before faults.
pub fn prices_for_dates(seed: u64, q: &BTreeMap<String, String>, generation: u32) -> Vec<Value> {
    prices_for_dates_sized(seed, q, generation, None)
        .into_iter()
        .map(|o| Value::Object(o.json))
        .collect()
}

/// As [`prices_for_dates`], with `offers` offers spread over the days (flights per day as
/// needed), then the `page` (1-based) of `limit` asked for.
pub fn prices_for_dates_sized(
    seed: u64,
    q: &BTreeMap<String, String>,
    generation: u32,
    offers: Option<usize>,
) -> Vec<Offer> {
    let origin = q.get("origin").map(String::as_str).unwrap_or("MOW");
    let destination = q.get("destination").map(String::as_str).unwrap_or("LED");
    let currency = q.get("currency").map(String::as_str).unwrap_or("rub");
    let km = route_km(origin, destination);
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(30)
        .clamp(1, 1000);
    let round_trip =
        q.get("return_at").is_some() || q.get("one_way").map(String::as_str) == Some("false");
    let days = days_of(
        q.get("departure_at")
            .map(String::as_str)
            .unwrap_or("2026-12"),
    );
    let wanted = offers;
    let flights_per_day = match wanted {
        Some(n) if !days.is_empty() => n.div_ceil(days.len()) as u32,
        _ => 2,
    };
    let mut all = Vec::new();
    for flight in 0..flights_per_day {
        for day in days.iter().copied() {
            let id = format!("{origin}{destination}{day}{flight}");
            let r = h(seed, &[&id, "shape"]);
            let airline = AIRLINES[(r % AIRLINES.len() as u64) as usize];
            let number = 100 + (mix(r) % 8900) as u32;
            let hour = 6 + (mix(r ^ 1) % 16) as u32;
            let minute = [0, 15, 30, 45][(mix(r ^ 2) % 4) as usize];
            let transfers = [0, 0, 0, 1, 1, 2][(mix(r ^ 3) % 6) as usize];
            let duration = km / 8 + 40 + transfers * 95;
            let departure = format!("{day}T{hour:02}:{minute:02}:00+03:00");
            let ret = (day + Days::days(5 + (mix(r ^ 4) % 5) as i64)).to_string();
            let p = price(seed, &id, km, generation);
            let link = format!(
                "/search/{origin}{:02}{:02}{destination}1?t={airline}{number}{p}",
                day.day(),
                day.month()
            );
            let mut o = json!({
                "origin": origin, "destination": destination,
                "origin_airport": origin, "destination_airport": destination,
                "price": p, "airline": airline, "flight_number": number.to_string(),
                "departure_at": departure, "transfers": transfers, "return_transfers": transfers,
                "duration": duration, "duration_to": duration, "duration_back": if round_trip { duration } else { 0 },
                "link": link,
            });
            let return_at = round_trip.then(|| format!("{ret}T{:02}:00:00+03:00", (hour + 5) % 24));
            if let Some(r) = &return_at {
                o["return_at"] = json!(r);
            }
            let flight = FlightPrice {
                return_at,
                carrier: Some(airline.into()),
                flight_number: Some(number.to_string()),
                transfers: Some(transfers),
                duration_minutes: Some(duration),
                link: Some(format!("{SITE}{link}")),
                ..FlightPrice::new(origin, destination, &departure, rub(p, currency))
            };
            let Value::Object(json) = o else { continue };
            all.push((
                p,
                Offer {
                    json,
                    flight,
                    found_at: None,
                },
            ));
        }
    }
    if let Some(n) = wanted {
        all.truncate(n);
    }
    let sort_by_price = q.get("sorting").map(String::as_str) != Some("route");
    if sort_by_price {
        all.sort_by_key(|(p, _)| *p);
    }
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    all.into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|(_, o)| o)
        .collect()
}

/// Aviasales search link, `/search/LED0512KZN10121` style: origin, DDMM, destination,
/// return DDMM if any, one adult.
fn search_link(
    origin: &str,
    destination: &str,
    depart: NaiveDate,
    ret: Option<NaiveDate>,
) -> String {
    let ddmm = |d: NaiveDate| d.format("%d%m").to_string();
    format!(
        "{SITE}/search/{origin}{}{destination}{}1",
        ddmm(depart),
        ret.map(ddmm).unwrap_or_default()
    )
}

/// The v2 `month-matrix` offers for a query at a generation, before faults.
pub fn month_matrix(seed: u64, q: &BTreeMap<String, String>, generation: u32) -> Vec<Offer> {
    let origin = q.get("origin").map(String::as_str).unwrap_or("MOW");
    let destination = q.get("destination").map(String::as_str).unwrap_or("LED");
    let currency = q.get("currency").map(String::as_str).unwrap_or("rub");
    let km = route_km(origin, destination);
    let one_way = q.get("one_way").map(String::as_str) == Some("true");
    let trip: i64 = q
        .get("trip_duration")
        .and_then(|t| t.parse().ok())
        .unwrap_or(7);
    let found = generation_time(generation);
    days_of(q.get("month").map(String::as_str).unwrap_or("2026-12-01"))
        .into_iter()
        .filter_map(|day| {
            let id = format!("mm{origin}{destination}{day}");
            let r = h(seed, &[&id, "shape"]);
            let changes = [0, 0, 1, 0, 2][(mix(r ^ 3) % 5) as usize];
            let gate = GATES[(r % GATES.len() as u64) as usize];
            let value = price(seed, &id, km, generation);
            let ret = (!one_way).then(|| day + Days::days(trip));
            let duration = km / 8 + 40 + changes * 95;
            let o = json!({
                "value": value,
                "trip_class": 0,
                "show_to_affiliates": true,
                "return_date": ret.map(|d| d.to_string()).unwrap_or_default(),
                "origin": origin,
                "gate": gate,
                "found_at": found.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "number_of_changes": changes,
                "destination": destination,
                "depart_date": day.to_string(),
                "actual": true,
                "distance": km,
                "duration": duration,
            });
            let flight = FlightPrice {
                return_at: ret.map(|d| d.to_string()),
                gate: Some(gate.into()),
                transfers: Some(changes),
                duration_minutes: Some(duration),
                trip_class: Some(0),
                distance_km: Some(km),
                actual: Some(true),
                link: Some(search_link(origin, destination, day, ret)),
                ..FlightPrice::new(origin, destination, &day.to_string(), rub(value, currency))
            };
            let Value::Object(json) = o else { return None };
            Some(Offer {
                json,
                flight,
                // `found_at` is naive in the API; it means UTC.
                found_at: NaiveDateTime::parse_from_str(
                    &found.format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "%Y-%m-%dT%H:%M:%S",
                )
                .ok()
                .map(|t| t.and_utc()),
            })
        })
        .collect()
}

/// Forgets, in the expected record, what a fault took out of an offer's JSON: the API's
/// "no value" (`null`, `{}`, `""`, absence) leaves an optional field out.
fn forget(o: &mut Offer, field: &str, month_matrix: bool) {
    let f = &mut o.flight;
    match (field, month_matrix) {
        ("airline", false) => f.carrier = None,
        ("flight_number", false) => f.flight_number = None,
        ("transfers", false) | ("number_of_changes", true) => f.transfers = None,
        ("duration", _) => f.duration_minutes = None,
        ("link", false) => f.link = None,
        ("return_at", false) => f.return_at = None,
        ("return_date", true) => {
            f.return_at = None;
            // Its link is built without a return date then.
            if let Ok(d) = NaiveDate::parse_from_str(&f.departure_at, "%Y-%m-%d") {
                f.link = Some(search_link(&f.origin, &f.destination, d, None));
            }
        }
        ("gate", true) => f.gate = None,
        ("found_at", true) => o.found_at = None,
        ("trip_class", true) => f.trip_class = None,
        ("distance", true) => f.distance_km = None,
        ("actual", true) => f.actual = None,
        _ => {}
    }
}

/// The v3 entity key, by its documented grammar. Written here again on purpose: what the
/// simulator expects is the check on the parser, so it must not call the parser's code.
fn entity_key(f: &FlightPrice) -> String {
    let mut key = format!(
        "{}-{}/{}/{}",
        f.origin,
        f.destination,
        f.departure_at,
        f.return_at.as_deref().unwrap_or("oneway")
    );
    if let (Some(c), Some(n)) = (&f.carrier, &f.flight_number) {
        key.push_str(&format!("/{c}{n}"));
    }
    key
}

/// Breaks a required field so the offer cannot be normalised; says how.
fn break_record(
    rng: &mut fastrand::Rng,
    record: &mut Map<String, Value>,
    price_field: &str,
    date_field: &str,
) -> String {
    match rng.u8(0..5) {
        0 => {
            record.insert(price_field.into(), Value::Null);
            format!("{price_field}: null")
        }
        1 => {
            record.insert(price_field.into(), json!({}));
            format!("{price_field}: {{}}")
        }
        2 => {
            record.insert(price_field.into(), json!("n/a"));
            format!("{price_field}: \"n/a\"")
        }
        3 => {
            record.insert(price_field.into(), json!(-1));
            format!("{price_field}: -1")
        }
        _ => {
            record.remove(date_field);
            format!("{date_field}: missing")
        }
    }
}

/// One answer of this personality at a generation.
pub fn answer(
    config: &SimConfig,
    path: &str,
    query: &BTreeMap<String, String>,
    generation: u32,
    rng: &mut fastrand::Rng,
) -> Answer {
    let month_matrix = path == MONTH_MATRIX_PATH;
    let (mut offers, price_field, date_field) = if month_matrix {
        (
            self::month_matrix(config.seed, query, generation),
            "value",
            "depart_date",
        )
    } else {
        (
            prices_for_dates_sized(config.seed, query, generation, config.offers_per_query),
            "price",
            "departure_at",
        )
    };
    let mut malformed = Vec::new();
    let mut expected = Vec::new();
    let mut data = Vec::with_capacity(offers.len());
    for (i, o) in offers.iter_mut().enumerate() {
        if rng.f64() < config.malformed_rate {
            let how = break_record(rng, &mut o.json, price_field, date_field);
            malformed.push(format!("data[{i}]: {how}"));
        } else {
            let required = [price_field, date_field, "origin", "destination"];
            let keys: Vec<String> = o
                .json
                .keys()
                .filter(|k| !required.contains(&k.as_str()))
                .cloned()
                .collect();
            for k in keys {
                if super::unstabilise_field(rng, &mut o.json, &k, config.null_rate) {
                    forget(o, &k, month_matrix);
                }
            }
            expected.push(Expected {
                index: i,
                key: entity_key(&o.flight),
                upstream_time: o.found_at,
                payload: Payload::FlightPrice(o.flight.clone()),
            });
        }
        data.push(Value::Object(o.json.clone()));
    }
    let body = json!({"success": true, "data": data,
        "currency": query.get("currency").cloned().unwrap_or_else(|| "rub".into())})
    .to_string();
    Answer::ok(body, expected, malformed)
}

/// The token travels in `X-Access-Token`.
pub fn authorised(config: &SimConfig, headers: &axum::http::HeaderMap) -> bool {
    match &config.token {
        None => true,
        Some(t) => headers.get("x-access-token").and_then(|v| v.to_str().ok()) == Some(t.as_str()),
    }
}

pub fn unauthorised() -> (u16, String) {
    (
        401,
        r#"{"success":false,"data":null,"error":"Unauthorized"}"#.into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::query_of as q;

    #[test]
    fn data_is_deterministic_realistic_and_changes_between_generations() {
        let query = q(&[
            ("origin", "LED"),
            ("destination", "KZN"),
            ("departure_at", "2026-12"),
            ("limit", "100"),
        ]);
        let a = prices_for_dates(7, &query, 0);
        assert_eq!(a, prices_for_dates(7, &query, 0));
        assert_ne!(a, prices_for_dates(8, &query, 0));
        assert_eq!(a.len(), 62, "two flights a day for 31 days");
        let mut paged = query.clone();
        paged.insert("sorting".into(), "route".into());
        paged.insert("limit".into(), "25".into());
        let pages: Vec<Vec<Offer>> = (1..=81)
            .map(|p| {
                paged.insert("page".into(), p.to_string());
                prices_for_dates_sized(7, &paged, 0, Some(2000))
            })
            .collect();
        assert!(pages[..80].iter().all(|p| p.len() == 25) && pages[80].is_empty());
        let keys: std::collections::HashSet<String> = pages
            .iter()
            .flatten()
            .map(|o| entity_key(&o.flight))
            .collect();
        assert!(
            keys.len() > 1990,
            "pages do not overlap: {} distinct",
            keys.len()
        );
        let prices: Vec<u64> = a.iter().map(|o| o["price"].as_u64().unwrap()).collect();
        assert!(prices.windows(2).all(|w| w[0] <= w[1]), "sorted by price");
        assert!(
            prices.iter().any(|p| *p < 5000) && prices.iter().any(|p| *p >= 5000),
            "{prices:?}"
        );
        let later = prices_for_dates(7, &query, 3);
        let changed = a
            .iter()
            .zip(&later)
            .filter(|(x, y)| x["price"] != y["price"])
            .count();
        assert!(changed > 0, "prices move between generations");
        let mm = month_matrix(
            7,
            &q(&[
                ("origin", "MOW"),
                ("destination", "AER"),
                ("month", "2026-12-01"),
            ]),
            2,
        );
        assert_eq!(mm.len(), 31);
        assert_eq!(mm[0].json["found_at"], "2026-11-20T06:10:00");
        assert!(GATES.contains(&mm[0].json["gate"].as_str().unwrap()));
        assert_eq!(
            mm[0].flight.link.as_deref(),
            Some("https://www.aviasales.com/search/MOW0112AER08121")
        );
    }

    #[test]
    fn what_a_fault_removes_the_expected_record_lacks() {
        let config = SimConfig {
            null_rate: 0.5,
            malformed_rate: 0.2,
            ..SimConfig::default()
        };
        let query = q(&[
            ("origin", "LED"),
            ("destination", "KZN"),
            ("departure_at", "2026-12"),
            ("limit", "60"),
        ]);
        let mut rng = fastrand::Rng::with_seed(3);
        let a = answer(&config, V3_PATH, &query, 0, &mut rng);
        assert_eq!(a.expected.len() + a.malformed.len(), 60);
        assert!(!a.malformed.is_empty() && !a.expected.is_empty());
        let body: Value = serde_json::from_str(&a.body).unwrap();
        // Each expected record's optional fields are present in the body exactly when the
        // record has them.
        let data = body["data"].as_array().unwrap();
        let usable =
            |v: &Value| !(v.is_null() || v == &json!({}) || v == &json!("") || v == &json!([]));
        let mut checked = 0;
        for e in &a.expected {
            let Payload::FlightPrice(f) = &e.payload else {
                panic!()
            };
            let offer = &data[e.index];
            assert_eq!(offer["departure_at"], json!(f.departure_at));
            assert_eq!(
                f.carrier.is_some(),
                offer.get("airline").is_some_and(usable)
            );
            assert_eq!(
                f.transfers.is_some(),
                offer.get("transfers").is_some_and(usable)
            );
            assert_eq!(f.link.is_some(), offer.get("link").is_some_and(usable));
            checked += 1;
        }
        assert_eq!(checked, a.expected.len());
    }
}
