//! The consumer's configuration, from its environment (set by Terraform). A bad value
//! stops the function at start, naming the variable.

use pricewire_pipeline::config::{
    ConfigError, Vars, ARCHIVE_BUCKET, STATE_TABLE, WRITE_MAX_ATTEMPTS,
};

pub const PRICES_TABLE: &str = "PRICEWIRE_PRICES_TABLE";
pub const HISTORY_TTL_DAYS: &str = "PRICEWIRE_HISTORY_TTL_DAYS";
pub const DEAD_LETTER_QUEUE_URL: &str = "PRICEWIRE_DEAD_LETTER_QUEUE_URL";

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
