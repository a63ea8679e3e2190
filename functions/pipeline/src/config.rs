//! Function configuration from the environment. A bad value fails at start, naming the
//! variable; nothing secret is read from here (the token comes from SSM).

use crate::rules::{RuleError, RuleSet};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {var}: {problem}")]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
}

/// Reads variables through a lookup function, so tests need not touch the process env.
pub struct Vars<F: Fn(&str) -> Option<String>>(pub F);

impl Vars<fn(&str) -> Option<String>> {
    pub fn process() -> Self {
        Vars(|name| std::env::var(name).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    pub fn required(&self, var: &str) -> Result<String, ConfigError> {
        match (self.0)(var) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(ConfigError {
                var: var.into(),
                problem: "required but not set".into(),
            }),
        }
    }

    pub fn parsed<T: FromStr>(
        &self,
        var: &str,
        default: T,
        valid: impl Fn(&T) -> bool,
        expect: &str,
    ) -> Result<T, ConfigError> {
        match (self.0)(var) {
            None => Ok(default),
            Some(v) if v.trim().is_empty() => Ok(default),
            Some(v) => match v.trim().parse::<T>() {
                Ok(parsed) if valid(&parsed) => Ok(parsed),
                _ => Err(ConfigError {
                    var: var.into(),
                    problem: format!("{v:?} is not {expect}"),
                }),
            },
        }
    }

    pub fn optional(&self, var: &str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }
}

pub const STREAM_NAME: &str = "PRICEWIRE_STREAM_NAME";
pub const ARCHIVE_BUCKET: &str = "PRICEWIRE_ARCHIVE_BUCKET";
pub const TOKEN_PARAMETER: &str = "PRICEWIRE_TOKEN_PARAMETER";
pub const TRAVELPAYOUTS_BASE_URL: &str = "PRICEWIRE_TRAVELPAYOUTS_BASE_URL";
pub const HTTP_TIMEOUT_MS: &str = "PRICEWIRE_HTTP_TIMEOUT_MS";
pub const HTTP_MAX_ATTEMPTS: &str = "PRICEWIRE_HTTP_MAX_ATTEMPTS";
pub const PUT_MAX_ATTEMPTS: &str = "PRICEWIRE_PUT_MAX_ATTEMPTS";
pub const PRICES_TABLE: &str = "PRICEWIRE_PRICES_TABLE";
pub const HISTORY_TTL_DAYS: &str = "PRICEWIRE_HISTORY_TTL_DAYS";
pub const WRITE_MAX_ATTEMPTS: &str = "PRICEWIRE_WRITE_MAX_ATTEMPTS";
pub const TOPIC_ARN: &str = "PRICEWIRE_TOPIC_ARN";
pub const STATE_TABLE: &str = "PRICEWIRE_STATE_TABLE";
pub const ALERT_RULES: &str = "PRICEWIRE_ALERT_RULES";
pub const DEDUP_WINDOW_SECONDS: &str = "PRICEWIRE_DEDUP_WINDOW_SECONDS";
pub const RATE_LIMITS: &str = "PRICEWIRE_RATE_LIMITS";
pub const HOST_CONCURRENCY: &str = "PRICEWIRE_HOST_CONCURRENCY";
pub const BREAKER_THRESHOLD: &str = "PRICEWIRE_BREAKER_THRESHOLD";
pub const BREAKER_OPEN_SECONDS: &str = "PRICEWIRE_BREAKER_OPEN_SECONDS";
pub const DEAD_LETTER_QUEUE_URL: &str = "PRICEWIRE_DEAD_LETTER_QUEUE_URL";
pub const ALERT_MAX_AGE_SECONDS: &str = "PRICEWIRE_ALERT_MAX_AGE_SECONDS";

pub const DEFAULT_TRAVELPAYOUTS_BASE_URL: &str = "https://api.travelpayouts.com";

#[derive(Debug, Clone)]
pub struct CollectorConfig {
    pub stream_name: String,
    pub archive_bucket: String,
    /// Name of the SSM SecureString holding the upstream token.
    pub token_parameter: String,
    pub travelpayouts_base_url: String,
    pub http_timeout: Duration,
    pub http_max_attempts: u32,
    pub put_max_attempts: u32,
    /// Breaker, learned rate limits and pagination cursors.
    pub state_table: String,
    /// Requests per minute by API path, over the documented defaults
    /// (`PRICEWIRE_RATE_LIMITS="/aviasales/v3/prices_for_dates=60,/v2/prices/month-matrix=120"`).
    pub rate_limits: std::collections::BTreeMap<String, u32>,
    /// Requests in flight to one host at once.
    pub host_concurrency: usize,
    pub breaker_threshold: u32,
    pub breaker_open: Duration,
}

/// `path=rpm,path=rpm`.
fn parse_rate_limits(v: &str) -> Result<std::collections::BTreeMap<String, u32>, String> {
    let mut out = std::collections::BTreeMap::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (path, rpm) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not path=requests-per-minute"))?;
        let path = path.trim();
        if !path.starts_with('/') {
            return Err(format!("{path:?} is not an API path (starting with /)"));
        }
        let rpm = rpm
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| format!("{part:?}: requests per minute must be 1 to 100000"))?;
        out.insert(path.to_string(), rpm);
    }
    Ok(out)
}

impl CollectorConfig {
    pub fn from_vars<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<Self, ConfigError> {
        let base = v
            .optional(TRAVELPAYOUTS_BASE_URL)
            .unwrap_or_else(|| DEFAULT_TRAVELPAYOUTS_BASE_URL.into());
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ConfigError {
                var: TRAVELPAYOUTS_BASE_URL.into(),
                problem: format!("{base:?} is not an http(s) URL"),
            });
        }
        Ok(CollectorConfig {
            stream_name: v.required(STREAM_NAME)?,
            archive_bucket: v.required(ARCHIVE_BUCKET)?,
            token_parameter: v.required(TOKEN_PARAMETER)?,
            travelpayouts_base_url: base.trim_end_matches('/').to_string(),
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
            state_table: v.required(STATE_TABLE)?,
            rate_limits: parse_rate_limits(&v.optional(RATE_LIMITS).unwrap_or_default()).map_err(
                |problem| ConfigError {
                    var: RATE_LIMITS.into(),
                    problem,
                },
            )?,
            host_concurrency: v.parsed(
                HOST_CONCURRENCY,
                2usize,
                |n| (1..=16).contains(n),
                "a number from 1 to 16",
            )?,
            breaker_threshold: v.parsed(
                BREAKER_THRESHOLD,
                10u32,
                |n| (1..=1000).contains(n),
                "a number from 1 to 1000",
            )?,
            breaker_open: Duration::from_secs(v.parsed(
                BREAKER_OPEN_SECONDS,
                300u64,
                |n| (1..=86_400).contains(n),
                "seconds from 1 to 86400",
            )?),
        })
    }
}

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
}

impl ConsumerConfig {
    pub fn from_vars<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<Self, ConfigError> {
        Ok(ConsumerConfig {
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
        })
    }
}

#[derive(Debug)]
pub struct AlerterConfig {
    pub topic_arn: String,
    pub state_table: String,
    pub rules: RuleSet,
    pub dedup_window: Duration,
    /// Records fetched longer ago than this raise no alert (a replay of old data must not
    /// page anyone); at most the de-duplication window, so nothing can alert twice.
    pub max_age: Duration,
    pub write_max_attempts: u32,
}

impl AlerterConfig {
    pub fn from_vars<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<Self, ConfigError> {
        let rules_json = v.optional(ALERT_RULES).unwrap_or_else(|| "[]".into());
        let rules = RuleSet::from_json(&rules_json).map_err(|e: RuleError| ConfigError {
            var: ALERT_RULES.into(),
            problem: e.to_string(),
        })?;
        let dedup_window: u64 = v.parsed(
            DEDUP_WINDOW_SECONDS,
            86_400u64,
            |n| (60..=31_536_000).contains(n),
            "seconds from 60 to 31536000",
        )?;
        let max_age: u64 = v.parsed(
            ALERT_MAX_AGE_SECONDS,
            dedup_window,
            |n| *n >= 60,
            "at least 60 seconds",
        )?;
        if max_age > dedup_window {
            return Err(ConfigError {
                var: ALERT_MAX_AGE_SECONDS.into(),
                problem: format!(
                    "{max_age} s is longer than {DEDUP_WINDOW_SECONDS} ({dedup_window} s): an old record could alert twice"
                ),
            });
        }
        Ok(AlerterConfig {
            topic_arn: v.required(TOPIC_ARN)?,
            state_table: v.required(STATE_TABLE)?,
            rules,
            dedup_window: Duration::from_secs(dedup_window),
            max_age: Duration::from_secs(max_age),
            write_max_attempts: v.parsed(
                WRITE_MAX_ATTEMPTS,
                5u32,
                |n| (1..=20).contains(n),
                "a number from 1 to 20",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> Vars<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Vars(move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn collector_config_defaults_and_named_errors() {
        let ok = [
            (STREAM_NAME, "s"),
            (ARCHIVE_BUCKET, "b"),
            (TOKEN_PARAMETER, "/p"),
            (STATE_TABLE, "state"),
        ];
        let c = CollectorConfig::from_vars(&vars(&ok)).unwrap();
        assert_eq!(c.travelpayouts_base_url, DEFAULT_TRAVELPAYOUTS_BASE_URL);
        assert_eq!(c.http_timeout, Duration::from_secs(10));
        assert!(c.rate_limits.is_empty(), "documented limits apply");
        assert_eq!((c.host_concurrency, c.breaker_threshold), (2, 10));
        let mut limits = ok.to_vec();
        limits.push((
            RATE_LIMITS,
            "/aviasales/v3/prices_for_dates=60, /v2/prices/month-matrix=120",
        ));
        let c = CollectorConfig::from_vars(&vars(&limits)).unwrap();
        assert_eq!(c.rate_limits["/aviasales/v3/prices_for_dates"], 60);
        for bad_limits in ["/v3=fast", "v3=60", "/v3"] {
            let mut bad = ok.to_vec();
            bad.push((RATE_LIMITS, bad_limits));
            let err = CollectorConfig::from_vars(&vars(&bad)).unwrap_err();
            assert_eq!(err.var, RATE_LIMITS, "{bad_limits}: {err}");
        }
        let err = CollectorConfig::from_vars(&vars(&[ok[0], ok[1], ok[3]])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration: PRICEWIRE_TOKEN_PARAMETER: required but not set"
        );
        let mut bad = ok.to_vec();
        bad.push((HTTP_TIMEOUT_MS, "fast"));
        assert_eq!(
            CollectorConfig::from_vars(&vars(&bad)).unwrap_err().var,
            HTTP_TIMEOUT_MS
        );
        let mut bad = ok.to_vec();
        bad.push((TRAVELPAYOUTS_BASE_URL, "ftp://x"));
        assert_eq!(
            CollectorConfig::from_vars(&vars(&bad)).unwrap_err().var,
            TRAVELPAYOUTS_BASE_URL
        );
    }

    #[test]
    fn alerter_config_fails_on_a_bad_rule_naming_it() {
        let err = AlerterConfig::from_vars(&vars(&[(TOPIC_ARN, "t"), (STATE_TABLE, "s"),
            (ALERT_RULES, r#"[{"name":"broken","source":"travelpayouts","kind":"flight_price","when":"price <"}]"#)])).unwrap_err();
        assert_eq!(err.var, ALERT_RULES);
        assert!(err.problem.contains("alert rule \"broken\""), "{err}");
    }

    #[test]
    fn alert_max_age_defaults_to_the_window_and_may_not_exceed_it() {
        let base = [
            (TOPIC_ARN, "t"),
            (STATE_TABLE, "s"),
            (DEDUP_WINDOW_SECONDS, "3600"),
        ];
        let c = AlerterConfig::from_vars(&vars(&base)).unwrap();
        assert_eq!(c.max_age, Duration::from_secs(3600));
        let mut longer = base.to_vec();
        longer.push((ALERT_MAX_AGE_SECONDS, "7200"));
        let err = AlerterConfig::from_vars(&vars(&longer)).unwrap_err();
        assert_eq!(err.var, ALERT_MAX_AGE_SECONDS, "{err}");
        let mut shorter = base.to_vec();
        shorter.push((ALERT_MAX_AGE_SECONDS, "900"));
        assert_eq!(
            AlerterConfig::from_vars(&vars(&shorter)).unwrap().max_age,
            Duration::from_secs(900)
        );
    }
}
