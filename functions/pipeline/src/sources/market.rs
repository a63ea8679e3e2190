//! What the exchange modules (`binance`, `bybit`) share: intervals, strict decimals,
//! epoch-millisecond times, closed-candle checks, derived candles, and the time window a
//! market job walks. Pure, like every source module.
//!
//! Exchanges send numbers as strings (`"67321.50"`) so that nothing is lost to floats; a
//! value is taken only when it is an exact decimal. `"NaN"`, `"inf"`, `""`, `null`, a
//! number where a string belongs and a short row quarantine the record with the reason.

use super::{key_part, Normalised, Page, Quarantined, Step};
use crate::envelope::{Candle, Envelope, Instrument, Payload};
use crate::fields::describe;
use crate::job::{Job, JobError};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;

/// A fixed-length candle interval. Months are not a fixed length, so `1M` is not one
/// (the window arithmetic of a walk needs a fixed step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// The spelling in records and entity keys (`1h`), the same for every exchange.
    pub name: &'static str,
    pub ms: i64,
    /// Bybit's spelling (`60`).
    pub bybit: &'static str,
}

const MINUTE_MS: i64 = 60_000;

/// Every interval both exchanges offer, finest first.
pub const INTERVALS: &[Interval] = &[
    Interval {
        name: "1m",
        ms: MINUTE_MS,
        bybit: "1",
    },
    Interval {
        name: "3m",
        ms: 3 * MINUTE_MS,
        bybit: "3",
    },
    Interval {
        name: "5m",
        ms: 5 * MINUTE_MS,
        bybit: "5",
    },
    Interval {
        name: "15m",
        ms: 15 * MINUTE_MS,
        bybit: "15",
    },
    Interval {
        name: "30m",
        ms: 30 * MINUTE_MS,
        bybit: "30",
    },
    Interval {
        name: "1h",
        ms: 60 * MINUTE_MS,
        bybit: "60",
    },
    Interval {
        name: "2h",
        ms: 120 * MINUTE_MS,
        bybit: "120",
    },
    Interval {
        name: "4h",
        ms: 240 * MINUTE_MS,
        bybit: "240",
    },
    Interval {
        name: "6h",
        ms: 360 * MINUTE_MS,
        bybit: "360",
    },
    Interval {
        name: "12h",
        ms: 720 * MINUTE_MS,
        bybit: "720",
    },
    Interval {
        name: "1d",
        ms: 1440 * MINUTE_MS,
        bybit: "D",
    },
    Interval {
        name: "1w",
        ms: 7 * 1440 * MINUTE_MS,
        bybit: "W",
    },
];

/// Intervals only Binance has (Bybit has no 8h or 3d candles: build them with `derive`).
pub const BINANCE_ONLY: &[Interval] = &[
    Interval {
        name: "8h",
        ms: 480 * MINUTE_MS,
        bybit: "",
    },
    Interval {
        name: "3d",
        ms: 3 * 1440 * MINUTE_MS,
        bybit: "",
    },
];

/// Derived intervals a job may ask for (`params.derive`): any fixed interval, Binance's
/// included, as long as it is a whole multiple of the job's own.
fn any_interval(name: &str) -> Option<Interval> {
    INTERVALS
        .iter()
        .chain(BINANCE_ONLY)
        .copied()
        .find(|i| i.name == name)
}

/// The interval `params.<field>` names, from `offered`.
pub fn interval_param(job: &Job, field: &str, offered: &[Interval]) -> Result<Interval, JobError> {
    let v = job
        .param(field)
        .ok_or_else(|| JobError::new(format!("params.{field}"), "missing"))?;
    offered
        .iter()
        .copied()
        .find(|i| i.name == v)
        .ok_or_else(|| {
            let names: Vec<&str> = offered.iter().map(|i| i.name).collect();
            JobError::new(
                format!("params.{field}"),
                format!("{v:?} is not one of {}", names.join(", ")),
            )
        })
}

/// `params.derive`: a coarser interval built from the job's (`4h` → `8h`), if asked.
pub fn derive_param(job: &Job, base: Interval) -> Result<Option<Interval>, JobError> {
    let Some(v) = job.param("derive") else {
        return Ok(None);
    };
    let field = "params.derive";
    let target = any_interval(v)
        .ok_or_else(|| JobError::new(field, format!("{v:?} is not a fixed interval (1m … 1w)")))?;
    if target.ms <= base.ms || target.ms % base.ms != 0 {
        return Err(JobError::new(
            field,
            format!(
                "{} is not a whole multiple (2× or more) of the job's interval {}",
                target.name, base.name
            ),
        ));
    }
    Ok(Some(target))
}

/// `params.symbol`: an exchange symbol, upper-case letters and digits.
pub fn symbol_param(job: &Job) -> Result<String, JobError> {
    let v = job
        .param("symbol")
        .ok_or_else(|| JobError::new("params.symbol", "missing"))?;
    let ok = (2..=32).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !ok {
        return Err(JobError::new(
            "params.symbol",
            format!("{v:?} is not an exchange symbol (2-32 of A-Z and 0-9, as BTCUSDT)"),
        ));
    }
    Ok(v.to_string())
}

/// What a market job collects (`params.data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    Klines {
        interval: Interval,
        /// A coarser interval built from complete sets of `interval` candles.
        derive: Option<Interval>,
    },
    Funding,
    OpenInterest {
        period: Interval,
    },
}

const DAY_MS: i64 = 1440 * MINUTE_MS;

impl Series {
    /// The step windows align to (funding times are irregular: 1 ms).
    pub fn step_ms(self) -> i64 {
        match self {
            Series::Klines { interval, derive } => derive.unwrap_or(interval).ms,
            Series::Funding => 1,
            Series::OpenInterest { period } => period.ms,
        }
    }

    /// The last component of the entity key: `1h`, `8h`, `funding`, `oi/5m`.
    pub fn key_suffix(self) -> String {
        match self {
            Series::Klines { interval, derive } => derive.unwrap_or(interval).name.to_string(),
            Series::Funding => "funding".into(),
            Series::OpenInterest { period } => format!("oi/{}", period.name),
        }
    }

    /// Names the series in a plan's fingerprint: `klines/4h/8h`, `funding`, `oi/5m`.
    pub fn label(self) -> String {
        match self {
            Series::Klines { interval, derive } => format!(
                "klines/{}{}",
                interval.name,
                derive.map(|d| format!("/{}", d.name)).unwrap_or_default()
            ),
            other => other.key_suffix(),
        }
    }

    /// How far a job's first run looks back when it does not say: 100 candles, a week of
    /// funding, a day of open interest.
    pub fn default_lookback_ms(self) -> i64 {
        match self {
            Series::Klines { .. } => 100 * self.step_ms(),
            Series::Funding => 7 * DAY_MS,
            Series::OpenInterest { .. } => DAY_MS,
        }
    }
}

/// What an exchange module offers, for checking a job's `params`.
pub struct Offer<'a> {
    /// Names the API in errors (`binance klines`).
    pub module: &'a str,
    pub intervals: &'a [Interval],
    /// `limit` of each series: (largest, default).
    pub kline_limit: (u32, u32),
    pub funding_limit: (u32, u32),
    pub open_interest_limit: (u32, u32),
    /// Open-interest periods offered.
    pub periods: &'a [&'a str],
    /// `None` when funding and open interest exist for this market; else why not.
    pub contracts_only: Option<&'a str>,
    /// Parameters every series takes besides its own.
    pub common: &'a [&'a str],
}

/// `params.data` and the parameters of its series, checked by name: the series and the
/// page size (`limit`).
pub fn series_param(job: &Job, offer: &Offer<'_>) -> Result<(Series, u32), JobError> {
    let data = job.param("data").unwrap_or("klines");
    let allow = |own: &[&str]| -> Result<(), JobError> {
        let all: Vec<&str> = offer.common.iter().chain(own).copied().collect();
        only_params(job, &all, &format!("{} {data}", offer.module))
    };
    let limit = |(max, default): (u32, u32)| number_param(job, "limit", 1..=max, default);
    match data {
        "klines" => {
            allow(&["interval", "derive"])?;
            let interval = interval_param(job, "interval", offer.intervals)?;
            let derive = derive_param(job, interval)?;
            let limit = limit(offer.kline_limit)?;
            if let Some(target) = derive {
                let least = 2 * (target.ms / interval.ms) as u32;
                if limit < least {
                    return Err(JobError::new(
                        "params.limit",
                        format!(
                            "{limit} is too small to derive {} from {} (at least {least})",
                            target.name, interval.name
                        ),
                    ));
                }
            }
            Ok((Series::Klines { interval, derive }, limit))
        }
        "funding" | "open_interest" if offer.contracts_only.is_some() => Err(JobError::new(
            "params.data",
            format!("{data} {}", offer.contracts_only.unwrap_or_default()),
        )),
        "funding" => {
            allow(&[])?;
            Ok((Series::Funding, limit(offer.funding_limit)?))
        }
        "open_interest" => {
            allow(&["period"])?;
            let offered: Vec<Interval> = INTERVALS
                .iter()
                .copied()
                .filter(|i| offer.periods.contains(&i.name))
                .collect();
            let period = interval_param(job, "period", &offered)?;
            Ok((
                Series::OpenInterest { period },
                limit(offer.open_interest_limit)?,
            ))
        }
        other => Err(JobError::new(
            "params.data",
            format!("{other:?} is not klines, funding or open_interest"),
        )),
    }
}

/// Symbols one job may name: each is a walk of its own, and a run must have time for a
/// request of each.
pub const MAX_SYMBOLS_PER_JOB: usize = 200;

/// `params.symbols = "BTCUSDT, ETHUSDT"` → one part per symbol, each the job with
/// `symbol` set; no `symbols`, no parts.
pub fn symbol_parts(job: &Job) -> Result<Vec<(String, Job)>, JobError> {
    let Some(list) = job.param("symbols") else {
        return Ok(vec![]);
    };
    let field = "params.symbols";
    if job.param("symbol").is_some() {
        return Err(JobError::new(
            field,
            "a job names one symbol or a list of symbols, not both",
        ));
    }
    let mut symbols: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let named = symbols.len();
    symbols.sort_unstable();
    symbols.dedup();
    if symbols.len() != named {
        return Err(JobError::new(field, "a symbol is listed twice"));
    }
    if symbols.is_empty() || symbols.len() > MAX_SYMBOLS_PER_JOB {
        return Err(JobError::new(
            field,
            format!(
                "{} symbols; a job lists 1 to {MAX_SYMBOLS_PER_JOB}",
                symbols.len()
            ),
        ));
    }
    symbols
        .into_iter()
        .map(|symbol| {
            let mut part = job.clone();
            part.params.remove("symbols");
            part.params.insert("symbol".into(), symbol.to_string());
            symbol_param(&part).map_err(|e| JobError::new(field, e.problem))?;
            Ok((symbol.to_string(), part))
        })
        .collect()
}

/// A whole-number parameter within `range`, or `default`.
pub fn number_param(
    job: &Job,
    name: &str,
    range: std::ops::RangeInclusive<u32>,
    default: u32,
) -> Result<u32, JobError> {
    match job.param(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                JobError::new(
                    format!("params.{name}"),
                    format!(
                        "{v:?} is not a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            }),
    }
}

/// Rejects parameters the job's kind does not take, naming the first.
pub fn only_params(job: &Job, allowed: &[&str], what: &str) -> Result<(), JobError> {
    match job.params.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(JobError::new(
            format!("params.{k}"),
            format!(
                "not a parameter of {what} (expected one of {})",
                allowed.join(", ")
            ),
        )),
    }
}

/// An exact decimal from an exchange's string. Anything else is the reason it is not one.
pub fn exact(value: &Value, what: &str) -> Result<Decimal, String> {
    match value {
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Err(format!("{what}: empty string, expected a decimal"));
            }
            // Plain decimals only: "NaN", "inf", "1e5" and "0x10" are not what an exchange
            // means by a price, whatever a parser would make of them.
            let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
            let plain = digits.bytes().any(|b| b.is_ascii_digit())
                && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                && digits.bytes().filter(|b| *b == b'.').count() <= 1;
            plain
                .then(|| Decimal::from_str(t).ok())
                .flatten()
                .ok_or_else(|| {
                    format!(
                        "{what}: {:?} is not an exact decimal",
                        super::cap_text(t, 40)
                    )
                })
        }
        // A JSON number cannot be NaN or infinite; exchanges that send numbers are taken
        // at their text (serde_json keeps the digits it read up to f64 precision).
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .map_err(|_| format!("{what}: {n} is not an exact decimal")),
        other => Err(format!(
            "{what}: {}, expected a decimal string",
            describe(other)
        )),
    }
}

/// A decimal that must not be negative (prices, volumes, open interest).
pub fn non_negative(value: &Value, what: &str) -> Result<Decimal, String> {
    let d = exact(value, what)?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(format!("{what}: {d} is negative"));
    }
    Ok(d)
}

/// The earliest time an exchange can report (2009-01-01): anything before it is garbage.
const EARLIEST_MS: i64 = 1_230_768_000_000;

/// Epoch milliseconds, as a number or a string of digits.
pub fn epoch_ms(value: &Value, what: &str) -> Result<i64, String> {
    let ms = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("{what}: {}, expected epoch milliseconds", describe(value)))?;
    if ms < EARLIEST_MS {
        return Err(format!(
            "{what}: {ms} is not a plausible epoch-milliseconds time"
        ));
    }
    Ok(ms)
}

/// Epoch milliseconds as a time (values past year 262143 are not).
pub fn time_of(ms: i64, what: &str) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("{what}: {ms} is out of range"))
}

/// A candle still open when it was fetched is not a record. The exchange's clock and
/// ours may disagree by this much, so a candle counts as closed only this long after its
/// end.
pub const CLOSE_GRACE_MS: i64 = 2_000;

/// Whether the candle opening at `open_ms` had closed when the answer was fetched.
pub fn closed(open_ms: i64, interval: Interval, fetched_ms: i64) -> bool {
    open_ms + interval.ms + CLOSE_GRACE_MS <= fetched_ms
}

/// The start of the interval `ms` falls in (intervals are aligned to the epoch, in UTC, as
/// both exchanges align them; weeks to Monday, which is epoch day 4).
pub fn align(ms: i64, interval: Interval) -> i64 {
    const MONDAY_OFFSET_MS: i64 = 4 * 1440 * MINUTE_MS;
    if interval.name == "1w" {
        (ms - MONDAY_OFFSET_MS).div_euclid(interval.ms) * interval.ms + MONDAY_OFFSET_MS
    } else {
        ms.div_euclid(interval.ms) * interval.ms
    }
}

/// Entity key of an instrument's series: `binance/linear/BTCUSDT/1h`.
pub fn series_key(i: &Instrument, series: &str) -> String {
    format!(
        "{}/{}/{}/{}",
        key_part(&i.exchange),
        key_part(&i.market),
        key_part(&i.symbol),
        series
    )
}

/// Where a window walk starts: the step's time, or `lookback_ms` before `now`, aligned
/// down to the series' step.
pub fn window_start(step: &Step, now_ms: i64, lookback_ms: i64, step_ms: i64) -> i64 {
    match step {
        Step::Window { from_ms } => *from_ms,
        _ => (now_ms - lookback_ms).div_euclid(step_ms.max(1)) * step_ms.max(1),
    }
}

/// A quarantined row of a market answer.
pub fn quarantine(
    source: &str,
    job: &str,
    index: usize,
    reason: String,
    row: Value,
) -> Quarantined {
    Quarantined {
        source: source.into(),
        job: job.into(),
        index: Some(index),
        reason,
        record: row,
    }
}

/// Checks a candle's prices hold together (the high is the highest, the low the lowest).
pub fn check_candle(c: &Candle) -> Result<(), String> {
    let top = c.open.max(c.close);
    let bottom = c.open.min(c.close);
    if c.high < top {
        return Err(format!("high {} is below open or close ({top})", c.high));
    }
    if c.low > bottom {
        return Err(format!("low {} is above open or close ({bottom})", c.low));
    }
    Ok(())
}

/// Coarser candles built from complete sets of finer ones (`4h` → `8h`): one per
/// `target` bucket whose every `base` candle is in `candles` (sorted by open time, one
/// per open time). Returns them and the open time of the first incomplete bucket at the
/// end, where the next walk must start again so that bucket is built once it is whole.
pub fn derive(candles: &[Candle], base: Interval, target: Interval) -> (Vec<Candle>, Option<i64>) {
    let per_bucket = (target.ms / base.ms) as usize;
    let mut out = Vec::new();
    let mut incomplete_tail = None;
    let mut i = 0;
    while i < candles.len() {
        let bucket = align(candles[i].open_time.timestamp_millis(), target);
        let mut j = i;
        while j < candles.len() && align(candles[j].open_time.timestamp_millis(), target) == bucket
        {
            j += 1;
        }
        let set = &candles[i..j];
        let complete = set.len() == per_bucket
            && set
                .iter()
                .enumerate()
                .all(|(k, c)| c.open_time.timestamp_millis() == bucket + k as i64 * base.ms);
        if complete {
            let first = &set[0];
            let last = &set[set.len() - 1];
            let sum = |f: fn(&Candle) -> Option<Decimal>| -> Option<Decimal> {
                set.iter().map(f).sum::<Option<Decimal>>()
            };
            out.push(Candle {
                instrument: first.instrument.clone(),
                interval: target.name.to_string(),
                open_time: first.open_time,
                open: first.open,
                high: set.iter().map(|c| c.high).max().unwrap_or(first.high),
                low: set.iter().map(|c| c.low).min().unwrap_or(first.low),
                close: last.close,
                volume: set.iter().map(|c| c.volume).sum(),
                quote_volume: sum(|c| c.quote_volume),
                trades: set.iter().map(|c| c.trades).sum::<Option<u64>>(),
                derived_from: Some(base.name.to_string()),
            });
        } else if j == candles.len() {
            // The set may still fill in: the next walk starts from the bucket.
            incomplete_tail = Some(bucket);
        }
        i = j;
    }
    (out, incomplete_tail)
}

/// What a page of candles comes to: the records, the next step of this walk, and where
/// the next walk starts when this one ends here.
#[derive(Debug, Clone, PartialEq)]
pub struct CandlePage {
    pub candles: Vec<Candle>,
    pub next: Option<Step>,
    pub resume_at: Option<Step>,
}

impl CandlePage {
    /// The walk's page: one record per candle, keyed `key`, observed at its open time.
    pub fn into_page(
        self,
        source: &str,
        job: &str,
        key: &str,
        fetched_at: DateTime<Utc>,
        quarantined: Vec<Quarantined>,
        size: usize,
    ) -> Page {
        let records = self
            .candles
            .into_iter()
            .map(|c| {
                let at = c.open_time;
                Envelope::new(
                    source,
                    job,
                    key.to_string(),
                    Some(at),
                    fetched_at,
                    Payload::Candle(c),
                )
            })
            .collect();
        Page {
            normalised: Normalised {
                records,
                quarantined,
                dropped_values: vec![],
            },
            next: self.next,
            size,
            resume_at: self.resume_at,
        }
    }
}

/// Turns a page's closed candles (sorted, one per open time) into records and the walk's
/// next step. `first_open_ms` is the still-open candle the page ended with, if any: the
/// next walk starts there, so it is collected once, closed. `more` says the exchange may
/// have candles after the page's last (a full page, or a window ending before now).
/// With `derive`, only whole sets become (coarser) records, and the walk starts again at
/// the first bucket not yet whole.
pub fn candle_page(
    closed: Vec<Candle>,
    first_open_ms: Option<i64>,
    from_ms: i64,
    interval: Interval,
    derive_to: Option<Interval>,
    more: bool,
) -> CandlePage {
    let last_end = closed
        .last()
        .map(|c| c.open_time.timestamp_millis() + interval.ms);
    let (candles, after) = match derive_to {
        Some(target) => {
            let (out, tail) = derive(&closed, interval, target);
            let after = tail
                .or(first_open_ms.map(|o| align(o, target)))
                .or(last_end)
                .unwrap_or(from_ms);
            (out, after)
        }
        None => (closed, first_open_ms.or(last_end).unwrap_or(from_ms)),
    };
    let after = after.max(from_ms);
    let next = (more && first_open_ms.is_none() && after > from_ms)
        .then_some(Step::Window { from_ms: after });
    let resume_at = next.is_none().then_some(Step::Window { from_ms: after });
    CandlePage {
        candles,
        next,
        resume_at,
    }
}

/// How long to look back on a job's first run: `params.lookback` (`90m`, `12h`, `7d`).
pub fn lookback_param(job: &Job, default_ms: i64, max_ms: i64) -> Result<i64, JobError> {
    let Some(v) = job.param("lookback") else {
        return Ok(default_ms);
    };
    let field = "params.lookback";
    let bad = || {
        JobError::new(
            field,
            format!("{v:?} is not a duration such as 90m, 12h or 7d"),
        )
    };
    let (digits, unit) = v.split_at(v.len().saturating_sub(1));
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "m" => MINUTE_MS,
        "h" => 60 * MINUTE_MS,
        "d" => 1440 * MINUTE_MS,
        _ => return Err(bad()),
    };
    let ms = n
        .checked_mul(unit_ms)
        .filter(|ms| *ms > 0)
        .ok_or_else(bad)?;
    if ms > max_ms {
        return Err(JobError::new(
            field,
            format!(
                "{v} is longer than this data goes back ({} days)",
                max_ms / (1440 * MINUTE_MS)
            ),
        ));
    }
    Ok(ms)
}

/// The query value `name` of an answered URL (the walk's own step is in it).
pub fn query_value(url: &str, name: &str) -> Option<String> {
    super::request_of_url(url)?
        .query
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decimals_are_exact_or_a_reason() {
        assert_eq!(
            exact(&json!("67321.50"), "close").unwrap().to_string(),
            "67321.50"
        );
        assert_eq!(
            exact(&json!("-0.00012"), "rate").unwrap().to_string(),
            "-0.00012"
        );
        for (bad, why) in [
            (json!("NaN"), "not an exact decimal"),
            (json!("inf"), "not an exact decimal"),
            (json!("-Infinity"), "not an exact decimal"),
            (json!("1e5"), "not an exact decimal"),
            (json!(""), "empty string"),
            (json!(null), "null"),
            (json!({}), "object"),
        ] {
            let err = exact(&bad, "close").unwrap_err();
            assert!(
                err.starts_with("close: ") && err.contains(why),
                "{bad}: {err}"
            );
        }
        assert!(non_negative(&json!("-1"), "volume")
            .unwrap_err()
            .contains("negative"));
        assert_eq!(non_negative(&json!("0"), "volume").unwrap(), Decimal::ZERO);
    }

    #[test]
    fn times_are_epoch_milliseconds_after_2009() {
        assert_eq!(
            epoch_ms(&json!(1764547200000_i64), "t").unwrap(),
            1764547200000
        );
        assert_eq!(
            epoch_ms(&json!("1764547200000"), "t").unwrap(),
            1764547200000
        );
        assert!(epoch_ms(&json!(1764547200), "t")
            .unwrap_err()
            .contains("plausible"));
        assert!(epoch_ms(&json!("soon"), "t").is_err());
        assert!(epoch_ms(&json!(null), "t").is_err());
    }

    fn hour() -> Interval {
        INTERVALS[5]
    }

    #[test]
    fn a_candle_is_closed_only_after_its_end_and_the_grace() {
        let open = 1_764_547_200_000;
        assert!(!closed(open, hour(), open + 3_600_000));
        assert!(!closed(open, hour(), open + 3_600_000 + CLOSE_GRACE_MS - 1));
        assert!(closed(open, hour(), open + 3_600_000 + CLOSE_GRACE_MS));
    }

    #[test]
    fn intervals_align_to_utc_and_weeks_to_monday() {
        let t = 1_764_590_400_123; // 2025-12-01T12:00:00.123Z, a Monday
        assert_eq!(align(t, hour()), 1_764_590_400_000);
        let week = INTERVALS.iter().find(|i| i.name == "1w").copied().unwrap();
        assert_eq!(align(t, week), 1_764_547_200_000); // Monday 00:00
    }

    fn candle(open_ms: i64, o: i64, h: i64, l: i64, c: i64) -> Candle {
        Candle {
            instrument: Instrument {
                exchange: "binance".into(),
                market: "linear".into(),
                symbol: "BTCUSDT".into(),
            },
            interval: "4h".into(),
            open_time: DateTime::from_timestamp_millis(open_ms).unwrap(),
            open: o.into(),
            high: h.into(),
            low: l.into(),
            close: c.into(),
            volume: 2.into(),
            quote_volume: Some(10.into()),
            trades: Some(3),
            derived_from: None,
        }
    }

    #[test]
    fn derived_candles_come_only_from_complete_sets() {
        let four = INTERVALS.iter().find(|i| i.name == "4h").copied().unwrap();
        let eight = any_interval("8h").unwrap();
        let h4 = four.ms;
        let base = 1_764_547_200_000; // an 8h boundary
                                      // Bucket 1 complete, bucket 2 missing its second half (at the end: may fill in),
        let set = vec![
            candle(base, 10, 15, 9, 12),
            candle(base + h4, 12, 20, 11, 18),
            candle(base + 2 * h4, 18, 19, 17, 17),
        ];
        let (out, tail) = derive(&set, four, eight);
        assert_eq!(out.len(), 1);
        let d = &out[0];
        assert_eq!(
            (d.open, d.high, d.low, d.close, d.volume),
            (10.into(), 20.into(), 9.into(), 18.into(), 4.into())
        );
        assert_eq!((d.trades, d.quote_volume), (Some(6), Some(20.into())));
        assert_eq!(d.derived_from.as_deref(), Some("4h"));
        assert_eq!(d.interval, "8h");
        assert_eq!(tail, Some(base + 2 * h4));
        // A gap inside a bucket that is not at the end never yields a candle.
        let gappy = vec![
            candle(base + h4, 1, 1, 1, 1),
            candle(base + 2 * h4, 1, 1, 1, 1),
            candle(base + 3 * h4, 1, 1, 1, 1),
        ];
        let (out, tail) = derive(&gappy, four, eight);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].open_time.timestamp_millis(), base + 2 * h4);
        assert_eq!(tail, None);
    }

    #[test]
    fn candle_prices_must_hold_together() {
        assert!(check_candle(&candle(0, 10, 15, 9, 12)).is_ok());
        assert!(check_candle(&candle(0, 10, 11, 9, 12))
            .unwrap_err()
            .contains("high"));
        assert!(check_candle(&candle(0, 10, 15, 11, 12))
            .unwrap_err()
            .contains("low"));
    }

    #[test]
    fn a_list_of_symbols_is_one_part_each() {
        let job = |params: Value| {
            Job::from_value(&json!({"job": "majors", "source": "binance", "params": params}))
                .unwrap()
        };
        let parts = symbol_parts(&job(
            json!({"symbols": "ETHUSDT, BTCUSDT", "interval": "1h"}),
        ))
        .unwrap();
        let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["BTCUSDT", "ETHUSDT"]);
        let (_, btc) = &parts[0];
        assert_eq!(
            (
                btc.name.as_str(),
                btc.param("symbol"),
                btc.param("symbols"),
                btc.param("interval")
            ),
            ("majors", Some("BTCUSDT"), None, Some("1h"))
        );
        assert!(symbol_parts(&job(json!({"symbol": "BTCUSDT"})))
            .unwrap()
            .is_empty());
        for (params, why) in [
            (
                json!({"symbols": "BTCUSDT", "symbol": "ETHUSDT"}),
                "not both",
            ),
            (json!({"symbols": "BTCUSDT,BTCUSDT"}), "twice"),
            (json!({"symbols": " , "}), "0 symbols"),
            (
                json!({"symbols": "BTCUSDT,eth usdt"}),
                "not an exchange symbol",
            ),
        ] {
            let err = symbol_parts(&job(params.clone())).unwrap_err();
            assert_eq!(err.field, "params.symbols", "{params}");
            assert!(err.problem.contains(why), "{params}: {err}");
        }
    }
}
