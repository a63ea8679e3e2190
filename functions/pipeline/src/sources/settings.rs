//! Source entries: how each configured upstream is reached and treated. Terraform's
//! `sources` map arrives as one JSON value (`PRICEWIRE_SOURCES`); each entry names its
//! module (defaulting to the entry's own name) and overrides what it needs to. A job names
//! an entry; a job naming a module that has no entry gets that module's defaults, so
//! `{"source": "odds"}` works with no configuration at all.
//!
//! ```json
//! {"dinger": {"module": "odds", "base_url": "https://dingerodds.example",
//!             "auth": {"style": "bearer"}, "secret_parameter": "/pricewire/dinger/token",
//!             "rate_limits": {"/api/v1/events/upcoming": 60}, "concurrency": 1,
//!             "breaker": {"failure_threshold": 10, "open_seconds": 300},
//!             "options": {"api": "dingerodds"}}}
//! ```
//!
//! Every problem is reported with the path of the field (`dinger.auth.style: …`).

use super::{module, module_names, Auth, Context, RateScope, Source, WHOLE_HOST};
use crate::job::JobError;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Requests in flight to one host at once, when the entry does not say.
pub const DEFAULT_CONCURRENCY: usize = 2;
/// Most requests in flight to one host.
pub const MAX_CONCURRENCY: usize = 16;
/// Consecutive failures that open a host's breaker, when the entry does not say. At 30 %
/// random 5xx a threshold of 10 opens once in ~170,000 failures.
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 10;
pub const DEFAULT_BREAKER_OPEN: Duration = Duration::from_secs(300);
/// The longest a spent quota may keep a source away (a month and a day).
pub const MAX_QUOTA_HOLD: Duration = Duration::from_secs(32 * 86_400);
/// The largest answer body read, when the entry does not say: a few pages of a few
/// thousand records; a body over it is an upstream failure, never read whole.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;
/// The largest cap an entry may set (a 256 MB function holds a few pages of it at once).
pub const MAX_MAX_BODY_BYTES: usize = 64 << 20;
/// Records one run gathers before it stops and leaves a cursor, when the entry does not
/// say: what a run holds in memory is bounded by configuration, not by the upstream.
pub const DEFAULT_MAX_RECORDS_PER_RUN: usize = 20_000;
pub const MAX_MAX_RECORDS_PER_RUN: usize = 200_000;
/// Longest source name: it becomes part of S3 keys, state keys and metric dimensions.
const SOURCE_NAME_MAX: usize = 32;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakerEntry {
    failure_threshold: Option<u32>,
    open_seconds: Option<u64>,
}

/// An entry as configured; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    module: Option<String>,
    base_url: Option<String>,
    auth: Option<Auth>,
    secret_parameter: Option<String>,
    #[serde(default)]
    rate_limits: BTreeMap<String, u32>,
    concurrency: Option<usize>,
    #[serde(default)]
    breaker: BreakerEntry,
    quota_hold_seconds: Option<u64>,
    max_body_bytes: Option<usize>,
    max_records_per_run: Option<usize>,
    #[serde(default)]
    options: Map<String, Value>,
}

/// A source entry with every default applied and every field checked.
#[derive(Clone)]
pub struct SourceSettings {
    /// The entry's name (records' `source`, archive prefix, metric dimension).
    pub name: String,
    pub module: &'static dyn Source,
    /// Without a trailing `/`.
    pub base_url: String,
    pub auth: Auth,
    /// The SSM SecureString holding the secret, when `auth` needs one.
    pub secret_parameter: Option<String>,
    /// Requests per minute by API path, over the module's documented limits.
    pub rate_limits: BTreeMap<String, u32>,
    pub concurrency: usize,
    pub breaker_threshold: u32,
    pub breaker_open: Duration,
    /// How long a spent quota keeps the source away; `None`: as long as the module's
    /// upstream says (The Odds API: until its monthly reset).
    pub quota_hold: Option<Duration>,
    /// The largest answer body read.
    pub max_body_bytes: usize,
    /// Records one run gathers before it stops and leaves a cursor.
    pub max_records_per_run: usize,
    pub options: Map<String, Value>,
}

impl std::fmt::Debug for SourceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceSettings")
            .field("name", &self.name)
            .field("module", &self.module.module())
            .field("base_url", &self.base_url)
            .field("auth", &self.auth)
            .field("secret_parameter", &self.secret_parameter)
            .finish_non_exhaustive()
    }
}

impl SourceSettings {
    /// A module with every default: what a job naming the module gets without an entry.
    pub fn defaults_of(source: &'static dyn Source) -> SourceSettings {
        let d = source.defaults();
        SourceSettings {
            name: source.module().to_string(),
            module: source,
            base_url: d.base_url.trim_end_matches('/').to_string(),
            auth: d.auth,
            secret_parameter: None,
            rate_limits: BTreeMap::new(),
            concurrency: DEFAULT_CONCURRENCY,
            breaker_threshold: DEFAULT_BREAKER_THRESHOLD,
            breaker_open: DEFAULT_BREAKER_OPEN,
            quota_hold: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_records_per_run: DEFAULT_MAX_RECORDS_PER_RUN,
            options: Map::new(),
        }
    }

    pub fn context(&self) -> Context<'_> {
        Context {
            source: &self.name,
            options: &self.options,
        }
    }

    /// What the limit of a request to `path` is kept under: the path, or [`WHOLE_HOST`]
    /// for a module whose upstream counts every path together.
    pub fn rate_key<'a>(&self, path: &'a str) -> &'a str {
        match self.module.defaults().rate_scope {
            RateScope::Path => path,
            RateScope::Host => WHOLE_HOST,
        }
    }

    /// The rate limit of a request to `path`: configured, else documented, else the
    /// module's cautious default.
    pub fn ceiling(&self, path: &str) -> u32 {
        let d = self.module.defaults();
        let key = self.rate_key(path);
        self.rate_limits
            .get(key)
            .copied()
            .or_else(|| {
                d.documented_rpm
                    .iter()
                    .find(|(p, _)| *p == key)
                    .map(|(_, rpm)| *rpm)
            })
            .unwrap_or(d.unknown_path_rpm)
    }

    /// `https://api.travelpayouts.com/x` → `api.travelpayouts.com`: names the host's
    /// breaker and limits.
    pub fn host(&self) -> String {
        host_of(&self.base_url)
    }
}

/// The host (and port) of a URL.
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or(rest)
        .to_string()
}

/// Every configured entry, checked.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    entries: BTreeMap<String, SourceSettings>,
}

/// Hosts plain http may reach: loopback, where the local twin's simulators listen.
pub fn is_loopback_host(host: &str) -> bool {
    let name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name);
    let ip = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn check_url(url: &str) -> Result<(), String> {
    let (secure, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => return Err(format!("{url:?} is not an https URL")),
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{url:?} has no host"));
    }
    if url.contains(['?', '#', ' ']) {
        return Err(format!("{url:?} must not have a query, fragment or spaces"));
    }
    if !secure && !is_loopback_host(&host_of(url)) {
        return Err(format!(
            "{url:?}: upstreams are reached over https (plain http only on loopback)"
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= SOURCE_NAME_MAX
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if name == crate::archive::STREAM_QUARANTINE_SOURCE {
        return Err(format!(
            "{name:?} is reserved (the consumer's quarantine partition)"
        ));
    }
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be 1-{SOURCE_NAME_MAX} characters of a-z, 0-9 and '-', starting with a letter"
        ))
    }
}

fn settle(name: &str, e: Entry) -> Result<SourceSettings, String> {
    check_name(name).map_err(|p| format!("{name}: {p}"))?;
    let field = |f: &str, p: String| format!("{name}.{f}: {p}");
    let module_name = e.module.clone().unwrap_or_else(|| name.to_string());
    let source = module(&module_name).ok_or_else(|| {
        let why = format!(
            "unknown module {module_name:?} (expected one of {})",
            module_names().join(", ")
        );
        if e.module.is_some() {
            field("module", why)
        } else {
            field("module", format!("not set, and {why}"))
        }
    })?;
    let mut s = SourceSettings::defaults_of(source);
    s.name = name.to_string();
    match e.base_url {
        Some(url) => {
            check_url(&url).map_err(|p| field("base_url", p))?;
            s.base_url = url.trim_end_matches('/').to_string();
        }
        None if s.base_url.is_empty() => {
            return Err(field(
                "base_url",
                format!("missing (the {module_name} module has no default upstream)"),
            ))
        }
        None => {}
    }
    if let Some(auth) = e.auth {
        match &auth {
            Auth::Header { name: h } | Auth::Query { name: h } => {
                let ok = !h.is_empty()
                    && h.len() <= 64
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !ok {
                    return Err(field(
                        "auth.name",
                        format!(
                            "{h:?} is not a header or parameter name (A-Z, a-z, 0-9, '-', '_')"
                        ),
                    ));
                }
            }
            Auth::None | Auth::Bearer => {}
        }
        s.auth = auth;
    }
    if let Some(p) = e.secret_parameter {
        if !p.starts_with('/') || p.len() > 1011 || p.contains(char::is_whitespace) {
            return Err(field(
                "secret_parameter",
                format!("{p:?} is not an SSM parameter name (/path/name)"),
            ));
        }
        s.secret_parameter = Some(p);
    }
    for (path, rpm) in &e.rate_limits {
        if !path.starts_with('/') && path != WHOLE_HOST {
            return Err(field(
                "rate_limits",
                format!("{path:?} is not an API path (starting with /) or {WHOLE_HOST:?} (the whole host)"),
            ));
        }
        if !(1..=100_000).contains(rpm) {
            return Err(field(
                &format!("rate_limits.{path}"),
                format!("{rpm} requests per minute is not 1 to 100000"),
            ));
        }
    }
    s.rate_limits = e.rate_limits;
    if let Some(c) = e.concurrency {
        if !(1..=MAX_CONCURRENCY).contains(&c) {
            return Err(field(
                "concurrency",
                format!("{c} is not 1 to {MAX_CONCURRENCY}"),
            ));
        }
        s.concurrency = c;
    }
    if let Some(t) = e.breaker.failure_threshold {
        if !(1..=1000).contains(&t) {
            return Err(field(
                "breaker.failure_threshold",
                format!("{t} is not 1 to 1000"),
            ));
        }
        s.breaker_threshold = t;
    }
    if let Some(o) = e.breaker.open_seconds {
        if !(1..=86_400).contains(&o) {
            return Err(field(
                "breaker.open_seconds",
                format!("{o} is not 1 to 86400"),
            ));
        }
        s.breaker_open = Duration::from_secs(o);
    }
    if let Some(h) = e.quota_hold_seconds {
        let hold = Duration::from_secs(h);
        if h == 0 || hold > MAX_QUOTA_HOLD {
            return Err(field(
                "quota_hold_seconds",
                format!("{h} is not 1 to {}", MAX_QUOTA_HOLD.as_secs()),
            ));
        }
        s.quota_hold = Some(hold);
    }
    if let Some(b) = e.max_body_bytes {
        if !(1024..=MAX_MAX_BODY_BYTES).contains(&b) {
            return Err(field(
                "max_body_bytes",
                format!("{b} is not 1024 to {MAX_MAX_BODY_BYTES}"),
            ));
        }
        s.max_body_bytes = b;
    }
    if let Some(r) = e.max_records_per_run {
        if !(100..=MAX_MAX_RECORDS_PER_RUN).contains(&r) {
            return Err(field(
                "max_records_per_run",
                format!("{r} is not 100 to {MAX_MAX_RECORDS_PER_RUN}"),
            ));
        }
        s.max_records_per_run = r;
    }
    source
        .check_options(&e.options)
        .map_err(|p| format!("{name}.{p}"))?;
    s.options = e.options;
    Ok(s)
}

impl Sources {
    /// Parses and checks `{"<name>": {…}, …}`. An error names the entry and field.
    pub fn parse(json: &str) -> Result<Sources, String> {
        let raw: BTreeMap<String, Value> = serde_json::from_str(json)
            .map_err(|e| format!("not a JSON object of source entries: {e}"))?;
        let mut entries = BTreeMap::new();
        for (name, value) in raw {
            let entry: Entry = serde_path_to_error::deserialize(value).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." {
                    format!("{name}: {inner}")
                } else {
                    format!("{name}.{path}: {inner}")
                }
            })?;
            entries.insert(name.clone(), settle(&name, entry)?);
        }
        Ok(Sources { entries })
    }

    /// The entry a job names: its configured entry, or the module of that name with its
    /// defaults.
    pub fn get(&self, name: &str) -> Result<SourceSettings, JobError> {
        if let Some(s) = self.entries.get(name) {
            return Ok(s.clone());
        }
        match module(name) {
            Some(m) if m.defaults().base_url.is_empty() => Err(JobError::new(
                "source",
                format!("{name:?} is a module with no default upstream: name an entry of sources that sets its base_url"),
            )),
            Some(m) => Ok(SourceSettings::defaults_of(m)),
            None => {
                let mut known: Vec<&str> = self.entries.keys().map(String::as_str).collect();
                for m in module_names() {
                    if !known.contains(&m) {
                        known.push(m);
                    }
                }
                Err(JobError::new(
                    "source",
                    format!(
                        "unknown source {name:?} (configured or built in: {})",
                        known.join(", ")
                    ),
                ))
            }
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = &SourceSettings> {
        self.entries.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_naming_a_module_gets_its_defaults_and_entries_override_them() {
        let none = Sources::default();
        let tp = none.get("travelpayouts").unwrap();
        assert_eq!(tp.base_url, "https://api.travelpayouts.com");
        assert_eq!(
            tp.auth,
            Auth::Header {
                name: "X-Access-Token".into()
            }
        );
        assert_eq!(tp.ceiling("/aviasales/v3/prices_for_dates"), 600);
        assert_eq!(tp.host(), "api.travelpayouts.com");
        let odds = none.get("odds").unwrap();
        assert_eq!(odds.module.module(), "odds");

        let s = Sources::parse(
            r#"{"dinger": {"module": "odds", "base_url": "http://127.0.0.1:9/", "auth": {"style": "bearer"},
                "secret_parameter": "/p/dinger/token", "rate_limits": {"*": 60},
                "concurrency": 1, "breaker": {"failure_threshold": 3, "open_seconds": 20},
                "quota_hold_seconds": 60, "options": {"api": "dingerodds"}},
               "travelpayouts": {"rate_limits": {"/aviasales/v3/prices_for_dates": 120}}}"#,
        )
        .unwrap();
        let d = s.get("dinger").unwrap();
        assert_eq!(
            (d.module.module(), d.base_url.as_str(), d.host().as_str()),
            ("odds", "http://127.0.0.1:9", "127.0.0.1:9")
        );
        assert_eq!(d.auth, Auth::Bearer);
        assert_eq!(
            d.ceiling("/api/v1/events/upcoming"),
            60,
            "odds limits are host-wide"
        );
        assert_eq!(d.rate_key("/api/v1/events/upcoming"), "*");
        assert_eq!(odds.ceiling("/v4/sports/basketball_nba/odds"), 1800);
        assert_eq!(
            (d.concurrency, d.breaker_threshold, d.breaker_open),
            (1, 3, Duration::from_secs(20))
        );
        assert_eq!(d.quota_hold, Some(Duration::from_secs(60)));
        assert_eq!(
            s.get("travelpayouts")
                .unwrap()
                .ceiling("/aviasales/v3/prices_for_dates"),
            120
        );
        let err = s.get("kayak").unwrap_err();
        assert_eq!(err.field, "source");
        assert!(err.problem.contains("dinger, travelpayouts, odds"), "{err}");
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases = [
            (r#"{"x": {}}"#, "x.module: not set, and unknown module"),
            (
                r#"{"x": {"module": "kayak"}}"#,
                "x.module: unknown module \"kayak\"",
            ),
            (r#"{"Odds": {}}"#, "Odds: \"Odds\" must be"),
            (r#"{"odds": {"base_url": "ftp://x"}}"#, "odds.base_url:"),
            (
                r#"{"odds": {"base_url": "http://api.the-odds-api.com"}}"#,
                "odds.base_url: \"http://api.the-odds-api.com\": upstreams are reached over https",
            ),
            (
                r#"{"odds": {"base_url": "http://127.evil.example"}}"#,
                "odds.base_url: \"http://127.evil.example\": upstreams are reached over https",
            ),
            (
                r#"{"odds": {"base_url": "http://[::2]:80"}}"#,
                "odds.base_url: \"http://[::2]:80\": upstreams are reached over https",
            ),
            (
                r#"{"odds": {"max_body_bytes": 10}}"#,
                "odds.max_body_bytes: 10 is not",
            ),
            (
                r#"{"odds": {"max_records_per_run": 0}}"#,
                "odds.max_records_per_run: 0 is not",
            ),
            (
                r#"{"odds": {"base_url": "https://x/?a=1"}}"#,
                "odds.base_url:",
            ),
            (
                r#"{"odds": {"auth": {"style": "cookie"}}}"#,
                "odds.auth.style: unknown variant `cookie`",
            ),
            (
                r#"{"odds": {"auth": {"style": "query", "name": "api key"}}}"#,
                "odds.auth.name:",
            ),
            (
                r#"{"odds": {"colour": "red"}}"#,
                "odds.colour: unknown field `colour`",
            ),
            (
                r#"{"odds": {"concurrency": 0}}"#,
                "odds.concurrency: 0 is not 1 to 16",
            ),
            (
                r#"{"odds": {"concurrency": "two"}}"#,
                "odds.concurrency: invalid type",
            ),
            (
                r#"{"odds": {"breaker": {"open_seconds": 0}}}"#,
                "odds.breaker.open_seconds:",
            ),
            (
                r#"{"odds": {"breaker": {"threshold": 3}}}"#,
                "odds.breaker.threshold: unknown field `threshold`",
            ),
            (
                r#"{"odds": {"rate_limits": {"v4": 60}}}"#,
                "odds.rate_limits: \"v4\" is not an API path",
            ),
            (
                r#"{"odds": {"rate_limits": {"/v4": 0}}}"#,
                "odds.rate_limits./v4: 0 requests",
            ),
            (
                r#"{"odds": {"secret_parameter": "token"}}"#,
                "odds.secret_parameter:",
            ),
            (
                r#"{"odds": {"quota_hold_seconds": 0}}"#,
                "odds.quota_hold_seconds:",
            ),
            (
                r#"{"travelpayouts": {"options": {"api": "v9"}}}"#,
                "travelpayouts.options.api: the travelpayouts module takes no options",
            ),
            (r#"[]"#, "not a JSON object"),
        ];
        for (json, expected) in cases {
            let err = Sources::parse(json).unwrap_err();
            assert!(err.starts_with(expected), "{json}: {err}");
        }
    }
}
