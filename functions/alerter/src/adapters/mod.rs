//! The alerter's adapters: alert claims in DynamoDB, the SNS topic, in-memory versions.

pub mod dynamodb;
pub mod memory;
pub mod sns;
