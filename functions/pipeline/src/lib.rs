//! pricewire's shared core: the record envelope, sources and their normalisation, rules,
//! messages, batching within AWS limits, configuration, and one adapter per AWS service.
//!
//! Pure modules (no I/O): `envelope`, `job`, `fields`, `sources`, `batching`, `backoff`,
//! `rules`, `message`, `gsm`, `table`, `archive`, `limits`, `config`, and the state
//! machines of `breaker` and `ratelimit` (their I/O goes through `state`'s trait).
//! I/O lives in `adapters` (one per service) behind small traits; `aws` builds the clients.

pub mod adapters;
pub mod archive;
pub mod aws;
pub mod backoff;
pub mod batching;
pub mod breaker;
pub mod config;
pub mod envelope;
pub mod fetch;
pub mod fields;
pub mod gsm;
pub mod job;
pub mod limits;
pub mod message;
pub mod metrics;
pub mod ratelimit;
pub mod rules;
pub mod sources;
pub mod state;
pub mod stream;
pub mod table;
pub mod telemetry;
