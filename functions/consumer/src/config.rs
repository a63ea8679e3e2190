//! The consumer's configuration, from its environment (set by Terraform). A bad value
//! stops the function at start, naming the variable.

use crate::plausibility::Plausibility;
use pricewire_pipeline::config::{
    ConfigError, Vars, ARCHIVE_BUCKET, STATE_TABLE, WRITE_MAX_ATTEMPTS,
};

pub const PRICES_TABLE: &str = "PRICEWIRE_PRICES_TABLE";
pub const HISTORY_TTL_DAYS: &str = "PRICEWIRE_HISTORY_TTL_DAYS";
pub const DEAD_LETTER_QUEUE_URL: &str = "PRICEWIRE_DEAD_LETTER_QUEUE_URL";
pub const PLAUSIBILITY: &str = "PRICEWIRE_PLAUSIBILITY";
pub use pricewire_pipeline::config::STAT_WINDOWS_DAYS;

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub prices_table: String,
    pub archive_bucket: String,
    /// Where poison records are reported (with their reason); unset: quarantine only.
    pub dead_letter_queue_url: Option<String>,
    /// Where the consumer checkpoints per shard for `pricewire status`; unset: no checkpoints.
    pub state_table: Option<String>,
    pub history_ttl_days: u32,
    pub write_max_attempts: u32,
    /// Statistics windows in days, ascending (default 7 and 30).
    pub stat_windows: Vec<u32>,
    pub plausibility: Plausibility,
}

impl ConsumerConfig {
    pub fn from_vars<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<Self, ConfigError> {
        let stat_windows = pricewire_pipeline::config::stat_windows(v)?;
        let plausibility = match v.optional(PLAUSIBILITY) {
            None => Plausibility::default(),
            Some(json) => {
                Plausibility::from_json(&json).map_err(|p| ConfigError::new(PLAUSIBILITY, p))?
            }
        };
        let config = ConsumerConfig {
            stat_windows,
            plausibility,
            prices_table: v.required(PRICES_TABLE)?,
            archive_bucket: v.required(ARCHIVE_BUCKET)?,
            dead_letter_queue_url: v.optional(DEAD_LETTER_QUEUE_URL),
            state_table: v.optional(STATE_TABLE),
            history_ttl_days: v.parsed(
                HISTORY_TTL_DAYS,
                90u32,
                |n| (1..=3650).contains(n),
                "days from 1 to 3650",
            )?,
            write_max_attempts: v.parsed(
                WRITE_MAX_ATTEMPTS,
                5u32,
                |n| (1..=20).contains(n),
                "a number from 1 to 20",
            )?,
        };
        let widest = config.stat_windows.last().copied().unwrap_or(0);
        if config.history_ttl_days < widest {
            return Err(ConfigError::new(
                HISTORY_TTL_DAYS,
                format!(
                    "{} days is shorter than the widest statistics window ({widest} days)",
                    config.history_ttl_days
                ),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pricewire_pipeline::config::vars_from;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![(PRICES_TABLE, "p"), ("PRICEWIRE_ARCHIVE_BUCKET", "b")]
    }

    #[test]
    fn windows_and_plausibility_are_checked_at_start_naming_the_variable() {
        let c = ConsumerConfig::from_vars(&vars_from(&base())).unwrap();
        assert_eq!(c.stat_windows, vec![7, 30]);
        let mut v = base();
        v.push((STAT_WINDOWS_DAYS, "30, 1,7"));
        assert_eq!(
            ConsumerConfig::from_vars(&vars_from(&v))
                .unwrap()
                .stat_windows,
            vec![1, 7, 30]
        );
        for (var, value, says) in [
            (
                STAT_WINDOWS_DAYS,
                "7,week",
                "\"week\" is not a number of days",
            ),
            (STAT_WINDOWS_DAYS, "400", "from 1 to 365"),
            (PLAUSIBILITY, r#"{"fares":{}}"#, "fares: not a record kind"),
            (
                HISTORY_TTL_DAYS,
                "10",
                "shorter than the widest statistics window (30 days)",
            ),
        ] {
            let mut v = base();
            v.push((var, value));
            let e = ConsumerConfig::from_vars(&vars_from(&v))
                .unwrap_err()
                .to_string();
            assert!(e.contains(var) && e.contains(says), "{var}={value}: {e}");
        }
    }
}
