//! The exchange personalities: Binance (`/fapi/v1/klines`, `/api/v3/klines`,
//! `/fapi/v1/fundingRate`, `/futures/data/openInterestHist`) and Bybit v5
//! (`/v5/market/kline`, `/v5/market/open-interest`, `/v5/market/funding/history`), with
//! their limit models:
//!
//! - **Binance**: request weight per calendar minute (`weight_budget`), reported on every
//!   answer in `X-MBX-USED-WEIGHT-1M`; over the budget a 429 with `Retry-After` (to the
//!   next minute); [`BAN_AFTER`] more requests over it in the same minute earn a 418 IP
//!   ban for `ban_seconds`, every request answered 418 until it ends. An unknown symbol is
//!   `400 {"code":-1121,"msg":"Invalid symbol."}`.
//! - **Bybit**: requests per fixed 5-second window (`window_limit`), with
//!   `X-Bapi-Limit`, `X-Bapi-Limit-Status` and `X-Bapi-Limit-Reset-Timestamp`; over it,
//!   `retCode` 10006 on an HTTP 200; [`BAN_AFTER`] more in the same window earn HTTP 403
//!   "access too frequent" for `ban_seconds`. Rows newest first; open interest pages by
//!   `nextPageCursor` (percent-encoded, as Bybit's are), and about half the page
//!   boundaries repeat the last row of a page as the first of the next.
//!
//! Prices follow a seeded, deterministic path in real time, so every answer about the same
//! candle agrees once it has closed; the candle still open moves with the clock. A candle
//! that closed less than [`HOLD_BACK_MS`] ago is not served yet (nor anything after it):
//! whether it is closed never depends on a few milliseconds between the simulator and the
//! collector. What a correct collector must make of each answer is written from the model
//! (the closed, well-formed rows), not by parsing the body.

use super::{h, unit, Answer, Expected, SimConfig};
use chrono::{DateTime, Utc};
use pricewire_pipeline::envelope::{Candle, FundingRate, Instrument, OpenInterest, Payload};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Symbols both exchanges list (anything else is an unknown symbol).
pub const SYMBOLS: &[&str] = &[
    "BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "AVAXUSDT",
    "LINKUSDT", "DOTUSDT", "TRXUSDT", "LTCUSDT", "BCHUSDT", "NEARUSDT", "APTUSDT", "ARBUSDT",
    "OPUSDT", "SUIUSDT", "ATOMUSDT", "FILUSDT",
];
/// A candle closed less than this long ago is not served yet.
pub const HOLD_BACK_MS: i64 = 3_000;
/// Requests over the limit, in one minute (Binance) or window (Bybit), beyond the first
/// refused one, that earn a ban.
pub const BAN_AFTER: u32 = 3;
/// Bybit's limit window.
pub const BYBIT_WINDOW_MS: i64 = 5_000;
/// Funding every 8 hours.
const FUNDING_EVERY_MS: i64 = 8 * 3_600_000;
const MINUTE_MS: i64 = 60_000;

/// Which exchange a simulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    Binance,
    Bybit,
}

/// What the limit model remembers between requests.
#[derive(Debug, Default)]
pub struct Limits {
    /// Binance: the calendar minute (epoch ms) and the weight used in it. Bybit: the
    /// window start and the requests in it.
    window_start: i64,
    used: u32,
    refused: u32,
    banned_until: i64,
}

/// The limit model's verdict on a request.
pub enum Admission {
    Go {
        headers: Vec<(&'static str, String)>,
    },
    Refused(Answer),
}

/// Binance's weight of a request.
pub fn binance_weight(path: &str, query: &BTreeMap<String, String>) -> u32 {
    let limit: u32 = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(500);
    match path {
        "/fapi/v1/klines" => match limit {
            0..=99 => 1,
            100..=499 => 2,
            500..=1000 => 5,
            _ => 10,
        },
        "/api/v3/klines" => 2,
        _ => 1,
    }
}

/// Applies the exchange's limit to a request arriving at `now_ms`.
pub fn admit(
    exchange: Exchange,
    config: &SimConfig,
    limits: &mut Limits,
    path: &str,
    query: &BTreeMap<String, String>,
    now_ms: i64,
) -> Admission {
    let ban_ms = config.ban_seconds as i64 * 1000;
    match exchange {
        Exchange::Binance => {
            let weight = binance_weight(path, query);
            let minute = now_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
            if minute != limits.window_start {
                limits.window_start = minute;
                limits.used = 0;
                limits.refused = 0;
            }
            let to_next = ((minute + MINUTE_MS - now_ms) / 1000).max(1);
            if now_ms < limits.banned_until {
                let wait = ((limits.banned_until - now_ms) / 1000).max(1);
                return Admission::Refused(binance_error(
                    418,
                    json!({"code": -1003, "msg": format!("Way too many requests; IP banned until {}.", limits.banned_until)}),
                    wait,
                    limits.used,
                ));
            }
            limits.used += weight;
            match config.weight_budget {
                Some(budget) if limits.used > budget => {
                    limits.refused += 1;
                    if limits.refused > BAN_AFTER + 1 {
                        limits.banned_until = now_ms + ban_ms;
                        return Admission::Refused(binance_error(
                            418,
                            json!({"code": -1003, "msg": "Way too many requests; IP banned."}),
                            config.ban_seconds.max(1) as i64,
                            limits.used,
                        ));
                    }
                    Admission::Refused(binance_error(
                        429,
                        json!({"code": -1003, "msg": format!("Too many requests; current limit of IP is {budget} request weight per 1 MINUTE.")}),
                        to_next,
                        limits.used,
                    ))
                }
                _ => Admission::Go {
                    headers: vec![("x-mbx-used-weight-1m", limits.used.to_string())],
                },
            }
        }
        Exchange::Bybit => {
            let window = now_ms.div_euclid(BYBIT_WINDOW_MS) * BYBIT_WINDOW_MS;
            if window != limits.window_start {
                limits.window_start = window;
                limits.used = 0;
                limits.refused = 0;
            }
            if now_ms < limits.banned_until {
                return Admission::Refused(Answer::error(403, "access too frequent".into()));
            }
            limits.used += 1;
            let Some(limit) = config.window_limit else {
                return Admission::Go { headers: vec![] };
            };
            let headers = vec![
                ("x-bapi-limit", limit.to_string()),
                (
                    "x-bapi-limit-status",
                    limit.saturating_sub(limits.used).to_string(),
                ),
                (
                    "x-bapi-limit-reset-timestamp",
                    (window + BYBIT_WINDOW_MS).to_string(),
                ),
            ];
            if limits.used <= limit {
                return Admission::Go { headers };
            }
            limits.refused += 1;
            if limits.refused > BAN_AFTER + 1 {
                limits.banned_until = now_ms + ban_ms;
                return Admission::Refused(Answer::error(403, "access too frequent".into()));
            }
            let mut a = Answer::ok(
                json!({"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "retExtInfo": {}, "time": now_ms})
                    .to_string(),
                vec![],
                vec![],
            );
            a.headers = headers;
            Admission::Refused(a)
        }
    }
}

fn binance_error(status: u16, body: Value, retry_after_s: i64, used: u32) -> Answer {
    let mut a = Answer::error(status, body.to_string());
    a.headers = vec![
        ("retry-after", retry_after_s.to_string()),
        ("x-mbx-used-weight-1m", used.to_string()),
    ];
    a
}

fn interval_ms(name: &str) -> Option<i64> {
    pricewire_pipeline::sources::market::INTERVALS
        .iter()
        .chain(pricewire_pipeline::sources::market::BINANCE_ONLY)
        .find(|i| i.name == name || i.bybit == name)
        .map(|i| i.ms)
}

fn interval_name(ms: i64) -> &'static str {
    pricewire_pipeline::sources::market::INTERVALS
        .iter()
        .chain(pricewire_pipeline::sources::market::BINANCE_ONLY)
        .find(|i| i.ms == ms)
        .map_or("?", |i| i.name)
}

fn base_price(seed: u64, symbol: &str) -> f64 {
    let i = SYMBOLS.iter().position(|s| *s == symbol).unwrap_or(0);
    // Some dear, some cheap: 60000, 3000, …, down to fractions of a dollar.
    60_000.0 / 2f64.powi(i as i32) * (0.8 + 0.4 * unit(h(seed, &[symbol, "base"])))
}

/// The price path: deterministic in (seed, exchange, symbol, time), moving a little each
/// minute around a slow wave.
fn price_at(seed: u64, exchange: &str, symbol: &str, t_ms: i64) -> f64 {
    let base = base_price(seed, symbol);
    let wave = (t_ms as f64 / 25_200_000.0).sin() * 0.03;
    let minute = t_ms.div_euclid(MINUTE_MS);
    let noise = (unit(h(seed, &[exchange, symbol, &minute.to_string()])) - 0.5) * 0.01;
    base * (1.0 + wave + noise)
}

/// An exact decimal with `dp` places, as exchanges send them.
fn dec(x: f64, dp: u32) -> Decimal {
    Decimal::from_f64(x).unwrap_or_default().round_dp(dp)
}

fn places(symbol: &str, seed: u64) -> u32 {
    if base_price(seed, symbol) > 100.0 {
        2
    } else {
        5
    }
}

/// One candle, as the model has it (`now` decides how far the open one has got).
fn candle(
    seed: u64,
    exchange: &str,
    market: &str,
    symbol: &str,
    interval: i64,
    open_ms: i64,
    now_ms: i64,
) -> Candle {
    let dp = places(symbol, seed);
    let end = (open_ms + interval).min(now_ms);
    let open = price_at(seed, exchange, symbol, open_ms);
    let close = price_at(seed, exchange, symbol, end);
    let wick = 1.0 + 0.004 * unit(h(seed, &[exchange, symbol, &open_ms.to_string(), "wick"]));
    let volume = 10.0 + 1000.0 * unit(h(seed, &[exchange, symbol, &open_ms.to_string(), "vol"]));
    let open_d = dec(open, dp);
    let close_d = dec(close, dp);
    Candle {
        instrument: Instrument {
            exchange: exchange.into(),
            market: market.into(),
            symbol: symbol.into(),
        },
        interval: interval_name(interval).into(),
        open_time: DateTime::from_timestamp_millis(open_ms).unwrap_or_default(),
        open: open_d,
        high: dec(open.max(close) * wick, dp).max(open_d.max(close_d)),
        low: dec(open.min(close) / wick, dp).min(open_d.min(close_d)),
        close: close_d,
        volume: dec(volume, 3),
        quote_volume: Some(dec(volume * (open + close) / 2.0, 2)),
        trades: match exchange {
            "binance" => Some(50 + (volume as u64) * 3),
            _ => None,
        },
        derived_from: None,
    }
}

fn funding_rate(seed: u64, exchange: &str, symbol: &str, t_ms: i64) -> Decimal {
    let u = unit(h(seed, &[exchange, symbol, &t_ms.to_string(), "funding"]));
    // Mostly small and positive, a quarter of the time negative.
    Decimal::new(((u - 0.25) * 4.0 * 10_000.0).round() as i64, 8)
}

fn open_interest(seed: u64, exchange: &str, symbol: &str, t_ms: i64) -> Decimal {
    let base = 1_000_000.0 / base_price(seed, symbol).max(0.01);
    let u = unit(h(seed, &[exchange, symbol, &t_ms.to_string(), "oi"]));
    dec(base * (1.0 + 0.2 * u), 3)
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn q_ms(query: &BTreeMap<String, String>, name: &str) -> Option<i64> {
    query.get(name).and_then(|v| v.parse().ok())
}

/// One way to break a row, and its reason (what the collector must quarantine).
fn corrupt(rng: &mut fastrand::Rng, row: &mut Value) -> String {
    match (rng.u8(0..5), row) {
        (0, Value::Array(cells)) => {
            cells[2] = json!("NaN");
            "high is NaN".into()
        }
        (1, Value::Array(cells)) => {
            cells[4] = json!("inf");
            "close is inf".into()
        }
        (2, Value::Array(cells)) => {
            cells[1] = json!("");
            "open is empty".into()
        }
        (3, Value::Array(cells)) => {
            cells.truncate(3);
            "short row".into()
        }
        (_, Value::Array(cells)) => {
            cells[3] = Value::Null;
            "low is null".into()
        }
        (k, Value::Object(o)) => {
            let field = o
                .keys()
                .find(|k| k.contains("Rate") || k.contains("nterest"))
                .cloned()
                .unwrap_or_default();
            o.insert(
                field.clone(),
                [
                    json!("NaN"),
                    json!(""),
                    Value::Null,
                    json!("inf"),
                    json!({}),
                ][k as usize % 5]
                    .clone(),
            );
            format!("{field} unusable")
        }
        (_, other) => {
            *other = Value::Null;
            "row is null".into()
        }
    }
}

/// The times on a `step` grid from `start` (rounded up) to `end`.
fn grid(start: i64, end: i64, step: i64) -> Vec<i64> {
    let first = start.div_euclid(step) * step + if start.rem_euclid(step) == 0 { 0 } else { step };
    (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= end)
        .collect()
}

/// One page of `times` (ascending) as the exchange gives it: Binance the first `limit`,
/// ascending; Bybit the newest `limit`, newest first.
fn page_of(exchange: Exchange, mut times: Vec<i64>, limit: usize) -> Vec<i64> {
    match exchange {
        Exchange::Binance => times.truncate(limit),
        Exchange::Bybit => {
            let skip = times.len().saturating_sub(limit);
            times.drain(..skip);
            times.reverse();
        }
    }
    times
}

/// An unknown symbol, in the exchange's own words.
fn unknown_symbol(exchange: Exchange, symbol: &str) -> Answer {
    match exchange {
        Exchange::Binance => Answer::error(
            400,
            json!({"code": -1121, "msg": "Invalid symbol."}).to_string(),
        ),
        Exchange::Bybit => Answer::ok(
            json!({"retCode": 10001, "retMsg": format!("params error: symbol {symbol} invalid"), "result": {}, "retExtInfo": {}, "time": 0})
                .to_string(),
            vec![],
            vec![],
        ),
    }
}

/// The answer to a request the limit model let through, at `now_ms`.
pub fn answer(
    exchange: Exchange,
    config: &SimConfig,
    path: &str,
    query: &BTreeMap<String, String>,
    now_ms: i64,
    rng: &mut fastrand::Rng,
) -> Answer {
    let symbol = query.get("symbol").cloned().unwrap_or_default();
    if !SYMBOLS.contains(&symbol.as_str()) {
        return unknown_symbol(exchange, &symbol);
    }
    let seed = config.seed;
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(500);
    let (name, market) = match (exchange, path) {
        (Exchange::Binance, "/api/v3/klines") => ("binance", "spot".to_string()),
        (Exchange::Binance, _) => ("binance", "linear".to_string()),
        (Exchange::Bybit, _) => (
            "bybit",
            query
                .get("category")
                .cloned()
                .unwrap_or_else(|| "linear".into()),
        ),
    };
    let instrument = Instrument {
        exchange: name.into(),
        market: market.clone(),
        symbol: symbol.clone(),
    };
    let key = |suffix: &str| format!("{name}/{market}/{symbol}/{suffix}");
    let mut expected = vec![];
    let mut malformed = vec![];
    let mut rows: Vec<Value> = vec![];
    let mut push = |row: Value, e: Option<(String, i64, Payload)>, rng: &mut fastrand::Rng| {
        let index = rows.len();
        let mut row = row;
        if e.is_some() && rng.f64() < config.malformed_rate {
            malformed.push(corrupt(rng, &mut row));
        } else if let Some((key, t, payload)) = e {
            expected.push(Expected {
                index,
                key,
                upstream_time: Some(time(t)),
                payload,
            });
        }
        rows.push(row);
    };
    let klines = matches!(
        path,
        "/fapi/v1/klines" | "/api/v3/klines" | "/v5/market/kline"
    );
    if klines {
        let Some(interval) = query.get("interval").and_then(|i| interval_ms(i)) else {
            return Answer::error(
                400,
                json!({"code": -1120, "msg": "Invalid interval."}).to_string(),
            );
        };
        let (start, end) = match exchange {
            Exchange::Binance => (
                q_ms(query, "startTime").unwrap_or(now_ms - limit as i64 * interval),
                q_ms(query, "endTime").unwrap_or(i64::MAX),
            ),
            Exchange::Bybit => (
                q_ms(query, "start").unwrap_or(now_ms - limit as i64 * interval),
                q_ms(query, "end").unwrap_or(now_ms),
            ),
        };
        // Just closed: not served yet, nor what follows.
        let opens: Vec<i64> = grid(start, end.min(now_ms), interval)
            .into_iter()
            .take_while(|t| !(t + interval <= now_ms && now_ms < t + interval + HOLD_BACK_MS))
            .collect();
        let opens = page_of(exchange, opens, limit);
        for open in opens {
            let c = candle(seed, name, &market, &symbol, interval, open, now_ms);
            let is_closed = open + interval + HOLD_BACK_MS <= now_ms;
            let row = match exchange {
                Exchange::Binance => json!([
                    open,
                    c.open.to_string(),
                    c.high.to_string(),
                    c.low.to_string(),
                    c.close.to_string(),
                    c.volume.to_string(),
                    open + interval - 1,
                    c.quote_volume.unwrap_or_default().to_string(),
                    c.trades.unwrap_or_default(),
                    "0",
                    "0",
                    "0"
                ]),
                Exchange::Bybit => json!([
                    open.to_string(),
                    c.open.to_string(),
                    c.high.to_string(),
                    c.low.to_string(),
                    c.close.to_string(),
                    c.volume.to_string(),
                    c.quote_volume.unwrap_or_default().to_string()
                ]),
            };
            let e = is_closed.then(|| (key(interval_name(interval)), open, Payload::Candle(c)));
            push(row, e, rng);
        }
    } else if path.contains("unding") {
        let start = q_ms(query, "startTime").unwrap_or(now_ms - 7 * 86_400_000);
        let end = q_ms(query, "endTime").unwrap_or(now_ms).min(now_ms);
        let times = page_of(exchange, grid(start, end, FUNDING_EVERY_MS), limit);
        for t in times {
            let rate = funding_rate(seed, name, &symbol, t);
            let mark = dec(price_at(seed, name, &symbol, t), places(&symbol, seed));
            let (row, f) = match exchange {
                Exchange::Binance => (
                    json!({"symbol": symbol, "fundingRate": rate.to_string(), "fundingTime": t, "markPrice": mark.to_string()}),
                    FundingRate {
                        instrument: instrument.clone(),
                        rate,
                        funding_time: time(t),
                        mark_price: Some(mark),
                    },
                ),
                Exchange::Bybit => (
                    json!({"symbol": symbol, "fundingRate": rate.to_string(), "fundingRateTimestamp": t.to_string()}),
                    FundingRate {
                        instrument: instrument.clone(),
                        rate,
                        funding_time: time(t),
                        mark_price: None,
                    },
                ),
            };
            push(row, Some((key("funding"), t, Payload::FundingRate(f))), rng);
        }
    } else {
        let period_name = query
            .get("period")
            .or_else(|| query.get("intervalTime"))
            .cloned()
            .unwrap_or_default();
        let ours = match period_name.as_str() {
            "5min" => "5m",
            "15min" => "15m",
            "30min" => "30m",
            other => other,
        }
        .to_string();
        let Some(period) = interval_ms(&ours) else {
            return Answer::error(
                400,
                json!({"code": -1120, "msg": "Invalid period."}).to_string(),
            );
        };
        let start = q_ms(query, "startTime").unwrap_or(now_ms - 86_400_000);
        let end = q_ms(query, "endTime").unwrap_or(now_ms).min(now_ms);
        // Bybit's cursor: rows older than the time it names.
        let before = query
            .get("cursor")
            .and_then(|c| c.split("lasttime=").nth(1))
            .and_then(|t| t.parse::<i64>().ok());
        let mut times = grid(start, end, period);
        let mut next_cursor = String::new();
        match exchange {
            Exchange::Binance => times.truncate(limit),
            Exchange::Bybit => {
                times.reverse();
                if let Some(b) = before {
                    // About half the boundaries repeat the previous page's last row.
                    let repeat = unit(h(seed, &[&symbol, &b.to_string(), "repeat"])) < 0.5;
                    times.retain(|t| *t < b || (repeat && *t == b));
                }
                if times.len() > limit {
                    times.truncate(limit);
                    let last = times[times.len() - 1];
                    next_cursor = format!("lastid%3D{}%26lasttime%3D{last}", last / 1000);
                }
            }
        }
        for t in times {
            let oi = open_interest(seed, name, &symbol, t);
            let (row, o) = match exchange {
                Exchange::Binance => {
                    let value = dec(
                        oi.to_string().parse::<f64>().unwrap_or(0.0)
                            * price_at(seed, name, &symbol, t),
                        2,
                    );
                    (
                        json!({"symbol": symbol, "sumOpenInterest": oi.to_string(), "sumOpenInterestValue": value.to_string(), "timestamp": t}),
                        OpenInterest {
                            instrument: instrument.clone(),
                            period: ours.clone(),
                            open_interest: oi,
                            value: Some(value),
                            timestamp: time(t),
                        },
                    )
                }
                Exchange::Bybit => (
                    json!({"openInterest": oi.to_string(), "timestamp": t.to_string()}),
                    OpenInterest {
                        instrument: instrument.clone(),
                        period: ours.clone(),
                        open_interest: oi,
                        value: None,
                        timestamp: time(t),
                    },
                ),
            };
            push(
                row,
                Some((key(&format!("oi/{ours}")), t, Payload::OpenInterest(o))),
                rng,
            );
        }
        if exchange == Exchange::Bybit {
            let body = json!({"retCode": 0, "retMsg": "OK", "result": {"category": market, "symbol": symbol, "list": rows, "nextPageCursor": next_cursor}, "retExtInfo": {}, "time": now_ms});
            return Answer::ok(body.to_string(), expected, malformed);
        }
    }
    let body = match exchange {
        Exchange::Binance => Value::Array(rows),
        Exchange::Bybit => {
            json!({"retCode": 0, "retMsg": "OK", "result": {"category": market, "symbol": symbol, "list": rows}, "retExtInfo": {}, "time": now_ms})
        }
    };
    Answer::ok(body.to_string(), expected, malformed)
}

#[cfg(test)]
mod tests {
    use super::super::query_of;
    use super::*;

    const T: i64 = 1_796_083_200_000 + 30 * MINUTE_MS + 17_000;

    fn config() -> SimConfig {
        SimConfig {
            weight_budget: Some(20),
            window_limit: Some(3),
            ban_seconds: 60,
            ..SimConfig::default()
        }
    }

    #[test]
    fn binance_klines_are_ascending_closed_ones_expected_the_open_one_not() {
        let q = query_of(&[
            ("symbol", "BTCUSDT"),
            ("interval", "1m"),
            ("startTime", &(T - 5 * MINUTE_MS).to_string()),
            ("limit", "100"),
        ]);
        let a = answer(
            Exchange::Binance,
            &config(),
            "/fapi/v1/klines",
            &q,
            T,
            &mut fastrand::Rng::with_seed(1),
        );
        let rows: Vec<Value> = serde_json::from_str(&a.body).unwrap();
        // From the first whole minute after the start up to the open one.
        assert_eq!(rows.len(), 5);
        assert_eq!(a.expected.len(), 4);
        let opens: Vec<i64> = rows.iter().map(|r| r[0].as_i64().unwrap()).collect();
        assert!(opens.windows(2).all(|w| w[1] - w[0] == MINUTE_MS));
        assert_eq!(a.expected[0].key, "binance/linear/BTCUSDT/1m");
        // The same candle agrees in a later answer once closed.
        let later = answer(
            Exchange::Binance,
            &config(),
            "/fapi/v1/klines",
            &q,
            T + 2 * MINUTE_MS,
            &mut fastrand::Rng::with_seed(2),
        );
        assert_eq!(later.expected[..4], a.expected[..]);
        // Just after a close: the candle is held back.
        let at_close = T - 17_000 + 1_000;
        let held = answer(
            Exchange::Binance,
            &config(),
            "/fapi/v1/klines",
            &q,
            at_close,
            &mut fastrand::Rng::with_seed(3),
        );
        let rows: Vec<Value> = serde_json::from_str(&held.body).unwrap();
        assert_eq!(
            rows.last().unwrap()[0].as_i64().unwrap(),
            T - 17_000 - 2 * MINUTE_MS
        );
        let bad = answer(
            Exchange::Binance,
            &config(),
            "/fapi/v1/klines",
            &query_of(&[("symbol", "NOPE"), ("interval", "1m")]),
            T,
            &mut fastrand::Rng::with_seed(1),
        );
        assert_eq!((bad.status, bad.body.contains("-1121")), (400, true));
    }

    #[test]
    fn binance_weight_goes_429_then_418_and_the_ban_lasts() {
        let c = config();
        let mut l = Limits::default();
        let q = query_of(&[("symbol", "BTCUSDT"), ("interval", "1m"), ("limit", "499")]);
        let mut statuses = vec![];
        for i in 0..16 {
            statuses.push(
                match admit(Exchange::Binance, &c, &mut l, "/fapi/v1/klines", &q, T + i) {
                    Admission::Go { headers } => {
                        assert_eq!(headers[0].1, (2 * (i + 1)).to_string());
                        200
                    }
                    Admission::Refused(a) => a.status,
                },
            );
        }
        assert_eq!(statuses[..10], [200; 10]);
        assert_eq!(statuses[10..14], [429; 4]);
        assert_eq!(statuses[14..], [418; 2]);
        // A new minute does not lift a ban.
        assert!(matches!(
            admit(
                Exchange::Binance,
                &c,
                &mut l,
                "/fapi/v1/klines",
                &q,
                T + 45_000
            ),
            Admission::Refused(Answer { status: 418, .. })
        ));
        assert!(matches!(
            admit(
                Exchange::Binance,
                &c,
                &mut l,
                "/fapi/v1/klines",
                &q,
                T + 61_000
            ),
            Admission::Go { .. }
        ));
    }

    #[test]
    fn bybit_limits_answer_10006_on_200_then_403() {
        let c = config();
        let mut l = Limits::default();
        let q = query_of(&[]);
        let window = T.div_euclid(BYBIT_WINDOW_MS) * BYBIT_WINDOW_MS;
        let mut seen = vec![];
        for i in 0..8 {
            seen.push(
                match admit(
                    Exchange::Bybit,
                    &c,
                    &mut l,
                    "/v5/market/kline",
                    &q,
                    window + i,
                ) {
                    Admission::Go { headers } => {
                        assert_eq!(headers[2].1, (window + BYBIT_WINDOW_MS).to_string());
                        "go".to_string()
                    }
                    Admission::Refused(a) if a.status == 200 => {
                        assert!(a.body.contains("10006"));
                        "10006".into()
                    }
                    Admission::Refused(a) => a.status.to_string(),
                },
            );
        }
        assert_eq!(
            seen,
            ["go", "go", "go", "10006", "10006", "10006", "10006", "403"]
        );
    }

    #[test]
    fn bybit_rows_are_newest_first_and_cursor_pages_may_repeat_a_row() {
        let q = query_of(&[
            ("category", "linear"),
            ("symbol", "ETHUSDT"),
            ("interval", "60"),
            ("start", &(T - 5 * 3_600_000).to_string()),
            ("end", &T.to_string()),
            ("limit", "1000"),
        ]);
        let a = answer(
            Exchange::Bybit,
            &config(),
            "/v5/market/kline",
            &q,
            T,
            &mut fastrand::Rng::with_seed(1),
        );
        let body: Value = serde_json::from_str(&a.body).unwrap();
        let list = body["result"]["list"].as_array().unwrap();
        let opens: Vec<i64> = list
            .iter()
            .map(|r| r[0].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(opens.windows(2).all(|w| w[0] > w[1]), "{opens:?}");
        assert_eq!(a.expected.len(), list.len() - 1, "all but the open candle");
        assert_eq!(a.expected[0].key, "bybit/linear/ETHUSDT/1h");
        // Open interest in pages of 5 along the cursor: every row of the window once.
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut pairs = vec![
                ("category", "linear".to_string()),
                ("symbol", "ETHUSDT".into()),
                ("intervalTime", "5min".into()),
                ("startTime", (T - 3_600_000).to_string()),
                ("endTime", T.to_string()),
                ("limit", "5".into()),
            ];
            if let Some(c) = &cursor {
                pairs.push(("cursor", c.replace("%3D", "=").replace("%26", "&")));
            }
            let q: BTreeMap<String, String> =
                pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            let page = answer(
                Exchange::Bybit,
                &config(),
                "/v5/market/open-interest",
                &q,
                T,
                &mut fastrand::Rng::with_seed(pages),
            );
            pages += 1;
            for e in &page.expected {
                seen.insert(e.upstream_time.unwrap().timestamp_millis());
            }
            let body: Value = serde_json::from_str(&page.body).unwrap();
            match body["result"]["nextPageCursor"].as_str().unwrap() {
                "" => break,
                c => cursor = Some(c.to_string()),
            }
        }
        assert_eq!(seen.len(), 12, "{seen:?}");
        assert!(pages >= 3);
    }
}
