//! Upstream sources. A source is one module: it says how a job becomes requests, how an
//! answer becomes records and what comes next, how it authenticates, how it reports quota
//! and limits, and which record kinds it makes. Everything else (circuit breaker, rate
//! limiter, retries, deadline, archive, cursor save and resume, flush) is the collector's
//! walk, the same for every source.
//!
//! Everything here is pure: no I/O, so every shape an upstream can answer is unit-tested,
//! and `pricewire normalise` can say what the collector would make of any answer.
//!
//! Adding a source: its module here, a line in [`REGISTRY`], its simulator personality
//! (`infra/pricewire/src/simulator/`), and its entry in Terraform's `source_modules`
//! (`terraform/locals.tf`).

pub mod binance;
pub mod bybit;
pub mod generic;
pub mod market;
pub mod odds;
pub mod settings;
pub mod travelpayouts;

use crate::envelope::Envelope;
use crate::job::{Job, JobError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// Every source module, by name. A source entry in the configuration names one of these
/// (`module`), defaulting to the entry's own name.
pub static REGISTRY: &[&dyn Source] = &[
    &travelpayouts::Travelpayouts,
    &odds::Odds,
    &binance::Binance,
    &bybit::Bybit,
    &generic::Generic,
];

/// The module called `name`, if there is one.
pub fn module(name: &str) -> Option<&'static dyn Source> {
    REGISTRY.iter().copied().find(|s| s.module() == name)
}

/// The names of every module, for error messages.
pub fn module_names() -> Vec<&'static str> {
    REGISTRY.iter().map(|s| s.module()).collect()
}

/// How a source proves who it is. The secret itself is added by the HTTP adapter, so no
/// request spec, URL kept for the archive, log line or error carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// A public API.
    None,
    /// The secret in a header of this name (`X-Access-Token`).
    Header { name: String },
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// The secret as a query parameter of this name (`apiKey`).
    Query { name: String },
}

impl Auth {
    pub fn needs_secret(&self) -> bool {
        !matches!(self, Auth::None)
    }

    pub fn style(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Header { .. } => "header",
            Auth::Bearer => "bearer",
            Auth::Query { .. } => "query",
        }
    }
}

/// What one rate limit covers: each API path (methods limited separately), or the whole
/// host (one budget for every path, as when a key's requests are counted together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateScope {
    Path,
    Host,
}

/// The limit key of a host-wide budget (`documented_rpm` and `rate_limits` use it).
pub const WHOLE_HOST: &str = "*";

/// What a module assumes when its configuration entry does not say.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Empty: the module has no default upstream, and an entry must name one.
    pub base_url: &'static str,
    pub auth: Auth,
    /// The upstream's documented limits: API path → requests per minute. The limiter starts
    /// there and learns the real limit from 429s.
    pub documented_rpm: &'static [(&'static str, u32)],
    /// The rate for a path nobody documented and nobody configured.
    pub unknown_path_rpm: u32,
    pub rate_scope: RateScope,
}

/// One HTTP GET against the source's base URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestSpec {
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl RequestSpec {
    pub fn new(path: impl Into<String>, query: Vec<(String, String)>) -> RequestSpec {
        RequestSpec {
            path: path.into(),
            query,
        }
    }
}

/// An upstream's answer, as the HTTP adapter read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lower-case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The URL requested, with its query string and without any secret.
    pub url: String,
    pub fetched_at: DateTime<Utc>,
}

impl Response {
    /// The first header of this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
    }
}

/// Where a walk is: the first request, a page number, a cursor token the last answer
/// gave, or the start of a time window. Saved between invocations, so a walk resumes
/// where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "at", rename_all = "snake_case")]
pub enum Step {
    Start,
    Page {
        page: u32,
    },
    Token {
        token: String,
    },
    /// Everything from this time on (epoch milliseconds).
    Window {
        from_ms: i64,
    },
}

/// How a job's requests follow each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// One request.
    Single,
    /// Pages 1..=`max_pages` of `page_size`, requested concurrently; the first page with
    /// fewer records ends the walk.
    Pages { page_size: u32, max_pages: u32 },
    /// One request after another, each answer naming the next (an opaque cursor token, or
    /// the next time window), at most `max_steps` per walk. Sequential, and resumable
    /// across invocations.
    Chain { max_steps: u32 },
}

/// What a body normalised into.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Normalised {
    pub records: Vec<Envelope>,
    pub quarantined: Vec<Quarantined>,
    /// Optional values that were present but unusable ("transfers: expected a whole number…").
    pub dropped_values: Vec<String>,
}

/// One answer, normalised, and the step after it (`None`: the walk ends here).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Page {
    pub normalised: Normalised,
    pub next: Option<Step>,
    /// Records in the answer, usable or not: a page walk ends at the first short page.
    pub size: usize,
    /// When the walk ends here: where the next walk starts instead of from the beginning
    /// (a time window's high-water mark: the job collects from where its last run ended).
    pub resume_at: Option<Step>,
}

/// A record that could not be normalised: kept with its reason, never sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quarantined {
    pub source: String,
    pub job: String,
    /// Position of the record in the response's data, when it came from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub reason: String,
    pub record: Value,
}

/// A response that as a whole could not be used. Each names the job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("job {job}: upstream body is not JSON: {detail}")]
    NotJson { job: String, detail: String },
    #[error("job {job}: upstream reported an error: {message}")]
    ErrorEnvelope { job: String, message: String },
    #[error("job {job}: unexpected response shape: {detail}")]
    UnexpectedShape { job: String, detail: String },
}

/// `X-RateLimit-*`-style window state an upstream reported: it feeds the host's limiter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateWindow {
    /// Requests allowed per window (taken as per minute).
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    /// Until the window resets.
    pub reset: Option<Duration>,
}

/// Who a hold keeps away: the source's credential (its quota is spent) or the whole host
/// (the upstream banned this address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldScope {
    Source,
    Host,
}

/// No request to `scope` for `wait`: saved in the state table, so later invocations keep
/// away too. Not a breaker failure: the upstream answered, and said "not now".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub scope: HoldScope,
    pub wait: Duration,
    pub reason: String,
}

/// What the walk does with an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Data: parse it.
    Use,
    /// Transient (5xx, a proxy's error page): try again; the breaker counts a failure.
    Retry(String),
    /// Rate limited (a 429, or a limit code inside a 200): lower the rate, back off
    /// (`wait` if the upstream said), try again. Not a breaker failure.
    Throttled {
        wait: Option<Duration>,
        reason: String,
    },
    /// Stop and stay away (quota spent, IP banned). Not a breaker failure.
    Hold(Hold),
    /// Never retried: the job or its configuration is wrong (unknown market, bad key,
    /// 404). The host is alive.
    Fail(String),
}

/// An answer, judged before its body is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub verdict: Verdict,
    /// What the upstream said of its rate window, if anything.
    pub rate: Option<RateWindow>,
    /// A hold that begins after this (usable) answer: the last credit was just spent.
    pub hold_after: Option<Hold>,
}

/// Waits an upstream asks for are capped here (a day), so no header can overflow a clock.
pub const MAX_HINT: Duration = Duration::from_secs(86_400);

/// `Retry-After: 120` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_HINT));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO).min(MAX_HINT))
}

/// Seconds beyond which `X-RateLimit-Reset` is an epoch timestamp, not a wait.
const RESET_EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// The `X-RateLimit-*` family (`Limit`, `Remaining`, `Reset` in seconds or epoch seconds).
pub fn rate_limit_headers(response: &Response) -> Option<RateWindow> {
    let num = |name: &str| response.header(name).and_then(|v| v.parse::<u64>().ok());
    let now = response.fetched_at.timestamp().max(0) as u64;
    let window = RateWindow {
        limit: num("x-ratelimit-limit").and_then(|v| u32::try_from(v).ok()),
        remaining: num("x-ratelimit-remaining").and_then(|v| u32::try_from(v).ok()),
        reset: num("x-ratelimit-reset").map(|v| {
            let secs = if v >= RESET_EPOCH_THRESHOLD {
                v.saturating_sub(now)
            } else {
                v
            };
            Duration::from_secs(secs).min(MAX_HINT)
        }),
    };
    (window != RateWindow::default()).then_some(window)
}

/// `Retry-After`, as a wait from when the answer arrived.
pub fn retry_after(response: &Response) -> Option<Duration> {
    response
        .header("retry-after")
        .and_then(|v| parse_retry_after(v, response.fetched_at))
}

/// How most HTTP APIs are read: 2xx is data, 429 a rate limit (with `Retry-After`), 5xx
/// transient, any other status a request that asking again cannot fix.
pub fn standard_inspection(response: &Response) -> Inspection {
    let verdict = match response.status {
        200..=299 => Verdict::Use,
        429 => Verdict::Throttled {
            wait: retry_after(response),
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
        rate: rate_limit_headers(response),
        hold_after: None,
    }
}

/// What a source entry tells its module about itself.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The entry's name: every record's `source`.
    pub source: &'a str,
    /// Module-specific settings (already checked by [`Source::check_options`]).
    pub options: &'a Map<String, Value>,
}

/// A job, validated and turned into requests by its source module.
pub trait Plan: Send + Sync {
    /// How the requests follow each other.
    fn walk(&self) -> Walk;
    /// The request of one step.
    fn request(&self, step: &Step) -> RequestSpec;
    /// What an answer means before its body is parsed: data, a rate limit, a spent
    /// quota, an error to retry or one never to retry.
    fn inspect(&self, response: &Response) -> Inspection {
        standard_inspection(response)
    }
    /// A usable answer → records, quarantined records, and the next step.
    fn parse(&self, response: &Response) -> Result<Page, ResponseError>;
    /// Identifies what is walked: a cursor saved by another plan (the job changed) is not
    /// resumed.
    fn fingerprint(&self) -> String {
        let r = self.request(&Step::Start);
        let mut query: Vec<String> = r
            .query
            .iter()
            .filter(|(k, _)| k != "page" && k != "cursor")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        query.sort();
        format!("{}?{}", r.path, query.join("&"))
    }
}

/// A source module.
pub trait Source: Send + Sync {
    /// The module's name (`travelpayouts`, `odds`).
    fn module(&self) -> &'static str;
    /// The record kinds it makes (`flight_price`, `odds_quote`).
    fn kinds(&self) -> &'static [&'static str];
    fn defaults(&self) -> Defaults;
    /// Checks module-specific settings (`options` of the source entry). Most modules
    /// take none.
    fn check_options(&self, options: &Map<String, Value>) -> Result<(), String> {
        match options.keys().next() {
            None => Ok(()),
            Some(k) => Err(format!(
                "options.{k}: the {} module takes no options",
                self.module()
            )),
        }
    }
    /// A job → its plan, or an error naming the parameter.
    fn plan(&self, job: &Job, context: Context<'_>) -> Result<Box<dyn Plan>, JobError>;
    /// A job that names many instruments (`symbols = "BTCUSDT,ETHUSDT"`) is walked as one
    /// part per instrument, each with its own cursor: the parts' names and jobs. Empty
    /// (the default): the job is one walk.
    fn parts(&self, job: &Job) -> Result<Vec<(String, Job)>, JobError> {
        let _ = job;
        Ok(vec![])
    }
    /// The plan that made an archived request (for `replay` and `normalise --archive-key`):
    /// by default the request's query is the job's parameters, less the walk's own step
    /// (`page`, `cursor`).
    fn plan_of_request(
        &self,
        job: &str,
        context: Context<'_>,
        request: &RequestSpec,
    ) -> Result<Box<dyn Plan>, JobError> {
        let params = params_of_request(request, &["page", "cursor"]);
        self.plan(&job_of(job, context.source, params)?, context)
    }
}

/// An archived request's query as a job's parameters, less the walk's own `step_params`.
pub fn params_of_request(request: &RequestSpec, step_params: &[&str]) -> Map<String, Value> {
    request
        .query
        .iter()
        .filter(|(k, _)| !step_params.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// The job `job` of `source` with these parameters, checked as a scheduled one is.
pub fn job_of(job: &str, source: &str, params: Map<String, Value>) -> Result<Job, JobError> {
    Job::from_value(&serde_json::json!({"job": job, "source": source, "params": params}))
}

/// The path and query of an archived URL, without the scheme and host.
pub fn request_of_url(url: &str) -> Option<RequestSpec> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path_and_query = &rest[rest.find('/')?..];
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    Some(RequestSpec::new(percent_decode(path), query))
}

/// `%2F` → `/`, `+` → space (form encoding, as reqwest writes queries).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                Some(Ok(b)) => {
                    out.push(b);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Upstream text kept in a reason, a dropped-value note or an error: at most this many
/// characters (the upstream decides how long its values are, not us).
pub const UPSTREAM_TEXT_MAX_CHARS: usize = 300;

/// `s`, cut to `max` characters with an ellipsis.
pub fn cap_text(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The longest link kept (browsers and SMS handle far less; a longer one is not a link).
const LINK_MAX_CHARS: usize = 2048;

/// A link from the upstream, accepted only when it is https and on one of the source's own
/// sites (`domains` and their subdomains), with no credentials, spaces or control
/// characters: upstream text goes into SMS and e-mail, and must not carry someone else's
/// link there. The host is the one a browser would open (the `url` crate's WHATWG parser:
/// `https://evil.example\.aviasales.com/` is `evil.example`), and the link returned is
/// that parse, not the upstream's text.
pub fn trusted_link(link: &str, domains: &[&str]) -> Result<String, String> {
    let shown = || cap_text(link, 80);
    if link.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{:?} has spaces or control characters", shown()));
    }
    if link.chars().count() > LINK_MAX_CHARS {
        return Err(format!("{:?} is over {LINK_MAX_CHARS} characters", shown()));
    }
    let url = url::Url::parse(link).map_err(|e| format!("{:?} is not a link: {e}", shown()))?;
    if url.scheme() != "https" {
        return Err(format!("{:?} is not an https link", shown()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{:?} carries credentials", shown()));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
        _ => return Err(format!("{:?} has no site name", shown())),
    };
    let ours = domains
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")));
    if ours {
        Ok(url.to_string())
    } else {
        Err(format!(
            "host {:?} is not one of the source's sites ({})",
            cap_text(&host, 80),
            domains.join(", ")
        ))
    }
}

/// One entity-key component: `/` separates components, so it (and `%`) is escaped.
pub fn key_part(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F")
}

/// An upstream answer for the source modules' tests: a JSON body, lower-case headers,
/// fetched at `fetched_ms`.
#[cfg(test)]
pub(crate) fn test_response(
    url: &str,
    status: u16,
    headers: &[(&str, &str)],
    body: Value,
    fetched_ms: i64,
) -> Response {
    Response {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect(),
        body: serde_json::to_vec(&body).unwrap_or_default(),
        url: url.into(),
        fetched_at: DateTime::from_timestamp_millis(fetched_ms).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn response(status: u16, headers: &[(&str, &str)]) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: vec![],
            url: "http://up/p".into(),
            fetched_at: Utc.with_ymd_and_hms(2026, 10, 21, 7, 27, 0).unwrap(),
        }
    }

    #[test]
    fn retry_after_in_seconds_and_http_date() {
        let now = Utc.with_ymd_and_hms(2026, 10, 21, 7, 27, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("99999999999", now), Some(MAX_HINT));
    }

    #[test]
    fn rate_limit_headers_as_wait_or_epoch() {
        assert_eq!(rate_limit_headers(&response(200, &[])), None);
        assert_eq!(
            rate_limit_headers(&response(
                200,
                &[
                    ("x-ratelimit-limit", "60"),
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "12")
                ]
            )),
            Some(RateWindow {
                limit: Some(60),
                remaining: Some(0),
                reset: Some(Duration::from_secs(12))
            })
        );
        let epoch = (Utc
            .with_ymd_and_hms(2026, 10, 21, 7, 27, 0)
            .unwrap()
            .timestamp()
            + 30)
            .to_string();
        let reset = rate_limit_headers(&response(200, &[("x-ratelimit-reset", &epoch)]))
            .unwrap()
            .reset;
        assert_eq!(reset, Some(Duration::from_secs(30)));
    }

    #[test]
    fn standard_inspection_reads_status_codes() {
        assert_eq!(
            standard_inspection(&response(200, &[])).verdict,
            Verdict::Use
        );
        assert_eq!(
            standard_inspection(&response(429, &[("retry-after", "3")])).verdict,
            Verdict::Throttled {
                wait: Some(Duration::from_secs(3)),
                reason: "HTTP 429 from http://up/p".into()
            }
        );
        assert!(matches!(
            standard_inspection(&response(504, &[])).verdict,
            Verdict::Retry(_)
        ));
        for status in [401, 403, 404] {
            let Verdict::Fail(why) = standard_inspection(&response(status, &[])).verdict else {
                panic!("{status} is not retried");
            };
            assert!(why.contains(&format!("HTTP {status}")), "{why}");
        }
    }

    #[test]
    fn archived_urls_give_back_their_request() {
        let r = request_of_url(
            "http://127.0.0.1:9/v4/sports/basketball_nba/odds?regions=us%2Cuk&markets=h2h&x=a+b",
        )
        .unwrap();
        assert_eq!(r.path, "/v4/sports/basketball_nba/odds");
        assert_eq!(
            r.query,
            vec![
                ("regions".to_string(), "us,uk".to_string()),
                ("markets".to_string(), "h2h".to_string()),
                ("x".to_string(), "a b".to_string())
            ]
        );
        assert_eq!(key_part("A/B%C"), "A%2FB%25C");
    }

    #[test]
    fn only_links_to_the_sources_own_sites_pass() {
        let sites = ["aviasales.com", "aviasales.ru"];
        for (ok, kept) in [
            (
                "https://www.aviasales.com/search/LED0512KZN1",
                "https://www.aviasales.com/search/LED0512KZN1",
            ),
            ("https://aviasales.ru/x?y=1", "https://aviasales.ru/x?y=1"),
            ("https://m.AVIASALES.com:443/a", "https://m.aviasales.com/a"),
        ] {
            assert_eq!(trusted_link(ok, &sites).unwrap(), kept);
        }
        for (bad, why) in [
            (
                "https://evil.example/aviasales.com",
                "not one of the source's sites",
            ),
            (
                "https://aviasales.com.evil.example/",
                "not one of the source's sites",
            ),
            ("https://www.aviasales.com@evil.example/", "credentials"),
            ("http://www.aviasales.com/", "not an https link"),
            ("https://www.aviasales.com/a b", "spaces"),
            ("javascript:alert(1)", "not an https link"),
            // A browser opens evil.example: the backslash is a path separator to it.
            (
                "https://evil.example\\.aviasales.com/",
                "not one of the source's sites",
            ),
            ("https://127.0.0.1/x", "no site name"),
            ("/search/relative", "not a link"),
        ] {
            let err = trusted_link(bad, &sites).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert_eq!(cap_text(&"x".repeat(500), 10).chars().count(), 10);
        assert_eq!(cap_text("short", 10), "short");
    }

    #[test]
    fn every_module_is_registered_once_with_its_kinds() {
        let names = module_names();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "{names:?}");
        for s in REGISTRY {
            assert!(!s.kinds().is_empty(), "{}", s.module());
            assert!(module(s.module()).is_some());
        }
        assert!(module("kayak").is_none());
    }
}
