//! Records for tests, the bench and the twin's scripted history, built in one place so every
//! crate's tests speak of the same quote the same way. Not used on any data path.

use crate::envelope::{Envelope, OddsQuote, Payload};
use chrono::{DateTime, Utc};

/// The home side's quote for `event` (NBA) at `bookmaker` in `market` (`h2h`, `spreads`,
/// `totals`), observed and fetched at `at`, from the `odds` source.
pub fn odds_quote(
    event: &str,
    bookmaker: &str,
    market: &str,
    price: &str,
    line: Option<&str>,
    at: DateTime<Utc>,
) -> Envelope {
    Envelope::new(
        "odds",
        "fixture",
        format!("basketball_nba/{event}/{bookmaker}/{market}/Home"),
        Some(at),
        at,
        Payload::OddsQuote(OddsQuote {
            sport: "basketball_nba".into(),
            sport_title: None,
            event_id: event.into(),
            commence_time: "2026-12-24T01:00:00Z".into(),
            home_team: Some("Home".into()),
            away_team: Some("Away".into()),
            bookmaker: bookmaker.into(),
            bookmaker_title: None,
            market: market.into(),
            outcome: "Home".into(),
            price: price.parse().unwrap_or_default(),
            point: line.and_then(|l| l.parse().ok()),
        }),
    )
}
