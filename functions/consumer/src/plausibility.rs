//! Whether a value can be real. Two tests, per kind: fixed bounds (a fare of
//! 1,000,000,000,000,000 RUB is refused — quarantined with its reason, never stored), and an
//! outlier test against the entity's own typical value (a fare 16× the 30-day typical one
//! is stored, flagged, and kept out of statistics and alerts: it may be a real error fare,
//! and the archive keeps it either way). Pure; configured from `PRICEWIRE_PLAUSIBILITY`.

use pricewire_pipeline::envelope::{Envelope, KINDS};
use pricewire_pipeline::table::Stats;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Distinct plausible values an entity needs in its widest window before a value can be
/// judged an outlier against them.
pub const OUTLIER_MIN_VALUES: u32 = 3;

/// One kind's bounds (inclusive) and outlier factor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bounds {
    pub min: Option<Decimal>,
    pub max: Option<Decimal>,
    /// A value more than this many times the typical one (or less than its inverse) is an
    /// outlier. `None`: no outlier test (funding rates cross zero; odds move by design).
    pub outlier_factor: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plausibility {
    pub by_kind: BTreeMap<String, Bounds>,
}

pub enum Verdict {
    Accept,
    Refuse(String),
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_default()
}

impl Default for Plausibility {
    /// Bounds no real record of the kind crosses, in any currency the sources report.
    fn default() -> Self {
        let b = |min: &str, max: &str, factor: Option<&str>| Bounds {
            min: Some(d(min)),
            max: Some(d(max)),
            outlier_factor: factor.map(d),
        };
        Plausibility {
            by_kind: BTreeMap::from([
                ("flight_price".into(), b("1", "10000000", Some("10"))),
                ("odds_quote".into(), b("1.001", "10000", None)),
                ("candle".into(), b("0", "1000000000000", None)),
                ("funding_rate".into(), b("-1", "1", None)),
                ("open_interest".into(), b("0", "1000000000000000000", None)),
                ("price".into(), b("0", "1000000000000", Some("10"))),
            ]),
        }
    }
}

/// The configured form: per kind, any of `min`, `max` (decimal strings) and
/// `outlier_factor` (a number above 1, or `0` / `null` to switch the test off).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoundsConfig {
    #[serde(default)]
    min: Option<String>,
    #[serde(default)]
    max: Option<String>,
    #[serde(default, deserialize_with = "explicit")]
    outlier_factor: Option<Option<Decimal>>,
}

fn explicit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Decimal>>, D::Error> {
    Option::<Decimal>::deserialize(d).map(Some)
}

impl Plausibility {
    /// The defaults with a JSON object's overrides (`{"flight_price": {"max": "500000"}}`).
    /// Errors name the kind and field.
    pub fn from_json(json: &str) -> Result<Plausibility, String> {
        let mut p = Plausibility::default();
        let parsed: BTreeMap<String, BoundsConfig> = serde_json::from_str(json)
            .map_err(|e| format!("not an object of kinds to bounds: {e}"))?;
        for (kind, c) in parsed {
            if !KINDS.contains(&kind.as_str()) {
                return Err(format!(
                    "{kind}: not a record kind (one of {})",
                    KINDS.join(", ")
                ));
            }
            let b = p.by_kind.entry(kind.clone()).or_default();
            let number = |field: &str, v: &str| {
                Decimal::from_str(v).map_err(|_| format!("{kind}.{field}: {v:?} is not a decimal"))
            };
            if let Some(v) = &c.min {
                b.min = Some(number("min", v)?);
            }
            if let Some(v) = &c.max {
                b.max = Some(number("max", v)?);
            }
            if let Some(f) = c.outlier_factor {
                // 0 (or null) switches the test off.
                let f = f.filter(|f| !f.is_zero());
                if f.is_some_and(|f| f <= Decimal::ONE) {
                    return Err(format!(
                        "{kind}.outlier_factor: must be above 1 (0: no test)"
                    ));
                }
                b.outlier_factor = f;
            }
            if let (Some(min), Some(max)) = (b.min, b.max) {
                if min > max {
                    return Err(format!("{kind}: min {min} is above max {max}"));
                }
            }
        }
        Ok(p)
    }

    /// The fixed bounds of the record's kind.
    pub fn bounds(&self, e: &Envelope) -> Verdict {
        let Some(b) = self.by_kind.get(e.kind()) else {
            return Verdict::Accept;
        };
        let v = e.payload.amount();
        if let Some(max) = b.max.filter(|max| v > *max) {
            return Verdict::Refuse(format!(
                "implausible {}: {v} is above the bound {max}",
                e.kind()
            ));
        }
        if let Some(min) = b.min.filter(|min| v < *min) {
            return Verdict::Refuse(format!(
                "implausible {}: {v} is below the bound {min}",
                e.kind()
            ));
        }
        Verdict::Accept
    }

    /// Why the value is an outlier against the entity's typical value, if it is one.
    pub fn outlier(&self, e: &Envelope, stats: &Stats) -> Option<String> {
        let factor = self.by_kind.get(e.kind())?.outlier_factor?;
        let widest = stats.windows.last()?;
        if widest.values < OUTLIER_MIN_VALUES || widest.typical <= Decimal::ZERO {
            return None;
        }
        let v = e.payload.amount();
        let ratio = v / widest.typical;
        (ratio > factor || ratio * factor < Decimal::ONE).then(|| {
            format!(
                "outlier: {v} is {}× the {}-day typical value {}",
                ratio.round_dp(2).normalize(),
                widest.days,
                widest.typical
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_checked_naming_the_kind_and_field() {
        let p = Plausibility::from_json(
            r#"{"flight_price":{"max":"500000","outlier_factor":0},"price":{"min":"0.5"}}"#,
        )
        .unwrap();
        assert_eq!(p.by_kind["flight_price"].max, Some(d("500000")));
        assert_eq!(p.by_kind["flight_price"].outlier_factor, None);
        assert_eq!(p.by_kind["flight_price"].min, Some(d("1")), "kept");
        assert_eq!(p.by_kind["price"].min, Some(d("0.5")));
        for (json, says) in [
            (r#"{"flights":{}}"#, "flights: not a record kind"),
            (r#"{"candle":{"max":"lots"}}"#, "candle.max: \"lots\""),
            (r#"{"candle":{"outlier_factor":0.5}}"#, "must be above 1"),
            (
                r#"{"candle":{"min":"5","max":"1"}}"#,
                "min 5 is above max 1",
            ),
            (r#"{"candle":{"maximum":"1"}}"#, "unknown field"),
        ] {
            let e = Plausibility::from_json(json).unwrap_err();
            assert!(e.contains(says), "{json}: {e}");
        }
    }
}
