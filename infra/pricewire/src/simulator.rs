//! The upstream simulator: a Travelpayouts stand-in with seeded, realistic data and fault
//! injection, which records everything it served so a test can compute exactly what must
//! arrive downstream.
//!
//! Data: real city codes, RUB prices derived from route distance, a share of offers under
//! the classic 5000 RUB threshold, prices that change between generations (each 200 answer
//! to the same query is the next generation). Faults, each drawn from one seeded RNG per
//! request: rate limit (requests per rolling minute → 429, with or without `Retry-After`),
//! 502/504 rate, latency range, `null` / `{}` / `""` / missing optional fields, malformed
//! records (unusable required field), malformed bodies (truncated JSON).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Datelike, Duration as Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Routes the simulator knows: (origin, destination, great-circle km).
pub const ROUTES: &[(&str, &str, u32)] = &[
    ("LED", "KZN", 1200),
    ("MOW", "AER", 1360),
    ("MOW", "LED", 650),
    ("LED", "AER", 1950),
    ("MOW", "KZN", 720),
    ("SVX", "MOW", 1420),
    ("OVB", "MOW", 2810),
    ("KGD", "MOW", 1090),
    ("MOW", "KRR", 1200),
    ("LED", "MRV", 1900),
    ("KZN", "AER", 1500),
    ("MOW", "IKT", 4200),
];
const AIRLINES: &[&str] = &["SU", "DP", "S7", "U6", "UT", "FV", "N4"];
const GATES: &[&str] = &[
    "Aeroflot",
    "Pobeda",
    "S7 Airlines",
    "Ozon.travel",
    "Biletix",
    "Uralairlines",
];
/// The simulator's clock starts here: generation n is `n` × 5 minutes later.
const EPOCH: &str = "2026-11-20T06:00:00Z";

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
    /// Share of optional fields sent as `null`, `{}`, `""` or left out.
    pub null_rate: f64,
    /// Share of records with an unusable required field.
    pub malformed_rate: f64,
    /// Share of 200 answers whose body is truncated JSON.
    pub malformed_body_rate: f64,
    /// Token the `X-Access-Token` header must carry; `None` accepts any.
    pub token: Option<String>,
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
        }
    }
}

/// One answer the simulator gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Served {
    pub seq: u64,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub status: u16,
    /// The body of 200 answers (what the collector must have archived and normalised).
    pub body: Option<String>,
    /// Positions in `data` of records made unusable on purpose.
    pub malformed: Vec<usize>,
    pub records: usize,
    pub generation: Option<u32>,
    /// Milliseconds since the simulator started, when the request arrived.
    #[serde(default)]
    pub at_ms: u64,
}

/// For a generated answer: positions of malformed records, record count, generation.
type Generated = (Vec<usize>, usize, u32);

#[derive(Default)]
struct SimState {
    started: Option<Instant>,
    requests: u64,
    window: VecDeque<Instant>,
    generations: HashMap<String, u32>,
    served: Vec<Served>,
}

#[derive(Clone)]
pub struct Simulator {
    config: Arc<Mutex<SimConfig>>,
    state: Arc<Mutex<SimState>>,
}

/// splitmix64: a stateless, well-mixed hash of a number.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable hash of labelled parts, seeded.
fn h(seed: u64, parts: &[&str]) -> u64 {
    let mut acc = mix(seed);
    for p in parts {
        for b in p.bytes() {
            acc = mix(acc ^ u64::from(b));
        }
        acc = mix(acc ^ 0xff);
    }
    acc
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn route_km(origin: &str, destination: &str) -> u32 {
    ROUTES
        .iter()
        .find(|(o, d, _)| {
            (*o == origin && *d == destination) || (*o == destination && *d == origin)
        })
        .map(|r| r.2)
        .unwrap_or(1500)
}

/// The price of one offer at a generation: base from distance and day, then a random walk
/// in which about 30 % of offers change by up to ±12 % per generation.
fn price(seed: u64, offer: &str, km: u32, generation: u32) -> u32 {
    let base = 1500.0 + f64::from(km) * 2.6;
    let spread = 0.55 + unit(h(seed, &[offer, "base"])) * 0.9;
    let mut p = base * spread;
    for g in 1..=generation {
        let r = h(seed, &[offer, "gen", &g.to_string()]);
        if unit(r) < 0.3 {
            p *= 0.88 + unit(mix(r)) * 0.24;
        }
    }
    ((p / 10.0).round() * 10.0).max(500.0) as u32
}

fn days_of(month_or_date: &str) -> Vec<NaiveDate> {
    if let Ok(d) = NaiveDate::parse_from_str(month_or_date, "%Y-%m-%d") {
        if month_or_date.len() == 10 && !month_or_date.ends_with("-01") {
            return vec![d];
        }
    }
    let first = NaiveDate::parse_from_str(
        &format!("{}-01", month_or_date.get(..7).unwrap_or(month_or_date)),
        "%Y-%m-%d",
    );
    match first {
        Ok(first) => first
            .iter_days()
            .take_while(|d| d.month() == first.month())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn generation_time(generation: u32) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(EPOCH)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now())
        + chrono::Duration::minutes(5 * i64::from(generation))
}

/// The v3 `prices_for_dates` data for a query at a generation, before faults.
pub fn prices_for_dates(seed: u64, q: &BTreeMap<String, String>, generation: u32) -> Vec<Value> {
    prices_for_dates_sized(seed, q, generation, None)
}

/// As [`prices_for_dates`], with `offers` offers spread over the days (flights per day as
/// needed), then the `page` (1-based) of `limit` asked for.
pub fn prices_for_dates_sized(
    seed: u64,
    q: &BTreeMap<String, String>,
    generation: u32,
    offers: Option<usize>,
) -> Vec<Value> {
    let origin = q.get("origin").map(String::as_str).unwrap_or("MOW");
    let destination = q.get("destination").map(String::as_str).unwrap_or("LED");
    let km = route_km(origin, destination);
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(30)
        .clamp(1, 1000);
    let round_trip =
        q.get("return_at").is_some() || q.get("one_way").map(String::as_str) == Some("false");
    let days = days_of(
        q.get("departure_at")
            .map(String::as_str)
            .unwrap_or("2026-12"),
    );
    let wanted = offers;
    let flights_per_day = match wanted {
        Some(n) if !days.is_empty() => n.div_ceil(days.len()) as u32,
        _ => 2,
    };
    let mut offers = Vec::new();
    for flight in 0..flights_per_day {
        for day in days.iter().copied() {
            let id = format!("{origin}{destination}{day}{flight}");
            let r = h(seed, &[&id, "shape"]);
            let airline = AIRLINES[(r % AIRLINES.len() as u64) as usize];
            let number = 100 + (mix(r) % 8900) as u32;
            let hour = 6 + (mix(r ^ 1) % 16) as u32;
            let minute = [0, 15, 30, 45][(mix(r ^ 2) % 4) as usize];
            let transfers = [0, 0, 0, 1, 1, 2][(mix(r ^ 3) % 6) as usize];
            let duration = km / 8 + 40 + transfers * 95;
            let departure = format!("{day}T{hour:02}:{minute:02}:00+03:00");
            let ret = (day + Days::days(5 + (mix(r ^ 4) % 5) as i64)).to_string();
            let price = price(seed, &id, km, generation);
            let mut o = json!({
                "origin": origin, "destination": destination,
                "origin_airport": origin, "destination_airport": destination,
                "price": price, "airline": airline, "flight_number": number.to_string(),
                "departure_at": departure, "transfers": transfers, "return_transfers": transfers,
                "duration": duration, "duration_to": duration, "duration_back": if round_trip { duration } else { 0 },
                "link": format!("/search/{origin}{:02}{:02}{destination}1?t={airline}{number}{price}", day.day(), day.month()),
            });
            if round_trip {
                o["return_at"] = json!(format!("{ret}T{:02}:00:00+03:00", (hour + 5) % 24));
            }
            offers.push((price, o));
        }
    }
    if let Some(n) = wanted {
        offers.truncate(n);
    }
    let sort_by_price = q.get("sorting").map(String::as_str) != Some("route");
    if sort_by_price {
        offers.sort_by_key(|(p, _)| *p);
    }
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    offers
        .into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|(_, o)| o)
        .collect()
}

/// The v2 `month-matrix` data for a query at a generation, before faults.
pub fn month_matrix(seed: u64, q: &BTreeMap<String, String>, generation: u32) -> Vec<Value> {
    let origin = q.get("origin").map(String::as_str).unwrap_or("MOW");
    let destination = q.get("destination").map(String::as_str).unwrap_or("LED");
    let km = route_km(origin, destination);
    let one_way = q.get("one_way").map(String::as_str) == Some("true");
    let trip: i64 = q
        .get("trip_duration")
        .and_then(|t| t.parse().ok())
        .unwrap_or(7);
    let found = generation_time(generation);
    days_of(q.get("month").map(String::as_str).unwrap_or("2026-12-01"))
        .into_iter()
        .map(|day| {
            let id = format!("mm{origin}{destination}{day}");
            let r = h(seed, &[&id, "shape"]);
            let changes = [0, 0, 1, 0, 2][(mix(r ^ 3) % 5) as usize];
            json!({
                "value": price(seed, &id, km, generation),
                "trip_class": 0,
                "show_to_affiliates": true,
                "return_date": if one_way { String::new() } else { (day + Days::days(trip)).to_string() },
                "origin": origin,
                "gate": GATES[(r % GATES.len() as u64) as usize],
                "found_at": found.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "number_of_changes": changes,
                "destination": destination,
                "depart_date": day.to_string(),
                "actual": true,
                "distance": km,
                "duration": km / 8 + 40 + changes * 95,
            })
        })
        .collect()
}

/// Makes optional fields unstable (`null`, `{}`, `""`, missing), as upstreams do.
fn unstabilise(
    rng: &mut fastrand::Rng,
    record: &mut Map<String, Value>,
    rate: f64,
    required: &[&str],
) {
    let keys: Vec<String> = record
        .keys()
        .filter(|k| !required.contains(&k.as_str()))
        .cloned()
        .collect();
    for k in keys {
        if rng.f64() < rate {
            match rng.u8(0..4) {
                0 => {
                    record.insert(k, Value::Null);
                }
                1 => {
                    record.insert(k, json!({}));
                }
                2 => {
                    record.insert(k, json!(""));
                }
                _ => {
                    record.remove(&k);
                }
            }
        }
    }
}

/// Breaks a required field so the record cannot be normalised.
fn break_record(
    rng: &mut fastrand::Rng,
    record: &mut Map<String, Value>,
    price_field: &str,
    date_field: &str,
) {
    match rng.u8(0..5) {
        0 => {
            record.insert(price_field.into(), Value::Null);
        }
        1 => {
            record.insert(price_field.into(), json!({}));
        }
        2 => {
            record.insert(price_field.into(), json!("n/a"));
        }
        3 => {
            record.insert(price_field.into(), json!(-1));
        }
        _ => {
            record.remove(date_field);
        }
    }
}

impl Simulator {
    pub fn new(config: SimConfig) -> Simulator {
        Simulator {
            config: Arc::new(Mutex::new(config)),
            state: Arc::default(),
        }
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

    pub fn served(&self) -> Vec<Served> {
        self.state
            .lock()
            .map(|s| s.served.clone())
            .unwrap_or_default()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/aviasales/v3/prices_for_dates", get(v3))
            .route("/v2/prices/month-matrix", get(mm))
            .route("/_sim/served", get(served))
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

    async fn answer(
        &self,
        path: &'static str,
        headers: &HeaderMap,
        query: BTreeMap<String, String>,
    ) -> Response {
        let config = self.config();
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
        let record = |status: u16,
                      body: Option<String>,
                      malformed: Vec<usize>,
                      records: usize,
                      generation: Option<u32>| Served {
            seq,
            path: path.into(),
            query: query.clone(),
            status,
            body,
            malformed,
            records,
            generation,
            at_ms,
        };
        let token_ok = match &config.token {
            None => true,
            Some(t) => {
                headers.get("x-access-token").and_then(|v| v.to_str().ok()) == Some(t.as_str())
            }
        };
        let (status, body, extra): (u16, String, Option<Generated>) = if !token_ok {
            (
                401,
                r#"{"success":false,"data":null,"error":"Unauthorized"}"#.into(),
                None,
            )
        } else if let Some(wait) = limited {
            let mut response =
                (StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded").into_response();
            if config.retry_after {
                let secs = wait.as_secs().max(1).to_string();
                if let Ok(v) = HeaderValue::from_str(&secs) {
                    response.headers_mut().insert("retry-after", v);
                }
            }
            self.log(record(429, None, vec![], 0, None));
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
            if rng.f64() < config.error_rate {
                let status = if rng.bool() { 502 } else { 504 };
                (
                    status,
                    format!("<html><body><h1>{status} Bad Gateway</h1>nginx</body></html>"),
                    None,
                )
            } else {
                let generation = {
                    let key = format!("{path}?{query:?}");
                    let Ok(mut s) = self.state.lock() else {
                        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    };
                    let g = s.generations.entry(key).or_insert(0);
                    let current = *g;
                    *g += 1;
                    current
                };
                let (mut data, price_field, date_field) = if path.starts_with("/aviasales") {
                    (
                        prices_for_dates_sized(
                            config.seed,
                            &query,
                            generation,
                            config.offers_per_query,
                        ),
                        "price",
                        "departure_at",
                    )
                } else {
                    (
                        month_matrix(config.seed, &query, generation),
                        "value",
                        "depart_date",
                    )
                };
                let mut malformed = Vec::new();
                for (i, item) in data.iter_mut().enumerate() {
                    if let Value::Object(obj) = item {
                        if rng.f64() < config.malformed_rate {
                            break_record(&mut rng, obj, price_field, date_field);
                            malformed.push(i);
                        } else {
                            unstabilise(
                                &mut rng,
                                obj,
                                config.null_rate,
                                &[price_field, date_field, "origin", "destination"],
                            );
                        }
                    }
                }
                let n = data.len();
                let mut body = json!({"success": true, "data": data, "currency": query.get("currency").cloned().unwrap_or_else(|| "rub".into())}).to_string();
                if rng.f64() < config.malformed_body_rate {
                    let mut cut = body.len() / 2;
                    while !body.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    body.truncate(cut);
                    (200, body, Some((Vec::new(), 0, generation)))
                } else {
                    (200, body, Some((malformed, n, generation)))
                }
            }
        };
        let logged = match &extra {
            Some((malformed, n, g)) => {
                record(status, Some(body.clone()), malformed.clone(), *n, Some(*g))
            }
            None => record(status, None, vec![], 0, None),
        };
        self.log(logged);
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let content_type = if status == 200 || status == 401 {
            "application/json"
        } else {
            "text/html"
        };
        (code, [("content-type", content_type)], body).into_response()
    }

    fn log(&self, served: Served) {
        if let Ok(mut s) = self.state.lock() {
            s.served.push(served);
        }
    }
}

async fn v3(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    sim.answer("/aviasales/v3/prices_for_dates", &headers, q)
        .await
}

async fn mm(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    sim.answer("/v2/prices/month-matrix", &headers, q).await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn data_is_deterministic_realistic_and_changes_between_generations() {
        let query = q(&[
            ("origin", "LED"),
            ("destination", "KZN"),
            ("departure_at", "2026-12"),
            ("limit", "100"),
        ]);
        let a = prices_for_dates(7, &query, 0);
        assert_eq!(a, prices_for_dates(7, &query, 0));
        assert_ne!(a, prices_for_dates(8, &query, 0));
        assert_eq!(a.len(), 62, "two flights a day for 31 days");
        let mut paged = query.clone();
        paged.insert("sorting".into(), "route".into());
        paged.insert("limit".into(), "25".into());
        let pages: Vec<Vec<Value>> = (1..=81)
            .map(|p| {
                paged.insert("page".into(), p.to_string());
                prices_for_dates_sized(7, &paged, 0, Some(2000))
            })
            .collect();
        assert!(pages[..80].iter().all(|p| p.len() == 25) && pages[80].is_empty());
        let keys: std::collections::HashSet<String> = pages
            .iter()
            .flatten()
            .map(|o| {
                format!(
                    "{}{}{}",
                    o["departure_at"], o["airline"], o["flight_number"]
                )
            })
            .collect();
        assert!(
            keys.len() > 1990,
            "pages do not overlap: {} distinct",
            keys.len()
        );
        let prices: Vec<u64> = a.iter().map(|o| o["price"].as_u64().unwrap()).collect();
        assert!(prices.windows(2).all(|w| w[0] <= w[1]), "sorted by price");
        assert!(
            prices.iter().any(|p| *p < 5000) && prices.iter().any(|p| *p >= 5000),
            "{prices:?}"
        );
        let later = prices_for_dates(7, &query, 3);
        let changed = a
            .iter()
            .zip(&later)
            .filter(|(x, y)| x["price"] != y["price"])
            .count();
        assert!(changed > 0, "prices move between generations");
        let mm = month_matrix(
            7,
            &q(&[
                ("origin", "MOW"),
                ("destination", "AER"),
                ("month", "2026-12-01"),
            ]),
            2,
        );
        assert_eq!(mm.len(), 31);
        assert_eq!(mm[0]["found_at"], "2026-11-20T06:10:00");
        assert!(GATES.contains(&mm[0]["gate"].as_str().unwrap()));
    }
}
