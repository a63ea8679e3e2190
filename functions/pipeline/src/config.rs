//! Function configuration from the environment: the plumbing every function's config uses.
//! A bad value fails at start, naming the variable; nothing secret is read from here
//! (tokens come from SSM). Each function crate has its own `config` module on top of this.

use std::str::FromStr;

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

/// Variables more than one function reads.
pub const ARCHIVE_BUCKET: &str = "PRICEWIRE_ARCHIVE_BUCKET";
pub const STATE_TABLE: &str = "PRICEWIRE_STATE_TABLE";
pub const WRITE_MAX_ATTEMPTS: &str = "PRICEWIRE_WRITE_MAX_ATTEMPTS";
/// The statistics windows, in days: the consumer computes them, the alerter's rules read them.
pub const STAT_WINDOWS_DAYS: &str = "PRICEWIRE_STAT_WINDOWS_DAYS";
/// At most this many statistics windows (each adds four attributes to every change item).
pub const MAX_STAT_WINDOWS: usize = 4;

/// `"7,30"` → `[7, 30]`: distinct days from 1 to 365, ascending, at most `MAX_STAT_WINDOWS`;
/// unset, 7 and 30.
pub fn stat_windows<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<Vec<u32>, ConfigError> {
    let Some(text) = v.optional(STAT_WINDOWS_DAYS) else {
        return Ok(vec![7, 30]);
    };
    let mut days = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u32>() {
            Ok(d) if (1..=365).contains(&d) => days.push(d),
            _ => {
                return Err(ConfigError::new(
                    STAT_WINDOWS_DAYS,
                    format!("{part:?} is not a number of days from 1 to 365"),
                ))
            }
        }
    }
    days.sort_unstable();
    days.dedup();
    if days.len() > MAX_STAT_WINDOWS {
        return Err(ConfigError::new(
            STAT_WINDOWS_DAYS,
            format!("at most {MAX_STAT_WINDOWS} windows"),
        ));
    }
    Ok(days)
}

impl ConfigError {
    pub fn new(var: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            var: var.into(),
            problem: problem.into(),
        }
    }
}

/// Variables from a list of pairs instead of the process environment (tests, the soak).
pub fn vars_from(pairs: &[(&str, &str)]) -> Vars<impl Fn(&str) -> Option<String>> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Vars(move |k: &str| map.get(k).cloned())
}
