//! The consumer's adapters: the prices table, its dead-letter queue, in-memory versions.

pub mod dynamodb;
pub mod memory;
pub mod sqs;
