//! Sports betting odds, from an unstable API. Two styles of the same data:
//!
//! - **The Odds API v4** (default, `options.api = "v4"`):
//!   `GET /v4/sports/{sport}/odds?regions=us,uk&markets=h2h,spreads,totals&oddsFormat=decimal`,
//!   the key as the `apiKey` query parameter. The body is an array of events
//!   `{id, sport_key, sport_title, commence_time, home_team, away_team, bookmakers: [{key,
//!   title, last_update, markets: [{key, last_update, outcomes: [{name, price, point?}]}]}]}`.
//!   Every answer carries `x-requests-remaining` / `x-requests-used` / `x-requests-last`
//!   (credits of a monthly quota, not a rate window). Errors are `{"message", "error_code"}`:
//!   401 `OUT_OF_USAGE_CREDITS` (the quota is spent), 401 `INVALID_KEY` / `MISSING_KEY`,
//!   422 `INVALID_MARKET`, 429 `EXCEEDED_FREQ_LIMIT`.
//! - **dingerodds** (`options.api = "dingerodds"`, what the seed used):
//!   `GET /api/v1/events/upcoming?sport=baseball&market=moneyline&limit=50[&cursor=…]` with
//!   `Authorization: Bearer`; the body is `{"data": [events], "next_cursor": "…"}`, events in
//!   the v4 shape with `sport` for `sport_key` and market keys `moneyline`, `spread`,
//!   `total`. Pages follow the cursor until it is null. Undocumented ~60 requests a minute.
//!
//! **Record grain**: one `odds_quote` per event × bookmaker × market × outcome. Entity key
//! `<sport>/<event id>/<bookmaker>/<market>/<outcome>` (components with `/` escaped; the
//! line joins the key only for `alternate_*` markets, which list one outcome per line). The
//! line (`point`) is a field, so a moving spread is a change of one quote. Market keys use
//! v4's vocabulary (`h2h`, `spreads`, `totals`): dingerodds' `moneyline` is `h2h`. The
//! observation time is the market's `last_update`, else the bookmaker's, else the fetch.
//!
//! **Missing odds** arrive as `null` one day and `{}` (or `[]`, or nothing) the next, at
//! every level: such a bookmakers, markets or outcomes list is empty — no quote, no error.
//! A `price` that is `null`, `{}`, not a number or not above 1 quarantines that outcome; an
//! event without a usable `id` or `commence_time` is quarantined whole. Prices as strings
//! (`"1.91"`) are accepted.

use super::{
    key_part, standard_inspection, Auth, Context, Defaults, Hold, HoldScope, Inspection,
    Normalised, Page, Plan, Quarantined, RateScope, RequestSpec, Response, ResponseError, Source,
    Step, Verdict, Walk,
};
use crate::envelope::{Envelope, OddsQuote, Payload};
use crate::fields::{self, describe, Dropped};
use crate::job::{Job, JobError};
use chrono::{DateTime, Datelike, SecondsFormat, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use std::time::Duration;

pub const MODULE: &str = "odds";
/// The Odds API's documented frequency limit is about 30 requests a second (its 429 is
/// `EXCEEDED_FREQ_LIMIT`); the limiter starts there and learns anything lower from 429s.
pub const DOCUMENTED_RPM: u32 = 1800;
/// The quota error code: the plan's credits are spent until the monthly reset.
pub const OUT_OF_CREDITS: &str = "OUT_OF_USAGE_CREDITS";
/// Regions The Odds API knows.
const REGIONS: &[&str] = &["us", "us2", "uk", "eu", "au"];
/// dingerodds' largest page.
const DINGER_MAX_LIMIT: u32 = 100;
/// Pages a dingerodds walk takes when the job does not say (`params.max_pages`).
const DINGER_DEFAULT_MAX_PAGES: u32 = 20;
const DINGER_MAX_PAGES: u32 = 1000;
/// Upstream error messages are kept to this many characters in errors and logs.
const MESSAGE_MAX_CHARS: usize = 200;

/// Which of the two API styles a source entry speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    V4,
    Dingerodds,
}

fn api_of(options: &Map<String, Value>) -> Result<Api, String> {
    match options.get("api") {
        None => Ok(Api::V4),
        Some(Value::String(s)) if s == "v4" => Ok(Api::V4),
        Some(Value::String(s)) if s == "dingerodds" => Ok(Api::Dingerodds),
        Some(other) => Err(format!(
            "options.api: {} is not \"v4\" or \"dingerodds\"",
            describe(other)
        )),
    }
}

/// The sports-odds source.
pub struct Odds;

impl Source for Odds {
    fn module(&self) -> &'static str {
        MODULE
    }

    fn kinds(&self) -> &'static [&'static str] {
        &["odds_quote"]
    }

    fn defaults(&self) -> Defaults {
        Defaults {
            base_url: "https://api.the-odds-api.com",
            auth: Auth::Query {
                name: "apiKey".into(),
            },
            documented_rpm: &[("*", DOCUMENTED_RPM)],
            unknown_path_rpm: DOCUMENTED_RPM,
            // Limits and credits count per key, whatever the sport in the path.
            rate_scope: RateScope::Host,
        }
    }

    fn check_options(&self, options: &Map<String, Value>) -> Result<(), String> {
        if let Some(k) = options.keys().find(|k| *k != "api") {
            return Err(format!(
                "options.{k}: not an option of the odds module (api)"
            ));
        }
        api_of(options).map(|_| ())
    }

    fn plan(&self, job: &Job, context: Context<'_>) -> Result<Box<dyn Plan>, JobError> {
        let api = api_of(context.options).map_err(|p| JobError::new("source", p))?;
        Ok(Box::new(plan(job, context.source, api)?))
    }

    fn plan_of_request(
        &self,
        job: &str,
        context: Context<'_>,
        request: &RequestSpec,
    ) -> Result<Box<dyn Plan>, JobError> {
        let api = api_of(context.options).map_err(|p| JobError::new("source", p))?;
        let mut params = super::params_of_request(request, &["cursor"]);
        if api == Api::V4 {
            let sport = request
                .path
                .strip_prefix("/v4/sports/")
                .and_then(|rest| rest.strip_suffix("/odds"))
                .ok_or_else(|| {
                    JobError::new(
                        "path",
                        format!("{} is not /v4/sports/{{sport}}/odds", request.path),
                    )
                })?;
            params.insert("sport".into(), Value::String(sport.into()));
        }
        let job = super::job_of(job, context.source, params)?;
        Ok(Box::new(plan(&job, context.source, api)?))
    }
}

/// A validated odds job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OddsPlan {
    pub source: String,
    pub job: String,
    pub api: Api,
    /// The sport asked for (`upcoming` in v4 means every sport).
    pub sport: String,
    pub request: RequestSpec,
    /// dingerodds: pages per walk.
    pub max_pages: u32,
}

fn is_key(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn list_param(
    job: &Job,
    name: &str,
    valid: impl Fn(&str) -> bool,
) -> Result<Option<String>, JobError> {
    let Some(v) = job.param(name) else {
        return Ok(None);
    };
    let items: Vec<&str> = v.split(',').map(str::trim).collect();
    if items.iter().any(|i| !valid(i)) {
        return Err(JobError::new(
            format!("params.{name}"),
            format!("{v:?} is not a comma-separated list of keys"),
        ));
    }
    Ok(Some(items.join(",")))
}

fn iso_time_param(job: &Job, name: &str) -> Result<Option<String>, JobError> {
    match job.param(name) {
        None => Ok(None),
        Some(v) => match DateTime::parse_from_rfc3339(v) {
            Ok(t) => Ok(Some(
                t.with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::Secs, true),
            )),
            Err(_) => Err(JobError::new(
                format!("params.{name}"),
                format!("{v:?} is not an RFC 3339 time (2026-12-01T00:00:00Z)"),
            )),
        },
    }
}

/// Turns a job into its request, checking every parameter by name.
pub fn plan(job: &Job, source: &str, api: Api) -> Result<OddsPlan, JobError> {
    let allowed: &[&str] = match api {
        Api::V4 => &[
            "sport",
            "regions",
            "markets",
            "bookmakers",
            "oddsFormat",
            "dateFormat",
            "eventIds",
            "commenceTimeFrom",
            "commenceTimeTo",
        ],
        Api::Dingerodds => &["sport", "market", "limit", "max_pages"],
    };
    for key in job.params.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(JobError::new(
                format!("params.{key}"),
                format!(
                    "not a parameter of the {} odds API (expected one of {})",
                    match api {
                        Api::V4 => "v4",
                        Api::Dingerodds => "dingerodds",
                    },
                    allowed.join(", ")
                ),
            ));
        }
    }
    let sport = job
        .param("sport")
        .ok_or_else(|| JobError::new("params.sport", "missing"))?;
    if !is_key(sport) {
        return Err(JobError::new(
            "params.sport",
            format!("{sport:?} is not a sport key (basketball_nba, upcoming)"),
        ));
    }
    let mut query: Vec<(String, String)> = Vec::new();
    let (path, max_pages) = match api {
        Api::V4 => {
            let regions = list_param(job, "regions", |r| REGIONS.contains(&r)).map_err(|e| {
                JobError::new(e.field, format!("{} of {}", e.problem, REGIONS.join(", ")))
            })?;
            let bookmakers = list_param(job, "bookmakers", is_key)?;
            if regions.is_none() && bookmakers.is_none() {
                return Err(JobError::new(
                    "params.regions",
                    format!(
                        "missing (one or more of {}, or params.bookmakers)",
                        REGIONS.join(", ")
                    ),
                ));
            }
            // Market keys are checked by syntax only: the upstream knows its markets, and
            // answers an unknown one with 422 INVALID_MARKET, which fails the job.
            let markets = list_param(job, "markets", is_key)?.unwrap_or_else(|| "h2h".into());
            for (name, only) in [("oddsFormat", "decimal"), ("dateFormat", "iso")] {
                if let Some(v) = job.param(name) {
                    if v != only {
                        return Err(JobError::new(
                            format!("params.{name}"),
                            format!("{v:?}: prices are collected as {only} (leave it out)"),
                        ));
                    }
                }
            }
            if let Some(r) = regions {
                query.push(("regions".into(), r));
            }
            if let Some(b) = bookmakers {
                query.push(("bookmakers".into(), b));
            }
            query.push(("markets".into(), markets));
            query.push(("oddsFormat".into(), "decimal".into()));
            query.push(("dateFormat".into(), "iso".into()));
            if let Some(ids) = list_param(job, "eventIds", |i| {
                !i.is_empty() && i.bytes().all(|b| b.is_ascii_alphanumeric())
            })? {
                query.push(("eventIds".into(), ids));
            }
            for name in ["commenceTimeFrom", "commenceTimeTo"] {
                if let Some(t) = iso_time_param(job, name)? {
                    query.push((name.into(), t));
                }
            }
            (format!("/v4/sports/{sport}/odds"), 1)
        }
        Api::Dingerodds => {
            let market = job.param("market").unwrap_or("moneyline");
            if !["moneyline", "spread", "total"].contains(&market) {
                return Err(JobError::new(
                    "params.market",
                    format!("{market:?} is not moneyline, spread or total"),
                ));
            }
            query.push(("sport".into(), sport.into()));
            query.push(("market".into(), market.into()));
            if let Some(limit) = job.param("limit") {
                if !limit
                    .parse::<u32>()
                    .is_ok_and(|n| (1..=DINGER_MAX_LIMIT).contains(&n))
                {
                    return Err(JobError::new(
                        "params.limit",
                        format!("{limit:?} is not a number from 1 to {DINGER_MAX_LIMIT}"),
                    ));
                }
                query.push(("limit".into(), limit.into()));
            }
            let max_pages = match job.param("max_pages") {
                None => DINGER_DEFAULT_MAX_PAGES,
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=DINGER_MAX_PAGES).contains(n))
                    .ok_or_else(|| {
                        JobError::new(
                            "params.max_pages",
                            format!("{v:?} is not a number from 1 to {DINGER_MAX_PAGES}"),
                        )
                    })?,
            };
            ("/api/v1/events/upcoming".to_string(), max_pages)
        }
    };
    Ok(OddsPlan {
        source: source.to_string(),
        job: job.name.clone(),
        api,
        sport: sport.to_string(),
        request: RequestSpec::new(path, query),
        max_pages,
    })
}

/// When The Odds API's monthly credits come back: the first of next month, UTC.
pub fn until_next_month(now: DateTime<Utc>) -> Duration {
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .and_then(|t| (t - now).to_std().ok())
        .unwrap_or(Duration::from_secs(86_400))
}

/// `(code, message)` of an error body: v4's `{"message", "error_code"}`, or
/// `{"error": "…"}` / `{"error": {"code", "message"}}`.
fn error_body(body: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    let cap = |s: &str| s.chars().take(MESSAGE_MAX_CHARS).collect::<String>();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(cap);
    if let Some(message) = text(obj.get("message")) {
        return Some((text(obj.get("error_code")).unwrap_or_default(), message));
    }
    match obj.get("error") {
        Some(Value::String(s)) => Some((String::new(), cap(s))),
        Some(Value::Object(e)) => Some((
            text(e.get("code")).unwrap_or_default(),
            text(e.get("message")).unwrap_or_default(),
        )),
        _ => None,
    }
}

impl OddsPlan {
    fn quota_hold(&self, response: &Response, reason: String) -> Hold {
        Hold {
            scope: HoldScope::Source,
            wait: until_next_month(response.fetched_at),
            reason,
        }
    }
}

impl Plan for OddsPlan {
    fn walk(&self) -> Walk {
        match self.api {
            Api::V4 => Walk::Single,
            Api::Dingerodds => Walk::Chain {
                max_steps: self.max_pages,
            },
        }
    }

    fn request(&self, step: &Step) -> RequestSpec {
        let mut r = self.request.clone();
        if let Step::Token { token } = step {
            r.query.push(("cursor".into(), token.clone()));
        }
        r
    }

    fn inspect(&self, response: &Response) -> Inspection {
        let mut inspection = standard_inspection(response);
        // x-requests-* count credits of a monthly quota: not a per-minute window.
        inspection.rate = None;
        let named = || {
            error_body(&response.body).map(|(code, message)| {
                if code.is_empty() {
                    message
                } else {
                    format!("{code}: {message}")
                }
            })
        };
        match response.status {
            401 | 403 => {
                let (code, message) = error_body(&response.body).unwrap_or_default();
                inspection.verdict = if code == OUT_OF_CREDITS {
                    Verdict::Hold(self.quota_hold(
                        response,
                        format!("quota exhausted ({OUT_OF_CREDITS}: {message})"),
                    ))
                } else {
                    Verdict::Fail(format!(
                        "upstream refused the credentials (HTTP {}{}); check the source's secret",
                        response.status,
                        named().map(|m| format!(", {m}")).unwrap_or_default()
                    ))
                };
            }
            422 => {
                inspection.verdict = Verdict::Fail(format!(
                    "upstream rejected the request (HTTP 422{}); fix the job's params",
                    named().map(|m| format!(", {m}")).unwrap_or_default()
                ));
            }
            429 => {
                if let (Verdict::Throttled { reason, .. }, Some(m)) =
                    (&mut inspection.verdict, named())
                {
                    reason.push_str(&format!(" ({m})"));
                }
            }
            200..=299 if response.header("x-requests-remaining") == Some("0") => {
                inspection.hold_after = Some(
                    self.quota_hold(response, "quota exhausted (x-requests-remaining: 0)".into()),
                );
            }
            _ => {}
        }
        inspection
    }

    fn parse(&self, response: &Response) -> Result<Page, ResponseError> {
        let root: Value =
            serde_json::from_slice(&response.body).map_err(|e| ResponseError::NotJson {
                job: self.job.clone(),
                detail: e.to_string(),
            })?;
        let shape = |detail: String| ResponseError::UnexpectedShape {
            job: self.job.clone(),
            detail,
        };
        let (events, next): (Vec<Value>, Option<Step>) = match root {
            Value::Array(events) => (events, None),
            Value::Null => (Vec::new(), None),
            Value::Object(mut obj) => {
                if let Some((_, message)) = error_body(&response.body) {
                    return Err(ResponseError::ErrorEnvelope {
                        job: self.job.clone(),
                        message,
                    });
                }
                let events = match obj.remove("data") {
                    Some(Value::Array(events)) => events,
                    Some(Value::Null) => Vec::new(),
                    Some(Value::Object(o)) if o.is_empty() => Vec::new(),
                    Some(other) => {
                        return Err(shape(format!(
                            "data is {}, expected an array of events",
                            describe(&other)
                        )))
                    }
                    None => return Err(shape("an object without data".into())),
                };
                let next = match obj.get("next_cursor") {
                    Some(Value::String(t)) if !t.trim().is_empty() => Some(Step::Token {
                        token: t.trim().to_string(),
                    }),
                    Some(Value::String(_)) | Some(Value::Null) | None => None,
                    Some(other) => {
                        return Err(shape(format!(
                            "next_cursor is {}, expected a string",
                            describe(other)
                        )))
                    }
                };
                (events, next)
            }
            other => {
                return Err(shape(format!(
                    "top level is {}, expected an array of events",
                    describe(&other)
                )))
            }
        };
        let mut out = Normalised::default();
        let size = events.len();
        for (index, event) in events.into_iter().enumerate() {
            self.event(index, event, response.fetched_at, &mut out);
        }
        Ok(Page {
            normalised: out,
            next,
            size,
            resume_at: None,
        })
    }
}

/// A required text field, or the reason the record cannot be used.
fn required_text(obj: &Map<String, Value>, name: &str) -> Result<String, String> {
    fields::text(obj, name).map_err(|issue| format!("{name}: {issue}"))
}

/// Decimal odds: an exact number above 1.
fn decimal_odds(obj: &Map<String, Value>) -> Result<Decimal, String> {
    let price = fields::decimal(obj, "price").map_err(|issue| format!("price: {issue}"))?;
    if price <= Decimal::ONE {
        return Err(format!("price: {price} is not decimal odds (above 1)"));
    }
    Ok(price.normalize())
}

fn market_name(api: Api, key: &str) -> String {
    match (api, key) {
        (Api::Dingerodds, "moneyline") => "h2h".into(),
        (Api::Dingerodds, "spread") => "spreads".into(),
        (Api::Dingerodds, "total") => "totals".into(),
        _ => key.to_string(),
    }
}

impl OddsPlan {
    fn quarantine(&self, out: &mut Normalised, index: usize, reason: String, record: Value) {
        out.quarantined.push(Quarantined {
            source: self.source.clone(),
            job: self.job.clone(),
            index: Some(index),
            reason,
            record,
        });
    }

    /// One event → its quotes; what cannot be used is quarantined at the smallest level
    /// that holds the problem (the event, a bookmaker, a market, an outcome).
    fn event(&self, index: usize, event: Value, fetched_at: DateTime<Utc>, out: &mut Normalised) {
        let Value::Object(ev) = &event else {
            let reason = format!("event is {}, expected an object", describe(&event));
            self.quarantine(out, index, reason, event);
            return;
        };
        let mut dropped = Dropped::default();
        let head = (|| -> Result<(String, String, String), String> {
            let id = required_text(ev, "id")?;
            let commence = fields::time(ev, "commence_time")
                .map_err(|issue| format!("commence_time: {issue}"))?
                .to_rfc3339_opts(SecondsFormat::Secs, true);
            let sport = match fields::text(ev, "sport_key").or_else(|_| fields::text(ev, "sport")) {
                Ok(s) => s,
                Err(_) if self.sport != "upcoming" => self.sport.clone(),
                Err(issue) => return Err(format!("sport_key: {issue}")),
            };
            Ok((id, commence, sport))
        })();
        let (event_id, commence_time, sport) = match head {
            Ok(h) => h,
            Err(reason) => {
                self.quarantine(out, index, reason, event);
                return;
            }
        };
        let sport_title = dropped.optional("sport_title", fields::text(ev, "sport_title"));
        let home_team = dropped.optional("home_team", fields::text(ev, "home_team"));
        let away_team = dropped.optional("away_team", fields::text(ev, "away_team"));
        let bookmakers = match fields::list(ev, "bookmakers") {
            Ok(b) => b,
            Err(issue) => {
                let reason = format!("event {event_id}: bookmakers: {issue}");
                self.quarantine(out, index, reason, event.clone());
                return;
            }
        };
        for (b, bookmaker) in bookmakers.iter().enumerate() {
            let at = format!("event {event_id}: bookmakers[{b}]");
            let Value::Object(bm) = bookmaker else {
                let reason = format!("{at}: {}, expected an object", describe(bookmaker));
                self.quarantine(out, index, reason, bookmaker.clone());
                continue;
            };
            let bookmaker_key = match required_text(bm, "key") {
                Ok(k) => k,
                Err(reason) => {
                    self.quarantine(out, index, format!("{at}.{reason}"), bookmaker.clone());
                    continue;
                }
            };
            let bookmaker_title = dropped.optional("title", fields::text(bm, "title"));
            let bookmaker_update = dropped.optional("last_update", fields::time(bm, "last_update"));
            let markets = match fields::list(bm, "markets") {
                Ok(m) => m,
                Err(issue) => {
                    self.quarantine(
                        out,
                        index,
                        format!("{at}.markets: {issue}"),
                        bookmaker.clone(),
                    );
                    continue;
                }
            };
            for (m, market) in markets.iter().enumerate() {
                let at = format!("{at}.markets[{m}]");
                let Value::Object(mk) = market else {
                    let reason = format!("{at}: {}, expected an object", describe(market));
                    self.quarantine(out, index, reason, market.clone());
                    continue;
                };
                let market_key = match required_text(mk, "key") {
                    Ok(k) => market_name(self.api, &k),
                    Err(reason) => {
                        self.quarantine(out, index, format!("{at}.{reason}"), market.clone());
                        continue;
                    }
                };
                let observed = dropped
                    .optional("last_update", fields::time(mk, "last_update"))
                    .or(bookmaker_update);
                let outcomes = match fields::list(mk, "outcomes") {
                    Ok(o) => o,
                    Err(issue) => {
                        self.quarantine(
                            out,
                            index,
                            format!("{at}.outcomes: {issue}"),
                            market.clone(),
                        );
                        continue;
                    }
                };
                for (o, outcome) in outcomes.iter().enumerate() {
                    let at = format!("{at}.outcomes[{o}]");
                    let Value::Object(oc) = outcome else {
                        let reason = format!("{at}: {}, expected an object", describe(outcome));
                        self.quarantine(out, index, reason, outcome.clone());
                        continue;
                    };
                    let quote =
                        required_text(oc, "name").and_then(|name| Ok((name, decimal_odds(oc)?)));
                    let (name, price) = match quote {
                        Ok(q) => q,
                        Err(reason) => {
                            self.quarantine(out, index, format!("{at}.{reason}"), outcome.clone());
                            continue;
                        }
                    };
                    let point = dropped
                        .optional("point", fields::decimal(oc, "point"))
                        .map(|p| p.normalize());
                    let mut key = [&sport, &event_id, &bookmaker_key, &market_key, &name]
                        .map(|p| key_part(p))
                        .join("/");
                    if let (true, Some(p)) = (market_key.starts_with("alternate_"), point) {
                        key.push('/');
                        key.push_str(&p.to_string());
                    }
                    let q = OddsQuote {
                        sport: sport.clone(),
                        sport_title: sport_title.clone(),
                        event_id: event_id.clone(),
                        commence_time: commence_time.clone(),
                        home_team: home_team.clone(),
                        away_team: away_team.clone(),
                        bookmaker: bookmaker_key.clone(),
                        bookmaker_title: bookmaker_title.clone(),
                        market: market_key.clone(),
                        outcome: name,
                        price,
                        point,
                    };
                    out.records.push(Envelope::new(
                        &self.source,
                        &self.job,
                        key,
                        observed,
                        fetched_at,
                        Payload::OddsQuote(q),
                    ));
                }
            }
        }
        out.dropped_values.extend(dropped.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(params: Value) -> Job {
        Job::from_value(&json!({"job": "nba", "source": "odds", "params": params})).unwrap()
    }

    fn v4() -> OddsPlan {
        plan(
            &job(json!({"sport": "basketball_nba", "regions": "us", "markets": "h2h,spreads,totals"})),
            "odds",
            Api::V4,
        )
        .unwrap()
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: Value) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_string().into_bytes(),
            url: "https://api.the-odds-api.com/v4/sports/basketball_nba/odds?regions=us".into(),
            fetched_at: at(),
        }
    }

    fn event(bookmakers: Value) -> Value {
        json!({"id": "e1f0c0ffee", "sport_key": "basketball_nba", "sport_title": "NBA",
               "commence_time": "2026-12-02T00:30:00Z", "home_team": "Los Angeles Lakers",
               "away_team": "Boston Celtics", "bookmakers": bookmakers})
    }

    fn full_event() -> Value {
        event(
            json!([{"key": "draftkings", "title": "DraftKings", "last_update": "2026-12-01T11:58:00Z",
            "markets": [
              {"key": "h2h", "last_update": "2026-12-01T11:57:30Z", "outcomes": [
                 {"name": "Los Angeles Lakers", "price": 2.15}, {"name": "Boston Celtics", "price": "1.74"}]},
              {"key": "spreads", "outcomes": [
                 {"name": "Los Angeles Lakers", "price": 1.91, "point": 3.5},
                 {"name": "Boston Celtics", "price": 1.91, "point": "-3.5"}]},
              {"key": "totals", "outcomes": [
                 {"name": "Over", "price": 1.87, "point": 228.5}, {"name": "Under", "price": 1.95, "point": 228.5}]}]}]),
        )
    }

    fn quote(e: &Envelope) -> &OddsQuote {
        match &e.payload {
            Payload::OddsQuote(q) => q,
            other => panic!("not a quote: {other:?}"),
        }
    }

    #[test]
    fn a_v4_job_becomes_its_request_and_bad_params_are_named() {
        let p = v4();
        assert_eq!(p.request.path, "/v4/sports/basketball_nba/odds");
        assert_eq!(
            p.request.query,
            vec![
                ("regions".to_string(), "us".to_string()),
                ("markets".to_string(), "h2h,spreads,totals".to_string()),
                ("oddsFormat".to_string(), "decimal".to_string()),
                ("dateFormat".to_string(), "iso".to_string()),
            ]
        );
        assert_eq!(p.walk(), Walk::Single);
        assert!(
            !p.request.query.iter().any(|(k, _)| k == "apiKey"),
            "the key is the HTTP adapter's business"
        );
        let bad = [
            (json!({"regions": "us"}), "params.sport"),
            (json!({"sport": "NBA!", "regions": "us"}), "params.sport"),
            (json!({"sport": "basketball_nba"}), "params.regions"),
            (
                json!({"sport": "basketball_nba", "regions": "mars"}),
                "params.regions",
            ),
            (
                json!({"sport": "basketball_nba", "regions": "us", "markets": "h2h,"}),
                "params.markets",
            ),
            (
                json!({"sport": "basketball_nba", "regions": "us", "oddsFormat": "american"}),
                "params.oddsFormat",
            ),
            (
                json!({"sport": "basketball_nba", "regions": "us", "commenceTimeFrom": "tomorrow"}),
                "params.commenceTimeFrom",
            ),
            (
                json!({"sport": "basketball_nba", "regions": "us", "apiKey": "x"}),
                "params.apiKey",
            ),
        ];
        for (params, field) in bad {
            let err = plan(&job(params.clone()), "odds", Api::V4).unwrap_err();
            assert_eq!(err.field, field, "{params}: {err}");
        }
        // An unknown market passes the syntax check: the upstream answers it with 422.
        assert!(plan(
            &job(json!({"sport": "soccer_epl", "regions": "uk", "markets": "h2h_lay"})),
            "odds",
            Api::V4
        )
        .is_ok());
    }

    #[test]
    fn every_outcome_becomes_one_quote_with_the_upstream_time() {
        let p = v4();
        let page = p.parse(&answer(200, &[], json!([full_event()]))).unwrap();
        let n = &page.normalised;
        assert!(
            n.quarantined.is_empty() && n.dropped_values.is_empty(),
            "{n:?}"
        );
        assert_eq!(n.records.len(), 6);
        let h2h = &n.records[0];
        assert_eq!(
            h2h.key,
            "basketball_nba/e1f0c0ffee/draftkings/h2h/Los Angeles Lakers"
        );
        assert_eq!(h2h.kind(), "odds_quote");
        assert_eq!(h2h.source, "odds");
        assert_eq!(
            h2h.observed_at,
            Utc.with_ymd_and_hms(2026, 12, 1, 11, 57, 30).unwrap(),
            "the market's last_update"
        );
        let q = quote(h2h);
        assert_eq!(q.price.to_string(), "2.15");
        assert_eq!((q.point, q.market.as_str()), (None, "h2h"));
        assert_eq!(q.home_team.as_deref(), Some("Los Angeles Lakers"));
        assert_eq!(q.commence_time, "2026-12-02T00:30:00Z");
        assert_eq!(
            quote(&n.records[1]).price.to_string(),
            "1.74",
            "a price as a string"
        );
        let spread = quote(&n.records[3]);
        assert_eq!(spread.point.map(|p| p.to_string()), Some("-3.5".into()));
        assert_eq!(
            n.records[3].observed_at,
            Utc.with_ymd_and_hms(2026, 12, 1, 11, 58, 0).unwrap(),
            "no market time: the bookmaker's"
        );
        assert_eq!(
            n.records[4].key,
            "basketball_nba/e1f0c0ffee/draftkings/totals/Over"
        );
        assert_eq!(page.next, None);
        // The same answer again is the same observations; a moved price is a new one.
        let again = p.parse(&answer(200, &[], json!([full_event()]))).unwrap();
        assert_eq!(again.normalised.records[0].id, h2h.id);
    }

    #[test]
    fn missing_odds_at_every_level_are_no_quotes_not_errors() {
        let p = v4();
        for empty in [json!(null), json!({}), json!([]), json!("")] {
            let events = json!([
                event(empty.clone()),
                event(json!([{"key": "fanduel", "markets": empty.clone()}])),
                event(json!([{"key": "fanduel", "markets": [{"key": "h2h", "outcomes": empty.clone()}]}])),
                {"id": "no-bookmakers-field", "commence_time": "2026-12-02T00:30:00Z", "home_team": "A", "away_team": "B"},
            ]);
            let n = p.parse(&answer(200, &[], events)).unwrap().normalised;
            assert!(
                n.records.is_empty() && n.quarantined.is_empty(),
                "{empty}: {n:?}"
            );
        }
        assert!(p
            .parse(&answer(200, &[], json!(null)))
            .unwrap()
            .normalised
            .records
            .is_empty());
        assert!(p
            .parse(&answer(200, &[], json!([])))
            .unwrap()
            .normalised
            .records
            .is_empty());
    }

    #[test]
    fn unusable_prices_and_events_are_quarantined_at_their_level_with_the_reason() {
        let p = v4();
        let events = json!([
            event(json!([{"key": "fanduel", "markets": [{"key": "h2h", "outcomes": [
                {"name": "A", "price": null}, {"name": "B", "price": {}}, {"name": "C", "price": "evens"},
                {"name": "D", "price": 1}, {"name": "E"}, {"price": 2.0}, {"name": "F", "price": 2.5, "point": "x"},
                "garbage"]}]}])),
            {"sport_key": "basketball_nba", "commence_time": "2026-12-02T00:30:00Z", "bookmakers": []},
            {"id": "x1", "commence_time": "someday", "bookmakers": []},
            {"id": "x2", "commence_time": "2026-12-02T00:30:00Z", "bookmakers": {"fanduel": {}}},
            event(json!([{"title": "No key"}, 7])),
            "not an event",
        ]);
        let n = p.parse(&answer(200, &[], events)).unwrap().normalised;
        assert_eq!(
            n.records.len(),
            1,
            "only F survives (its bad point is dropped)"
        );
        assert_eq!(quote(&n.records[0]).point, None);
        assert_eq!(
            n.dropped_values,
            vec!["point: expected a number, found string \"x\"".to_string()]
        );
        let reasons: Vec<&str> = n.quarantined.iter().map(|q| q.reason.as_str()).collect();
        let o = "event e1f0c0ffee: bookmakers[0].markets[0].outcomes";
        assert_eq!(
            reasons,
            vec![
                format!("{o}[0].price: null").as_str(),
                &format!("{o}[1].price: empty object {{}}"),
                &format!("{o}[2].price: expected a number, found string \"evens\""),
                &format!("{o}[3].price: 1 is not decimal odds (above 1)"),
                &format!("{o}[4].price: missing"),
                &format!("{o}[5].name: missing"),
                &format!("{o}[7]: string \"garbage\", expected an object"),
                "id: missing",
                "commence_time: \"someday\" is not an RFC 3339 time",
                "event x2: bookmakers: expected an array, found object with 1 keys",
                "event e1f0c0ffee: bookmakers[0].key: missing",
                "event e1f0c0ffee: bookmakers[1]: number 7, expected an object",
                "event is string \"not an event\", expected an object",
            ]
        );
        assert_eq!(n.quarantined[8].index, Some(2));
    }

    #[test]
    fn quota_limits_and_errors_are_read_from_status_headers_and_body() {
        let p = v4();
        let spent = answer(
            401,
            &[("x-requests-remaining", "0")],
            json!({"message": "Usage quota has been reached.", "error_code": "OUT_OF_USAGE_CREDITS", "details_url": "https://the-odds-api.com/liveapi/guides/v4/api-error-codes.html#out-of-usage-credits"}),
        );
        let Verdict::Hold(h) = p.inspect(&spent).verdict else {
            panic!("a spent quota holds the source")
        };
        assert_eq!(h.scope, HoldScope::Source);
        assert_eq!(
            h.wait,
            Duration::from_secs(30 * 86_400 + 12 * 3600),
            "until 2027-01-01"
        );
        assert!(h.reason.contains("OUT_OF_USAGE_CREDITS"), "{}", h.reason);

        let last = p.inspect(&answer(
            200,
            &[("x-requests-remaining", "0"), ("x-requests-used", "500")],
            json!([]),
        ));
        assert_eq!(
            last.verdict,
            Verdict::Use,
            "the last credit's answer is used"
        );
        assert!(last.hold_after.is_some());
        assert!(p
            .inspect(&answer(200, &[("x-requests-remaining", "12")], json!([])))
            .hold_after
            .is_none());

        let bad_market = p.inspect(&answer(
            422,
            &[],
            json!({"message": "Invalid market h2h_lay", "error_code": "INVALID_MARKET"}),
        ));
        let Verdict::Fail(why) = bad_market.verdict else {
            panic!("422 is never retried")
        };
        assert!(
            why.contains("INVALID_MARKET: Invalid market h2h_lay"),
            "{why}"
        );
        let bad_key = p.inspect(&answer(
            401,
            &[],
            json!({"message": "API key is not valid", "error_code": "INVALID_KEY"}),
        ));
        assert!(
            matches!(bad_key.verdict, Verdict::Fail(ref w) if w.contains("INVALID_KEY")),
            "{bad_key:?}"
        );
        let freq = p.inspect(&answer(
            429,
            &[],
            json!({"message": "Too many requests", "error_code": "EXCEEDED_FREQ_LIMIT"}),
        ));
        assert!(
            matches!(freq.verdict, Verdict::Throttled { wait: None, ref reason } if reason.contains("EXCEEDED_FREQ_LIMIT")),
            "{freq:?}"
        );
        assert!(matches!(
            p.inspect(&answer(502, &[], json!(null))).verdict,
            Verdict::Retry(_)
        ));
        let long = p.inspect(&answer(
            422,
            &[],
            json!({"message": "m".repeat(5000), "error_code": "INVALID_MARKET"}),
        ));
        let Verdict::Fail(why) = long.verdict else {
            panic!()
        };
        assert!(
            why.len() < 400,
            "upstream text is capped: {} chars",
            why.len()
        );
    }

    #[test]
    fn dingerodds_pages_follow_the_cursor_and_moneyline_is_h2h() {
        let p = plan(
            &job(json!({"sport": "baseball", "market": "moneyline", "limit": "50"})),
            "dinger",
            Api::Dingerodds,
        )
        .unwrap();
        assert_eq!(p.walk(), Walk::Chain { max_steps: 20 });
        assert_eq!(p.request.path, "/api/v1/events/upcoming");
        let second = p.request(&Step::Token {
            token: "abc%3D".into(),
        });
        assert!(second
            .query
            .contains(&("cursor".to_string(), "abc%3D".to_string())));
        let body = json!({"data": [{"id": "g1", "sport": "baseball", "commence_time": 1796169600,
            "home_team": "Mets", "away_team": "Cubs",
            "bookmakers": [{"key": "dinger", "last_update": "2026-12-01T11:00:00Z",
                "markets": [{"key": "moneyline", "outcomes": [{"name": "Mets", "price": "1.80"}, {"name": "Cubs", "price": "2.05"}]}]}]}],
            "next_cursor": "abc%3D"});
        let page = p.parse(&answer(200, &[], body)).unwrap();
        assert_eq!(
            page.next,
            Some(Step::Token {
                token: "abc%3D".into()
            })
        );
        assert_eq!(page.normalised.records.len(), 2);
        assert_eq!(
            page.normalised.records[0].key,
            "baseball/g1/dinger/h2h/Mets"
        );
        assert_eq!(
            quote(&page.normalised.records[0]).commence_time,
            "2026-12-02T00:00:00Z"
        );
        assert_eq!(page.normalised.records[0].source, "dinger");
        let end = p
            .parse(&answer(200, &[], json!({"data": [], "next_cursor": null})))
            .unwrap();
        assert_eq!(end.next, None);
        for bad in [
            json!({"sport": "baseball", "markets": "h2h"}),
            json!({"sport": "baseball", "limit": "500"}),
        ] {
            assert!(
                plan(&job(bad.clone()), "dinger", Api::Dingerodds).is_err(),
                "{bad}"
            );
        }
        let err = p
            .parse(&answer(
                200,
                &[],
                json!({"error": {"code": "BAD_SPORT", "message": "no such sport"}}),
            ))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "job nba: upstream reported an error: no such sport"
        );
    }

    #[test]
    fn the_archived_request_gives_back_the_plan() {
        let p = v4();
        let again = Odds
            .plan_of_request(
                "nba",
                Context {
                    source: "odds",
                    options: &Map::new(),
                },
                &p.request(&Step::Start),
            )
            .unwrap();
        assert_eq!(again.fingerprint(), p.fingerprint());
        let bad = Odds.check_options(&serde_json::from_value(json!({"api": "v9"})).unwrap());
        assert!(bad.unwrap_err().starts_with("options.api:"));
        assert!(Odds
            .check_options(&serde_json::from_value(json!({"colour": "red"})).unwrap())
            .is_err());
    }
}
