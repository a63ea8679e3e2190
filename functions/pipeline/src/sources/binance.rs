//! Binance public market data (no key): candles, funding rates and open interest.
//!
//! - **Candles**: USDⓈ-M futures `GET /fapi/v1/klines` (`options.market = "linear"`, the
//!   default, base URL `https://fapi.binance.com`) or spot `GET /api/v3/klines`
//!   (`market = "spot"`, base URL `https://api.binance.com`), `symbol`, `interval`,
//!   `startTime`, `limit`. Rows are 12-element arrays, ascending: open time (ms), open,
//!   high, low, close, volume (strings), close time, quote volume, trades, taker buy
//!   base/quote, ignore. The last row can be the candle still open.
//! - **Funding**: `GET /fapi/v1/fundingRate` → `[{symbol, fundingRate, fundingTime,
//!   markPrice}]`, ascending, `startTime` inclusive, at most 1000 a call.
//! - **Open interest**: `GET /futures/data/openInterestHist?symbol&period&startTime&endTime`
//!   → `[{symbol, sumOpenInterest, sumOpenInterestValue, timestamp}]`, the last 30 days
//!   only, at most 500 a call.
//!
//! **Limits** are request *weight* per IP per minute, not requests: every answer says the
//! weight used (`X-MBX-USED-WEIGHT-1M`). The plan turns that into the limiter's window —
//! requests of this job's weight left under [`WEIGHT_HEADROOM`] of the budget until the
//! minute turns — so the walk pauses *before* the budget is spent, not after a 429. A 429
//! backs off for its `Retry-After`; a 418 (the IP is banned for ignoring 429s) or a 403
//! (the web firewall) holds the whole host for its `Retry-After` across invocations.
//! `{"code":-1121,"msg":"Invalid symbol."}` fails the job naming the symbol.
//!
//! **Walks** are time windows: a job collects from where its last run ended (the open
//! time after the last closed candle), never takes a still-open candle (it is collected
//! on a later run, closed), and with `params.derive` builds coarser candles from
//! complete sets of its own (`interval = 4h`, `derive = 8h`).

use super::market::{
    self, candle_page, epoch_ms, exact, lookback_param, non_negative, number_param, quarantine,
    query_value, series_key, series_param, symbol_param, time_of, window_start, Interval, Offer,
    Series, BINANCE_ONLY, INTERVALS,
};
use super::{
    retry_after, Auth, Context, Defaults, Hold, HoldScope, Inspection, Normalised, Page, Plan,
    RateScope, RateWindow, RequestSpec, Response, ResponseError, Source, Step, Verdict, Walk,
};
use crate::envelope::{Candle, Envelope, FundingRate, Instrument, OpenInterest, Payload};
use crate::fields::describe;
use crate::job::{Job, JobError};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::time::Duration;

pub const MODULE: &str = "binance";
/// Requests per minute the limiter starts from, for the whole host: below any weight
/// budget at weight 1; the weight header narrows it further.
const START_RPM: u32 = 1200;
/// USDⓈ-M futures request-weight budget per minute (a third-party figure: Binance shows
/// it in `exchangeInfo.rateLimits`, `REQUEST_WEIGHT`); `options.weight_budget` overrides.
pub const FUTURES_WEIGHT_BUDGET: u32 = 2400;
/// Spot request-weight budget per minute (`REQUEST_WEIGHT` 6000 since 2023).
pub const SPOT_WEIGHT_BUDGET: u32 = 6000;
/// Share of the budget the walk plans to use: concurrent requests in flight, and other
/// clients of the same address, fit in the rest.
pub const WEIGHT_HEADROOM: f64 = 0.8;
/// A 418 without `Retry-After` holds the host this long (Binance bans last 2 minutes to
/// 3 days, longer for repeat offenders).
pub const BAN_HOLD: Duration = Duration::from_secs(120);
/// A 403 (web application firewall) without `Retry-After` holds the host this long.
pub const FIREWALL_HOLD: Duration = Duration::from_secs(300);
/// Binance's error code of an unknown symbol.
const INVALID_SYMBOL: i64 = -1121;
/// Binance's error code of "too many requests".
const TOO_MANY_REQUESTS: i64 = -1003;
/// Open interest history goes back this far.
const OPEN_INTEREST_MAX_AGE_MS: i64 = 30 * 86_400_000;
/// Steps a walk takes when the job does not say (`params.max_steps`).
const DEFAULT_MAX_STEPS: u32 = 20;
const MAX_STEPS: u32 = 1000;
const DAY_MS: i64 = 86_400_000;

/// Which Binance market a source entry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Market {
    Linear,
    Spot,
}

impl Market {
    fn name(self) -> &'static str {
        match self {
            Market::Linear => "linear",
            Market::Spot => "spot",
        }
    }
}

struct Options {
    market: Market,
    weight_budget: u32,
}

fn options_of(options: &Map<String, Value>) -> Result<Options, String> {
    if let Some(k) = options
        .keys()
        .find(|k| !matches!(k.as_str(), "market" | "weight_budget"))
    {
        return Err(format!(
            "options.{k}: not an option of the binance module (market, weight_budget)"
        ));
    }
    let market = match options.get("market") {
        None => Market::Linear,
        Some(Value::String(s)) if s == "linear" => Market::Linear,
        Some(Value::String(s)) if s == "spot" => Market::Spot,
        Some(other) => {
            return Err(format!(
                "options.market: {} is not \"linear\" or \"spot\"",
                describe(other)
            ))
        }
    };
    let weight_budget = match options.get("weight_budget") {
        None => match market {
            Market::Linear => FUTURES_WEIGHT_BUDGET,
            Market::Spot => SPOT_WEIGHT_BUDGET,
        },
        // A number, or its digits as a string (Terraform's options are strings).
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (10..=1_000_000).contains(n))
            .ok_or_else(|| {
                format!(
                    "options.weight_budget: {} is not a whole number from 10 to 1000000",
                    describe(v)
                )
            })?,
    };
    Ok(Options {
        market,
        weight_budget,
    })
}

/// The Binance source.
pub struct Binance;

impl Source for Binance {
    fn module(&self) -> &'static str {
        MODULE
    }

    fn kinds(&self) -> &'static [&'static str] {
        &["candle", "funding_rate", "open_interest"]
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            base_url: "https://fapi.binance.com",
            auth: Auth::None,
            documented_rpm: &[(super::WHOLE_HOST, START_RPM)],
            unknown_path_rpm: START_RPM,
            // Weight is counted per IP, over every path.
            rate_scope: RateScope::Host,
        }
    }

    fn check_options(&self, options: &Map<String, Value>) -> Result<(), String> {
        options_of(options).map(|_| ())
    }

    fn plan(&self, job: &Job, context: Context<'_>) -> Result<Box<dyn Plan>, JobError> {
        Ok(Box::new(plan(job, context, Utc::now())?))
    }

    fn parts(&self, job: &Job) -> Result<Vec<(String, Job)>, JobError> {
        market::symbol_parts(job)
    }

    fn plan_of_request(
        &self,
        job: &str,
        context: Context<'_>,
        request: &RequestSpec,
    ) -> Result<Box<dyn Plan>, JobError> {
        let mut params = super::params_of_request(request, &["startTime", "endTime"]);
        let data = match request.path.as_str() {
            "/fapi/v1/klines" | "/api/v3/klines" => "klines",
            "/fapi/v1/fundingRate" => "funding",
            "/futures/data/openInterestHist" => "open_interest",
            other => {
                return Err(JobError::new(
                    "path",
                    format!("{other} is not a path of the binance module"),
                ))
            }
        };
        params.insert("data".into(), Value::String(data.into()));
        let job = super::job_of(job, context.source, params)?;
        Ok(Box::new(plan(&job, context, Utc::now())?))
    }
}

/// A validated Binance job, made at `now` (its first window counts back from then).
#[derive(Debug, Clone)]
pub struct BinancePlan {
    pub source: String,
    pub job: String,
    pub market: Market,
    /// What it collects; 499 candles a call by default keeps a futures call at weight 2
    /// (500 and more cost 5).
    pub data: Series,
    pub symbol: String,
    pub limit: u32,
    pub lookback_ms: i64,
    pub max_steps: u32,
    pub weight_budget: u32,
    pub now_ms: i64,
}

/// Periods of `openInterestHist`.
const OI_PERIODS: &[&str] = &["5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"];

/// Turns a job into its plan, checking every parameter by name.
pub fn plan(job: &Job, context: Context<'_>, now: DateTime<Utc>) -> Result<BinancePlan, JobError> {
    let options = options_of(context.options).map_err(|p| JobError::new("source", p))?;
    let offered: Vec<Interval> = INTERVALS.iter().chain(BINANCE_ONLY).copied().collect();
    let (data, limit) = series_param(
        job,
        &Offer {
            module: MODULE,
            intervals: &offered,
            kline_limit: match options.market {
                Market::Linear => (1500, 499),
                Market::Spot => (1000, 1000),
            },
            funding_limit: (1000, 1000),
            open_interest_limit: (500, 500),
            periods: OI_PERIODS,
            contracts_only: (options.market == Market::Spot)
                .then_some("exists for futures only (options.market = \"linear\")"),
            common: &[
                "data",
                "symbol",
                "symbols",
                "limit",
                "lookback",
                "max_steps",
            ],
        },
    )?;
    let max_lookback = match data {
        Series::OpenInterest { .. } => OPEN_INTEREST_MAX_AGE_MS - DAY_MS,
        _ => 1000 * DAY_MS,
    };
    Ok(BinancePlan {
        source: context.source.to_string(),
        job: job.name.clone(),
        market: options.market,
        data,
        symbol: symbol_param(job)?,
        limit,
        lookback_ms: lookback_param(job, data.default_lookback_ms(), max_lookback)?,
        max_steps: number_param(job, "max_steps", 1..=MAX_STEPS, DEFAULT_MAX_STEPS)?,
        weight_budget: options.weight_budget,
        now_ms: now.timestamp_millis(),
    })
}

impl BinancePlan {
    fn path(&self) -> &'static str {
        match (self.data, self.market) {
            (Series::Klines { .. }, Market::Linear) => "/fapi/v1/klines",
            (Series::Klines { .. }, Market::Spot) => "/api/v3/klines",
            (Series::Funding, _) => "/fapi/v1/fundingRate",
            (Series::OpenInterest { .. }, _) => "/futures/data/openInterestHist",
        }
    }

    /// The request weight of one call of this plan.
    pub fn weight(&self) -> u32 {
        match (self.data, self.market) {
            (Series::Klines { .. }, Market::Linear) => match self.limit {
                0..=99 => 1,
                100..=499 => 2,
                500..=1000 => 5,
                _ => 10,
            },
            (Series::Klines { .. }, Market::Spot) => 2,
            _ => 1,
        }
    }

    fn window_from(&self, step: &Step) -> i64 {
        window_start(step, self.now_ms, self.lookback_ms, self.data.step_ms())
    }

    fn instrument(&self) -> Instrument {
        Instrument {
            exchange: MODULE.into(),
            market: self.market.name().into(),
            symbol: self.symbol.clone(),
        }
    }

    /// The weight header as the limiter's window, in requests of this plan's weight.
    fn weight_window(&self, response: &Response) -> Option<RateWindow> {
        let used: u32 = response.header("x-mbx-used-weight-1m")?.parse().ok()?;
        let planned = (f64::from(self.weight_budget) * WEIGHT_HEADROOM) as u32;
        let weight = self.weight().max(1);
        let now = response.fetched_at.timestamp_millis();
        // The weight window is the calendar minute.
        let to_next_minute = 60_000 - now.rem_euclid(60_000);
        Some(RateWindow {
            limit: Some((planned / weight).max(1)),
            remaining: Some(planned.saturating_sub(used) / weight),
            reset: Some(Duration::from_millis(to_next_minute as u64)),
        })
    }

    fn rows(&self, response: &Response) -> Result<Vec<Value>, ResponseError> {
        let root: Value =
            serde_json::from_slice(&response.body).map_err(|e| ResponseError::NotJson {
                job: self.job.clone(),
                detail: e.to_string(),
            })?;
        match root {
            Value::Array(rows) => Ok(rows),
            Value::Object(o) if o.contains_key("code") => Err(ResponseError::ErrorEnvelope {
                job: self.job.clone(),
                message: error_text(&o),
            }),
            other => Err(ResponseError::UnexpectedShape {
                job: self.job.clone(),
                detail: format!("{}, expected an array of rows", describe(&other)),
            }),
        }
    }

    fn envelope(
        &self,
        key: String,
        at: DateTime<Utc>,
        fetched: DateTime<Utc>,
        payload: Payload,
    ) -> Envelope {
        Envelope::new(&self.source, &self.job, key, Some(at), fetched, payload)
    }

    fn parse_klines(
        &self,
        response: &Response,
        interval: Interval,
        derive: Option<Interval>,
    ) -> Result<Page, ResponseError> {
        let rows = self.rows(response)?;
        let size = rows.len();
        let fetched_ms = response.fetched_at.timestamp_millis();
        let from_ms =
            started_at(response, "startTime").unwrap_or_else(|| self.window_from(&Step::Start));
        let mut quarantined = Vec::new();
        let mut closed: Vec<Candle> = Vec::new();
        let mut first_open = None;
        for (index, row) in rows.into_iter().enumerate() {
            match kline(&row, self.instrument(), interval) {
                Ok(c) => {
                    let open_ms = c.open_time.timestamp_millis();
                    if !market::closed(open_ms, interval, fetched_ms) {
                        first_open = Some(first_open.map_or(open_ms, |f: i64| f.min(open_ms)));
                    } else if closed
                        .last()
                        .is_some_and(|l: &Candle| l.open_time >= c.open_time)
                    {
                        quarantined.push(quarantine(
                            &self.source,
                            &self.job,
                            index,
                            "open time not after the previous row's (rows are ascending)".into(),
                            row,
                        ));
                    } else {
                        closed.push(c);
                    }
                }
                Err(reason) => {
                    quarantined.push(quarantine(&self.source, &self.job, index, reason, row))
                }
            }
        }
        // Candles after an open one are impossible; never take one as closed.
        if let Some(open) = first_open {
            closed.retain(|c| c.open_time.timestamp_millis() < open);
        }
        let page = candle_page(
            closed,
            first_open,
            from_ms,
            interval,
            derive,
            size >= self.limit as usize,
        );
        let key = series_key(&self.instrument(), &self.data.key_suffix());
        Ok(page.into_page(
            &self.source,
            &self.job,
            &key,
            response.fetched_at,
            quarantined,
            size,
        ))
    }

    fn parse_funding(&self, response: &Response) -> Result<Page, ResponseError> {
        let rows = self.rows(response)?;
        let size = rows.len();
        let from_ms =
            started_at(response, "startTime").unwrap_or_else(|| self.window_from(&Step::Start));
        let mut n = Normalised::default();
        let mut last = None;
        let key = series_key(&self.instrument(), &self.data.key_suffix());
        for (index, row) in rows.into_iter().enumerate() {
            match funding(&row, self.instrument()) {
                Ok((f, dropped)) => {
                    let t = f.funding_time;
                    last = Some(last.map_or(t, |l: DateTime<Utc>| l.max(t)));
                    n.dropped_values.extend(dropped);
                    n.records.push(self.envelope(
                        key.clone(),
                        t,
                        response.fetched_at,
                        Payload::FundingRate(f),
                    ));
                }
                Err(reason) => {
                    n.quarantined
                        .push(quarantine(&self.source, &self.job, index, reason, row))
                }
            }
        }
        let after = last
            .map_or(from_ms, |t| t.timestamp_millis() + 1)
            .max(from_ms);
        let more = size >= self.limit as usize && after > from_ms;
        Ok(Page {
            normalised: n,
            next: more.then_some(Step::Window { from_ms: after }),
            size,
            resume_at: (!more).then_some(Step::Window { from_ms: after }),
        })
    }

    fn parse_open_interest(
        &self,
        response: &Response,
        period: Interval,
    ) -> Result<Page, ResponseError> {
        let rows = self.rows(response)?;
        let size = rows.len();
        let from_ms =
            started_at(response, "startTime").unwrap_or_else(|| self.window_from(&Step::Start));
        let end_ms = started_at(response, "endTime").unwrap_or(self.now_ms);
        let mut n = Normalised::default();
        let mut last = None;
        let key = series_key(&self.instrument(), &self.data.key_suffix());
        for (index, row) in rows.into_iter().enumerate() {
            match open_interest(&row, self.instrument(), period) {
                Ok(o) => {
                    let t = o.timestamp;
                    last = Some(last.map_or(t, |l: DateTime<Utc>| l.max(t)));
                    n.records.push(self.envelope(
                        key.clone(),
                        t,
                        response.fetched_at,
                        Payload::OpenInterest(o),
                    ));
                }
                Err(reason) => {
                    n.quarantined
                        .push(quarantine(&self.source, &self.job, index, reason, row))
                }
            }
        }
        let fetched_ms = response.fetched_at.timestamp_millis();
        // The window was cut at the plan's `now`; later windows wait for the next walk.
        let more = end_ms + period.ms < fetched_ms && end_ms < self.now_ms;
        let after = if more {
            end_ms + 1
        } else {
            last.map_or(from_ms, |t| t.timestamp_millis() + 1)
                .max(from_ms)
        };
        Ok(Page {
            normalised: n,
            next: more.then_some(Step::Window { from_ms: after }),
            size,
            resume_at: (!more).then_some(Step::Window { from_ms: after }),
        })
    }
}

/// A query time of the answered request (`startTime`), if it had one.
fn started_at(response: &Response, name: &str) -> Option<i64> {
    query_value(&response.url, name)?.parse().ok()
}

/// `{"code":-1121,"msg":"Invalid symbol."}` → `-1121 Invalid symbol.`
fn error_text(o: &Map<String, Value>) -> String {
    let code = o.get("code").map(|c| c.to_string()).unwrap_or_default();
    let msg = o
        .get("msg")
        .and_then(Value::as_str)
        .map(|m| super::cap_text(m, super::UPSTREAM_TEXT_MAX_CHARS))
        .unwrap_or_default();
    format!("{code} {msg}").trim().to_string()
}

fn error_code(body: &[u8]) -> Option<(i64, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let o = v.as_object()?;
    Some((o.get("code")?.as_i64()?, error_text(o)))
}

/// Row `[open time, open, high, low, close, volume, close time, quote volume, trades,
/// taker buy base, taker buy quote, ignore]` → a candle.
pub fn kline(row: &Value, instrument: Instrument, interval: Interval) -> Result<Candle, String> {
    let cells = row
        .as_array()
        .ok_or_else(|| format!("row is {}, expected an array", describe(row)))?;
    if cells.len() < 9 {
        return Err(format!(
            "short row: {} fields, expected 12 (open time, OHLC, volume, close time, quote volume, trades, …)",
            cells.len()
        ));
    }
    let open_ms = epoch_ms(&cells[0], "open time")?;
    if market::align(open_ms, interval) != open_ms {
        return Err(format!(
            "open time {open_ms} is not on a {} boundary",
            interval.name
        ));
    }
    let close_ms = epoch_ms(&cells[6], "close time")?;
    if close_ms != open_ms + interval.ms - 1 {
        return Err(format!(
            "close time {close_ms} does not end the {} candle opening at {open_ms}",
            interval.name
        ));
    }
    let trades = match &cells[8] {
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
    .ok_or_else(|| format!("trades: {}, expected a whole number", describe(&cells[8])))?;
    let c = Candle {
        instrument,
        interval: interval.name.to_string(),
        open_time: time_of(open_ms, "open time")?,
        open: non_negative(&cells[1], "open")?,
        high: non_negative(&cells[2], "high")?,
        low: non_negative(&cells[3], "low")?,
        close: non_negative(&cells[4], "close")?,
        volume: non_negative(&cells[5], "volume")?,
        quote_volume: Some(non_negative(&cells[7], "quote volume")?),
        trades: Some(trades),
        derived_from: None,
    };
    market::check_candle(&c)?;
    Ok(c)
}

/// `{symbol, fundingRate, fundingTime, markPrice}` → a funding rate (and any optional
/// value dropped: old rows carry `markPrice: ""`).
fn funding(row: &Value, instrument: Instrument) -> Result<(FundingRate, Vec<String>), String> {
    let o = row
        .as_object()
        .ok_or_else(|| format!("row is {}, expected an object", describe(row)))?;
    let get = |k: &str| o.get(k).unwrap_or(&Value::Null);
    check_symbol(get("symbol"), &instrument.symbol)?;
    let mut dropped = vec![];
    let mark_price = match get("markPrice") {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        v => match non_negative(v, "markPrice") {
            Ok(d) => Some(d),
            Err(why) => {
                dropped.push(why);
                None
            }
        },
    };
    let t = epoch_ms(get("fundingTime"), "fundingTime")?;
    Ok((
        FundingRate {
            instrument,
            rate: exact(get("fundingRate"), "fundingRate")?,
            funding_time: time_of(t, "fundingTime")?,
            mark_price,
        },
        dropped,
    ))
}

fn check_symbol(v: &Value, symbol: &str) -> Result<(), String> {
    match v {
        Value::String(s) if s == symbol => Ok(()),
        Value::Null => Ok(()),
        other => Err(format!(
            "symbol: {}, expected {symbol}",
            super::cap_text(&other.to_string(), 40)
        )),
    }
}

/// `{symbol, sumOpenInterest, sumOpenInterestValue, timestamp}` → open interest.
fn open_interest(
    row: &Value,
    instrument: Instrument,
    period: Interval,
) -> Result<OpenInterest, String> {
    let o = row
        .as_object()
        .ok_or_else(|| format!("row is {}, expected an object", describe(row)))?;
    let get = |k: &str| o.get(k).unwrap_or(&Value::Null);
    check_symbol(get("symbol"), &instrument.symbol)?;
    let t = epoch_ms(get("timestamp"), "timestamp")?;
    Ok(OpenInterest {
        instrument,
        period: period.name.to_string(),
        open_interest: non_negative(get("sumOpenInterest"), "sumOpenInterest")?,
        value: Some(non_negative(
            get("sumOpenInterestValue"),
            "sumOpenInterestValue",
        )?),
        timestamp: time_of(t, "timestamp")?,
    })
}

impl Plan for BinancePlan {
    fn walk(&self) -> Walk {
        Walk::Chain {
            max_steps: self.max_steps,
        }
    }

    fn request(&self, step: &Step) -> RequestSpec {
        let from = self.window_from(step);
        let mut query = vec![("symbol".to_string(), self.symbol.clone())];
        match self.data {
            Series::Klines { interval, .. } => {
                query.push(("interval".into(), interval.name.into()));
            }
            Series::Funding => {}
            Series::OpenInterest { period } => {
                query.push(("period".into(), period.name.into()));
            }
        }
        query.push(("startTime".into(), from.to_string()));
        if let Series::OpenInterest { period } = self.data {
            // Without an end, Binance answers the latest rows, not those after the start.
            let end = (from + i64::from(self.limit) * period.ms - 1).min(self.now_ms);
            query.push(("endTime".into(), end.max(from).to_string()));
        }
        query.push(("limit".into(), self.limit.to_string()));
        RequestSpec::new(self.path(), query)
    }

    fn inspect(&self, response: &Response) -> Inspection {
        let rate = self.weight_window(response);
        let used = response
            .header("x-mbx-used-weight-1m")
            .map(|u| format!(" (weight used {u} of {})", self.weight_budget))
            .unwrap_or_default();
        let host_hold = |default: Duration, what: &str| {
            Verdict::Hold(Hold {
                scope: HoldScope::Host,
                wait: retry_after(response)
                    .unwrap_or(default)
                    .max(Duration::from_secs(1)),
                reason: format!("HTTP {} from {}: {what}", response.status, response.url),
            })
        };
        let verdict = match response.status {
            200..=299 => Verdict::Use,
            418 => host_hold(BAN_HOLD, "this address is banned for ignoring rate limits"),
            403 => host_hold(FIREWALL_HOLD, "refused by the web application firewall"),
            429 => Verdict::Throttled {
                wait: retry_after(response),
                reason: format!("HTTP 429 from {}{used}", response.url),
            },
            500..=599 => Verdict::Retry(format!("HTTP {} from {}", response.status, response.url)),
            status => match error_code(&response.body) {
                Some((INVALID_SYMBOL, _)) => Verdict::Fail(format!(
                    "symbol {}: Binance says it is not a symbol of {} (code {INVALID_SYMBOL}); not retried",
                    self.symbol,
                    self.path()
                )),
                Some((TOO_MANY_REQUESTS, text)) => Verdict::Throttled {
                    wait: retry_after(response),
                    reason: format!("HTTP {status}: {text}{used}"),
                },
                Some((_, text)) => Verdict::Fail(format!(
                    "upstream answered HTTP {status} for {}: {text}; not retried",
                    response.url
                )),
                None => Verdict::Fail(format!(
                    "upstream answered HTTP {status} for {}; not retried",
                    response.url
                )),
            },
        };
        Inspection {
            verdict,
            rate,
            hold_after: None,
        }
    }

    fn parse(&self, response: &Response) -> Result<Page, ResponseError> {
        match self.data {
            Series::Klines { interval, derive } => self.parse_klines(response, interval, derive),
            Series::Funding => self.parse_funding(response),
            Series::OpenInterest { period } => self.parse_open_interest(response, period),
        }
    }

    fn fingerprint(&self) -> String {
        format!(
            "{}?symbol={}&series={}",
            self.path(),
            self.symbol,
            self.data.label()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::Plan;
    use serde_json::json;

    const H: i64 = 3_600_000;
    /// 2026-12-01T00:00:00Z.
    const T0: i64 = 1_796_083_200_000;

    fn ctx(options: Value) -> (String, Map<String, Value>) {
        (
            "binance".into(),
            options.as_object().cloned().unwrap_or_default(),
        )
    }

    fn job(params: Value) -> Job {
        Job::from_value(&json!({"job": "btc", "source": "binance", "params": params})).unwrap()
    }

    fn plan_at(params: Value, options: Value, now_ms: i64) -> Result<BinancePlan, JobError> {
        let (source, options) = ctx(options);
        plan(
            &job(params),
            Context {
                source: &source,
                options: &options,
            },
            DateTime::from_timestamp_millis(now_ms).unwrap(),
        )
    }

    use crate::sources::test_response as answer;

    fn row(open_ms: i64, o: &str, h: &str, l: &str, c: &str) -> Value {
        json!([
            open_ms,
            o,
            h,
            l,
            c,
            "12.5",
            open_ms + H - 1,
            "800000.1",
            42,
            "6.1",
            "400000",
            "0"
        ])
    }

    fn url_of(p: &BinancePlan, step: &Step) -> String {
        let r = p.request(step);
        let q: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("https://fapi.binance.com{}?{}", r.path, q.join("&"))
    }

    #[test]
    fn a_klines_job_becomes_a_window_from_its_lookback() {
        let p = plan_at(
            json!({"symbol": "BTCUSDT", "interval": "1h", "lookback": "3h"}),
            json!({}),
            T0 + 1_234,
        )
        .unwrap();
        let r = p.request(&Step::Start);
        assert_eq!(r.path, "/fapi/v1/klines");
        assert_eq!(
            r.query,
            vec![
                ("symbol".to_string(), "BTCUSDT".to_string()),
                ("interval".into(), "1h".into()),
                ("startTime".into(), (T0 - 3 * H).to_string()),
                ("limit".into(), "499".into()),
            ]
        );
        assert_eq!(p.weight(), 2);
        let r = p.request(&Step::Window { from_ms: T0 + H });
        assert!(r
            .query
            .contains(&("startTime".into(), (T0 + H).to_string())));
        // The fingerprint does not move with time: a saved window resumes.
        let later = plan_at(
            json!({"symbol": "BTCUSDT", "interval": "1h", "lookback": "3h"}),
            json!({}),
            T0 + 9 * H,
        )
        .unwrap();
        assert_eq!(p.fingerprint(), later.fingerprint());
        let spot = plan_at(
            json!({"symbol": "BTCUSDT", "interval": "1h"}),
            json!({"market": "spot"}),
            T0,
        )
        .unwrap();
        assert_eq!(spot.request(&Step::Start).path, "/api/v3/klines");
        assert_ne!(spot.fingerprint(), p.fingerprint());
    }

    #[test]
    fn bad_jobs_and_options_name_the_field() {
        for (params, options, field) in [
            (json!({"interval": "1h"}), json!({}), "params.symbol"),
            (
                json!({"symbol": "btc usdt", "interval": "1h"}),
                json!({}),
                "params.symbol",
            ),
            (json!({"symbol": "BTCUSDT"}), json!({}), "params.interval"),
            (
                json!({"symbol": "BTCUSDT", "interval": "1M"}),
                json!({}),
                "params.interval",
            ),
            (
                json!({"symbol": "BTCUSDT", "interval": "1h", "limit": 1501}),
                json!({}),
                "params.limit",
            ),
            (
                json!({"symbol": "BTCUSDT", "interval": "4h", "derive": "6h"}),
                json!({}),
                "params.derive",
            ),
            (
                json!({"symbol": "BTCUSDT", "interval": "4h", "derive": "8h", "limit": 3}),
                json!({}),
                "params.limit",
            ),
            (
                json!({"symbol": "BTCUSDT", "interval": "1h", "lookback": "soon"}),
                json!({}),
                "params.lookback",
            ),
            (
                json!({"symbol": "BTCUSDT", "interval": "1h", "period": "5m"}),
                json!({}),
                "params.period",
            ),
            (
                json!({"symbol": "BTCUSDT", "data": "funding"}),
                json!({"market": "spot"}),
                "params.data",
            ),
            (
                json!({"symbol": "BTCUSDT", "data": "trades"}),
                json!({}),
                "params.data",
            ),
            (
                json!({"symbol": "BTCUSDT", "data": "open_interest", "period": "1w"}),
                json!({}),
                "params.period",
            ),
            (
                json!({"symbol": "BTCUSDT", "data": "open_interest", "period": "1h", "lookback": "40d"}),
                json!({}),
                "params.lookback",
            ),
            (
                json!({"symbol": "BTCUSDT", "interval": "1h"}),
                json!({"market": "margin"}),
                "source",
            ),
        ] {
            let err = plan_at(params.clone(), options, T0).unwrap_err();
            assert_eq!(err.field, field, "{params}: {err}");
        }
        assert!(Binance
            .check_options(json!({"weight_budget": "1200"}).as_object().unwrap())
            .is_ok());
        assert!(Binance
            .check_options(json!({"weight_budget": 5}).as_object().unwrap())
            .unwrap_err()
            .contains("options.weight_budget"));
        assert!(Binance
            .check_options(json!({"key": 1}).as_object().unwrap())
            .unwrap_err()
            .contains("options.key"));
    }

    #[test]
    fn only_closed_candles_become_records_and_the_next_walk_starts_at_the_open_one() {
        let p = plan_at(
            json!({"symbol": "BTCUSDT", "interval": "1h", "lookback": "3h"}),
            json!({}),
            T0,
        )
        .unwrap();
        let url = url_of(&p, &Step::Start);
        let body = json!([
            row(T0 - 3 * H, "100.5", "110", "99", "105.25"),
            row(T0 - 2 * H, "105.25", "106", "101", "102"),
            row(T0 - H, "102", "103", "100", "101"),
            row(T0, "101", "101.5", "100.5", "101.2"),
        ]);
        // Fetched 30 minutes into the candle opening at T0.
        let page = p.parse(&answer(&url, 200, &[], body, T0 + H / 2)).unwrap();
        let n = &page.normalised;
        assert_eq!(n.records.len(), 3, "{:?}", n.quarantined);
        assert!(n.quarantined.is_empty());
        let first = &n.records[0];
        assert_eq!(first.key, "binance/linear/BTCUSDT/1h");
        assert_eq!(first.observed_at.timestamp_millis(), T0 - 3 * H);
        let Payload::Candle(c) = &first.payload else {
            panic!("a candle")
        };
        assert_eq!(
            (c.open.to_string(), c.close.to_string()),
            ("100.5".into(), "105.25".into())
        );
        assert_eq!(
            (c.trades, c.quote_volume.map(|q| q.to_string())),
            (Some(42), Some("800000.1".into()))
        );
        assert_eq!(page.next, None);
        assert_eq!(page.resume_at, Some(Step::Window { from_ms: T0 }));
        // Two hours later the same candle is closed, and comes once.
        let later = p
            .parse(&answer(
                &url_of(&p, &Step::Window { from_ms: T0 }),
                200,
                &[],
                json!([
                    row(T0, "101", "102", "100", "101.7"),
                    row(T0 + H, "101.7", "102", "101", "101.9")
                ]),
                T0 + 2 * H + 5_000,
            ))
            .unwrap();
        assert_eq!(later.normalised.records.len(), 2);
        assert_eq!(
            later.resume_at,
            Some(Step::Window {
                from_ms: T0 + 2 * H
            })
        );
    }

    #[test]
    fn a_full_page_walks_on_and_an_empty_one_keeps_its_place() {
        let p = plan_at(
            json!({"symbol": "BTCUSDT", "interval": "1h", "limit": 2}),
            json!({}),
            T0,
        )
        .unwrap();
        let url = url_of(
            &p,
            &Step::Window {
                from_ms: T0 - 10 * H,
            },
        );
        let body = json!([
            row(T0 - 10 * H, "1", "1", "1", "1"),
            row(T0 - 9 * H, "1", "1", "1", "1")
        ]);
        let page = p.parse(&answer(&url, 200, &[], body, T0)).unwrap();
        assert_eq!(
            page.next,
            Some(Step::Window {
                from_ms: T0 - 8 * H
            })
        );
        assert_eq!(page.resume_at, None);
        let empty = p.parse(&answer(&url, 200, &[], json!([]), T0)).unwrap();
        assert_eq!(
            (empty.next, empty.resume_at),
            (
                None,
                Some(Step::Window {
                    from_ms: T0 - 10 * H
                })
            )
        );
    }

    #[test]
    fn garbage_rows_are_quarantined_with_their_reason() {
        let p = plan_at(
            json!({"symbol": "BTCUSDT", "interval": "1h"}),
            json!({}),
            T0,
        )
        .unwrap();
        let url = url_of(
            &p,
            &Step::Window {
                from_ms: T0 - 10 * H,
            },
        );
        let body = json!([
            row(T0 - 10 * H, "NaN", "1", "1", "1"),
            row(T0 - 9 * H, "1", "inf", "1", "1"),
            row(T0 - 8 * H, "1", "1", "", "1"),
            [T0 - 7 * H, "1", "1"],
            null,
            row(T0 - 6 * H, "1", "2", "1", "3"),
            row(T0 - 5 * H + 7, "1", "1", "1", "1"),
            row(T0 - 4 * H, "1", "1", "1", "1"),
            row(T0 - 4 * H, "1", "1", "1", "1"),
            json!([
                T0 - 3 * H,
                null,
                "1",
                "1",
                "1",
                "1",
                T0 - 2 * H - 1,
                "1",
                1,
                "1",
                "1",
                "0"
            ]),
        ]);
        let page = p.parse(&answer(&url, 200, &[], body, T0)).unwrap();
        let reasons: Vec<(Option<usize>, &str)> = page
            .normalised
            .quarantined
            .iter()
            .map(|q| (q.index, q.reason.as_str()))
            .collect();
        let expect = [
            (0, "open: \"NaN\" is not an exact decimal"),
            (1, "high: \"inf\" is not an exact decimal"),
            (2, "low: empty string"),
            (3, "short row: 3 fields"),
            (4, "row is null"),
            (5, "high 2 is below open or close (3)"),
            (6, "is not on a 1h boundary"),
            (8, "not after the previous row"),
            (9, "open: null"),
        ];
        assert_eq!(reasons.len(), expect.len(), "{reasons:?}");
        for ((i, why), (ei, ewhy)) in reasons.iter().zip(expect) {
            assert_eq!(*i, Some(ei));
            assert!(why.contains(ewhy), "{i:?}: {why}");
        }
        assert_eq!(page.normalised.records.len(), 1);
        // The quarantined row is kept as the upstream sent it.
        assert_eq!(page.normalised.quarantined[0].record[1], json!("NaN"));
        for bad in [json!({}), json!(null), json!("x")] {
            assert!(matches!(
                p.parse(&answer(&url, 200, &[], bad, T0)),
                Err(ResponseError::UnexpectedShape { .. })
            ));
        }
    }

    #[test]
    fn derived_candles_wait_for_complete_sets() {
        let h4 = 4 * H;
        let p = plan_at(
            json!({"symbol": "BTCUSDT", "interval": "4h", "derive": "8h", "lookback": "16h"}),
            json!({}),
            T0 + 8 * H + 1,
        )
        .unwrap();
        let start = p.request(&Step::Start);
        assert!(
            start
                .query
                .contains(&("startTime".into(), (T0 - 8 * H).to_string())),
            "{start:?}"
        );
        let r4 = |open: i64, o: &str, h: &str, l: &str, c: &str| {
            json!([open, o, h, l, c, "1", open + h4 - 1, "2", 3, "0", "0", "0"])
        };
        let body = json!([
            r4(T0 - 8 * H, "10", "12", "9", "11"),
            r4(T0 - 4 * H, "11", "15", "10", "14"),
            r4(T0, "14", "16", "13", "15"),
            r4(T0 + 4 * H, "15", "15", "15", "15"),
            r4(T0 + 8 * H, "15", "15", "15", "15"),
        ]);
        let url = url_of(&p, &Step::Start).replace("fapi.binance.com", "x");
        let page = p.parse(&answer(&url, 200, &[], body, T0 + 9 * H)).unwrap();
        let recs = &page.normalised.records;
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].key, "binance/linear/BTCUSDT/8h");
        let Payload::Candle(c) = &recs[0].payload else {
            panic!()
        };
        assert_eq!(
            (c.high.to_string(), c.low.to_string(), c.close.to_string()),
            ("15".into(), "9".into(), "14".into())
        );
        assert_eq!(c.derived_from.as_deref(), Some("4h"));
        // The candle opening at T0+8h is open: its bucket is where the next walk starts.
        assert_eq!(
            page.resume_at,
            Some(Step::Window {
                from_ms: T0 + 8 * H
            })
        );
    }

    #[test]
    fn the_weight_header_paces_the_walk_before_the_budget_is_spent() {
        let p = plan_at(
            json!({"symbol": "BTCUSDT", "interval": "1h"}),
            json!({}),
            T0,
        )
        .unwrap();
        let url = url_of(&p, &Step::Start);
        let fetched = T0 + 45_000;
        let i = p.inspect(&answer(
            &url,
            200,
            &[("x-mbx-used-weight-1m", "1000")],
            json!([]),
            fetched,
        ));
        assert_eq!(i.verdict, Verdict::Use);
        assert_eq!(
            i.rate,
            Some(RateWindow {
                limit: Some(960),
                remaining: Some(460),
                reset: Some(Duration::from_secs(15))
            })
        );
        let spent = p.inspect(&answer(
            &url,
            200,
            &[("x-mbx-used-weight-1m", "1919")],
            json!([]),
            fetched,
        ));
        assert_eq!(spent.rate.unwrap().remaining, Some(0));
    }

    #[test]
    fn bans_throttles_and_bad_symbols_are_told_apart() {
        let p = plan_at(
            json!({"symbol": "BTCUSDX", "interval": "1h"}),
            json!({}),
            T0,
        )
        .unwrap();
        let url = url_of(&p, &Step::Start);
        let ban = p.inspect(&answer(
            &url,
            418,
            &[("retry-after", "600")],
            json!({"code": -1003, "msg": "Way too many requests; IP banned"}),
            T0,
        ));
        let Verdict::Hold(h) = ban.verdict else {
            panic!("{:?}", ban.verdict)
        };
        assert_eq!(
            (h.scope, h.wait),
            (HoldScope::Host, Duration::from_secs(600))
        );
        let waf = p.inspect(&answer(&url, 403, &[], json!({}), T0));
        assert!(matches!(waf.verdict, Verdict::Hold(Hold { wait, .. }) if wait == FIREWALL_HOLD));
        let slow = p.inspect(&answer(
            &url,
            429,
            &[("retry-after", "7"), ("x-mbx-used-weight-1m", "2401")],
            json!({"code": -1003, "msg": "Too many requests"}),
            T0,
        ));
        assert!(
            matches!(slow.verdict, Verdict::Throttled { wait: Some(w), .. } if w == Duration::from_secs(7))
        );
        let bad = p.inspect(&answer(
            &url,
            400,
            &[],
            json!({"code": -1121, "msg": "Invalid symbol."}),
            T0,
        ));
        let Verdict::Fail(why) = bad.verdict else {
            panic!()
        };
        assert!(why.contains("symbol BTCUSDX"), "{why}");
        assert!(matches!(
            p.inspect(&answer(&url, 502, &[], json!(null), T0)).verdict,
            Verdict::Retry(_)
        ));
    }

    #[test]
    fn funding_and_open_interest_rows() {
        let f = plan_at(
            json!({"symbol": "BTCUSDT", "data": "funding", "limit": 2}),
            json!({}),
            T0,
        )
        .unwrap();
        let url = url_of(&f, &Step::Start);
        assert!(
            url.contains("/fapi/v1/fundingRate?symbol=BTCUSDT&startTime="),
            "{url}"
        );
        let body = json!([
            {"symbol": "BTCUSDT", "fundingRate": "-0.00012000", "fundingTime": T0 - 16 * H, "markPrice": "67000.1"},
            {"symbol": "BTCUSDT", "fundingRate": "0.00010000", "fundingTime": T0 - 8 * H, "markPrice": ""},
        ]);
        let page = f.parse(&answer(&url, 200, &[], body, T0)).unwrap();
        assert_eq!(page.normalised.records.len(), 2);
        let Payload::FundingRate(r) = &page.normalised.records[0].payload else {
            panic!()
        };
        assert_eq!(
            (r.rate.to_string(), r.mark_price.map(|m| m.to_string())),
            ("-0.00012000".into(), Some("67000.1".into()))
        );
        assert_eq!(
            page.normalised.records[0].key,
            "binance/linear/BTCUSDT/funding"
        );
        assert_eq!(
            page.next,
            Some(Step::Window {
                from_ms: T0 - 8 * H + 1
            })
        );
        let bad = f
            .parse(&answer(
                &url,
                200,
                &[],
                json!([{"symbol": "BTCUSDT", "fundingRate": "NaN", "fundingTime": T0}]),
                T0,
            ))
            .unwrap();
        assert!(bad.normalised.quarantined[0].reason.contains("fundingRate"));

        let oi = plan_at(
            json!({"symbol": "BTCUSDT", "data": "open_interest", "period": "1h", "lookback": "2d"}),
            json!({}),
            T0,
        )
        .unwrap();
        let r = oi.request(&Step::Start);
        assert!(r
            .query
            .contains(&("startTime".into(), (T0 - 48 * H).to_string())));
        assert!(
            r.query.contains(&("endTime".into(), T0.to_string())),
            "{r:?}"
        );
        let url = url_of(&oi, &Step::Start);
        let page = oi.parse(&answer(&url, 200, &[], json!([
            {"symbol": "BTCUSDT", "sumOpenInterest": "81234.5", "sumOpenInterestValue": "5400000000.25", "timestamp": T0 - H},
            {"symbol": "BTCUSDT", "sumOpenInterest": null, "sumOpenInterestValue": "1", "timestamp": T0}
        ]), T0 + 1000)).unwrap();
        assert_eq!(
            page.normalised.records[0].key,
            "binance/linear/BTCUSDT/oi/1h"
        );
        assert_eq!(page.normalised.quarantined.len(), 1);
        assert_eq!(
            page.resume_at,
            Some(Step::Window {
                from_ms: T0 - H + 1
            })
        );
    }

    #[test]
    fn an_archived_request_gives_back_its_plan() {
        let (source, options) = ctx(json!({}));
        let c = Context {
            source: &source,
            options: &options,
        };
        let r = super::super::request_of_url("https://fapi.binance.com/fapi/v1/klines?symbol=ETHUSDT&interval=15m&startTime=1796083200000&limit=499").unwrap();
        let p = Binance.plan_of_request("eth", c, &r).unwrap();
        assert_eq!(
            p.fingerprint(),
            "/fapi/v1/klines?symbol=ETHUSDT&series=klines/15m"
        );
    }
}
