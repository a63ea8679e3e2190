//! Odds moving across bookmakers: `odds_shortening` with `bookmakers = K` fires when at
//! least K bookmakers shortened the same outcome of the same event within the rule's
//! window — a market move, not one bookmaker's adjustment. Pure: the alerter records each
//! qualifying move per (rule, group) in the state table (`ports::MoveStore`) and asks
//! [`Quorum::reached`]; the group then alerts once per window (its re-alert slot is the
//! group, its default cooldown the window).

use pricewire_pipeline::envelope::{Envelope, Payload};
use std::collections::BTreeMap;

/// The most bookmakers a rule may ask for (The Odds API lists about 40 per region).
pub const MAX_BOOKMAKERS: u32 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    pub bookmakers: u32,
    pub window_minutes: u32,
}

impl Quorum {
    /// Whether the moves (bookmaker → when its latest qualifying move was stored) hold at
    /// least `bookmakers` within the window ending at `at_ms`.
    pub fn reached(&self, moves: &BTreeMap<String, i64>, at_ms: i64) -> bool {
        let from = at_ms - i64::from(self.window_minutes) * 60_000;
        let within = moves.values().filter(|&&t| from <= t && t <= at_ms).count();
        within >= self.bookmakers as usize
    }
}

/// The group of an odds quote — the same outcome of the same market of the same event at
/// every bookmaker — and the quote's bookmaker. `None` for other records.
pub fn group_of(e: &Envelope) -> Option<(String, String)> {
    match &e.payload {
        Payload::OddsQuote(q) => Some((
            format!(
                "{}#odds_quote#{}/{}/{}/{}",
                e.source, q.sport, q.event_id, q.market, q.outcome
            ),
            q.bookmaker.clone(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn a_quorum_counts_bookmakers_that_moved_within_the_window() {
        let q = Quorum {
            bookmakers: 2,
            window_minutes: 30,
        };
        let moves = |list: &[(&str, i64)]| -> BTreeMap<String, i64> {
            list.iter().map(|(b, m)| (b.to_string(), m * MIN)).collect()
        };
        assert!(
            !q.reached(&moves(&[("dk", 100)]), 100 * MIN),
            "one is not a market move"
        );
        assert!(q.reached(&moves(&[("dk", 100), ("fd", 110)]), 110 * MIN));
        // 40 minutes apart: not within 30.
        assert!(!q.reached(&moves(&[("dk", 70), ("fd", 110)]), 110 * MIN));
    }

    #[test]
    fn the_group_is_the_outcome_at_every_bookmaker() {
        use pricewire_pipeline::fixtures::odds_quote;
        let quote =
            |bookmaker: &str| odds_quote("e1", bookmaker, "h2h", "2.0", None, chrono::Utc::now());
        let (a, dk) = group_of(&quote("draftkings")).unwrap();
        let (b, fd) = group_of(&quote("fanduel")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, "odds#odds_quote#basketball_nba/e1/h2h/Home");
        assert_ne!(dk, fd);
    }
}
