//! The collector's configuration, from its environment (set by Terraform). A bad value
//! stops the function at start, naming the variable (and, for the sources, the entry and
//! field). No secret is read from here: each source names its SSM parameter.

use crate::deadline::DEADLINE_MARGIN;
use pricewire_pipeline::config::{ConfigError, Vars, ARCHIVE_BUCKET, STATE_TABLE};
use pricewire_pipeline::sources::settings::Sources;
use std::time::Duration;

pub const STREAM_NAME: &str = "PRICEWIRE_STREAM_NAME";
/// Every source entry, as one JSON object (Terraform's `sources`, defaults applied).
pub const SOURCES: &str = "PRICEWIRE_SOURCES";
pub const HTTP_TIMEOUT_MS: &str = "PRICEWIRE_HTTP_TIMEOUT_MS";
pub const HTTP_MAX_ATTEMPTS: &str = "PRICEWIRE_HTTP_MAX_ATTEMPTS";
pub const PUT_MAX_ATTEMPTS: &str = "PRICEWIRE_PUT_MAX_ATTEMPTS";
/// The function's own timeout (Lambda does not tell a function its timeout before an
/// invocation), so a request timeout that leaves no room for requests fails at start.
pub const FUNCTION_TIMEOUT_SECONDS: &str = "PRICEWIRE_FUNCTION_TIMEOUT_SECONDS";
/// Requests an invocation must have room for, one after another, within its timeout
/// (less the deadline margin): a run that cannot make two could never retry one.
pub const MIN_REQUESTS_PER_INVOCATION: u32 = 2;
/// Lambda's longest function timeout.
const LAMBDA_MAX_TIMEOUT_SECONDS: u64 = 900;

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
        let http_timeout = Duration::from_millis(v.parsed(
            HTTP_TIMEOUT_MS,
            10_000u64,
            |n| (100..=900_000).contains(n),
            "milliseconds from 100 to 900000",
        )?);
        if v.optional(FUNCTION_TIMEOUT_SECONDS).is_some() {
            let timeout = Duration::from_secs(v.parsed(
                FUNCTION_TIMEOUT_SECONDS,
                0u64,
                |n| (1..=LAMBDA_MAX_TIMEOUT_SECONDS).contains(n),
                "seconds from 1 to 900",
            )?);
            let needed = http_timeout * MIN_REQUESTS_PER_INVOCATION + DEADLINE_MARGIN;
            if needed > timeout {
                return Err(ConfigError::new(
                    HTTP_TIMEOUT_MS,
                    format!(
                        "{} ms leaves no room for {MIN_REQUESTS_PER_INVOCATION} requests in the function's {} s timeout ({MIN_REQUESTS_PER_INVOCATION} x timeout + {} ms margin must fit): no request would ever start",
                        http_timeout.as_millis(),
                        timeout.as_secs(),
                        DEADLINE_MARGIN.as_millis()
                    ),
                ));
            }
        }
        Ok(CollectorConfig {
            stream_name: v.required(STREAM_NAME)?,
            archive_bucket: v.required(ARCHIVE_BUCKET)?,
            state_table: v.required(STATE_TABLE)?,
            sources,
            http_timeout,
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
        // A request timeout the function's timeout has no room for fails at start.
        let mut tight = OK.to_vec();
        tight.extend([(HTTP_TIMEOUT_MS, "25000"), (FUNCTION_TIMEOUT_SECONDS, "50")]);
        let err = CollectorConfig::from_vars(&vars_from(&tight)).unwrap_err();
        assert_eq!(err.var, HTTP_TIMEOUT_MS);
        assert!(
            err.to_string()
                .contains("25000 ms leaves no room for 2 requests in the function's 50 s timeout"),
            "{err}"
        );
        tight[4] = (FUNCTION_TIMEOUT_SECONDS, "52");
        assert!(CollectorConfig::from_vars(&vars_from(&tight)).is_ok());
        tight[4] = (FUNCTION_TIMEOUT_SECONDS, "0");
        assert_eq!(
            CollectorConfig::from_vars(&vars_from(&tight))
                .unwrap_err()
                .var,
            FUNCTION_TIMEOUT_SECONDS
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
