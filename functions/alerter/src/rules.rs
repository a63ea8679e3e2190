//! Alert rules: CEL expressions over a record's fields, scoped to a source and kind.
//!
//! `price < 5000 && gate == "Aeroflot"` is the filter of the classic Kinesis Analytics design
//! (`cost < 5000 AND gate = 'Aeroflot'`), word for word in CEL. Rules are configuration
//! (`PRICEWIRE_ALERT_RULES`, a JSON list); a rule that does not parse, names an unknown
//! field, or does not yield a boolean fails at start, naming the rule.

use crate::quorum::{Quorum, MAX_BOOKMAKERS};
use crate::realert::{Better, QuietHours, Realert, MAX_COOLDOWN_MINUTES};
use cel::{Context, Program, Value};
use pricewire_pipeline::envelope::{
    Candle, Envelope, FlightPrice, FundingRate, Instrument, Money, OddsQuote, OpenInterest,
    Payload, Price, KINDS,
};
use pricewire_pipeline::table::{Stats, Window};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};

/// A rule as configured: a CEL expression (`when`), a named rule type with its parameters
/// (`type`, `params`: see [`RULE_TYPES`]), or both (the type's condition and `when`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    pub source: String,
    pub kind: String,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default, rename = "type")]
    pub rule_type: Option<String>,
    #[serde(default)]
    pub params: Option<BTreeMap<String, Decimal>>,
    /// Re-alert policy (`realert`): minutes before the rule speaks about an entity again
    /// whatever the value; default by kind (`Realert::default_for`).
    #[serde(default)]
    pub cooldown_minutes: Option<u32>,
    /// `lower` | `higher` | `none`: which way a deal gets better.
    #[serde(default)]
    pub better: Option<String>,
    /// How much better than the last alert (percent) a deal must be to alert again.
    #[serde(default)]
    pub step_percent: Option<Decimal>,
    /// `HH:MM-HH:MM` in each subscriber's time zone: nothing is sent then.
    #[serde(default)]
    pub quiet_hours: Option<String>,
}

/// A named rule type: the record kinds it applies to (empty: every kind), its parameters
/// (name, required), and what it means. Each compiles to a CEL condition over the record
/// and its history ([`HISTORY_VARIABLES`]).
pub struct RuleType {
    pub name: &'static str,
    pub kinds: &'static [&'static str],
    pub params: &'static [(&'static str, bool)],
    pub means: &'static str,
}

/// The named rule types (README: Rule types).
pub const RULE_TYPES: &[RuleType] = &[
    RuleType {
        name: "price_at_or_under",
        kinds: &[],
        params: &[("target", true)],
        means: "price ≤ target",
    },
    RuleType {
        name: "drop_from_previous",
        kinds: &[],
        params: &[("percent", true)],
        means: "down at least `percent` % from the previous value",
    },
    RuleType {
        name: "drop_from_typical",
        kinds: &[],
        params: &[("percent", true), ("days", true)],
        means: "at least `percent` % under the `days`-day typical value",
    },
    RuleType {
        name: "new_low",
        kinds: &[],
        params: &[("days", true), ("within_percent", false), ("min_days_tracked", false)],
        means: "under the `days`-day minimum (or within `within_percent` % of it), once the entity is tracked `min_days_tracked` days (default `days`)",
    },
    RuleType {
        name: "odds_shortening",
        kinds: &["odds_quote"],
        params: &[("points", true), ("minutes", false), ("bookmakers", false)],
        means: "implied probability up at least `points` percentage points from the previous price, within `minutes` (default 60); with `bookmakers` K, at K bookmakers of the same outcome within those minutes",
    },
    RuleType {
        name: "funding_beyond",
        kinds: &["funding_rate"],
        params: &[("rate_percent", true)],
        means: "funding rate at or beyond ±`rate_percent` %",
    },
    RuleType {
        name: "funding_flip",
        kinds: &["funding_rate"],
        params: &[],
        means: "funding rate changed sign from the previous one",
    },
    RuleType {
        name: "line_move",
        kinds: &["odds_quote"],
        params: &[("points", true), ("minutes", false)],
        means: "the line of a spread or total moved at least `points` from the previous quote, within `minutes` (default 60)",
    },
    RuleType {
        name: "open_interest_change",
        kinds: &["open_interest"],
        params: &[("percent", true), ("minutes", false)],
        means: "open interest moved at least `percent` % from the previous reading, within `minutes` (default: any)",
    },
];

/// The CEL condition of a named rule type with its parameters.
fn type_condition(
    rule_type: &str,
    kind: &str,
    params: &BTreeMap<String, Decimal>,
    windows: &[u32],
) -> Result<String, String> {
    let Some(RuleType {
        kinds,
        params: allowed,
        ..
    }) = RULE_TYPES.iter().find(|t| t.name == rule_type)
    else {
        let names: Vec<&str> = RULE_TYPES.iter().map(|t| t.name).collect();
        return Err(format!(
            "type {rule_type:?} is not a rule type (one of {})",
            names.join(", ")
        ));
    };
    if !kinds.is_empty() && !kinds.contains(&kind) {
        return Err(format!(
            "type {rule_type} applies to {} records, not {kind}",
            kinds.join(", ")
        ));
    }
    for name in params.keys() {
        if !allowed.iter().any(|(p, _)| p == name) {
            let names: Vec<&str> = allowed.iter().map(|(p, _)| *p).collect();
            return Err(format!(
                "params.{name}: not a parameter of {rule_type} (its parameters: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            ));
        }
    }
    for (name, required) in allowed.iter() {
        if *required && !params.contains_key(*name) {
            return Err(format!("params.{name}: {rule_type} needs it"));
        }
    }
    let get = |name: &str| params.get(name).copied();
    let positive = |name: &str| -> Result<String, String> {
        match get(name) {
            Some(v) if v > Decimal::ZERO => Ok(format!("{:.6}", v.normalize())),
            Some(v) => Err(format!("params.{name}: {v} must be above 0")),
            None => Err(format!("params.{name}: {rule_type} needs it")),
        }
    };
    let window = |name: &str| -> Result<u32, String> {
        let days = get(name).and_then(|d| d.to_u32()).unwrap_or(0);
        if windows.contains(&days) {
            Ok(days)
        } else {
            Err(format!(
                "params.{name}: {days} is not a statistics window (stat_windows_days: {windows:?})"
            ))
        }
    };
    Ok(match rule_type {
        "price_at_or_under" => format!("price <= {:.6}", get("target").unwrap_or_default().normalize()),
        "drop_from_previous" => format!("previous_change_percent <= -{}", positive("percent")?),
        "drop_from_typical" => {
            let d = window("days")?;
            format!(
                "(price - typical_{d}d) * 100.0 / typical_{d}d <= -{}",
                positive("percent")?
            )
        }
        "new_low" => {
            let d = window("days")?;
            let tracked = get("min_days_tracked").unwrap_or(Decimal::from(d));
            let low = match get("within_percent") {
                Some(w) if w > Decimal::ZERO => {
                    format!("price <= min_{d}d * (1.0 + {:.6} / 100.0)", w.normalize())
                }
                _ => format!("price < min_{d}d"),
            };
            format!("{low} && days_tracked >= {:.6}", tracked.normalize())
        }
        "odds_shortening" => format!(
            "(implied_probability - 1.0 / previous) * 100.0 >= {} && minutes_since_previous <= {:.6}",
            positive("points")?,
            get("minutes").unwrap_or(Decimal::from(60)).normalize()
        ),
        "funding_beyond" => {
            let x = positive("rate_percent")?;
            format!("rate_percent >= {x} || rate_percent <= -{x}")
        }
        "funding_flip" => "previous * rate < 0.0".to_string(),
        "line_move" => {
            let p = positive("points")?;
            format!(
                "market != \"h2h\" && (line_change >= {p} || line_change <= -{p}) && minutes_since_previous <= {:.6}",
                get("minutes").unwrap_or(Decimal::from(60)).normalize()
            )
        }
        "open_interest_change" => {
            let x = positive("percent")?;
            let moved = format!("(previous_change_percent >= {x} || previous_change_percent <= -{x})");
            match get("minutes") {
                Some(m) => format!("{moved} && minutes_since_previous <= {:.6}", m.normalize()),
                None => moved,
            }
        }
        _ => unreachable!("every RULE_TYPES entry has its condition"),
    })
}

impl RuleSpec {
    /// The CEL expression the rule evaluates: its type's condition, its `when`, or both.
    pub fn expression(&self, windows: &[u32]) -> Result<String, String> {
        let typed = match &self.rule_type {
            Some(t) => Some(type_condition(
                t,
                &self.kind,
                self.params.as_ref().unwrap_or(&BTreeMap::new()),
                windows,
            )?),
            None => {
                if self.params.as_ref().is_some_and(|p| !p.is_empty()) {
                    return Err("params given without a type".into());
                }
                None
            }
        };
        let when = self
            .when
            .as_deref()
            .map(str::trim)
            .filter(|w| !w.is_empty());
        match (typed, when) {
            (Some(t), Some(w)) => Ok(format!("({t}) && ({w})")),
            (Some(t), None) => Ok(t),
            (None, Some(w)) => Ok(w.to_string()),
            (None, None) => Err("needs a `when` expression or a `type`".into()),
        }
    }
}

/// A compiled rule.
pub struct Rule {
    pub spec: RuleSpec,
    pub realert: Realert,
    /// Bookmakers that must move together (`odds_shortening` with `bookmakers` > 1).
    pub quorum: Option<Quorum>,
    program: Program,
    windows: Vec<u32>,
    /// The history variables the rule names.
    history: Vec<String>,
}

/// The bookmakers an `odds_shortening` rule needs to move together; `None` for one.
fn quorum_of(spec: &RuleSpec) -> Result<Option<Quorum>, String> {
    let params = spec.params.as_ref();
    let Some(k) = params.and_then(|p| p.get("bookmakers")) else {
        return Ok(None);
    };
    let bookmakers = k
        .to_u32()
        .filter(|n| Decimal::from(*n) == *k && (1..=MAX_BOOKMAKERS).contains(n))
        .ok_or_else(|| {
            format!("params.bookmakers: {k} is not a whole number from 1 to {MAX_BOOKMAKERS}")
        })?;
    if bookmakers == 1 {
        return Ok(None);
    }
    let minutes = params
        .and_then(|p| p.get("minutes"))
        .copied()
        .unwrap_or(Decimal::from(60));
    let window_minutes = minutes
        .ceil()
        .to_u32()
        .filter(|m| (1..=MAX_COOLDOWN_MINUTES).contains(m))
        .ok_or_else(|| {
            format!("params.minutes: {minutes} is not from 1 to {MAX_COOLDOWN_MINUTES} minutes")
        })?;
    Ok(Some(Quorum {
        bookmakers,
        window_minutes,
    }))
}

/// A rule's re-alert policy: the kind's default with what the rule sets.
fn realert_of(spec: &RuleSpec) -> Result<Realert, String> {
    let mut policy = Realert::default_for(&spec.kind);
    if let Some(minutes) = spec.cooldown_minutes {
        if minutes > MAX_COOLDOWN_MINUTES {
            return Err(format!(
                "cooldown_minutes {minutes} is more than {MAX_COOLDOWN_MINUTES} (a year)"
            ));
        }
        policy.cooldown_minutes = minutes;
    }
    if let Some(better) = &spec.better {
        policy.better = Better::parse(better)
            .ok_or_else(|| format!("better {better:?} is not one of lower, higher, none"))?;
    }
    if let Some(step) = spec.step_percent {
        if step.is_sign_negative() || step >= Decimal::ONE_HUNDRED {
            return Err(format!(
                "step_percent {step} is not from 0 up to (not including) 100"
            ));
        }
        policy.step_percent = step;
    }
    if let Some(q) = &spec.quiet_hours {
        policy.quiet_hours = Some(QuietHours::parse(q)?);
    }
    Ok(policy)
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule").field("spec", &self.spec).finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("alert rules: not a JSON list of {{name, source, kind, when}}: {0}")]
    NotAList(String),
    #[error("alert rule {rule:?}: {problem}")]
    Invalid { rule: String, problem: String },
}

/// Variables a `flight_price` rule may use.
pub const FLIGHT_PRICE_VARIABLES: &[&str] = &[
    "price",
    "currency",
    "origin",
    "destination",
    "route",
    "departure_at",
    "return_at",
    "carrier",
    "flight_number",
    "gate",
    "transfers",
    "duration_minutes",
    "trip_class",
    "distance_km",
    "actual",
    "link",
    "key",
    "source",
    "kind",
    "job",
];

/// Variables an `odds_quote` rule may use. `price` is decimal odds; `implied_probability`
/// is `1 / price` (0.5 for evens), in points of 0–1.
pub const ODDS_QUOTE_VARIABLES: &[&str] = &[
    "price",
    "implied_probability",
    "point",
    "sport",
    "sport_title",
    "event_id",
    "commence_time",
    "home_team",
    "away_team",
    "teams",
    "bookmaker",
    "bookmaker_title",
    "market",
    "outcome",
    "key",
    "source",
    "kind",
    "job",
];

/// Variables a `candle` rule may use. `price` is the close; `change_percent` is the move
/// over the candle (close against open), `range_percent` its high-low range against the
/// open, both in percent.
pub const CANDLE_VARIABLES: &[&str] = &[
    "price",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "change_percent",
    "range_percent",
    "interval",
    "derived",
    "open_time",
    "exchange",
    "market",
    "symbol",
    "key",
    "source",
    "kind",
    "job",
];

/// Variables a `funding_rate` rule may use. `rate` is a fraction per funding interval
/// (`0.0001`), `rate_percent` the same in percent (`0.01`); `price` is `rate`.
pub const FUNDING_RATE_VARIABLES: &[&str] = &[
    "price",
    "rate",
    "rate_percent",
    "mark_price",
    "funding_time",
    "exchange",
    "market",
    "symbol",
    "key",
    "source",
    "kind",
    "job",
];

/// Variables an `open_interest` rule may use; `price` is `open_interest`.
pub const OPEN_INTEREST_VARIABLES: &[&str] = &[
    "price",
    "open_interest",
    "value",
    "period",
    "timestamp",
    "exchange",
    "market",
    "symbol",
    "key",
    "source",
    "kind",
    "job",
];

/// Variables a `price` rule (a generic source's record) may use: `attributes` is a map of
/// the key fields (`attributes["store"] == "berlin"`).
pub const PRICE_VARIABLES: &[&str] = &[
    "price",
    "currency",
    "name",
    "attributes",
    "key",
    "source",
    "kind",
    "job",
];

/// Variables every rule may use that come from the entity's stored history (the statistics
/// on its change item, `table::Stats`): `previous` (the value before this change),
/// `previous_change_percent` (this value against it, in percent: -15 is a 15 % drop),
/// `minutes_since_previous`, `days_tracked` (since the entity was first stored), and per
/// statistics window *d* (`stat_windows_days`, 7 and 30 by default) `min_<d>d`, `max_<d>d`,
/// `typical_<d>d` (the time-weighted median) and `values_<d>d`. Numbers the history does
/// not have yet (no previous value, a window with nothing in it) are absent: a rule that
/// names one is not evaluated on that record (no match, and no error), so a rule on
/// history stays quiet until there is history.
pub const HISTORY_VARIABLES: &[&str] = &[
    "previous",
    "previous_change_percent",
    "minutes_since_previous",
    "days_tracked",
    "previous_line",
    "line_change",
];

/// The history variables only quotes with a line (spreads, totals) have.
const LINE_VARIABLES: [&str; 2] = ["previous_line", "line_change"];

/// The window variables of `days`.
pub fn window_variables(days: u32) -> [String; 4] {
    [
        format!("min_{days}d"),
        format!("max_{days}d"),
        format!("typical_{days}d"),
        format!("values_{days}d"),
    ]
}

/// The statistics windows the consumer computes unless configured otherwise.
pub const DEFAULT_WINDOWS: &[u32] = &[7, 30];

/// What a record's history says, as the rules see it: the statistics stored on its change
/// item, and when that change was stored (ms).
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    pub stats: &'a Stats,
    pub at_ms: i64,
}

/// Binds the history variables; returns the names of those the history does not have
/// (bound as NaN, which CEL cannot compare).
fn bind_history(
    ctx: &mut Context<'static, 'static>,
    price: Decimal,
    h: Option<History>,
    windows: &[u32],
) -> Vec<String> {
    let nan = || Value::Float(f64::NAN);
    let previous = h.and_then(|h| h.stats.previous);
    let mut absent: Vec<String> = Vec::new();
    if previous.is_none() {
        absent.extend(
            [
                "previous",
                "previous_change_percent",
                "minutes_since_previous",
            ]
            .map(String::from),
        );
    }
    ctx.add_variable_from_value(
        "previous",
        previous.map_or_else(nan, |(v, _)| money_value(v)),
    );
    ctx.add_variable_from_value(
        "previous_change_percent",
        previous.map_or_else(nan, |(v, _)| percent_of(price - v, v)),
    );
    ctx.add_variable_from_value(
        "minutes_since_previous",
        match (h, previous) {
            (Some(h), Some((_, at))) => Value::Float((h.at_ms - at) as f64 / 60_000.0),
            _ => nan(),
        },
    );
    ctx.add_variable_from_value(
        "days_tracked",
        h.map_or(Value::Float(0.0), |h| {
            Value::Float((h.at_ms - h.stats.first_ms).max(0) as f64 / 86_400_000.0)
        }),
    );
    for &days in windows {
        let w = h.and_then(|h| h.stats.windows.iter().find(|w| w.days == days));
        if w.is_none() {
            absent.extend(window_variables(days).into_iter().take(3));
        }
        let [min, max, typical, values] = window_variables(days);
        ctx.add_variable_from_value(min, w.map_or_else(nan, |w| money_value(w.min)));
        ctx.add_variable_from_value(max, w.map_or_else(nan, |w| money_value(w.max)));
        ctx.add_variable_from_value(typical, w.map_or_else(nan, |w| money_value(w.typical)));
        ctx.add_variable_from_value(values, Value::Int(w.map_or(0, |w| i64::from(w.values))));
    }
    absent
}

fn variables_for(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "flight_price" => Some(FLIGHT_PRICE_VARIABLES),
        "odds_quote" => Some(ODDS_QUOTE_VARIABLES),
        "candle" => Some(CANDLE_VARIABLES),
        "funding_rate" => Some(FUNDING_RATE_VARIABLES),
        "open_interest" => Some(OPEN_INTEREST_VARIABLES),
        "price" => Some(PRICE_VARIABLES),
        _ => None,
    }
}

fn sample_instrument() -> Instrument {
    Instrument {
        exchange: "binance".into(),
        market: "linear".into(),
        symbol: "BTCUSDT".into(),
    }
}

/// A record to validate rules against at start: every field set, so a type error shows.
fn sample(kind: &str) -> Option<Envelope> {
    match kind {
        "flight_price" => Some(Envelope::new(
            "sample",
            "sample",
            "AAA-BBB/2026-01-01/oneway".into(),
            None,
            chrono::Utc::now(),
            Payload::FlightPrice(FlightPrice {
                origin: "AAA".into(),
                destination: "BBB".into(),
                departure_at: "2026-01-01".into(),
                return_at: Some("2026-01-02".into()),
                price: Money {
                    amount: Decimal::new(123450, 2),
                    currency: "RUB".into(),
                },
                carrier: Some("SU".into()),
                flight_number: Some("1".into()),
                gate: Some("G".into()),
                transfers: Some(0),
                duration_minutes: Some(60),
                trip_class: Some(0),
                distance_km: Some(100),
                actual: Some(true),
                link: Some("https://x".into()),
            }),
        )),
        "odds_quote" => Some(Envelope::new(
            "sample",
            "sample",
            "basketball_nba/e1/fanduel/spreads/A".into(),
            None,
            chrono::Utc::now(),
            Payload::OddsQuote(OddsQuote {
                sport: "basketball_nba".into(),
                sport_title: Some("NBA".into()),
                event_id: "e1".into(),
                commence_time: "2026-01-01T00:00:00Z".into(),
                home_team: Some("A".into()),
                away_team: Some("B".into()),
                bookmaker: "fanduel".into(),
                bookmaker_title: Some("FanDuel".into()),
                market: "spreads".into(),
                outcome: "A".into(),
                price: Decimal::new(191, 2),
                point: Some(Decimal::new(-35, 1)),
            }),
        )),
        "candle" => Some(Envelope::new(
            "sample",
            "sample",
            "binance/linear/BTCUSDT/1h".into(),
            None,
            chrono::Utc::now(),
            Payload::Candle(Candle {
                instrument: sample_instrument(),
                interval: "1h".into(),
                open_time: chrono::Utc::now(),
                open: Decimal::new(100, 0),
                high: Decimal::new(110, 0),
                low: Decimal::new(90, 0),
                close: Decimal::new(105, 0),
                volume: Decimal::new(1, 0),
                quote_volume: Some(Decimal::new(100, 0)),
                trades: Some(1),
                derived_from: Some("30m".into()),
            }),
        )),
        "funding_rate" => Some(Envelope::new(
            "sample",
            "sample",
            "binance/linear/BTCUSDT/funding".into(),
            None,
            chrono::Utc::now(),
            Payload::FundingRate(FundingRate {
                instrument: sample_instrument(),
                rate: Decimal::new(1, 4),
                funding_time: chrono::Utc::now(),
                mark_price: Some(Decimal::new(100, 0)),
            }),
        )),
        "open_interest" => Some(Envelope::new(
            "sample",
            "sample",
            "binance/linear/BTCUSDT/oi/1h".into(),
            None,
            chrono::Utc::now(),
            Payload::OpenInterest(OpenInterest {
                instrument: sample_instrument(),
                period: "1h".into(),
                open_interest: Decimal::new(1000, 0),
                value: Some(Decimal::new(100_000, 0)),
                timestamp: chrono::Utc::now(),
            }),
        )),
        "price" => Some(Envelope::new(
            "sample",
            "sample",
            "berlin/1".into(),
            None,
            chrono::Utc::now(),
            Payload::Price(Price {
                price: Decimal::new(1230, 2),
                currency: Some("EUR".into()),
                name: Some("Sencha".into()),
                attributes: [("store".to_string(), "berlin".to_string())].into(),
            }),
        )),
        _ => None,
    }
}

/// Always a CEL double: CEL does no mixed int/double arithmetic, so one type for every price
/// keeps `price * 0.8 < 4000` valid whatever the amount. Comparisons with int literals
/// (`price < 5000`) work too. Rules compare against thresholds, where a double is exact
/// enough; storage keeps the decimal.
fn money_value(amount: Decimal) -> Value {
    Value::Float(amount.to_f64().unwrap_or(f64::NAN))
}

fn opt_str(v: &Option<String>) -> Value {
    v.as_ref()
        .map(|s| Value::from(s.as_str()))
        .unwrap_or(Value::Null)
}

fn opt_u32(v: Option<u32>) -> Value {
    v.map(|n| Value::Int(n.into())).unwrap_or(Value::Null)
}

/// The CEL variables of a record, without history.
pub fn bind(e: &Envelope) -> Context<'static, 'static> {
    bind_with(e, None, DEFAULT_WINDOWS).0
}

/// The CEL variables of a record and what its history says, and the history variables it
/// does not have.
pub fn bind_with(
    e: &Envelope,
    history: Option<History>,
    windows: &[u32],
) -> (Context<'static, 'static>, Vec<String>) {
    let mut ctx = Context::default();
    let mut absent = bind_history(&mut ctx, e.payload.amount(), history, windows);
    ctx.add_variable_from_value("key", e.key.as_str());
    ctx.add_variable_from_value("source", e.source.as_str());
    ctx.add_variable_from_value("kind", e.kind());
    ctx.add_variable_from_value("job", e.job.as_str());
    match &e.payload {
        Payload::FlightPrice(f) => {
            ctx.add_variable_from_value("price", money_value(f.price.amount));
            ctx.add_variable_from_value("currency", f.price.currency.as_str());
            ctx.add_variable_from_value("origin", f.origin.as_str());
            ctx.add_variable_from_value("destination", f.destination.as_str());
            ctx.add_variable_from_value("route", format!("{}-{}", f.origin, f.destination));
            ctx.add_variable_from_value("departure_at", f.departure_at.as_str());
            ctx.add_variable_from_value("return_at", opt_str(&f.return_at));
            ctx.add_variable_from_value("carrier", opt_str(&f.carrier));
            ctx.add_variable_from_value("flight_number", opt_str(&f.flight_number));
            ctx.add_variable_from_value("gate", opt_str(&f.gate));
            ctx.add_variable_from_value("transfers", opt_u32(f.transfers));
            ctx.add_variable_from_value("duration_minutes", opt_u32(f.duration_minutes));
            ctx.add_variable_from_value("trip_class", opt_u32(f.trip_class));
            ctx.add_variable_from_value("distance_km", opt_u32(f.distance_km));
            ctx.add_variable_from_value("actual", f.actual.map(Value::Bool).unwrap_or(Value::Null));
            ctx.add_variable_from_value("link", opt_str(&f.link));
        }
        Payload::OddsQuote(q) => {
            ctx.add_variable_from_value("price", money_value(q.price));
            let implied = q
                .price
                .to_f64()
                .filter(|p| *p > 0.0)
                .map_or(f64::NAN, |p| 1.0 / p);
            ctx.add_variable_from_value("implied_probability", Value::Float(implied));
            ctx.add_variable_from_value("point", q.point.map_or(Value::Null, money_value));
            ctx.add_variable_from_value("sport", q.sport.as_str());
            ctx.add_variable_from_value("sport_title", opt_str(&q.sport_title));
            ctx.add_variable_from_value("event_id", q.event_id.as_str());
            ctx.add_variable_from_value("commence_time", q.commence_time.as_str());
            ctx.add_variable_from_value("home_team", opt_str(&q.home_team));
            ctx.add_variable_from_value("away_team", opt_str(&q.away_team));
            let teams = match (&q.home_team, &q.away_team) {
                (Some(h), Some(a)) => Value::from(format!("{h} v {a}")),
                _ => Value::Null,
            };
            ctx.add_variable_from_value("teams", teams);
            ctx.add_variable_from_value("bookmaker", q.bookmaker.as_str());
            ctx.add_variable_from_value("bookmaker_title", opt_str(&q.bookmaker_title));
            ctx.add_variable_from_value("market", q.market.as_str());
            ctx.add_variable_from_value("outcome", q.outcome.as_str());
            // The line before this change and how far it moved (spreads, totals).
            match (q.point, history.and_then(|h| h.stats.previous_line)) {
                (Some(now), Some(before)) => {
                    ctx.add_variable_from_value("previous_line", money_value(before));
                    ctx.add_variable_from_value("line_change", money_value(now - before));
                }
                _ => absent.extend(LINE_VARIABLES.map(String::from)),
            }
        }
        Payload::Candle(c) => {
            add_instrument(&mut ctx, &c.instrument);
            ctx.add_variable_from_value("price", money_value(c.close));
            for (name, v) in [
                ("open", c.open),
                ("high", c.high),
                ("low", c.low),
                ("close", c.close),
                ("volume", c.volume),
            ] {
                ctx.add_variable_from_value(name, money_value(v));
            }
            ctx.add_variable_from_value(
                "quote_volume",
                c.quote_volume.map_or(Value::Null, money_value),
            );
            ctx.add_variable_from_value(
                "trades",
                c.trades
                    .and_then(|t| i64::try_from(t).ok())
                    .map_or(Value::Null, Value::Int),
            );
            ctx.add_variable_from_value("change_percent", percent_of(c.close - c.open, c.open));
            ctx.add_variable_from_value("range_percent", percent_of(c.high - c.low, c.open));
            ctx.add_variable_from_value("interval", c.interval.as_str());
            ctx.add_variable_from_value("derived", Value::Bool(c.derived_from.is_some()));
            ctx.add_variable_from_value("open_time", rfc3339(c.open_time));
        }
        Payload::FundingRate(f) => {
            add_instrument(&mut ctx, &f.instrument);
            ctx.add_variable_from_value("price", money_value(f.rate));
            ctx.add_variable_from_value("rate", money_value(f.rate));
            ctx.add_variable_from_value("rate_percent", money_value(f.rate * Decimal::ONE_HUNDRED));
            ctx.add_variable_from_value(
                "mark_price",
                f.mark_price.map_or(Value::Null, money_value),
            );
            ctx.add_variable_from_value("funding_time", rfc3339(f.funding_time));
        }
        Payload::Price(p) => {
            ctx.add_variable_from_value("price", money_value(p.price));
            ctx.add_variable_from_value("currency", opt_str(&p.currency));
            ctx.add_variable_from_value("name", opt_str(&p.name));
            let attributes: std::collections::HashMap<String, String> =
                p.attributes.clone().into_iter().collect();
            ctx.add_variable_from_value("attributes", attributes);
        }
        Payload::OpenInterest(o) => {
            add_instrument(&mut ctx, &o.instrument);
            ctx.add_variable_from_value("price", money_value(o.open_interest));
            ctx.add_variable_from_value("open_interest", money_value(o.open_interest));
            ctx.add_variable_from_value("value", o.value.map_or(Value::Null, money_value));
            ctx.add_variable_from_value("period", o.period.as_str());
            ctx.add_variable_from_value("timestamp", rfc3339(o.timestamp));
        }
    }
    if !matches!(e.payload, Payload::OddsQuote(_)) {
        absent.extend(LINE_VARIABLES.map(String::from));
    }
    (ctx, absent)
}

fn add_instrument(ctx: &mut Context<'static, 'static>, i: &Instrument) {
    ctx.add_variable_from_value("exchange", i.exchange.as_str());
    ctx.add_variable_from_value("market", i.market.as_str());
    ctx.add_variable_from_value("symbol", i.symbol.as_str());
}

/// `part` as a percentage of `whole` (a CEL double; NaN when `whole` is zero, which
/// compares false with everything, so no rule fires on it).
fn percent_of(part: Decimal, whole: Decimal) -> Value {
    if whole.is_zero() {
        return Value::Float(f64::NAN);
    }
    money_value(part * Decimal::ONE_HUNDRED / whole)
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Rule {
    pub fn compile(spec: RuleSpec) -> Result<Rule, RuleError> {
        Rule::compile_with(spec, DEFAULT_WINDOWS)
    }

    /// Compiles a rule whose history variables are those of `windows`.
    pub fn compile_with(spec: RuleSpec, windows: &[u32]) -> Result<Rule, RuleError> {
        let rule_name = spec.name.clone();
        let invalid = |problem: String| RuleError::Invalid {
            rule: rule_name.clone(),
            problem,
        };
        let name_ok = !spec.name.is_empty()
            && spec.name.len() <= 64
            && spec
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(invalid(
                "name must be 1-64 characters of A-Z, a-z, 0-9, '-', '_'".into(),
            ));
        }
        let Some(known) = variables_for(&spec.kind) else {
            return Err(invalid(format!(
                "unknown kind {:?} (expected one of {})",
                spec.kind,
                KINDS.join(", ")
            )));
        };
        let expression = spec.expression(windows).map_err(&invalid)?;
        let program =
            Program::compile(&expression).map_err(|e| invalid(format!("does not parse: {e}")))?;
        let references = program.references();
        let history: Vec<String> = HISTORY_VARIABLES
            .iter()
            .map(|v| v.to_string())
            .chain(windows.iter().flat_map(|&d| window_variables(d)))
            .collect();
        let mut unknown: Vec<&str> = references
            .variables()
            .into_iter()
            .filter(|v| !known.contains(v) && !history.iter().any(|h| h == v))
            .collect();
        unknown.sort_unstable();
        if !unknown.is_empty() {
            return Err(invalid(format!(
                "unknown field(s) {} (known: {}, and from history {})",
                unknown.join(", "),
                known.join(", "),
                history.join(", ")
            )));
        }
        let named: Vec<String> = references
            .variables()
            .into_iter()
            .filter(|v| history.iter().any(|h| h == v))
            .map(str::to_string)
            .collect();
        let quorum = quorum_of(&spec).map_err(&invalid)?;
        let mut realert = realert_of(&spec).map_err(&invalid)?;
        if let (Some(q), None) = (quorum, spec.cooldown_minutes) {
            // A market move alerts once per window, whichever bookmaker completes it.
            realert.cooldown_minutes = q.window_minutes;
        }
        let rule = Rule {
            spec,
            realert,
            quorum,
            program,
            windows: windows.to_vec(),
            history: named,
        };
        if let Some(sample) = sample(&rule.spec.kind) {
            let stats = Stats {
                previous: Some((Decimal::ONE, 0)),
                previous_line: Some(Decimal::ONE),
                first_ms: 0,
                windows: windows
                    .iter()
                    .map(|&days| Window {
                        days,
                        min: Decimal::ONE,
                        max: Decimal::TWO,
                        typical: Decimal::ONE,
                        values: 2,
                    })
                    .collect(),
            };
            let history = History {
                stats: &stats,
                at_ms: 60_000,
            };
            match rule
                .program
                .execute(&bind_with(&sample, Some(history), windows).0)
            {
                Ok(Value::Bool(_)) => {}
                Ok(other) => {
                    return Err(invalid(format!("must yield a boolean, yields {other:?}")))
                }
                // A generic source's attributes are its own key fields, which the alerter
                // does not know (the sample has only `store`): a rule may read any of them.
                Err(e) if rule.spec.kind == "price" && e.to_string().starts_with("No such key") => {
                }
                Err(e) => return Err(invalid(format!("fails on a complete record: {e}"))),
            }
        }
        Ok(rule)
    }

    pub fn applies_to(&self, e: &Envelope) -> bool {
        self.spec.source == e.source && self.spec.kind == e.kind()
    }

    /// `Ok(true)` when the record matches; an evaluation error (a comparison with a field the
    /// record lacks, say) is reported, never a match.
    pub fn matches(&self, ctx: &Context) -> Result<bool, String> {
        match self.program.execute(ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("yielded {other:?}, not a boolean")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// All configured rules.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

/// The outcome of evaluating a record against the rules.
#[derive(Debug, Default)]
pub struct Evaluation<'a> {
    pub matched: Vec<&'a Rule>,
    /// (rule name, error) for rules that could not be evaluated on this record.
    pub errors: Vec<(String, String)>,
}

impl RuleSet {
    pub fn from_json(text: &str) -> Result<RuleSet, RuleError> {
        RuleSet::from_json_with(text, DEFAULT_WINDOWS)
    }

    /// Rules whose history variables are those of the consumer's statistics `windows`.
    pub fn from_json_with(text: &str, windows: &[u32]) -> Result<RuleSet, RuleError> {
        let specs: Vec<RuleSpec> =
            serde_json::from_str(text).map_err(|e| RuleError::NotAList(e.to_string()))?;
        let mut names = HashSet::new();
        let mut rules = Vec::with_capacity(specs.len());
        for spec in specs {
            if !names.insert(spec.name.clone()) {
                return Err(RuleError::Invalid {
                    rule: spec.name,
                    problem: "defined twice".into(),
                });
            }
            rules.push(Rule::compile_with(spec, windows)?);
        }
        Ok(RuleSet { rules })
    }

    pub fn evaluate(&self, e: &Envelope) -> Evaluation<'_> {
        self.evaluate_with(e, None)
    }

    /// Evaluates a record with what its history says (a stored change's statistics).
    pub fn evaluate_with(&self, e: &Envelope, history: Option<History>) -> Evaluation<'_> {
        let mut out = Evaluation::default();
        let applicable: Vec<&Rule> = self.rules.iter().filter(|r| r.applies_to(e)).collect();
        let Some(first) = applicable.first() else {
            return out;
        };
        let (ctx, absent) = bind_with(e, history, &first.windows);
        for rule in applicable {
            if rule.history.iter().any(|v| absent.contains(v)) {
                // Not enough history for this rule yet: quiet, not an error.
                continue;
            }
            match rule.matches(&ctx) {
                Ok(true) => out.matched.push(rule),
                Ok(false) => {}
                Err(err) => out.errors.push((rule.spec.name.clone(), err)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn flight(price: &str, gate: Option<&str>, transfers: Option<u32>) -> Envelope {
        Envelope::new(
            "travelpayouts",
            "j",
            "LED-KZN/2026-12-05/oneway".into(),
            None,
            Utc::now(),
            Payload::FlightPrice(FlightPrice {
                gate: gate.map(str::to_string),
                transfers,
                ..FlightPrice::new(
                    "LED",
                    "KZN",
                    "2026-12-05",
                    Money {
                        amount: price.parse().unwrap(),
                        currency: "RUB".into(),
                    },
                )
            }),
        )
    }

    fn rules(json: &str) -> Result<RuleSet, RuleError> {
        RuleSet::from_json(json)
    }

    const CLASSIC: &str = r#"[{"name":"cheap-aeroflot","source":"travelpayouts","kind":"flight_price","when":"price < 5000 && gate == \"Aeroflot\""}]"#;

    #[test]
    fn the_classic_filter_matches_exactly() {
        let set = rules(CLASSIC).unwrap();
        let matched = |price: &str, gate: Option<&str>| {
            !set.evaluate(&flight(price, gate, None)).matched.is_empty()
        };
        assert!(matched("4999", Some("Aeroflot")));
        assert!(matched("4999.99", Some("Aeroflot")));
        assert!(!matched("5000", Some("Aeroflot")), "cost < 5000 is strict");
        assert!(!matched("5000.01", Some("Aeroflot")));
        assert!(
            !matched("100", Some("aeroflot")),
            "gate = 'Aeroflot' is case-sensitive"
        );
        assert!(!matched("100", Some("Pobeda")));
        assert!(
            !matched("100", None),
            "a record without a gate does not match"
        );
    }

    #[test]
    fn price_arithmetic_works_for_whole_and_fractional_amounts() {
        let set = rules(r#"[{"name":"r","source":"travelpayouts","kind":"flight_price","when":"price * 0.8 < 4000 && price == 4999"}]"#).unwrap();
        assert_eq!(set.evaluate(&flight("4999", None, None)).matched.len(), 1);
        assert!(set
            .evaluate(&flight("4999.5", None, None))
            .matched
            .is_empty());
    }

    #[test]
    fn rules_are_scoped_to_source_and_kind() {
        let set =
            rules(r#"[{"name":"any","source":"other","kind":"flight_price","when":"price > 0"}]"#)
                .unwrap();
        assert!(set.evaluate(&flight("1", None, None)).matched.is_empty());
    }

    #[test]
    fn a_comparison_with_a_missing_field_is_an_error_not_a_match() {
        let set = rules(r#"[{"name":"direct","source":"travelpayouts","kind":"flight_price","when":"transfers < 1"}]"#).unwrap();
        let ev = set.evaluate(&flight("1", None, None));
        assert!(ev.matched.is_empty());
        assert_eq!(ev.errors.len(), 1);
        assert_eq!(set.evaluate(&flight("1", None, Some(0))).matched.len(), 1);
    }

    fn quote(price: &str, point: Option<&str>, market: &str) -> Envelope {
        Envelope::new(
            "odds",
            "nba",
            format!("basketball_nba/e1/fanduel/{market}/Lakers"),
            None,
            Utc::now(),
            Payload::OddsQuote(OddsQuote {
                sport: "basketball_nba".into(),
                sport_title: Some("NBA".into()),
                event_id: "e1".into(),
                commence_time: "2026-12-02T00:30:00Z".into(),
                home_team: Some("Lakers".into()),
                away_team: Some("Celtics".into()),
                bookmaker: "fanduel".into(),
                bookmaker_title: None,
                market: market.into(),
                outcome: "Lakers".into(),
                price: price.parse().unwrap(),
                point: point.map(|p| p.parse().unwrap()),
            }),
        )
    }

    #[test]
    fn odds_rules_see_price_probability_line_and_teams() {
        let set = rules(r#"[
            {"name":"long-shot","source":"odds","kind":"odds_quote","when":"price >= 3.0 && market == \"h2h\""},
            {"name":"favourite","source":"odds","kind":"odds_quote","when":"implied_probability > 0.6 && teams == \"Lakers v Celtics\""},
            {"name":"big-spread","source":"odds","kind":"odds_quote","when":"market == \"spreads\" && point != null && point <= -7.5"}]"#).unwrap();
        let names = |e: &Envelope| -> Vec<String> {
            set.evaluate(e)
                .matched
                .iter()
                .map(|r| r.spec.name.clone())
                .collect()
        };
        assert_eq!(names(&quote("3.40", None, "h2h")), ["long-shot"]);
        assert_eq!(
            names(&quote("1.50", None, "h2h")),
            ["favourite"],
            "1/1.5 = 0.67"
        );
        assert_eq!(names(&quote("1.91", Some("-8"), "spreads")), ["big-spread"]);
        assert!(names(&quote("1.91", Some("-3.5"), "spreads")).is_empty());
        assert!(
            set.evaluate(&flight("1", None, None)).matched.is_empty(),
            "odds rules do not apply to flights"
        );
        let err =
            rules(r#"[{"name":"r","source":"odds","kind":"odds_quote","when":"gate == \"x\""}]"#)
                .unwrap_err();
        assert!(err.to_string().contains("unknown field(s) gate"), "{err}");
    }

    #[test]
    fn a_generic_sources_rule_may_read_its_own_key_fields() {
        // The sample price record has only `store`; coingecko's records have `id`.
        let set = rules(r#"[{"name":"btc","source":"coingecko","kind":"price","when":"attributes[\"id\"] == \"bitcoin\" && price < 60000.0"}]"#).unwrap();
        let coin = |id: &str, usd: i64| {
            Envelope::new(
                "coingecko",
                "coins",
                id.into(),
                None,
                chrono::Utc::now(),
                Payload::Price(Price {
                    price: Decimal::from(usd),
                    currency: Some("USD".into()),
                    name: None,
                    attributes: [("id".to_string(), id.to_string())].into(),
                }),
            )
        };
        assert_eq!(set.evaluate(&coin("bitcoin", 59_000)).matched.len(), 1);
        assert!(set.evaluate(&coin("bitcoin", 61_000)).matched.is_empty());
        assert!(set.evaluate(&coin("ethereum", 3_000)).matched.is_empty());
    }

    #[test]
    fn bad_rules_fail_at_start_naming_the_rule() {
        let cases = [
            (
                r#"[{"name":"r1","source":"travelpayouts","kind":"flight_price","when":"price <"}]"#,
                "r1",
                "does not parse",
            ),
            (
                r#"[{"name":"r2","source":"travelpayouts","kind":"flight_price","when":"cost < 5000"}]"#,
                "r2",
                "unknown field(s) cost",
            ),
            (
                r#"[{"name":"r3","source":"travelpayouts","kind":"flight_price","when":"price"}]"#,
                "r3",
                "must yield a boolean",
            ),
            (
                r#"[{"name":"r4","source":"travelpayouts","kind":"hotel","when":"true"}]"#,
                "r4",
                "unknown kind",
            ),
            (
                r#"[{"name":"r5","source":"travelpayouts","kind":"flight_price","when":"price < 'x'"}]"#,
                "r5",
                "fails on a complete record",
            ),
            (
                r#"[{"name":"r6","source":"travelpayouts","kind":"flight_price","when":"true"},{"name":"r6","source":"travelpayouts","kind":"flight_price","when":"true"}]"#,
                "r6",
                "defined twice",
            ),
        ];
        for (json, name, problem) in cases {
            let err = rules(json).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("alert rule {name:?}: ")),
                "{text}"
            );
            assert!(text.contains(problem), "{text}");
        }
        assert!(matches!(rules("{}"), Err(RuleError::NotAList(_))));
        assert!(rules("[]").unwrap().rules.is_empty());
    }

    fn candle(open: &str, close: &str) -> Envelope {
        let d = |v: &str| v.parse::<Decimal>().unwrap();
        Envelope::new(
            "binance",
            "btc-1h",
            "binance/linear/BTCUSDT/1h".into(),
            None,
            chrono::Utc::now(),
            Payload::Candle(Candle {
                instrument: sample_instrument(),
                interval: "1h".into(),
                open_time: chrono::Utc::now(),
                open: d(open),
                high: d(open).max(d(close)),
                low: d(open).min(d(close)),
                close: d(close),
                volume: d("3"),
                quote_volume: None,
                trades: Some(7),
                derived_from: None,
            }),
        )
    }

    fn funding(rate: &str) -> Envelope {
        Envelope::new(
            "bybit",
            "btc-funding",
            "bybit/linear/BTCUSDT/funding".into(),
            None,
            chrono::Utc::now(),
            Payload::FundingRate(FundingRate {
                instrument: Instrument {
                    exchange: "bybit".into(),
                    market: "linear".into(),
                    symbol: "BTCUSDT".into(),
                },
                rate: rate.parse().unwrap(),
                funding_time: chrono::Utc::now(),
                mark_price: None,
            }),
        )
    }

    #[test]
    fn market_rules_see_the_change_over_the_candle_and_the_funding_rate() {
        let set = rules(r#"[
            {"name":"pump","source":"binance","kind":"candle","when":"change_percent >= 5.0 && symbol == \"BTCUSDT\" && !derived"},
            {"name":"dump","source":"binance","kind":"candle","when":"change_percent <= -5.0"},
            {"name":"negative-funding","source":"bybit","kind":"funding_rate","when":"rate < 0.0 || rate_percent > 0.1"},
            {"name":"busy","source":"binance","kind":"candle","when":"trades > 5 && interval == \"1h\" && exchange == \"binance\""}]"#).unwrap();
        let names = |e: &Envelope| -> Vec<String> {
            let mut n: Vec<String> = set
                .evaluate(e)
                .matched
                .iter()
                .map(|r| r.spec.name.clone())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&candle("100", "105")), vec!["busy", "pump"]);
        assert_eq!(names(&candle("100", "104.99")), vec!["busy"]);
        assert_eq!(names(&candle("100", "95")), vec!["busy", "dump"]);
        assert_eq!(names(&funding("-0.0001")), vec!["negative-funding"]);
        assert_eq!(names(&funding("0.0011")), vec!["negative-funding"]);
        assert!(names(&funding("0.0001")).is_empty());
        // Unknown variables of a kind fail at start, naming the rule.
        let err =
            rules(r#"[{"name":"x","source":"binance","kind":"open_interest","when":"close > 1"}]"#)
                .unwrap_err();
        assert!(err.to_string().contains("\"x\""), "{err}");
    }

    #[test]
    fn generic_price_rules_see_price_currency_and_key_fields() {
        let set = rules(r#"[{"name":"cheap-tea","source":"shop","kind":"price","when":"price < 10.0 && currency == \"EUR\" && attributes[\"store\"] == \"berlin\""}]"#).unwrap();
        let offer = |price: i64, store: &str| {
            Envelope::new(
                "shop",
                "shop",
                format!("{store}/1"),
                None,
                chrono::Utc::now(),
                Payload::Price(Price {
                    price: Decimal::new(price, 0),
                    currency: Some("EUR".into()),
                    name: None,
                    attributes: [("store".to_string(), store.to_string())].into(),
                }),
            )
        };
        assert_eq!(set.evaluate(&offer(9, "berlin")).matched.len(), 1);
        assert!(set.evaluate(&offer(11, "berlin")).matched.is_empty());
        assert!(set.evaluate(&offer(9, "paris")).matched.is_empty());
    }

    fn history(previous: i64, min30: i64, typical30: i64, tracked_days: i64) -> Stats {
        Stats {
            previous: Some((previous.into(), 0)),
            previous_line: None,
            first_ms: -tracked_days * 86_400_000,
            windows: vec![Window {
                days: 30,
                min: min30.into(),
                max: 9000.into(),
                typical: typical30.into(),
                values: 5,
            }],
        }
    }

    fn fires(set: &RuleSet, price: &str, stats: &Stats) -> bool {
        let h = History {
            stats,
            at_ms: 60_000,
        };
        let e = set.evaluate_with(&flight(price, Some("Aeroflot"), Some(0)), Some(h));
        assert!(e.errors.is_empty(), "{:?}", e.errors);
        !e.matched.is_empty()
    }

    #[test]
    fn named_rule_types_compile_to_their_conditions_over_history() {
        let rule = |t: &str, params: &str, when: &str| {
            rules(&format!(
                r#"[{{"name":"r","source":"travelpayouts","kind":"flight_price","type":"{t}","params":{params}{when}}}]"#
            ))
            .unwrap()
        };
        // A new 30-day low, once tracked a week: 4200 < 4300 after 10 days.
        let low = rule("new_low", r#"{"days":30,"min_days_tracked":7}"#, "");
        assert!(fires(&low, "4200", &history(5000, 4300, 5200, 10)));
        assert!(
            !fires(&low, "4300", &history(5000, 4300, 5200, 10)),
            "not under it"
        );
        assert!(
            !fires(&low, "4200", &history(5000, 4300, 5200, 3)),
            "too little history"
        );
        let near = rule("new_low", r#"{"days":30,"within_percent":5}"#, "");
        assert!(
            fires(&near, "4500", &history(5000, 4300, 5200, 30)),
            "within 5 % of 4300"
        );
        // 15 % under the typical value, and Aeroflot (the type and `when` together).
        let drop = rule(
            "drop_from_typical",
            r#"{"percent":15,"days":30}"#,
            r#","when":"gate == \"Aeroflot\"""#,
        );
        assert!(fires(&drop, "4400", &history(4500, 4000, 5200, 30)));
        assert!(
            !fires(&drop, "4500", &history(4500, 4000, 5200, 30)),
            "13.5 % only"
        );
        let prev = rule("drop_from_previous", r#"{"percent":10}"#, "");
        assert!(fires(&prev, "4400", &history(5000, 4000, 5200, 30)));
        assert!(!fires(&prev, "4600", &history(5000, 4000, 5200, 30)));
        let target = rule("price_at_or_under", r#"{"target":4000}"#, "");
        assert!(fires(&target, "4000", &history(5000, 4000, 5200, 30)));
        assert!(!fires(&target, "4000.5", &history(5000, 4000, 5200, 30)));
        // No history yet: a history type is quiet, not an error.
        let e = low.evaluate(&flight("1", Some("Aeroflot"), Some(0)));
        assert!(e.matched.is_empty() && e.errors.is_empty());
    }

    #[test]
    fn market_types_read_the_previous_point() {
        let funding = |t: &str, params: &str| {
            rules(&format!(
                r#"[{{"name":"f","source":"binance","kind":"funding_rate","type":"{t}","params":{params}}}]"#
            ))
            .unwrap()
        };
        let record = |rate: &str| {
            let mut e = sample("funding_rate").unwrap();
            e.source = "binance".into();
            if let Payload::FundingRate(f) = &mut e.payload {
                f.rate = rate.parse().unwrap();
            }
            e
        };
        let stats = |previous: &str| Stats {
            previous: Some((previous.parse().unwrap(), 0)),
            previous_line: None,
            first_ms: 0,
            windows: vec![],
        };
        let check = |set: &RuleSet, rate: &str, previous: &str| {
            let s = stats(previous);
            let e = set.evaluate_with(
                &record(rate),
                Some(History {
                    stats: &s,
                    at_ms: 1,
                }),
            );
            assert!(e.errors.is_empty(), "{:?}", e.errors);
            !e.matched.is_empty()
        };
        let flip = funding("funding_flip", "{}");
        assert!(check(&flip, "-0.0001", "0.0002"));
        assert!(!check(&flip, "0.0001", "0.0002"));
        let beyond = funding("funding_beyond", r#"{"rate_percent":0.05}"#);
        assert!(check(&beyond, "-0.0006", "0"));
        assert!(!check(&beyond, "0.0004", "0"));
    }

    #[test]
    fn a_line_move_compares_the_line_with_the_previous_quotes() {
        let set = RuleSet::from_json(
            r#"[{"name":"line","source":"odds","kind":"odds_quote","type":"line_move","params":{"points":1.5,"minutes":30}}]"#,
        )
        .unwrap();
        let spread = |point: &str| quote("1.91", Some(point), "spreads");
        let moved = |point: &str, before: Option<&str>, minutes: i64| {
            let stats = Stats {
                previous: Some(("1.91".parse().unwrap(), 0)),
                previous_line: before.map(|b| b.parse().unwrap()),
                first_ms: 0,
                windows: vec![],
            };
            let e = set.evaluate_with(
                &spread(point),
                Some(History {
                    stats: &stats,
                    at_ms: minutes * 60_000,
                }),
            );
            assert!(e.errors.is_empty(), "{:?}", e.errors);
            !e.matched.is_empty()
        };
        assert!(moved("-5.5", Some("-3.5"), 20), "two points in 20 minutes");
        assert!(moved("-2", Some("-3.5"), 20), "either way");
        assert!(!moved("-4.5", Some("-3.5"), 20), "one point is under 1.5");
        assert!(!moved("-5.5", Some("-3.5"), 45), "not within 30 minutes");
        assert!(!moved("-5.5", None, 20), "no line before: quiet, no error");
    }

    #[test]
    fn a_bad_rule_type_fails_at_start_naming_the_rule_and_the_parameter() {
        for (rule, says) in [
            (r#""type":"cheapest""#, "\"cheapest\" is not a rule type"),
            (
                r#""type":"new_low","params":{}"#,
                "params.days: new_low needs it",
            ),
            (
                r#""type":"new_low","params":{"days":14}"#,
                "params.days: 14 is not a statistics window",
            ),
            (
                r#""type":"new_low","params":{"days":30,"day":1}"#,
                "params.day: not a parameter of new_low",
            ),
            (
                r#""type":"drop_from_previous","params":{"percent":-5}"#,
                "params.percent: -5 must be above 0",
            ),
            (
                r#""type":"funding_flip""#,
                "applies to funding_rate records, not flight_price",
            ),
            (
                r#""params":{"percent":5},"when":"price < 1""#,
                "params given without a type",
            ),
            (r#""when":"  ""#, "needs a `when` expression or a `type`"),
        ] {
            let json = format!(
                r#"[{{"name":"bad","source":"travelpayouts","kind":"flight_price",{rule}}}]"#
            );
            let e = rules(&json).unwrap_err().to_string();
            assert!(e.contains("\"bad\"") && e.contains(says), "{rule}: {e}");
        }
    }
}
