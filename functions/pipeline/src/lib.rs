//! pricewire's shared core: the record envelope, sources and their normalisation, batching
//! within AWS limits, the prices table's item model, metrics, configuration plumbing, and
//! the adapters every function shares (S3 archive, checkpoints).
//!
//! Pure modules (no I/O): `envelope`, `job`, `fields`, `sources`, `batching`, `backoff`,
//! `table`, `archive`, `limits`, `config`, `stream`, `metrics`. I/O lives in `adapters`
//! behind small traits; `aws` is the one place that builds AWS clients. What only one
//! function does lives in that function's crate: the collector's walk, HTTP, limiter and
//! breaker; the consumer's price store; the alerter's rules (CEL), messages and SNS.

pub mod adapters;
pub mod archive;
pub mod aws;
pub mod backoff;
pub mod batching;
pub mod checkpoint;
pub mod config;
pub mod envelope;
pub mod fields;
pub mod fixtures;
pub mod job;
pub mod limits;
pub mod metrics;
pub mod sources;
pub mod stream;
pub mod table;
pub mod telemetry;
