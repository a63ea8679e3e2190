//! The record on the stream: a versioned JSON envelope around one upstream observation.
//!
//! ```json
//! {"schema":1,"id":"5f0c…","source":"travelpayouts","kind":"flight_price",
//!  "key":"LED-KZN/2026-12-05/2026-12-10","job":"led-kzn",
//!  "observed_at":"2026-11-20T08:12:44Z","fetched_at":"2026-11-21T09:00:03.120Z",
//!  "fields":{"origin":"LED","destination":"KZN","price":{"amount":"4830","currency":"RUB"},…}}
//! ```
//!
//! `id` is a digest of everything that describes the observation and nothing that describes
//! the act of fetching it (`fetched_at`, `job`): the same upstream observation always gives
//! the same id, a changed price gives a new one. Downstream writes are keyed by it, which is
//! what makes retries and replays idempotent.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Version of the envelope layout. Consumers reject versions they do not know.
pub const SCHEMA_VERSION: u32 = 1;

/// Hex characters of the SHA-256 digest kept as the id (128 bits).
const ID_HEX_CHARS: usize = 32;

/// An exact amount of money. `amount` travels as a decimal string ("4830.50"): no floats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: Decimal,
    /// ISO 4217 code, upper case.
    pub currency: String,
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.amount.normalize(), self.currency)
    }
}

/// One flight offer as the Travelpayouts Data API reports it, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlightPrice {
    /// IATA code of the origin city or airport.
    pub origin: String,
    /// IATA code of the destination city or airport.
    pub destination: String,
    /// Departure as the upstream gives it: a date (`2026-12-05`) or a date-time with offset.
    pub departure_at: String,
    /// Return as the upstream gives it; `None` for one-way offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_at: Option<String>,
    pub price: Money,
    /// Marketing airline IATA code (v3 `airline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flight_number: Option<String>,
    /// Agency or airline that sells the ticket (v2 `gate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    /// Number of changes on the way out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<u32>,
    /// 0 economy, 1 business, 2 first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trip_class: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<u32>,
    /// Whether the upstream still considers the price current (v2 `actual`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<bool>,
    /// Absolute booking/search link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl FlightPrice {
    /// An offer with only its required fields; set the optional ones with struct update.
    pub fn new(origin: &str, destination: &str, departure_at: &str, price: Money) -> FlightPrice {
        FlightPrice {
            origin: origin.into(),
            destination: destination.into(),
            departure_at: departure_at.into(),
            return_at: None,
            price,
            carrier: None,
            flight_number: None,
            gate: None,
            transfers: None,
            duration_minutes: None,
            trip_class: None,
            distance_km: None,
            actual: None,
            link: None,
        }
    }
}

/// One bookmaker's price for one outcome of one market of a sports event, in decimal odds.
///
/// The record grain is event × bookmaker × market × outcome; the line (`point`) is a field,
/// not part of the entity, so a spread moving from -3.5 to -4 is a change of one quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OddsQuote {
    /// The upstream's sport key (`basketball_nba`).
    pub sport: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport_title: Option<String>,
    /// The upstream's event id.
    pub event_id: String,
    /// When the event starts, RFC 3339 UTC.
    pub commence_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_team: Option<String>,
    /// The bookmaker's key (`draftkings`).
    pub bookmaker: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookmaker_title: Option<String>,
    /// `h2h` (moneyline), `spreads` or `totals`.
    pub market: String,
    /// The outcome's name: a team, `Draw`, `Over`, `Under`.
    pub outcome: String,
    /// Decimal odds (greater than 1), exact.
    pub price: Decimal,
    /// The handicap or total line of spreads and totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<Decimal>,
}

/// Which instrument of which exchange a market record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instrument {
    /// `binance`, `bybit`.
    pub exchange: String,
    /// `spot`, `linear` (USDⓈ-margined perpetuals and futures) or `inverse`.
    pub market: String,
    /// The exchange's symbol, upper case (`BTCUSDT`).
    pub symbol: String,
}

/// One closed candle (kline): exact decimals as the exchange gave them. A candle still
/// open when it was fetched is never a record; it is collected once it has closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    #[serde(flatten)]
    pub instrument: Instrument,
    /// `1m` … `1w`, the same spelling for every exchange.
    pub interval: String,
    #[serde(with = "rfc3339_millis")]
    pub open_time: DateTime<Utc>,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    /// Base-asset volume.
    pub volume: Decimal,
    /// Quote-asset volume (Binance `quote volume`, Bybit `turnover`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_volume: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trades: Option<u64>,
    /// Built by pricewire from finer candles of this interval (a complete set of them),
    /// not reported by the exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<String>,
}

/// One funding rate of a perpetual contract, at its funding time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundingRate {
    #[serde(flatten)]
    pub instrument: Instrument,
    /// The rate per funding interval, as a fraction (`0.0001` is 0.01 %); may be negative.
    pub rate: Decimal,
    #[serde(with = "rfc3339_millis")]
    pub funding_time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_price: Option<Decimal>,
}

/// Open interest of a contract at a time, over the exchange's statistics period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenInterest {
    #[serde(flatten)]
    pub instrument: Instrument,
    /// The statistics period (`5m`, `1h`, …).
    pub period: String,
    /// Contracts (or base-asset units) open.
    pub open_interest: Decimal,
    /// Their value in the quote asset, where the exchange reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Decimal>,
    #[serde(with = "rfc3339_millis")]
    pub timestamp: DateTime<Utc>,
}

/// A price from a source declared in configuration alone (the `generic` module): what its
/// entry says is the price, the currency, a name, and the fields that make the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub price: Decimal,
    /// ISO 4217, upper case, when the source says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// A human name for what is priced, when the source has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The key fields and their values (`store` → `berlin`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// What a record holds, tagged by `kind`. New kinds are new variants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "fields", rename_all = "snake_case")]
pub enum Payload {
    FlightPrice(FlightPrice),
    OddsQuote(OddsQuote),
    Candle(Candle),
    FundingRate(FundingRate),
    OpenInterest(OpenInterest),
    Price(Price),
}

/// Every record kind, by name.
pub const KINDS: &[&str] = &[
    "flight_price",
    "odds_quote",
    "candle",
    "funding_rate",
    "open_interest",
    "price",
];

impl Payload {
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::FlightPrice(_) => "flight_price",
            Payload::OddsQuote(_) => "odds_quote",
            Payload::Candle(_) => "candle",
            Payload::FundingRate(_) => "funding_rate",
            Payload::OpenInterest(_) => "open_interest",
            Payload::Price(_) => "price",
        }
    }

    /// The number a record is about: a fare, decimal odds, a candle's close, a funding
    /// rate, the open interest.
    pub fn amount(&self) -> Decimal {
        match self {
            Payload::FlightPrice(f) => f.price.amount,
            Payload::OddsQuote(q) => q.price,
            Payload::Candle(c) => c.close,
            Payload::FundingRate(f) => f.rate,
            Payload::OpenInterest(o) => o.open_interest,
            Payload::Price(p) => p.price,
        }
    }

    /// The currency of `amount`, when it is money. A market symbol's quote asset is not a
    /// currency code (`USDT`, `BTC`), so market records have none.
    pub fn currency(&self) -> Option<&str> {
        match self {
            Payload::FlightPrice(f) => Some(&f.price.currency),
            Payload::Price(p) => p.currency.as_deref(),
            _ => None,
        }
    }
}

/// The envelope as it travels on the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub schema: u32,
    pub id: String,
    pub source: String,
    /// The entity this observation is about; also the Kinesis partition key.
    pub key: String,
    /// The scheduled job that fetched it.
    pub job: String,
    /// The upstream's own time for the observation where it has one, else `fetched_at`.
    #[serde(with = "rfc3339_millis")]
    pub observed_at: DateTime<Utc>,
    #[serde(with = "rfc3339_millis")]
    pub fetched_at: DateTime<Utc>,
    #[serde(flatten)]
    pub payload: Payload,
}

/// Why bytes from the stream are not an envelope we can process.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("not a valid envelope: {0}")]
    Malformed(String),
    #[error("unsupported envelope schema {found} (this build reads {SCHEMA_VERSION})")]
    UnsupportedSchema { found: u32 },
    #[error("envelope id {id} does not match its content (expected {expected})")]
    IdMismatch { id: String, expected: String },
}

impl Envelope {
    /// Builds an envelope and derives its id. `upstream_time` is the upstream's own
    /// observation time, if it reports one; it is part of the identity when present.
    pub fn new(
        source: &str,
        job: &str,
        key: String,
        upstream_time: Option<DateTime<Utc>>,
        fetched_at: DateTime<Utc>,
        payload: Payload,
    ) -> Envelope {
        let id = derive_id(source, &key, upstream_time, &payload);
        Envelope {
            schema: SCHEMA_VERSION,
            id,
            source: source.to_string(),
            key,
            job: job.to_string(),
            observed_at: upstream_time.unwrap_or(fetched_at),
            fetched_at,
            payload,
        }
    }

    pub fn kind(&self) -> &'static str {
        self.payload.kind()
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising owned strings, decimals and dates cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes and checks an envelope read from the stream: one parse; only bytes that are
    /// not an envelope of this schema are read again, to say whether the schema is why.
    pub fn from_slice(data: &[u8]) -> Result<Envelope, EnvelopeError> {
        #[derive(Deserialize)]
        struct Probe {
            schema: u32,
        }
        let unsupported = |found| EnvelopeError::UnsupportedSchema { found };
        let envelope: Envelope = match serde_json::from_slice(data) {
            Ok(e) => e,
            Err(e) => {
                return Err(match serde_json::from_slice::<Probe>(data) {
                    Ok(p) if p.schema != SCHEMA_VERSION => unsupported(p.schema),
                    _ => EnvelopeError::Malformed(e.to_string()),
                })
            }
        };
        if envelope.schema != SCHEMA_VERSION {
            return Err(unsupported(envelope.schema));
        }
        if envelope.key.is_empty() {
            return Err(EnvelopeError::Malformed("key: empty".into()));
        }
        Ok(envelope)
    }

    /// Recomputes the id from the content. The envelope does not say whether `observed_at`
    /// came from the upstream (part of the identity) or is the fetch time (not part of it),
    /// so both derivations are tried; a tampered record matches neither. The payload's
    /// canonical form, the costly part, is made once for both.
    pub fn verify_id(&self) -> Result<(), EnvelopeError> {
        let payload = canonical_payload(&self.payload);
        let with_time = id_of(
            &self.source,
            self.payload.kind(),
            &self.key,
            Some(self.observed_at),
            &payload,
        );
        if with_time == self.id {
            return Ok(());
        }
        let without = id_of(&self.source, self.payload.kind(), &self.key, None, &payload);
        if without == self.id {
            Ok(())
        } else {
            Err(EnvelopeError::IdMismatch {
                id: self.id.clone(),
                expected: with_time,
            })
        }
    }
}

/// SHA-256 over a canonical JSON array of what identifies the observation.
fn derive_id(
    source: &str,
    key: &str,
    upstream_time: Option<DateTime<Utc>>,
    payload: &Payload,
) -> String {
    id_of(
        source,
        payload.kind(),
        key,
        upstream_time,
        &canonical_payload(payload),
    )
}

/// The payload as canonical JSON (keys sorted at every level).
fn canonical_payload(payload: &Payload) -> String {
    let mut out = String::new();
    // Serialising owned strings, decimals and dates cannot fail.
    write_canonical(&serde_json::to_value(payload).unwrap_or_default(), &mut out);
    out
}

/// The id: the first hex digits of SHA-256 over the canonical array
/// `[schema, source, kind, key, upstream time or null, payload]`.
fn id_of(
    source: &str,
    kind: &str,
    key: &str,
    upstream_time: Option<DateTime<Utc>>,
    canonical_payload: &str,
) -> String {
    let mut canonical = String::with_capacity(canonical_payload.len() + 128);
    canonical.push('[');
    canonical.push_str(&SCHEMA_VERSION.to_string());
    for s in [source, kind, key] {
        canonical.push(',');
        push_json_string(s, &mut canonical);
    }
    canonical.push(',');
    match upstream_time {
        Some(t) => push_json_string(
            &t.to_rfc3339_opts(SecondsFormat::Millis, true),
            &mut canonical,
        ),
        None => canonical.push_str("null"),
    }
    canonical.push(',');
    canonical.push_str(canonical_payload);
    canonical.push(']');
    let digest = Sha256::digest(canonical.as_bytes());
    let mut id = hex::encode(digest);
    id.truncate(ID_HEX_CHARS);
    id
}

/// `s` as a JSON string literal, as serde_json writes it.
fn push_json_string(s: &str, out: &mut String) {
    // Writing a str to a String cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// JSON with object keys sorted at every level. `serde_json::Value`'s own key order depends
/// on whether some crate in the build enabled serde_json's `preserve_order` feature, so
/// hashing its `to_string()` would give different ids in different builds.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(k, out);
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Times as RFC 3339 UTC with milliseconds: fixed width, so they sort as strings.
pub mod rfc3339_millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::str::FromStr;

    fn offer(amount: &str) -> Payload {
        Payload::FlightPrice(FlightPrice {
            origin: "LED".into(),
            destination: "KZN".into(),
            departure_at: "2026-12-05".into(),
            return_at: Some("2026-12-10".into()),
            price: Money {
                amount: Decimal::from_str(amount).unwrap(),
                currency: "RUB".into(),
            },
            carrier: None,
            flight_number: None,
            gate: Some("Aeroflot".into()),
            transfers: Some(0),
            duration_minutes: None,
            trip_class: Some(0),
            distance_km: Some(1200),
            actual: Some(true),
            link: None,
        })
    }

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, h, 0, 0).unwrap()
    }

    #[test]
    fn same_observation_same_id_whoever_fetches_it_and_when() {
        let found = Some(at(8));
        let a = Envelope::new(
            "travelpayouts",
            "job-a",
            "K".into(),
            found,
            at(9),
            offer("4830"),
        );
        let b = Envelope::new(
            "travelpayouts",
            "job-b",
            "K".into(),
            found,
            at(10),
            offer("4830"),
        );
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.len(), ID_HEX_CHARS);
    }

    #[test]
    fn changed_price_or_time_or_key_gives_a_new_id() {
        let base = Envelope::new(
            "travelpayouts",
            "j",
            "K".into(),
            Some(at(8)),
            at(9),
            offer("4830"),
        );
        let price = Envelope::new(
            "travelpayouts",
            "j",
            "K".into(),
            Some(at(8)),
            at(9),
            offer("4831"),
        );
        let time = Envelope::new(
            "travelpayouts",
            "j",
            "K".into(),
            Some(at(7)),
            at(9),
            offer("4830"),
        );
        let key = Envelope::new(
            "travelpayouts",
            "j",
            "K2".into(),
            Some(at(8)),
            at(9),
            offer("4830"),
        );
        assert_ne!(base.id, price.id);
        assert_ne!(base.id, time.id);
        assert_ne!(base.id, key.id);
    }

    #[test]
    fn ids_are_pinned_to_a_canonical_form() {
        // A golden value: if this changes, every stored id changes — a new schema version.
        let e = Envelope::new(
            "travelpayouts",
            "j",
            "K".into(),
            Some(at(8)),
            at(9),
            offer("4830"),
        );
        assert_eq!(e.id, GOLDEN_ID);
        let mut out = String::new();
        write_canonical(
            &serde_json::json!({"b": [2, {"z": 1, "a": null}], "a": "x"}),
            &mut out,
        );
        assert_eq!(out, r#"{"a":"x","b":[2,{"a":null,"z":1}]}"#);
    }

    const GOLDEN_ID: &str = "11c3e83ef69f1ad9c57e7676cb55ebae";

    #[test]
    fn without_upstream_time_fetch_time_is_not_identity() {
        let a = Envelope::new("travelpayouts", "j", "K".into(), None, at(9), offer("4830"));
        let b = Envelope::new(
            "travelpayouts",
            "j",
            "K".into(),
            None,
            at(11),
            offer("4830"),
        );
        assert_eq!(a.id, b.id);
        assert_eq!(a.observed_at, at(9));
    }

    #[test]
    fn round_trips_with_exact_money_and_verifiable_id() {
        let e = Envelope::new(
            "travelpayouts",
            "j",
            "K".into(),
            Some(at(8)),
            at(9),
            offer("4830.50"),
        );
        let json = e.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains(r#""amount":"4830.50""#), "{text}");
        assert!(text.contains(r#""kind":"flight_price""#), "{text}");
        assert!(
            text.contains(r#""observed_at":"2026-11-21T08:00:00.000Z""#),
            "{text}"
        );
        let back = Envelope::from_slice(&json).unwrap();
        assert_eq!(back, e);
        back.verify_id().unwrap();
        let none = Envelope::new("travelpayouts", "j", "K".into(), None, at(9), offer("1"));
        Envelope::from_slice(&none.to_json())
            .unwrap()
            .verify_id()
            .unwrap();
        let same = Envelope::new(
            "travelpayouts",
            "j",
            "K".into(),
            Some(at(9)),
            at(9),
            offer("1"),
        );
        same.verify_id().unwrap();
    }

    #[test]
    fn rejects_garbage_unknown_schema_and_tampering() {
        assert!(matches!(
            Envelope::from_slice(b"not json"),
            Err(EnvelopeError::Malformed(_))
        ));
        assert_eq!(
            Envelope::from_slice(br#"{"schema":99}"#),
            Err(EnvelopeError::UnsupportedSchema { found: 99 })
        );
        let mut e = Envelope::new("travelpayouts", "j", "K".into(), None, at(9), offer("10"));
        let Payload::FlightPrice(f) = &mut e.payload else {
            unreachable!("a flight")
        };
        f.price.amount = Decimal::from(9);
        assert!(matches!(
            e.verify_id(),
            Err(EnvelopeError::IdMismatch { .. })
        ));
    }
}
