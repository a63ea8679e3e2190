//! The odds personalities: The Odds API v4 (`/v4/sports/{sport}/odds`) and the dingerodds
//! style (`/api/v1/events/upcoming`, cursor pages). Seeded events whose odds move between
//! generations (each 200 answer to the same query is the next generation; about 30 % of
//! markets move per generation, and a market's `last_update` is when it last moved), and
//! the faults this kind of API is known for: odds missing as `null` one day and `{}` the
//! next at every level, prices as strings, events with no bookmakers, malformed events,
//! credits (`x-requests-*`, 401 `OUT_OF_USAGE_CREDITS`), 422 `INVALID_MARKET`.
//!
//! As for flights, what a correct collector must make of each answer is written from the
//! model (the documented record grain: event × bookmaker × market × outcome, keyed
//! `<sport>/<event>/<bookmaker>/<market>/<outcome>`), not by parsing the body.

use super::{h, mix, unit, Answer, Expected, SimConfig};
use chrono::{DateTime, SecondsFormat, Utc};
use pricewire_pipeline::envelope::{OddsQuote, Payload};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub const DINGER_PATH: &str = "/api/v1/events/upcoming";
/// Markets the simulated API knows; anything else is a 422 `INVALID_MARKET`.
const KNOWN_MARKETS: &[&str] = &["h2h", "spreads", "totals"];
const REGIONS: &[&str] = &["us", "us2", "uk", "eu", "au"];
const BOOKMAKERS: &[(&str, &str)] = &[
    ("draftkings", "DraftKings"),
    ("fanduel", "FanDuel"),
    ("betmgm", "BetMGM"),
];
/// (sport key, title, whether a draw is an outcome, teams).
const SPORTS: &[(&str, &str, bool, &[&str])] = &[
    (
        "basketball_nba",
        "NBA",
        false,
        &[
            "Los Angeles Lakers",
            "Boston Celtics",
            "Golden State Warriors",
            "Miami Heat",
            "Chicago Bulls",
            "New York Knicks",
            "Denver Nuggets",
            "Phoenix Suns",
        ],
    ),
    (
        "americanfootball_nfl",
        "NFL",
        false,
        &[
            "Kansas City Chiefs",
            "Buffalo Bills",
            "Dallas Cowboys",
            "Green Bay Packers",
            "Detroit Lions",
            "Miami Dolphins",
        ],
    ),
    (
        "soccer_epl",
        "EPL",
        true,
        &[
            "Arsenal",
            "Chelsea",
            "Liverpool",
            "Everton",
            "Fulham",
            "Brentford",
            "Burnley",
            "Aston Villa",
        ],
    ),
    (
        "icehockey_nhl",
        "NHL",
        false,
        &[
            "Boston Bruins",
            "Toronto Maple Leafs",
            "New York Rangers",
            "Colorado Avalanche",
            "Edmonton Oilers",
            "Vegas Golden Knights",
        ],
    ),
    (
        "baseball",
        "Baseball",
        false,
        &[
            "New York Mets",
            "Chicago Cubs",
            "Los Angeles Dodgers",
            "Boston Red Sox",
            "Houston Astros",
            "Atlanta Braves",
        ],
    ),
];
/// Generation 0's time; generation n is n minutes later.
const EPOCH: &str = "2026-12-01T09:00:00Z";
/// The first event starts here; each next one three hours later.
const FIRST_START: &str = "2026-12-02T00:30:00Z";
const DINGER_DEFAULT_LIMIT: usize = 20;
const DINGER_MAX_LIMIT: usize = 100;
/// Pages larger than this fail twice as often (502/504 on large batches).
const DINGER_LARGE_PAGE: usize = 50;

fn time(base: &str, minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(base)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now())
        + chrono::Duration::minutes(minutes)
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn sport_of(key: &str) -> (&'static str, &'static str, bool, &'static [&'static str]) {
    SPORTS
        .iter()
        .copied()
        .find(|s| s.0 == key)
        .unwrap_or(SPORTS[0])
}

/// One simulated event.
struct Event {
    id: String,
    sport: &'static str,
    title: &'static str,
    draws: bool,
    home: &'static str,
    away: &'static str,
    commence: DateTime<Utc>,
    /// Far-out events no bookmaker prices yet.
    unpriced: bool,
}

fn events(seed: u64, sport: &str, n: usize) -> Vec<Event> {
    let (key, title, draws, teams) = sport_of(sport);
    (0..n)
        .map(|i| {
            let r = h(seed, &[key, "event", &i.to_string()]);
            let home = teams[(2 * i) % teams.len()];
            let mut away = teams[(2 * i + 1 + (i / teams.len())) % teams.len()];
            if away == home {
                away = teams[(2 * i + 2) % teams.len()];
            }
            Event {
                id: format!("{:016x}{:016x}", r, mix(r)),
                sport: key,
                title,
                draws,
                home,
                away,
                commence: time(FIRST_START, 180 * i as i64),
                unpriced: r % 8 == 7,
            }
        })
        .collect()
}

/// Whether a market moved at generation `g` (about 30 %).
fn moved(seed: u64, market: &str, g: u32) -> bool {
    unit(h(seed, &[market, "move", &g.to_string()])) < 0.3
}

/// The market's state at generation `g`: how far it has drifted (in steps, each ±1) and
/// the generation it last moved at.
fn drift(seed: u64, market: &str, g: u32) -> (i64, u32) {
    let mut steps = 0i64;
    let mut last = 0;
    for gen in 1..=g {
        if moved(seed, market, gen) {
            steps += if mix(h(seed, &[market, "dir", &gen.to_string()])).is_multiple_of(2) {
                1
            } else {
                -1
            };
            last = gen;
        }
    }
    (steps.clamp(-8, 8), last)
}

/// Decimal odds of a probability with a 5 % margin, to two places.
fn odds_of(p: f64) -> Decimal {
    let price = (1.0 / (p * 1.05)).max(1.01);
    Decimal::new((price * 100.0).round() as i64, 2).normalize()
}

/// One outcome: its name, decimal odds and line.
type Outcome = (String, Decimal, Option<Decimal>);

/// The outcomes of one market of one event at one bookmaker, at generation `g`, and the
/// generation it last moved.
fn market_outcomes(
    seed: u64,
    e: &Event,
    bookmaker: &str,
    market: &str,
    g: u32,
) -> (Vec<Outcome>, u32) {
    let id = format!("{}/{bookmaker}/{market}", e.id);
    let (steps, last) = drift(seed, &id, g);
    let base = 0.3 + unit(h(seed, &[&e.id, "strength"])) * 0.4;
    let p_home = (base + 0.03 * steps as f64).clamp(0.1, 0.9);
    let outcomes = match market {
        "h2h" | "moneyline" => {
            if e.draws {
                let draw = 0.25;
                vec![
                    (e.home.to_string(), odds_of(p_home * 0.75), None),
                    (e.away.to_string(), odds_of((1.0 - p_home) * 0.75), None),
                    ("Draw".to_string(), odds_of(draw), None),
                ]
            } else {
                vec![
                    (e.home.to_string(), odds_of(p_home), None),
                    (e.away.to_string(), odds_of(1.0 - p_home), None),
                ]
            }
        }
        "spreads" | "spread" => {
            // The line moves by half points; the prices stay near evens.
            let half_points = ((0.5 - base) * 30.0).round() as i64 + steps;
            let point = Decimal::new(half_points * 5 + if half_points >= 0 { 5 } else { -5 }, 1);
            vec![
                (
                    e.home.to_string(),
                    Decimal::new(191, 2),
                    Some(point.normalize()),
                ),
                (
                    e.away.to_string(),
                    Decimal::new(191, 2),
                    Some((-point).normalize()),
                ),
            ]
        }
        _ => {
            let total = Decimal::new(2205 + 10 * steps, 1);
            vec![
                (
                    "Over".to_string(),
                    odds_of(0.5 + 0.01 * steps as f64),
                    Some(total.normalize()),
                ),
                (
                    "Under".to_string(),
                    odds_of(0.5 - 0.01 * steps as f64),
                    Some(total.normalize()),
                ),
            ]
        }
    };
    (outcomes, last)
}

/// Number or string, as the API happens to write it today.
fn number(rng: &mut fastrand::Rng, d: Decimal) -> Value {
    if rng.f64() < 0.3 {
        json!(d.to_string())
    } else {
        serde_json::from_str(&d.to_string()).unwrap_or(Value::Null)
    }
}

/// Makes a list `null`, `{}`, `[]` or absent with probability `rate`; true when it did.
fn lose(rng: &mut fastrand::Rng, obj: &mut Map<String, Value>, key: &str, rate: f64) -> bool {
    if rng.f64() >= rate {
        return false;
    }
    match rng.u8(0..4) {
        0 => {
            obj.insert(key.into(), Value::Null);
        }
        1 => {
            obj.insert(key.into(), json!({}));
        }
        2 => {
            obj.insert(key.into(), json!([]));
        }
        _ => {
            obj.remove(key);
        }
    }
    true
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    V4,
    Dinger,
}

/// What an answer asks for: its style, markets and bookmakers, at a generation.
struct Ask<'a> {
    style: Style,
    markets: &'a [&'a str],
    bookmakers: &'a [(&'a str, &'a str)],
    generation: u32,
}

/// What an answer holds that a collector must act on.
#[derive(Default)]
struct Tally {
    expected: Vec<Expected>,
    malformed: Vec<String>,
}

/// One event as the API writes it; its expected quotes and broken units go to `tally`.
fn event_json(
    config: &SimConfig,
    ask: &Ask<'_>,
    e: &Event,
    index: usize,
    rng: &mut fastrand::Rng,
    tally: &mut Tally,
) -> Value {
    let (style, markets, bookmakers, g) = (ask.style, ask.markets, ask.bookmakers, ask.generation);
    let (expected, malformed) = (&mut tally.expected, &mut tally.malformed);
    // Each level gets a quarter of the null rate: about that share of odds go missing.
    let level_rate = config.null_rate / 4.0;
    let mut ev = Map::new();
    ev.insert("id".into(), json!(e.id));
    match style {
        Style::V4 => {
            ev.insert("sport_key".into(), json!(e.sport));
            ev.insert("sport_title".into(), json!(e.title));
            ev.insert("commence_time".into(), json!(iso(e.commence)));
        }
        Style::Dinger => {
            ev.insert("sport".into(), json!(e.sport));
            ev.insert("commence_time".into(), json!(e.commence.timestamp()));
        }
    }
    ev.insert("home_team".into(), json!(e.home));
    ev.insert("away_team".into(), json!(e.away));
    if rng.f64() < config.malformed_rate {
        let how = match rng.u8(0..3) {
            0 => {
                ev.remove("id");
                "id missing"
            }
            1 => {
                ev.insert("commence_time".into(), json!("TBD"));
                "commence_time \"TBD\""
            }
            _ => {
                ev.insert("id".into(), Value::Null);
                "id null"
            }
        };
        malformed.push(format!("event[{index}]: {how}"));
        ev.insert("bookmakers".into(), json!([]));
        return Value::Object(ev);
    }
    let sport_title = if style == Style::V4
        && !super::unstabilise_field(rng, &mut ev, "sport_title", config.null_rate / 2.0)
    {
        Some(e.title.to_string())
    } else {
        None
    };
    if e.unpriced {
        ev.insert("bookmakers".into(), json!([]));
        return Value::Object(ev);
    }
    if lose(rng, &mut ev, "bookmakers", level_rate) {
        return Value::Object(ev);
    }
    let mut books = Vec::new();
    for (b, (bk_key, bk_title)) in bookmakers.iter().enumerate() {
        let mut bk = Map::new();
        bk.insert("key".into(), json!(bk_key));
        bk.insert("title".into(), json!(bk_title));
        let title = (!super::unstabilise_field(rng, &mut bk, "title", config.null_rate / 2.0))
            .then(|| bk_title.to_string());
        let priced: Vec<(&str, Vec<Outcome>, u32)> = markets
            .iter()
            .map(|m| {
                let (outcomes, last) = market_outcomes(config.seed, e, bk_key, m, g);
                (*m, outcomes, last)
            })
            .collect();
        // The bookmaker's last_update is the newest of its markets'.
        let book_last = priced.iter().map(|(_, _, last)| *last).max().unwrap_or(0);
        bk.insert(
            "last_update".into(),
            json!(iso(time(EPOCH, i64::from(book_last)))),
        );
        if lose(rng, &mut bk, "markets", level_rate) {
            books.push(Value::Object(bk));
            continue;
        }
        let mut mks = Vec::new();
        for (m, (market, outcomes, last)) in priced.into_iter().enumerate() {
            let mut mk = Map::new();
            mk.insert("key".into(), json!(market));
            mk.insert(
                "last_update".into(),
                json!(iso(time(EPOCH, i64::from(last)))),
            );
            let market_time = (!super::unstabilise_field(rng, &mut mk, "last_update", level_rate))
                .then_some(last);
            if lose(rng, &mut mk, "outcomes", level_rate) {
                mks.push(Value::Object(mk));
                continue;
            }
            let market_name = match market {
                "moneyline" => "h2h",
                "spread" => "spreads",
                "total" => "totals",
                other => other,
            };
            let observed = time(EPOCH, i64::from(market_time.unwrap_or(book_last)));
            let mut ocs = Vec::new();
            for (o, (name, price, point)) in outcomes.into_iter().enumerate() {
                let mut oc = Map::new();
                oc.insert("name".into(), json!(name));
                let broken = rng.f64() < level_rate;
                if broken {
                    oc.insert(
                        "price".into(),
                        if rng.bool() { Value::Null } else { json!({}) },
                    );
                    malformed.push(format!(
                        "event[{index}].bookmakers[{b}].markets[{m}].outcomes[{o}]: price missing"
                    ));
                } else {
                    oc.insert("price".into(), number(rng, price));
                }
                if let Some(p) = point {
                    oc.insert("point".into(), number(rng, p));
                }
                ocs.push(Value::Object(oc));
                if broken {
                    continue;
                }
                expected.push(Expected {
                    index,
                    key: format!("{}/{}/{bk_key}/{market_name}/{name}", e.sport, e.id),
                    upstream_time: Some(observed),
                    payload: Payload::OddsQuote(OddsQuote {
                        sport: e.sport.to_string(),
                        sport_title: sport_title.clone(),
                        event_id: e.id.clone(),
                        commence_time: iso(e.commence),
                        home_team: Some(e.home.to_string()),
                        away_team: Some(e.away.to_string()),
                        bookmaker: bk_key.to_string(),
                        bookmaker_title: title.clone(),
                        market: market_name.to_string(),
                        outcome: name,
                        price,
                        point,
                    }),
                });
            }
            mk.insert("outcomes".into(), Value::Array(ocs));
            mks.push(Value::Object(mk));
        }
        bk.insert("markets".into(), Value::Array(mks));
        books.push(Value::Object(bk));
    }
    ev.insert("bookmakers".into(), Value::Array(books));
    Value::Object(ev)
}

fn list(query: &BTreeMap<String, String>, name: &str) -> Vec<String> {
    query
        .get(name)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Credits a v4 call costs: markets × regions.
pub fn cost(query: &BTreeMap<String, String>) -> u64 {
    let markets = list(query, "markets").len().max(1) as u64;
    let regions = list(query, "regions").len().max(1) as u64;
    markets * regions
}

/// A v4 request the API refuses before counting credits: an unknown market or region.
pub fn reject(query: &BTreeMap<String, String>) -> Option<Answer> {
    let bad: Vec<String> = list(query, "markets")
        .into_iter()
        .filter(|m| !KNOWN_MARKETS.contains(&m.as_str()))
        .collect();
    if !bad.is_empty() {
        return Some(Answer::error(
            422,
            json!({"message": format!("Invalid markets: {}", bad.join(",")), "error_code": "INVALID_MARKET",
                   "details_url": "https://the-odds-api.com/liveapi/guides/v4/api-error-codes.html#invalid-market"})
            .to_string(),
        ));
    }
    if list(query, "regions")
        .iter()
        .any(|r| !REGIONS.contains(&r.as_str()))
    {
        return Some(Answer::error(
            422,
            json!({"message": "Invalid regions", "error_code": "INVALID_REGION"}).to_string(),
        ));
    }
    None
}

pub fn quota_headers(quota: u64, used: u64, last: u64) -> Vec<(&'static str, String)> {
    vec![
        (
            "x-requests-remaining",
            quota.saturating_sub(used).to_string(),
        ),
        ("x-requests-used", used.to_string()),
        ("x-requests-last", last.to_string()),
    ]
}

pub fn out_of_credits() -> Answer {
    Answer::error(
        401,
        json!({"message": "Usage quota has been reached.", "error_code": "OUT_OF_USAGE_CREDITS",
               "details_url": "https://the-odds-api.com/liveapi/guides/v4/api-error-codes.html#out-of-usage-credits"})
        .to_string(),
    )
}

pub fn unauthorised() -> (u16, String) {
    (
        401,
        json!({"message": "API key is not valid, or was not provided.", "error_code": "INVALID_KEY"}).to_string(),
    )
}

pub fn too_many() -> String {
    json!({"message": "Your app is making too many requests at the same time.", "error_code": "EXCEEDED_FREQ_LIMIT"})
        .to_string()
}

/// One v4 answer: every event of the sport, the markets and bookmakers asked for.
pub fn v4_answer(
    config: &SimConfig,
    path: &str,
    query: &BTreeMap<String, String>,
    g: u32,
    rng: &mut fastrand::Rng,
) -> Answer {
    let sport = path
        .strip_prefix("/v4/sports/")
        .and_then(|p| p.strip_suffix("/odds"))
        .unwrap_or("upcoming");
    let sports: Vec<&str> = if sport == "upcoming" {
        SPORTS
            .iter()
            .map(|s| s.0)
            .filter(|s| *s != "baseball")
            .collect()
    } else {
        vec![sport]
    };
    let markets = {
        let m = list(query, "markets");
        if m.is_empty() {
            vec!["h2h".to_string()]
        } else {
            m
        }
    };
    let markets: Vec<&str> = markets.iter().map(String::as_str).collect();
    let wanted = list(query, "bookmakers");
    let bookmakers: Vec<(&str, &str)> = BOOKMAKERS
        .iter()
        .copied()
        .filter(|(k, _)| wanted.is_empty() || wanted.iter().any(|w| w == k))
        .collect();
    let ask = Ask {
        style: Style::V4,
        markets: &markets,
        bookmakers: &bookmakers,
        generation: g,
    };
    let (mut tally, mut data) = (Tally::default(), Vec::new());
    let mut index = 0;
    for s in sports {
        for e in events(config.seed, s, config.odds_events) {
            data.push(event_json(config, &ask, &e, index, rng, &mut tally));
            index += 1;
        }
    }
    Answer::ok(
        Value::Array(data).to_string(),
        tally.expected,
        tally.malformed,
    )
}

/// The opaque cursor of a dingerodds page (percent-encoded, as real cursors come).
fn cursor_of(seed: u64, offset: usize) -> String {
    format!(
        "off%3D{offset}%26k%3D{:08x}",
        h(seed, &["cursor", &offset.to_string()]) as u32
    )
}

fn offset_of(seed: u64, cursor: &str) -> Option<usize> {
    let offset: usize = cursor
        .strip_prefix("off%3D")?
        .split('%')
        .next()?
        .parse()
        .ok()?;
    (cursor_of(seed, offset) == cursor).then_some(offset)
}

pub fn dinger_error_rate(config: &SimConfig, query: &BTreeMap<String, String>) -> f64 {
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(DINGER_DEFAULT_LIMIT);
    if limit > DINGER_LARGE_PAGE {
        (config.error_rate * 2.0).min(0.9)
    } else {
        config.error_rate
    }
}

/// One dingerodds page: `limit` events from the cursor's offset, and the next cursor.
pub fn dinger_answer(
    config: &SimConfig,
    query: &BTreeMap<String, String>,
    g: u32,
    rng: &mut fastrand::Rng,
) -> Answer {
    let sport = query.get("sport").map(String::as_str).unwrap_or("baseball");
    let market = query
        .get("market")
        .map(String::as_str)
        .unwrap_or("moneyline");
    if !["moneyline", "spread", "total"].contains(&market) {
        return Answer::error(
            400,
            json!({"error": {"code": "BAD_MARKET", "message": format!("unknown market {market}")}})
                .to_string(),
        );
    }
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(DINGER_DEFAULT_LIMIT)
        .clamp(1, DINGER_MAX_LIMIT);
    let offset =
        match query.get("cursor") {
            None => 0,
            Some(c) => match offset_of(config.seed, c) {
                Some(o) => o,
                None => return Answer::error(
                    400,
                    json!({"error": {"code": "BAD_CURSOR", "message": "cursor not recognised"}})
                        .to_string(),
                ),
            },
        };
    let all = events(config.seed, sport, config.odds_events);
    let ask = Ask {
        style: Style::Dinger,
        markets: &[market],
        bookmakers: &[("dinger", "Dinger Sports")],
        generation: g,
    };
    let (mut tally, mut data) = (Tally::default(), Vec::new());
    for (i, e) in all.iter().enumerate().skip(offset).take(limit) {
        data.push(event_json(config, &ask, e, i - offset, rng, &mut tally));
    }
    let next = (offset + limit < all.len()).then(|| cursor_of(config.seed, offset + limit));
    let body = json!({"data": data, "next_cursor": next}).to_string();
    Answer::ok(body, tally.expected, tally.malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::query_of as q;

    #[test]
    fn odds_move_between_generations_and_last_update_says_when() {
        let config = SimConfig {
            odds_events: 4,
            ..SimConfig::default()
        };
        let query = q(&[("regions", "us"), ("markets", "h2h,spreads,totals")]);
        let path = "/v4/sports/basketball_nba/odds";
        let a = v4_answer(&config, path, &query, 0, &mut fastrand::Rng::with_seed(1));
        let b = v4_answer(&config, path, &query, 6, &mut fastrand::Rng::with_seed(1));
        assert!(a.malformed.is_empty());
        let priced = events(config.seed, "basketball_nba", 4)
            .iter()
            .filter(|e| !e.unpriced)
            .count();
        // h2h 2 + spreads 2 + totals 2 outcomes, 3 bookmakers, per priced event.
        assert_eq!(a.expected.len(), priced * 3 * 6);
        let moved: Vec<(&Expected, &Expected)> = a
            .expected
            .iter()
            .zip(&b.expected)
            .filter(|(x, y)| x.payload != y.payload)
            .collect();
        assert!(!moved.is_empty(), "prices move");
        for (x, y) in &moved {
            assert_eq!(x.key, y.key, "same quote, new price");
            assert!(
                y.upstream_time > x.upstream_time,
                "a moved market has a newer last_update"
            );
        }
        let body: Value = serde_json::from_str(&b.body).unwrap();
        assert_eq!(body.as_array().unwrap().len(), 4);
    }

    #[test]
    fn faults_take_quotes_out_of_the_expectation() {
        let config = SimConfig {
            odds_events: 8,
            null_rate: 0.6,
            malformed_rate: 0.2,
            ..SimConfig::default()
        };
        let query = q(&[("regions", "us"), ("markets", "h2h,totals")]);
        let clean = v4_answer(
            &SimConfig {
                odds_events: 8,
                ..SimConfig::default()
            },
            "/v4/sports/soccer_epl/odds",
            &query,
            1,
            &mut fastrand::Rng::with_seed(2),
        );
        let a = v4_answer(
            &config,
            "/v4/sports/soccer_epl/odds",
            &query,
            1,
            &mut fastrand::Rng::with_seed(2),
        );
        assert!(!a.malformed.is_empty(), "some events or prices broken");
        assert!(
            a.expected.len() < clean.expected.len(),
            "missing odds are not expected"
        );
        // Every expected quote is really in the body with a usable price.
        let body: Value = serde_json::from_str(&a.body).unwrap();
        for e in &a.expected {
            let Payload::OddsQuote(x) = &e.payload else {
                panic!()
            };
            let ev = &body[e.index];
            assert_eq!(ev["id"], json!(x.event_id));
            let bk = ev["bookmakers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["key"] == json!(x.bookmaker))
                .unwrap();
            let mk = bk["markets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["key"] == json!(x.market))
                .unwrap();
            let oc = mk["outcomes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["name"] == json!(x.outcome))
                .unwrap();
            let served: Decimal = match &oc["price"] {
                Value::String(s) => s.parse().unwrap(),
                other => other.to_string().parse().unwrap(),
            };
            assert_eq!(served, x.price);
        }
    }

    #[test]
    fn credits_markets_and_cursors() {
        assert_eq!(
            cost(&q(&[("regions", "us,uk"), ("markets", "h2h,spreads")])),
            4
        );
        assert!(reject(&q(&[("regions", "us"), ("markets", "h2h,h2h_lay")]))
            .is_some_and(|a| a.status == 422 && a.body.contains("INVALID_MARKET")));
        assert!(reject(&q(&[("regions", "us"), ("markets", "h2h")])).is_none());
        let config = SimConfig {
            odds_events: 45,
            ..SimConfig::default()
        };
        let mut cursor: Option<String> = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let mut query = q(&[("sport", "baseball"), ("market", "moneyline")]);
            if let Some(c) = &cursor {
                query.insert("cursor".into(), c.clone());
            }
            let a = dinger_answer(&config, &query, 0, &mut fastrand::Rng::with_seed(3));
            let body: Value = serde_json::from_str(&a.body).unwrap();
            seen.extend(
                body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["id"].as_str().unwrap().to_string()),
            );
            cursor = body["next_cursor"].as_str().map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen.len(), 45);
        let unique: std::collections::HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), 45, "pages do not overlap");
        assert_eq!(
            dinger_answer(
                &config,
                &q(&[("cursor", "forged")]),
                0,
                &mut fastrand::Rng::with_seed(1)
            )
            .status,
            400
        );
    }
}
