//! Bybit v5 public market data (no key): candles, open interest, funding history.
//!
//! - **Candles**: `GET /v5/market/kline?category=spot|linear|inverse&symbol&interval&start&end&limit`
//!   → `result.list` rows `[startTime, open, high, low, close, volume, turnover]`, every
//!   value a string, **newest first**; at most 1000 a call. Intervals are spelled `60`,
//!   `240`, `D`; records use the same `1h`, `4h`, `1d` as Binance's.
//! - **Open interest**: `GET /v5/market/open-interest?category&symbol&intervalTime&startTime&endTime&limit&cursor`
//!   → `result.list [{openInterest, timestamp}]` newest first, and `result.nextPageCursor`
//!   (`""` at the end; real cursors come percent-encoded, `lastid%3D…`).
//! - **Funding**: `GET /v5/market/funding/history?category&symbol&startTime&endTime&limit`
//!   → `result.list [{symbol, fundingRate, fundingRateTimestamp}]`, newest first, at most
//!   200 (and `startTime` alone is an error: both ends are always sent).
//!
//! **The envelope** `{retCode, retMsg, result, retExtInfo, time}` carries errors on HTTP
//! 200: `retCode` 10006 ("Too many visits") and 10018 (the IP's limit) are rate limits,
//! not data; 10000 and 10016 are server trouble (retried); 10001 is a bad parameter (the
//! job fails, naming the symbol). HTTP 403 "access too frequent" means the address is
//! over its limit: the host is held for at least [`FORBIDDEN_HOLD`], across invocations.
//! `X-Bapi-Limit-Status` (requests left) and `X-Bapi-Limit-Reset-Timestamp` feed the
//! limiter, so the walk waits for the reset instead of spending the last request.
//!
//! **Walks** are time windows sized so that one window fits one answer (candles: `limit`
//! intervals; funding: [`FUNDING_WINDOW_MS`]); open interest follows `nextPageCursor`
//! inside each window. A window ends [`PUBLISH_LAG_MS`] before now, so rows the exchange
//! has not yet published are collected by the next run, not skipped.

use super::market::{
    self, candle_page, epoch_ms, exact, lookback_param, non_negative, number_param, quarantine,
    query_value, series_key, series_param, symbol_param, time_of, window_start, Interval, Offer,
    Series, INTERVALS,
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

pub const MODULE: &str = "bybit";
/// Requests per minute the limiter starts from: Bybit allows 600 per 5 s per IP (7200 a
/// minute); half of it leaves room for other clients of the address.
const START_RPM: u32 = 3600;
/// An HTTP 403 ("access too frequent") keeps the address away at least this long.
pub const FORBIDDEN_HOLD: Duration = Duration::from_secs(600);
/// A rate-limit `retCode` without a reset time backs off this long.
const THROTTLE_WAIT: Duration = Duration::from_secs(5);
/// Rows at or after `now - PUBLISH_LAG_MS` wait for the next run: Bybit publishes a
/// funding or open-interest row shortly after its timestamp.
pub const PUBLISH_LAG_MS: i64 = 60_000;
/// One funding window: 200 hours hold at most 200 rows (funding is at most hourly), one
/// answer's worth.
pub const FUNDING_WINDOW_MS: i64 = 200 * 3_600_000;
/// Bybit's rate-limit codes on an HTTP 200.
const TOO_MANY_VISITS: i64 = 10006;
const IP_RATE_LIMIT: i64 = 10018;
/// Server-side trouble: asking again may work.
const SERVER_TIMEOUT: i64 = 10000;
const SERVER_ERROR: i64 = 10016;
/// A parameter the exchange does not accept (an unknown symbol, say).
const PARAMS_ERROR: i64 = 10001;
const DEFAULT_MAX_STEPS: u32 = 20;
const MAX_STEPS: u32 = 1000;
const DAY_MS: i64 = 86_400_000;
/// `intervalTime` spellings of open interest.
const OI_PERIODS: &[(&str, &str)] = &[
    ("5m", "5min"),
    ("15m", "15min"),
    ("30m", "30min"),
    ("1h", "1h"),
    ("4h", "4h"),
    ("1d", "1d"),
];

/// The Bybit source.
pub struct Bybit;

impl Source for Bybit {
    fn module(&self) -> &'static str {
        MODULE
    }

    fn kinds(&self) -> &'static [&'static str] {
        &["candle", "funding_rate", "open_interest"]
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            base_url: "https://api.bybit.com",
            auth: Auth::None,
            documented_rpm: &[(super::WHOLE_HOST, START_RPM)],
            unknown_path_rpm: START_RPM,
            // The IP limit counts every path together.
            rate_scope: RateScope::Host,
        }
    }

    fn plan(&self, job: &Job, context: Context<'_>) -> Result<Box<dyn Plan>, JobError> {
        Ok(Box::new(plan(job, context.source, Utc::now())?))
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
        let mut params =
            super::params_of_request(request, &["start", "end", "startTime", "endTime", "cursor"]);
        let data = match request.path.as_str() {
            "/v5/market/kline" => "klines",
            "/v5/market/funding/history" => "funding",
            "/v5/market/open-interest" => "open_interest",
            other => {
                return Err(JobError::new(
                    "path",
                    format!("{other} is not a path of the bybit module"),
                ))
            }
        };
        params.insert("data".into(), Value::String(data.into()));
        // The request spells intervals Bybit's way; the job spells them as records do.
        for (name, table) in [("interval", None), ("intervalTime", Some(OI_PERIODS))] {
            if let Some(Value::String(v)) = params.remove(name) {
                let ours = match table {
                    None => INTERVALS
                        .iter()
                        .find(|i| i.bybit == v)
                        .map(|i| i.name.to_string()),
                    Some(t) => t.iter().find(|(_, b)| *b == v).map(|(o, _)| o.to_string()),
                }
                .unwrap_or(v);
                let key = if table.is_some() {
                    "period"
                } else {
                    "interval"
                };
                params.insert(key.into(), Value::String(ours));
            }
        }
        let job = super::job_of(job, context.source, params)?;
        Ok(Box::new(plan(&job, context.source, Utc::now())?))
    }
}

/// A validated Bybit job, made at `now`.
#[derive(Debug, Clone)]
pub struct BybitPlan {
    pub source: String,
    pub job: String,
    pub category: &'static str,
    pub data: Series,
    pub symbol: String,
    pub limit: u32,
    pub lookback_ms: i64,
    pub max_steps: u32,
    pub now_ms: i64,
}

/// Turns a job into its plan, checking every parameter by name.
pub fn plan(job: &Job, source: &str, now: DateTime<Utc>) -> Result<BybitPlan, JobError> {
    let category = match job.param("category").unwrap_or("linear") {
        "linear" => "linear",
        "inverse" => "inverse",
        "spot" => "spot",
        other => {
            return Err(JobError::new(
                "params.category",
                format!("{other:?} is not spot, linear or inverse"),
            ))
        }
    };
    let periods: Vec<&str> = OI_PERIODS.iter().map(|(ours, _)| *ours).collect();
    let (data, limit) = series_param(
        job,
        &Offer {
            module: MODULE,
            intervals: INTERVALS,
            kline_limit: (1000, 1000),
            funding_limit: (200, 200),
            open_interest_limit: (200, 200),
            periods: &periods,
            contracts_only: (category == "spot")
                .then_some("exists for contracts only (category linear or inverse)"),
            common: &[
                "data",
                "category",
                "symbol",
                "symbols",
                "limit",
                "lookback",
                "max_steps",
            ],
        },
    )?;
    Ok(BybitPlan {
        source: source.to_string(),
        job: job.name.clone(),
        category,
        data,
        symbol: symbol_param(job)?,
        limit,
        lookback_ms: lookback_param(job, data.default_lookback_ms(), 1000 * DAY_MS)?,
        max_steps: number_param(job, "max_steps", 1..=MAX_STEPS, DEFAULT_MAX_STEPS)?,
        now_ms: now.timestamp_millis(),
    })
}

/// The window a step asks for: `[from, end]`, and the cursor inside it.
struct WindowAt {
    from: i64,
    end: i64,
    cursor: Option<String>,
}

impl BybitPlan {
    fn path(&self) -> &'static str {
        match self.data {
            Series::Klines { .. } => "/v5/market/kline",
            Series::Funding => "/v5/market/funding/history",
            Series::OpenInterest { .. } => "/v5/market/open-interest",
        }
    }

    /// The newest time a window may reach: candles up to now (the open one is seen and
    /// left), funding and open interest up to what is surely published.
    fn horizon(&self) -> i64 {
        match self.data {
            Series::Klines { .. } => self.now_ms,
            _ => self.now_ms - PUBLISH_LAG_MS,
        }
    }

    fn window_len(&self) -> i64 {
        match self.data {
            Series::Klines { interval, .. } => i64::from(self.limit) * interval.ms,
            Series::Funding => FUNDING_WINDOW_MS,
            // The cursor pages through a window; a day of rows is at most 288 of them.
            Series::OpenInterest { period, .. } => (i64::from(self.limit) * period.ms).max(DAY_MS),
        }
    }

    fn window(&self, step: &Step) -> WindowAt {
        if let Step::Token { token } = step {
            let mut parts = token.splitn(3, '|');
            let from = parts.next().and_then(|p| p.parse().ok());
            let end = parts.next().and_then(|p| p.parse().ok());
            if let (Some(from), Some(end), Some(cursor)) = (from, end, parts.next()) {
                return WindowAt {
                    from,
                    end,
                    cursor: Some(cursor.to_string()),
                };
            }
        }
        let from = window_start(step, self.now_ms, self.lookback_ms, self.data.step_ms());
        let end = (from + self.window_len() - 1).min(self.horizon()).max(from);
        WindowAt {
            from,
            end,
            cursor: None,
        }
    }

    fn instrument(&self) -> Instrument {
        Instrument {
            exchange: MODULE.into(),
            market: self.category.into(),
            symbol: self.symbol.clone(),
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

    /// `result.list` and `result.nextPageCursor` of a usable answer.
    fn result(&self, response: &Response) -> Result<(Vec<Value>, Option<String>), ResponseError> {
        let root: Value =
            serde_json::from_slice(&response.body).map_err(|e| ResponseError::NotJson {
                job: self.job.clone(),
                detail: e.to_string(),
            })?;
        let shape = |detail: String| ResponseError::UnexpectedShape {
            job: self.job.clone(),
            detail,
        };
        let Value::Object(mut root) = root else {
            return Err(shape(format!(
                "{}, expected the {{retCode, result}} envelope",
                describe(&root)
            )));
        };
        match root.get("retCode").and_then(Value::as_i64) {
            Some(0) => {}
            Some(code) => {
                return Err(ResponseError::ErrorEnvelope {
                    job: self.job.clone(),
                    message: format!("retCode {code}: {}", ret_msg(&root)),
                })
            }
            None => return Err(shape("no retCode".into())),
        }
        let result = match root.remove("result") {
            Some(Value::Object(r)) => r,
            // `null` or `{}` where a result belongs: no rows.
            Some(Value::Null) | None => Map::new(),
            Some(other) => {
                return Err(shape(format!(
                    "result is {}, expected an object",
                    describe(&other)
                )))
            }
        };
        let list = match result.get("list") {
            Some(Value::Array(l)) => l.clone(),
            Some(Value::Null) | None => vec![],
            Some(other) => {
                return Err(shape(format!(
                    "result.list is {}, expected an array",
                    describe(other)
                )))
            }
        };
        let cursor = match result.get("nextPageCursor") {
            Some(Value::String(c)) if !c.trim().is_empty() => Some(c.trim().to_string()),
            _ => None,
        };
        Ok((list, cursor))
    }

    fn answered_window(&self, response: &Response) -> (i64, i64) {
        let (a, b) = match self.data {
            Series::Klines { .. } => ("start", "end"),
            _ => ("startTime", "endTime"),
        };
        let w = self.window(&Step::Start);
        let q = |n: &str| query_value(&response.url, n).and_then(|v| v.parse().ok());
        (q(a).unwrap_or(w.from), q(b).unwrap_or(w.end))
    }

    /// After a window: the next one while windows remain before the horizon, else the
    /// mark the next walk starts from.
    fn after_window(&self, end: i64) -> (Option<Step>, Option<Step>) {
        let after = Step::Window { from_ms: end + 1 };
        if end < self.horizon() {
            (Some(after), None)
        } else {
            (None, Some(after))
        }
    }

    fn parse_klines(
        &self,
        response: &Response,
        interval: Interval,
        derive: Option<Interval>,
    ) -> Result<Page, ResponseError> {
        let (rows, _) = self.result(response)?;
        let size = rows.len();
        let (from_ms, end_ms) = self.answered_window(response);
        let fetched_ms = response.fetched_at.timestamp_millis();
        let mut quarantined = Vec::new();
        let mut candles: Vec<(usize, Value, Candle)> = Vec::new();
        for (index, row) in rows.into_iter().enumerate() {
            match kline(&row, self.instrument(), interval) {
                Ok(c) => candles.push((index, row, c)),
                Err(reason) => {
                    quarantined.push(quarantine(&self.source, &self.job, index, reason, row))
                }
            }
        }
        // Newest first on the wire; oldest first from here on, one per open time.
        candles.sort_by_key(|(index, _, c)| (c.open_time, *index));
        let mut closed: Vec<Candle> = Vec::new();
        let mut first_open = None;
        for (index, row, c) in candles {
            let open_ms = c.open_time.timestamp_millis();
            let problem = if open_ms < from_ms || open_ms > end_ms {
                Some(format!(
                    "startTime {open_ms} is outside the window asked for"
                ))
            } else if closed.last().is_some_and(|l| l.open_time == c.open_time) {
                Some(format!(
                    "startTime {open_ms} appears twice in the answer; the first is kept"
                ))
            } else {
                None
            };
            if let Some(reason) = problem {
                quarantined.push(quarantine(&self.source, &self.job, index, reason, row));
            } else if !market::closed(open_ms, interval, fetched_ms) {
                first_open = Some(first_open.map_or(open_ms, |f: i64| f.min(open_ms)));
            } else {
                closed.push(c);
            }
        }
        if let Some(open) = first_open {
            closed.retain(|c| c.open_time.timestamp_millis() < open);
        }
        let more = end_ms < self.horizon() && first_open.is_none();
        let mut page = candle_page(closed, first_open, from_ms, interval, derive, more);
        if more && page.next.is_none() {
            // A window with nothing in it (before the listing, or a gap): go on after it.
            page.next = Some(Step::Window {
                from_ms: end_ms + 1,
            });
            page.resume_at = None;
        }
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

    fn parse_series(&self, response: &Response) -> Result<Page, ResponseError> {
        let (rows, cursor) = self.result(response)?;
        let size = rows.len();
        let (from_ms, end_ms) = self.answered_window(response);
        let mut n = Normalised::default();
        let (key, time_field) = match self.data {
            Series::Funding => (
                series_key(&self.instrument(), "funding"),
                "fundingRateTimestamp",
            ),
            Series::OpenInterest { period, .. } => (
                series_key(&self.instrument(), &format!("oi/{}", period.name)),
                "timestamp",
            ),
            Series::Klines { .. } => unreachable!("klines are parsed apart"),
        };
        for (index, row) in rows.into_iter().enumerate() {
            let made = row_time(&row, time_field).and_then(|t| {
                if t < from_ms || t > end_ms {
                    return Err(format!("{time_field} {t} is outside the window asked for"));
                }
                let at = time_of(t, time_field)?;
                let payload = match self.data {
                    Series::Funding => Payload::FundingRate(funding(&row, self.instrument(), at)?),
                    Series::OpenInterest { period, .. } => {
                        Payload::OpenInterest(open_interest(&row, self.instrument(), period, at)?)
                    }
                    Series::Klines { .. } => unreachable!("klines are parsed apart"),
                };
                Ok((at, payload))
            });
            match made {
                Ok((at, payload)) => {
                    n.records
                        .push(self.envelope(key.clone(), at, response.fetched_at, payload))
                }
                Err(reason) => {
                    n.quarantined
                        .push(quarantine(&self.source, &self.job, index, reason, row))
                }
            }
        }
        if matches!(self.data, Series::Funding) && size >= self.limit as usize {
            n.dropped_values.push(format!(
                "a funding window answered a full page of {size} rows: rows older than the page may be missing"
            ));
        }
        let (next, resume_at) = match cursor {
            Some(c) if matches!(self.data, Series::OpenInterest { .. }) && size > 0 => (
                Some(Step::Token {
                    token: format!("{from_ms}|{end_ms}|{c}"),
                }),
                None,
            ),
            _ => self.after_window(end_ms),
        };
        Ok(Page {
            normalised: n,
            next,
            size,
            resume_at,
        })
    }
}

fn ret_msg(o: &Map<String, Value>) -> String {
    o.get("retMsg")
        .and_then(Value::as_str)
        .map(|m| super::cap_text(m, super::UPSTREAM_TEXT_MAX_CHARS))
        .unwrap_or_default()
}

fn row_time(row: &Value, field: &str) -> Result<i64, String> {
    let o = row
        .as_object()
        .ok_or_else(|| format!("row is {}, expected an object", describe(row)))?;
    epoch_ms(o.get(field).unwrap_or(&Value::Null), field)
}

/// Row `[startTime, open, high, low, close, volume, turnover]` → a candle.
pub fn kline(row: &Value, instrument: Instrument, interval: Interval) -> Result<Candle, String> {
    let cells = row
        .as_array()
        .ok_or_else(|| format!("row is {}, expected an array", describe(row)))?;
    if cells.len() < 7 {
        return Err(format!(
            "short row: {} fields, expected 7 (startTime, open, high, low, close, volume, turnover)",
            cells.len()
        ));
    }
    let open_ms = epoch_ms(&cells[0], "startTime")?;
    if market::align(open_ms, interval) != open_ms {
        return Err(format!(
            "startTime {open_ms} is not on a {} boundary",
            interval.name
        ));
    }
    let c = Candle {
        instrument,
        interval: interval.name.to_string(),
        open_time: time_of(open_ms, "startTime")?,
        open: non_negative(&cells[1], "open")?,
        high: non_negative(&cells[2], "high")?,
        low: non_negative(&cells[3], "low")?,
        close: non_negative(&cells[4], "close")?,
        volume: non_negative(&cells[5], "volume")?,
        quote_volume: Some(non_negative(&cells[6], "turnover")?),
        trades: None,
        derived_from: None,
    };
    market::check_candle(&c)?;
    Ok(c)
}

fn funding(row: &Value, instrument: Instrument, at: DateTime<Utc>) -> Result<FundingRate, String> {
    let o = row.as_object().ok_or("row is not an object")?;
    if let Some(s) = o.get("symbol").and_then(Value::as_str) {
        if s != instrument.symbol {
            return Err(format!(
                "symbol {:?}, expected {}",
                super::cap_text(s, 40),
                instrument.symbol
            ));
        }
    }
    Ok(FundingRate {
        rate: exact(o.get("fundingRate").unwrap_or(&Value::Null), "fundingRate")?,
        instrument,
        funding_time: at,
        mark_price: None,
    })
}

fn open_interest(
    row: &Value,
    instrument: Instrument,
    period: Interval,
    at: DateTime<Utc>,
) -> Result<OpenInterest, String> {
    let o = row.as_object().ok_or("row is not an object")?;
    Ok(OpenInterest {
        instrument,
        period: period.name.to_string(),
        open_interest: non_negative(
            o.get("openInterest").unwrap_or(&Value::Null),
            "openInterest",
        )?,
        value: None,
        timestamp: at,
    })
}

/// Bybit's limit headers as the limiter's window: requests left until the reset.
fn limit_window(response: &Response) -> Option<RateWindow> {
    let remaining = response
        .header("x-bapi-limit-status")
        .and_then(|v| v.parse::<u32>().ok());
    let reset = reset_wait(response);
    (remaining.is_some() || reset.is_some()).then_some(RateWindow {
        // `X-Bapi-Limit` is per second or per 5 s, not per minute: it is no rate here.
        limit: None,
        remaining,
        reset,
    })
}

/// Until `X-Bapi-Limit-Reset-Timestamp` (epoch milliseconds), from when the answer came.
fn reset_wait(response: &Response) -> Option<Duration> {
    let at: i64 = response
        .header("x-bapi-limit-reset-timestamp")?
        .parse()
        .ok()?;
    let wait = at - response.fetched_at.timestamp_millis();
    Some(Duration::from_millis(wait.max(0) as u64).min(super::MAX_HINT))
}

impl Plan for BybitPlan {
    fn walk(&self) -> Walk {
        Walk::Chain {
            max_steps: self.max_steps,
        }
    }

    fn request(&self, step: &Step) -> RequestSpec {
        let w = self.window(step);
        let mut query = vec![
            ("category".to_string(), self.category.to_string()),
            ("symbol".into(), self.symbol.clone()),
        ];
        let (start, end) = match self.data {
            Series::Klines { interval, .. } => {
                query.push(("interval".into(), interval.bybit.into()));
                ("start", "end")
            }
            Series::Funding => ("startTime", "endTime"),
            Series::OpenInterest { period } => {
                let spelled = OI_PERIODS
                    .iter()
                    .find(|(ours, _)| *ours == period.name)
                    .map_or(period.name, |(_, bybit)| *bybit);
                query.push(("intervalTime".into(), spelled.into()));
                ("startTime", "endTime")
            }
        };
        query.push((start.into(), w.from.to_string()));
        query.push((end.into(), w.end.to_string()));
        query.push(("limit".into(), self.limit.to_string()));
        if let Some(cursor) = w.cursor {
            // Bybit's cursors arrive percent-encoded; the HTTP adapter encodes queries, so
            // the cursor goes in decoded and reaches Bybit as Bybit wrote it.
            query.push(("cursor".into(), super::percent_decode(&cursor)));
        }
        RequestSpec::new(self.path(), query)
    }

    fn inspect(&self, response: &Response) -> Inspection {
        let rate = limit_window(response);
        let verdict = match response.status {
            200..=299 => match envelope_code(&response.body) {
                None | Some((0, _)) => Verdict::Use,
                Some((code @ (TOO_MANY_VISITS | IP_RATE_LIMIT), msg)) => Verdict::Throttled {
                    wait: Some(reset_wait(response).unwrap_or(THROTTLE_WAIT)),
                    reason: format!("retCode {code} on HTTP 200 from {}: {msg}", response.url),
                },
                Some((code @ (SERVER_TIMEOUT | SERVER_ERROR), msg)) => {
                    Verdict::Retry(format!("retCode {code} from {}: {msg}", response.url))
                }
                Some((PARAMS_ERROR, msg)) => Verdict::Fail(format!(
                    "symbol {} (category {}): Bybit refused the request: {msg} (retCode {PARAMS_ERROR}); not retried",
                    self.symbol, self.category
                )),
                Some((code, msg)) => Verdict::Fail(format!(
                    "retCode {code} from {}: {msg}; not retried",
                    response.url
                )),
            },
            403 => Verdict::Hold(Hold {
                scope: HoldScope::Host,
                wait: retry_after(response)
                    .unwrap_or(FORBIDDEN_HOLD)
                    .max(FORBIDDEN_HOLD),
                reason: format!(
                    "HTTP 403 from {}: access too frequent, this address is over Bybit's limit",
                    response.url
                ),
            }),
            429 => Verdict::Throttled {
                wait: retry_after(response).or_else(|| reset_wait(response)),
                reason: format!("HTTP 429 from {}", response.url),
            },
            500..=599 => Verdict::Retry(format!("HTTP {} from {}", response.status, response.url)),
            status => Verdict::Fail(format!(
                "upstream answered HTTP {status} for {}; not retried",
                response.url
            )),
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
            Series::Funding | Series::OpenInterest { .. } => self.parse_series(response),
        }
    }

    fn fingerprint(&self) -> String {
        format!(
            "{}?category={}&symbol={}&series={}",
            self.path(),
            self.category,
            self.symbol,
            self.data.label()
        )
    }
}

/// `retCode` and `retMsg` of an envelope, if the body is one.
fn envelope_code(body: &[u8]) -> Option<(i64, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let o = v.as_object()?;
    Some((o.get("retCode")?.as_i64()?, ret_msg(o)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const H: i64 = 3_600_000;
    /// 2026-12-01T00:00:00Z.
    const T0: i64 = 1_796_083_200_000;

    fn plan_at(params: Value, now_ms: i64) -> Result<BybitPlan, JobError> {
        let job =
            Job::from_value(&json!({"job": "btc", "source": "bybit", "params": params})).unwrap();
        plan(
            &job,
            "bybit",
            DateTime::from_timestamp_millis(now_ms).unwrap(),
        )
    }

    fn url_of(p: &BybitPlan, step: &Step) -> String {
        let r = p.request(step);
        let q: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("https://api.bybit.com{}?{}", r.path, q.join("&"))
    }

    use crate::sources::test_response as answer;

    fn ok(list: Value, cursor: Option<&str>) -> Value {
        let mut result = json!({"category": "linear", "symbol": "BTCUSDT", "list": list});
        if let Some(c) = cursor {
            result["nextPageCursor"] = json!(c);
        }
        json!({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": T0})
    }

    fn k(open: i64, o: &str, h: &str, l: &str, c: &str) -> Value {
        json!([open.to_string(), o, h, l, c, "10.5", "700000"])
    }

    #[test]
    fn newest_first_candles_come_out_oldest_first_closed_only() {
        let p = plan_at(
            json!({"symbol": "BTCUSDT", "interval": "1h", "lookback": "3h"}),
            T0 + 1_000,
        )
        .unwrap();
        let r = p.request(&Step::Start);
        assert_eq!(r.path, "/v5/market/kline");
        assert!(r.query.contains(&("interval".into(), "60".into())), "{r:?}");
        assert!(r
            .query
            .contains(&("start".into(), (T0 - 3 * H).to_string())));
        assert!(r.query.contains(&("end".into(), (T0 + 1_000).to_string())));
        let url = url_of(&p, &Step::Start);
        let body = ok(
            json!([
                k(T0, "103", "104", "102", "103.5"),
                k(T0 - H, "102", "103", "101", "103"),
                k(T0 - 2 * H, "101", "102", "100", "102"),
                k(T0 - 3 * H, "100", "101", "99", "101"),
            ]),
            None,
        );
        // Fetched past the grace after T0: the candle opening at T0 - 1h has closed.
        let page = p.parse(&answer(&url, 200, &[], body, T0 + 5_000)).unwrap();
        let times: Vec<i64> = page
            .normalised
            .records
            .iter()
            .map(|e| e.observed_at.timestamp_millis())
            .collect();
        assert_eq!(times, vec![T0 - 3 * H, T0 - 2 * H, T0 - H]);
        assert_eq!(page.normalised.records[0].key, "bybit/linear/BTCUSDT/1h");
        let Payload::Candle(c) = &page.normalised.records[0].payload else {
            panic!()
        };
        assert_eq!(
            (c.close.to_string(), c.quote_volume.map(|q| q.to_string())),
            ("101".into(), Some("700000".into()))
        );
        assert_eq!(page.next, None);
        assert_eq!(page.resume_at, Some(Step::Window { from_ms: T0 }));
    }

    #[test]
    fn windows_walk_on_to_now_even_across_empty_ones() {
        let p = plan_at(
            json!({"symbol": "BTCUSDT", "interval": "1h", "limit": 2, "lookback": "6h"}),
            T0,
        )
        .unwrap();
        let w = p.request(&Step::Start);
        assert!(
            w.query
                .contains(&("end".into(), (T0 - 4 * H - 1).to_string())),
            "{w:?}"
        );
        let url = url_of(&p, &Step::Start);
        let empty = p
            .parse(&answer(&url, 200, &[], ok(json!([]), None), T0))
            .unwrap();
        assert_eq!(
            empty.next,
            Some(Step::Window {
                from_ms: T0 - 4 * H
            })
        );
        let nulls = p
            .parse(&answer(
                &url,
                200,
                &[],
                json!({"retCode": 0, "retMsg": "OK", "result": {}}),
                T0,
            ))
            .unwrap();
        assert_eq!(nulls.next, empty.next);
        let full = p
            .parse(&answer(
                &url,
                200,
                &[],
                ok(
                    json!([
                        k(T0 - 5 * H, "1", "1", "1", "1"),
                        k(T0 - 6 * H, "1", "1", "1", "1")
                    ]),
                    None,
                ),
                T0,
            ))
            .unwrap();
        assert_eq!(full.normalised.records.len(), 2);
        assert_eq!(
            full.next,
            Some(Step::Window {
                from_ms: T0 - 4 * H
            })
        );
    }

    #[test]
    fn garbage_rows_are_quarantined_with_their_reason() {
        let p = plan_at(
            json!({"symbol": "BTCUSDT", "interval": "1h", "lookback": "6h"}),
            T0,
        )
        .unwrap();
        let url = url_of(&p, &Step::Start);
        let body = ok(
            json!([
                k(T0 - H, "1", "NaN", "1", "1"),
                [(T0 - 2 * H).to_string(), "1", "1"],
                k(T0 - 3 * H, "1", "1", "1", ""),
                k(T0 - 4 * H, "-1", "1", "1", "1"),
                k(T0 - 50 * H, "1", "1", "1", "1"),
                k(T0 - 5 * H, "1", "1", "1", "1"),
            ]),
            None,
        );
        let page = p.parse(&answer(&url, 200, &[], body, T0)).unwrap();
        let reasons: Vec<&str> = page
            .normalised
            .quarantined
            .iter()
            .map(|q| q.reason.as_str())
            .collect();
        for want in [
            "high: \"NaN\"",
            "short row: 3 fields",
            "close: empty string",
            "open: -1 is negative",
            "outside the window",
        ] {
            assert!(
                reasons.iter().any(|r| r.contains(want)),
                "{want}: {reasons:?}"
            );
        }
        assert_eq!(page.normalised.records.len(), 1);
        assert!(matches!(
            p.parse(&answer(&url, 200, &[], json!([]), T0)),
            Err(ResponseError::UnexpectedShape { .. })
        ));
        assert!(matches!(
            p.parse(&answer(
                &url,
                200,
                &[],
                json!({"retCode": 0, "result": {"list": {}}}),
                T0
            )),
            Err(ResponseError::UnexpectedShape { .. })
        ));
    }

    #[test]
    fn rate_codes_on_200_and_403_are_limits_not_data() {
        let p = plan_at(json!({"symbol": "BTCUSDT", "interval": "1h"}), T0).unwrap();
        let url = url_of(&p, &Step::Start);
        let reset = (T0 + 3_000).to_string();
        let heads = [
            ("x-bapi-limit-status", "0"),
            ("x-bapi-limit", "600"),
            ("x-bapi-limit-reset-timestamp", reset.as_str()),
        ];
        let busy = p.inspect(&answer(
            &url,
            200,
            &heads,
            json!({"retCode": 10006, "retMsg": "Too many visits!", "result": {}}),
            T0,
        ));
        assert_eq!(
            busy.verdict,
            Verdict::Throttled {
                wait: Some(Duration::from_secs(3)),
                reason: format!("retCode 10006 on HTTP 200 from {url}: Too many visits!")
            }
        );
        assert_eq!(
            busy.rate,
            Some(RateWindow {
                limit: None,
                remaining: Some(0),
                reset: Some(Duration::from_secs(3))
            })
        );
        let ip = p.inspect(&answer(
            &url,
            200,
            &[],
            json!({"retCode": 10018, "retMsg": "Exceeded the IP Rate Limit"}),
            T0,
        ));
        assert!(
            matches!(ip.verdict, Verdict::Throttled { wait: Some(w), .. } if w == THROTTLE_WAIT)
        );
        let banned = p.inspect(&answer(
            &url,
            403,
            &[("retry-after", "30")],
            json!("access too frequent"),
            T0,
        ));
        let Verdict::Hold(h) = banned.verdict else {
            panic!()
        };
        assert_eq!((h.scope, h.wait), (HoldScope::Host, FORBIDDEN_HOLD));
        let bad = p.inspect(&answer(
            &url,
            200,
            &[],
            json!({"retCode": 10001, "retMsg": "params error: symbol invalid"}),
            T0,
        ));
        let Verdict::Fail(why) = bad.verdict else {
            panic!()
        };
        assert!(
            why.contains("symbol BTCUSDT") && why.contains("symbol invalid"),
            "{why}"
        );
        assert!(matches!(
            p.inspect(&answer(
                &url,
                200,
                &[],
                json!({"retCode": 10016, "retMsg": "server error"}),
                T0
            ))
            .verdict,
            Verdict::Retry(_)
        ));
        assert_eq!(
            p.inspect(&answer(&url, 200, &[], ok(json!([]), None), T0))
                .verdict,
            Verdict::Use
        );
    }

    #[test]
    fn open_interest_follows_the_cursor_inside_its_window() {
        let now = T0 + 2 * H;
        let p = plan_at(json!({"symbol": "BTCUSDT", "data": "open_interest", "period": "1h", "lookback": "2h", "limit": 2}), now).unwrap();
        let first = p.request(&Step::Start);
        assert!(first.query.contains(&("intervalTime".into(), "1h".into())));
        assert!(first.query.contains(&("startTime".into(), T0.to_string())));
        assert!(
            first
                .query
                .contains(&("endTime".into(), (now - PUBLISH_LAG_MS).to_string())),
            "{first:?}"
        );
        let url = url_of(&p, &Step::Start);
        let page = p
            .parse(&answer(
                &url,
                200,
                &[],
                ok(
                    json!([
                        {"openInterest": "1200.5", "timestamp": (T0 + H).to_string()},
                        {"openInterest": "1100", "timestamp": T0.to_string()},
                    ]),
                    Some("lastid%3D123%26lasttime%3D456"),
                ),
                now,
            ))
            .unwrap();
        assert_eq!(page.normalised.records.len(), 2);
        assert_eq!(page.normalised.records[0].key, "bybit/linear/BTCUSDT/oi/1h");
        let next = page.next.clone().unwrap();
        let r = p.request(&next);
        // Decoded here, so the adapter's encoding gives back Bybit's own text.
        assert!(
            r.query
                .contains(&("cursor".into(), "lastid=123&lasttime=456".into())),
            "{r:?}"
        );
        assert!(r.query.contains(&("startTime".into(), T0.to_string())));
        // The last page of the window: the window is the mark.
        let url2 = url_of(&p, &next);
        let last = p
            .parse(&answer(&url2, 200, &[], ok(json!([]), Some("")), now))
            .unwrap();
        assert_eq!(last.next, None);
        assert_eq!(
            last.resume_at,
            Some(Step::Window {
                from_ms: now - PUBLISH_LAG_MS + 1
            })
        );
    }

    #[test]
    fn funding_windows_and_rows() {
        let p = plan_at(
            json!({"symbol": "BTCUSDT", "data": "funding", "lookback": "1d"}),
            T0,
        )
        .unwrap();
        let url = url_of(&p, &Step::Start);
        assert!(
            url.contains("/v5/market/funding/history?category=linear&symbol=BTCUSDT&startTime="),
            "{url}"
        );
        let page = p.parse(&answer(&url, 200, &[], ok(json!([
            {"symbol": "BTCUSDT", "fundingRate": "-0.0001", "fundingRateTimestamp": (T0 - 8 * H).to_string()},
            {"symbol": "BTCUSDT", "fundingRate": "inf", "fundingRateTimestamp": (T0 - 16 * H).to_string()},
        ]), None), T0)).unwrap();
        assert_eq!(page.normalised.records.len(), 1);
        assert_eq!(
            page.normalised.records[0].key,
            "bybit/linear/BTCUSDT/funding"
        );
        assert!(page.normalised.quarantined[0]
            .reason
            .contains("fundingRate"));
        assert_eq!(
            page.resume_at,
            Some(Step::Window {
                from_ms: T0 - PUBLISH_LAG_MS + 1
            })
        );
    }

    #[test]
    fn bad_jobs_name_the_field_and_archived_requests_give_back_their_plan() {
        for (params, field) in [
            (
                json!({"symbol": "BTCUSDT", "interval": "8h"}),
                "params.interval",
            ),
            (
                json!({"symbol": "BTCUSDT", "interval": "1h", "category": "option"}),
                "params.category",
            ),
            (
                json!({"symbol": "BTCUSDT", "data": "funding", "category": "spot"}),
                "params.data",
            ),
            (
                json!({"symbol": "BTCUSDT", "data": "open_interest", "period": "2h"}),
                "params.period",
            ),
            (
                json!({"symbol": "BTCUSDT", "data": "funding", "limit": 201}),
                "params.limit",
            ),
        ] {
            assert_eq!(
                plan_at(params.clone(), T0).unwrap_err().field,
                field,
                "{params}"
            );
        }
        let c = Context {
            source: "bybit",
            options: &Map::new(),
        };
        let r = super::super::request_of_url("https://api.bybit.com/v5/market/open-interest?category=linear&symbol=ETHUSDT&intervalTime=5min&startTime=1&endTime=2&limit=200&cursor=abc").unwrap();
        let p = Bybit.plan_of_request("eth", c, &r).unwrap();
        assert_eq!(
            p.fingerprint(),
            "/v5/market/open-interest?category=linear&symbol=ETHUSDT&series=oi/5m"
        );
        let r = super::super::request_of_url("https://api.bybit.com/v5/market/kline?category=spot&symbol=ETHUSDT&interval=240&start=1&end=2&limit=1000").unwrap();
        assert_eq!(
            Bybit.plan_of_request("eth", c, &r).unwrap().fingerprint(),
            "/v5/market/kline?category=spot&symbol=ETHUSDT&series=klines/4h"
        );
    }
}
