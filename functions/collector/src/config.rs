//! The collector's configuration, from its environment (set by Terraform). A bad value
//! stops the function at start, naming the variable (and, for the sources, the entry and
//! field). No secret is read from here: each source names its SSM parameter.

use pricewire_pipeline::config::{ConfigError, Vars, ARCHIVE_BUCKET, STATE_TABLE};
use pricewire_pipeline::sources::settings::Sources;
use std::time::Duration;

pub const STREAM_NAME: &str = "PRICEWIRE_STREAM_NAME";
/// Every source entry, as one JSON object (Terraform's `sources`, defaults applied).
pub const SOURCES: &str = "PRICEWIRE_SOURCES";
pub const HTTP_TIMEOUT_MS: &str = "PRICEWIRE_HTTP_TIMEOUT_MS";
pub const HTTP_MAX_ATTEMPTS: &str = "PRICEWIRE_HTTP_MAX_ATTEMPTS";
pub const PUT_MAX_ATTEMPTS: &str = "PRICEWIRE_PUT_MAX_ATTEMPTS";

#[derive(Debug, Clone)]
pub struct CollectorConfig {
    pub stream_name: String,
    pub archive_bucket: String,
    /// Breakers, learned rate limits, cursors, holds and last runs.
    pub state_table: String,
    pub sources: Sources,
    pub http_timeout: Duration,
    pub http_max_attempts: u32,
    pub put_max_attempts: u32,
}

impl CollectorConfig {
    pub fn from_vars<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<Self, ConfigError> {
        let sources = Sources::parse(&v.optional(SOURCES).unwrap_or_else(|| "{}".into()))
            .map_err(|problem| ConfigError::new(SOURCES, problem))?;
        Ok(CollectorConfig {
            stream_name: v.required(STREAM_NAME)?,
            archive_bucket: v.required(ARCHIVE_BUCKET)?,
            state_table: v.required(STATE_TABLE)?,
            sources,
            http_timeout: Duration::from_millis(v.parsed(
                HTTP_TIMEOUT_MS,
                10_000u64,
                |n| (100..=900_000).contains(n),
                "milliseconds from 100 to 900000",
            )?),
            http_max_attempts: v.parsed(
                HTTP_MAX_ATTEMPTS,
                4u32,
                |n| (1..=20).contains(n),
                "a number from 1 to 20",
            )?,
            // Ten: at 20 % of entries throttled an entry is still lost once in ten million.
            put_max_attempts: v.parsed(
                PUT_MAX_ATTEMPTS,
                10u32,
                |n| (1..=20).contains(n),
                "a number from 1 to 20",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pricewire_pipeline::config::vars_from;

    const OK: [(&str, &str); 3] = [
        (STREAM_NAME, "s"),
        (ARCHIVE_BUCKET, "b"),
        (STATE_TABLE, "state"),
    ];

    #[test]
    fn defaults_and_named_errors() {
        let c = CollectorConfig::from_vars(&vars_from(&OK)).unwrap();
        assert_eq!(c.http_timeout, Duration::from_secs(10));
        assert_eq!(c.put_max_attempts, 10);
        assert_eq!(
            c.sources.get("travelpayouts").unwrap().base_url,
            "https://api.travelpayouts.com",
            "no entries: every module with its defaults"
        );
        let err = CollectorConfig::from_vars(&vars_from(&OK[..2])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration: PRICEWIRE_STATE_TABLE: required but not set"
        );
        let mut bad = OK.to_vec();
        bad.push((HTTP_TIMEOUT_MS, "fast"));
        assert_eq!(
            CollectorConfig::from_vars(&vars_from(&bad))
                .unwrap_err()
                .var,
            HTTP_TIMEOUT_MS
        );
        let mut bad = OK.to_vec();
        bad.push((SOURCES, r#"{"odds": {"base_url": "ftp://x"}}"#));
        let err = CollectorConfig::from_vars(&vars_from(&bad)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("configuration: PRICEWIRE_SOURCES: odds.base_url: "),
            "{err}"
        );
    }
}
