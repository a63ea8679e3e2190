//! When a rule may speak again about the same entity: a cooldown, re-alerting only on a
//! better deal, and quiet hours. Pure: the alerter keeps the last alert per (rule, entity)
//! in the state table (`ports::ArmStore`) and asks [`Realert::decide`] before it claims.
//!
//! A fare seen at 3080, 3430 and 3450 RUB is one alert (3080); 3240 → 3080 → 3240 is two
//! (3240, then the better 3080), and the rule re-arms when the cooldown has passed.
//! Times are the changes' own (fetch time for values, observation time for series), so
//! the decision is the same whenever the alerter runs.

use chrono::NaiveTime;
use rust_decimal::Decimal;
use serde::Serialize;

/// The longest cooldown a rule may set: a year (the state item's TTL follows it).
pub const MAX_COOLDOWN_MINUTES: u32 = 525_600;
/// Default cooldown of value kinds (fares, generic prices): a day.
pub const DEFAULT_VALUE_COOLDOWN_MINUTES: u32 = 1_440;

/// Which way a deal gets better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// A lower price is a better deal (fares, shop prices).
    Lower,
    /// A higher value is (odds for a bettor, a yield).
    Higher,
    /// No value is better than another: only the cooldown re-arms the rule.
    None,
}

impl Better {
    pub fn parse(s: &str) -> Option<Better> {
        match s {
            "lower" => Some(Better::Lower),
            "higher" => Some(Better::Higher),
            "none" => Some(Better::None),
            _ => None,
        }
    }
}

/// Local hours (in each subscriber's time zone) during which a rule sends nothing.
/// `from > to` spans midnight (22:00-07:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub from: NaiveTime,
    pub to: NaiveTime,
}

impl QuietHours {
    /// `"22:00-07:00"`.
    pub fn parse(s: &str) -> Result<QuietHours, String> {
        let bad = || format!("quiet_hours {s:?} is not HH:MM-HH:MM (e.g. 22:00-07:00)");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| bad());
        let (from, to) = (time(a)?, time(b)?);
        if from == to {
            return Err(format!("quiet_hours {s:?} is empty (from equals to)"));
        }
        Ok(QuietHours { from, to })
    }

    pub fn contains(&self, local: NaiveTime) -> bool {
        if self.from < self.to {
            self.from <= local && local < self.to
        } else {
            local >= self.from || local < self.to
        }
    }
}

/// A rule's re-alert policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Realert {
    /// Minutes after an alert before the rule may speak about the entity again whatever
    /// the value; 0: every matching change alerts (no state kept).
    pub cooldown_minutes: u32,
    pub better: Better,
    /// How much better than the last alerted value (percent of it) a deal must be.
    pub step_percent: Decimal,
    pub quiet_hours: Option<QuietHours>,
}

impl Realert {
    /// The default of a record kind: value kinds (fares, prices) re-alert on a lower price or
    /// after a day; series and odds alert on every matching change (each is its own event).
    pub fn default_for(kind: &str) -> Realert {
        let value = matches!(kind, "flight_price" | "price");
        Realert {
            cooldown_minutes: if value {
                DEFAULT_VALUE_COOLDOWN_MINUTES
            } else {
                0
            },
            better: if value { Better::Lower } else { Better::None },
            step_percent: Decimal::ZERO,
            quiet_hours: None,
        }
    }

    /// Whether the rule keeps a last alert per entity (it does when it has a cooldown).
    pub fn keeps_state(&self) -> bool {
        self.cooldown_minutes > 0
    }

    fn cooldown_ms(&self) -> i64 {
        i64::from(self.cooldown_minutes) * 60_000
    }

    /// How long the last alert matters: after the cooldown every match alerts anyway.
    pub fn state_lifetime(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.cooldown_minutes))
    }

    /// Whether a matching change of `value` at `at_ms` may alert, given the last alert.
    pub fn decide(&self, last: Option<&Armed>, value: Decimal, at_ms: i64) -> Decision {
        let Some(last) = last.filter(|_| self.keeps_state()) else {
            return Decision::Fire;
        };
        if at_ms.saturating_sub(last.at_ms) >= self.cooldown_ms() {
            return Decision::Fire;
        }
        let step = last.value.abs() * self.step_percent / Decimal::ONE_HUNDRED;
        let better = match self.better {
            Better::Lower => value < last.value && last.value - value >= step,
            Better::Higher => value > last.value && value - last.value >= step,
            Better::None => false,
        };
        if better {
            Decision::Fire
        } else {
            Decision::Hold
        }
    }
}

/// The last alert a rule sent about an entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Armed {
    pub value: Decimal,
    pub at_ms: i64,
    /// The change item it was about (a retried batch meets its own alert here).
    pub change: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Fire,
    /// Within the cooldown and not a better deal: quiet.
    Hold,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn armed(value: i64, at_ms: i64) -> Armed {
        Armed {
            value: value.into(),
            at_ms,
            change: "T#x".into(),
        }
    }

    /// Feeds matching changes (value, minute) through the policy as the alerter does:
    /// a fired alert becomes the last alert. Returns the values that alerted.
    fn run(policy: Realert, changes: &[(i64, i64)]) -> Vec<i64> {
        let mut last: Option<Armed> = None;
        let mut fired = Vec::new();
        for &(value, minute) in changes {
            if policy.decide(last.as_ref(), value.into(), minute * MIN) == Decision::Fire {
                fired.push(value);
                last = Some(armed(value, minute * MIN));
            }
        }
        fired
    }

    #[test]
    fn a_fare_alerts_again_only_on_a_better_price_or_after_the_cooldown() {
        let fares = Realert::default_for("flight_price");
        // The demo: 3080, 3430, 3450 → one SMS; 3240 → 3080 → 3240 → two.
        assert_eq!(run(fares, &[(3080, 0), (3430, 5), (3450, 10)]), vec![3080]);
        assert_eq!(
            run(fares, &[(3240, 0), (3080, 5), (3240, 10)]),
            vec![3240, 3080]
        );
        // Holding at the same price is not better; a day later the rule has re-armed.
        assert_eq!(
            run(fares, &[(3080, 0), (3080, 60), (3500, 1_440)]),
            vec![3080, 3500]
        );
    }

    #[test]
    fn a_step_asks_for_a_meaningfully_better_deal() {
        let policy = Realert {
            step_percent: Decimal::new(5, 0),
            ..Realert::default_for("price")
        };
        // 1000 → 960 is 4 %: held; → 950 is 5 %: fires; the next step is from 950.
        assert_eq!(
            run(policy, &[(1000, 0), (960, 1), (950, 2), (910, 3), (900, 4)]),
            vec![1000, 950, 900]
        );
        let higher = Realert {
            better: Better::Higher,
            ..policy
        };
        assert_eq!(run(higher, &[(200, 0), (205, 1), (210, 2)]), vec![200, 210]);
    }

    #[test]
    fn series_and_odds_alert_on_every_matching_change_by_default() {
        for kind in ["candle", "funding_rate", "open_interest", "odds_quote"] {
            let p = Realert::default_for(kind);
            assert!(!p.keeps_state(), "{kind}");
            assert_eq!(run(p, &[(5, 0), (5, 1), (6, 2)]), vec![5, 5, 6]);
        }
        let cooled = Realert {
            cooldown_minutes: 60,
            ..Realert::default_for("odds_quote")
        };
        assert_eq!(run(cooled, &[(5, 0), (4, 30), (3, 60)]), vec![5, 3]);
    }

    #[test]
    fn quiet_hours_may_span_midnight() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let night = QuietHours::parse("22:00-07:00").unwrap();
        assert!(night.contains(t(23, 30)) && night.contains(t(6, 59)));
        assert!(!night.contains(t(7, 0)) && !night.contains(t(21, 59)));
        let lunch = QuietHours::parse("12:00-13:30").unwrap();
        assert!(lunch.contains(t(12, 0)) && !lunch.contains(t(13, 30)));
        assert!(QuietHours::parse("22-7")
            .unwrap_err()
            .contains("HH:MM-HH:MM"));
        assert!(QuietHours::parse("08:00-08:00").is_err());
    }
}
