//! The upstream simulator: stand-ins for the upstreams pricewire collects from, with
//! seeded, realistic data and fault injection, which record everything they served — and
//! which records in it a correct collector must make — so a test can say exactly what must
//! arrive downstream.
//!
//! One [`Simulator`] is one upstream host with one [`Personality`]:
//! - `travelpayouts`: `/aviasales/v3/prices_for_dates` and `/v2/prices/month-matrix`
//!   (`travelpayouts.rs`);
//! - `odds`: The Odds API v4 `/v4/sports/{sport}/odds`, with credits and quota headers;
//! - `dingerodds`: `/api/v1/events/upcoming`, Bearer token, cursor pages (`odds.rs`);
//! - `binance` and `bybit`: klines, funding and open interest, with each exchange's limit
//!   model (weight budget and 418 bans; 10006 on a 200 and 403) (`market.rs`);
//! - `shop`: an API no module knows, collected by the `generic` module (`shop.rs`).
//!
//! Faults, each drawn from one seeded RNG per request: rate limit (requests per rolling
//! minute → 429, with or without `Retry-After`), 502/504 rate, latency range and spikes,
//! `null` / `{}` / `""` / missing optional values, malformed records (an unusable
//! required value), malformed bodies (truncated JSON), a spent quota (odds).
//!
//! What counts as valid is the simulator's own model ([`Expected`], built from the model,
//! not by parsing what was served), so the end-to-end checks do not grade the collector's
//! parser with itself.

pub mod market;
pub mod odds;
pub mod shop;
pub mod travelpayouts;

/// A request's query from pairs, for the personalities' tests.
#[cfg(test)]
fn query_of(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use pricewire_pipeline::envelope::{Envelope, Payload};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use travelpayouts::ROUTES;

/// Which upstream a simulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Personality {
    #[default]
    Travelpayouts,
    Odds,
    Dingerodds,
    Binance,
    Bybit,
    Shop,
}

impl Personality {
    pub fn as_str(&self) -> &'static str {
        match self {
            Personality::Travelpayouts => "travelpayouts",
            Personality::Odds => "odds",
            Personality::Dingerodds => "dingerodds",
            Personality::Binance => "binance",
            Personality::Bybit => "bybit",
            Personality::Shop => "shop",
        }
    }

    /// Whether the upstream asks for a secret (the exchanges' market data is public).
    pub fn needs_token(&self) -> bool {
        self.exchange().is_none() && *self != Personality::Shop
    }

    fn exchange(&self) -> Option<market::Exchange> {
        match self {
            Personality::Binance => Some(market::Exchange::Binance),
            Personality::Bybit => Some(market::Exchange::Bybit),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    pub seed: u64,
    /// Requests per rolling minute before 429s (an undocumented limit); `None` = unlimited.
    pub rate_limit_rpm: Option<u32>,
    /// Send `Retry-After` with 429s.
    pub retry_after: bool,
    /// Share of requests answered 502 or 504.
    pub error_rate: f64,
    /// Latency range per request, milliseconds.
    pub latency_ms: (u64, u64),
    /// Share of requests that take a latency spike instead.
    pub spike_rate: f64,
    /// Latency range of a spike, milliseconds.
    pub spike_ms: (u64, u64),
    /// v3 offers per query (spread over the query's days); `None`: two flights a day.
    pub offers_per_query: Option<usize>,
    /// Share of optional values (odds: of bookmakers, markets and outcomes lists) sent as
    /// `null`, `{}`, `""` or left out.
    pub null_rate: f64,
    /// Share of records (odds: of events) with an unusable required value.
    pub malformed_rate: f64,
    /// Share of 200 answers whose body is truncated JSON.
    pub malformed_body_rate: f64,
    /// The secret the upstream requires (header, Bearer or `apiKey`, by personality);
    /// `None` accepts any.
    pub token: Option<String>,
    /// Odds: events per sport (v4) or in the whole listing (dingerodds).
    pub odds_events: usize,
    /// Odds v4: credits of the key's quota (a call costs markets × regions); `None` =
    /// unlimited.
    pub quota: Option<u64>,
    /// Binance: request weight per calendar minute; `None` = unlimited.
    pub weight_budget: Option<u32>,
    /// Bybit: requests per 5-second window; `None` = unlimited.
    pub window_limit: Option<u32>,
    /// Exchanges: how long a ban (418, 403) lasts, seconds.
    pub ban_seconds: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            rate_limit_rpm: None,
            retry_after: true,
            error_rate: 0.0,
            latency_ms: (0, 0),
            spike_rate: 0.0,
            spike_ms: (1000, 3000),
            offers_per_query: None,
            null_rate: 0.0,
            malformed_rate: 0.0,
            malformed_body_rate: 0.0,
            token: None,
            odds_events: 6,
            quota: None,
            weight_budget: None,
            window_limit: None,
            ban_seconds: 120,
        }
    }
}

/// A record a correct collector must make of a served answer, as the simulator's model
/// says: its entity key, the upstream's own time, its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    /// Where in the answer it was (the data index, or the event index).
    pub index: usize,
    pub key: String,
    pub upstream_time: Option<DateTime<Utc>>,
    pub payload: Payload,
}

impl Expected {
    /// The envelope, for the source that collected it (its id does not depend on the job
    /// or the fetch time).
    pub fn envelope(&self, source: &str) -> Envelope {
        Envelope::new(
            source,
            "sim",
            self.key.clone(),
            self.upstream_time,
            DateTime::UNIX_EPOCH,
            self.payload.clone(),
        )
    }
}

/// One answer the simulator gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Served {
    pub seq: u64,
    /// Which simulator (the source name it stands in for) and personality answered.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub personality: Personality,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub status: u16,
    /// The body of 200 answers (what the collector must have archived).
    pub body: Option<String>,
    /// What was broken on purpose, one entry per unit the collector must quarantine.
    pub malformed: Vec<String>,
    /// Records in the answer, usable or not.
    pub records: usize,
    /// The usable records, as the model says they are.
    #[serde(default)]
    pub expected: Vec<Expected>,
    pub generation: Option<u32>,
    /// Milliseconds since the simulator started, when the request arrived.
    #[serde(default)]
    pub at_ms: u64,
}

/// A personality's 200 answer: body, what in it is valid, what is broken.
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    pub expected: Vec<Expected>,
    pub malformed: Vec<String>,
    /// The generation of the data, for answers that carry data.
    pub generation: Option<u32>,
}

impl Answer {
    pub fn ok(body: String, expected: Vec<Expected>, malformed: Vec<String>) -> Answer {
        Answer {
            status: 200,
            body,
            headers: vec![],
            expected,
            malformed,
            generation: None,
        }
    }

    pub fn error(status: u16, body: String) -> Answer {
        Answer {
            status,
            body,
            headers: vec![],
            expected: vec![],
            malformed: vec![],
            generation: None,
        }
    }
}

#[derive(Default)]
struct SimState {
    started: Option<Instant>,
    requests: u64,
    window: VecDeque<Instant>,
    generations: HashMap<String, u32>,
    credits_used: u64,
    limits: market::Limits,
    served: Vec<Served>,
}

#[derive(Clone)]
pub struct Simulator {
    personality: Personality,
    source: String,
    config: Arc<Mutex<SimConfig>>,
    state: Arc<Mutex<SimState>>,
}

/// splitmix64: a stateless, well-mixed hash of a number.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable hash of labelled parts, seeded.
pub(crate) fn h(seed: u64, parts: &[&str]) -> u64 {
    let mut acc = mix(seed);
    for p in parts {
        for b in p.bytes() {
            acc = mix(acc ^ u64::from(b));
        }
        acc = mix(acc ^ 0xff);
    }
    acc
}

pub(crate) fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// With probability `rate`, makes one value unstable (`null`, `{}`, `""`, or absent), as
/// upstreams do. Returns whether it did: the value is then gone for the collector.
pub(crate) fn unstabilise_field(
    rng: &mut fastrand::Rng,
    record: &mut Map<String, Value>,
    key: &str,
    rate: f64,
) -> bool {
    if rng.f64() >= rate {
        return false;
    }
    match rng.u8(0..4) {
        0 => {
            record.insert(key.into(), Value::Null);
        }
        1 => {
            record.insert(key.into(), json!({}));
        }
        2 => {
            record.insert(key.into(), json!(""));
        }
        _ => {
            record.remove(key);
        }
    }
    true
}

impl Simulator {
    /// A Travelpayouts simulator (standing in for the source of that name).
    pub fn new(config: SimConfig) -> Simulator {
        Simulator::playing(Personality::Travelpayouts, "travelpayouts", config)
    }

    /// A simulator of `personality`, standing in for the source called `source`.
    pub fn playing(personality: Personality, source: &str, config: SimConfig) -> Simulator {
        Simulator {
            personality,
            source: source.to_string(),
            config: Arc::new(Mutex::new(config)),
            state: Arc::default(),
        }
    }

    pub fn personality(&self) -> Personality {
        self.personality
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn config(&self) -> SimConfig {
        self.config.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Changes faults while running (a test turns an upstream "dead" and back).
    pub fn set_config(&self, config: SimConfig) {
        if let Ok(mut c) = self.config.lock() {
            *c = config;
        }
    }

    /// Gives the quota its credits back (a new month), keeping everything else.
    pub fn reset_quota(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.credits_used = 0;
        }
    }

    pub fn served(&self) -> Vec<Served> {
        self.state
            .lock()
            .map(|s| s.served.clone())
            .unwrap_or_default()
    }

    pub fn router(&self) -> Router {
        let api = match self.personality {
            Personality::Travelpayouts => Router::new()
                .route(travelpayouts::V3_PATH, get(tp_v3))
                .route(travelpayouts::MONTH_MATRIX_PATH, get(tp_mm)),
            Personality::Odds => Router::new().route("/v4/sports/{sport}/odds", get(odds_v4)),
            Personality::Dingerodds => Router::new().route(odds::DINGER_PATH, get(dinger)),
            Personality::Binance => [
                "/fapi/v1/klines",
                "/api/v3/klines",
                "/fapi/v1/fundingRate",
                "/futures/data/openInterestHist",
            ]
            .into_iter()
            .fold(Router::new(), |r, p| r.route(p, get(exchange))),
            Personality::Bybit => [
                "/v5/market/kline",
                "/v5/market/open-interest",
                "/v5/market/funding/history",
            ]
            .into_iter()
            .fold(Router::new(), |r, p| r.route(p, get(exchange))),
            Personality::Shop => Router::new().route(shop::PATH, get(exchange)),
        };
        api.route("/_sim/served", get(served))
            .route("/_sim/config", get(config).put(put_config))
            .with_state(self.clone())
    }

    /// Serves on `addr` (port 0: any free port); returns the bound address.
    pub async fn serve(
        &self,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let app = self.router();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((bound, task))
    }

    fn authorised(
        &self,
        config: &SimConfig,
        headers: &HeaderMap,
        query: &BTreeMap<String, String>,
    ) -> bool {
        match self.personality {
            Personality::Travelpayouts => travelpayouts::authorised(config, headers),
            Personality::Odds => config
                .token
                .as_ref()
                .is_none_or(|t| query.get("apiKey") == Some(t)),
            Personality::Dingerodds => config.token.as_ref().is_none_or(|t| {
                headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some(&format!("Bearer {t}"))
            }),
            // Public market data, and a public shop.
            Personality::Binance | Personality::Bybit | Personality::Shop => true,
        }
    }

    async fn answer(
        &self,
        path: String,
        headers: &HeaderMap,
        mut query: BTreeMap<String, String>,
    ) -> Response {
        let config = self.config();
        let authorised = self.authorised(&config, headers, &query);
        // What the simulator records of a request never holds its secret.
        query.remove("apiKey");
        let (seq, rng_seed, limited, at_ms) = {
            let Ok(mut s) = self.state.lock() else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            s.requests += 1;
            let seq = s.requests;
            let now = Instant::now();
            let at_ms = now
                .duration_since(*s.started.get_or_insert(now))
                .as_millis() as u64;
            while s
                .window
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
            {
                s.window.pop_front();
            }
            let limited = match config.rate_limit_rpm {
                Some(limit) if s.window.len() >= limit as usize => {
                    let oldest = s.window.front().copied().unwrap_or(now);
                    Some(Duration::from_secs(60).saturating_sub(now.duration_since(oldest)))
                }
                _ => {
                    s.window.push_back(now);
                    None
                }
            };
            (
                seq,
                mix(config.seed ^ seq.wrapping_mul(0x9E37)),
                limited,
                at_ms,
            )
        };
        let mut rng = fastrand::Rng::with_seed(rng_seed);
        let mut served = Served {
            seq,
            source: self.source.clone(),
            personality: self.personality,
            path: path.clone(),
            query: query.clone(),
            status: 0,
            body: None,
            malformed: vec![],
            records: 0,
            expected: vec![],
            generation: None,
            at_ms,
        };
        let answer: Answer = if !authorised {
            let (status, body) = match self.personality {
                Personality::Travelpayouts => travelpayouts::unauthorised(),
                _ => odds::unauthorised(),
            };
            Answer::error(status, body)
        } else if let Some(wait) = limited {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                match self.personality {
                    Personality::Travelpayouts => "rate limit exceeded".to_string(),
                    _ => odds::too_many(),
                },
            )
                .into_response();
            if config.retry_after {
                if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                    response.headers_mut().insert("retry-after", v);
                }
            }
            served.status = 429;
            self.log(served);
            return response;
        } else {
            let (lo, hi) = if rng.f64() < config.spike_rate {
                config.spike_ms
            } else {
                config.latency_ms
            };
            if hi > 0 {
                tokio::time::sleep(Duration::from_millis(rng.u64(lo..=hi.max(lo)))).await;
            }
            let error_rate = match self.personality {
                // Large requests fail more often (the seed's experience of dingerodds).
                Personality::Dingerodds => odds::dinger_error_rate(&config, &query),
                _ => config.error_rate,
            };
            if rng.f64() < error_rate {
                let status = if rng.bool() { 502 } else { 504 };
                Answer::error(
                    status,
                    format!("<html><body><h1>{status} Bad Gateway</h1>nginx</body></html>"),
                )
            } else {
                self.respond(&config, &path, &query, &mut rng)
            }
        };
        self.finish(served, answer, &config, &mut rng)
    }

    /// The personality's own answer, after the generic faults: quota, validation, data.
    fn respond(
        &self,
        config: &SimConfig,
        path: &str,
        query: &BTreeMap<String, String>,
        rng: &mut fastrand::Rng,
    ) -> Answer {
        if let Some(exchange) = self.personality.exchange() {
            let now_ms = Utc::now().timestamp_millis();
            let admitted = {
                let Ok(mut s) = self.state.lock() else {
                    return Answer::error(500, String::new());
                };
                market::admit(exchange, config, &mut s.limits, path, query, now_ms)
            };
            return match admitted {
                market::Admission::Refused(a) => a,
                market::Admission::Go { headers } => {
                    let mut a = market::answer(exchange, config, path, query, now_ms, rng);
                    a.headers.extend(headers);
                    a
                }
            };
        }
        if self.personality == Personality::Odds {
            if let Some(error) = odds::reject(query) {
                return error;
            }
            let cost = odds::cost(query);
            if let Some(quota) = config.quota {
                let Ok(mut s) = self.state.lock() else {
                    return Answer::error(500, String::new());
                };
                if s.credits_used + cost > quota {
                    let mut a = odds::out_of_credits();
                    a.headers = odds::quota_headers(quota, s.credits_used, 0);
                    return a;
                }
                s.credits_used += cost;
            }
        }
        let generation = {
            let mut key_query = query.clone();
            key_query.remove("cursor");
            let key = format!("{path}?{key_query:?}");
            let Ok(mut s) = self.state.lock() else {
                return Answer::error(500, String::new());
            };
            let g = s.generations.entry(key).or_insert(0);
            let current = *g;
            *g += 1;
            current
        };
        let mut answer = match self.personality {
            Personality::Travelpayouts => {
                travelpayouts::answer(config, path, query, generation, rng)
            }
            Personality::Odds => odds::v4_answer(config, path, query, generation, rng),
            Personality::Dingerodds => odds::dinger_answer(config, query, generation, rng),
            Personality::Shop => shop::answer(config, query, generation, rng),
            // Answered above, through their limit model.
            Personality::Binance | Personality::Bybit => Answer::error(500, String::new()),
        };
        if self.personality == Personality::Odds {
            if let (Some(quota), Ok(s)) = (config.quota, self.state.lock()) {
                answer.headers = odds::quota_headers(quota, s.credits_used, odds::cost(query));
            }
        }
        answer.generation = Some(generation);
        answer
    }

    fn finish(
        &self,
        mut served: Served,
        answer: Answer,
        config: &SimConfig,
        rng: &mut fastrand::Rng,
    ) -> Response {
        let mut body = answer.body;
        served.status = answer.status;
        served.generation = answer.generation;
        if answer.status == 200 {
            if rng.f64() < config.malformed_body_rate {
                let mut cut = body.len() / 2;
                while !body.is_char_boundary(cut) {
                    cut -= 1;
                }
                body.truncate(cut);
            } else {
                served.records = answer.expected.len() + answer.malformed.len();
                served.expected = answer.expected;
                served.malformed = answer.malformed;
            }
            served.body = Some(body.clone());
        }
        self.log(served);
        let code = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let content_type = if body.starts_with('<') {
            "text/html"
        } else {
            "application/json"
        };
        let mut response = (code, [("content-type", content_type)], body).into_response();
        for (k, v) in answer.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                response.headers_mut().insert(k, v);
            }
        }
        response
    }

    fn log(&self, served: Served) {
        if let Ok(mut s) = self.state.lock() {
            s.served.push(served);
        }
    }
}

async fn tp_v3(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    sim.answer(travelpayouts::V3_PATH.into(), &headers, q).await
}

async fn tp_mm(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    sim.answer(travelpayouts::MONTH_MATRIX_PATH.into(), &headers, q)
        .await
}

async fn odds_v4(
    State(sim): State<Simulator>,
    Path(sport): Path<String>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    sim.answer(format!("/v4/sports/{sport}/odds"), &headers, q)
        .await
}

async fn dinger(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    sim.answer(odds::DINGER_PATH.into(), &headers, q).await
}

async fn exchange(
    State(sim): State<Simulator>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    sim.answer(uri.path().to_string(), &headers, q).await
}

async fn served(State(sim): State<Simulator>) -> Json<Vec<Served>> {
    Json(sim.served())
}

async fn config(State(sim): State<Simulator>) -> Json<SimConfig> {
    Json(sim.config())
}

async fn put_config(State(sim): State<Simulator>, Json(c): Json<SimConfig>) -> StatusCode {
    sim.set_config(c);
    StatusCode::NO_CONTENT
}
