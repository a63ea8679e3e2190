//! The collector's adapters: HTTP to upstreams, Kinesis, the state table in DynamoDB,
//! SSM secrets, and in-memory versions of each port.

pub mod dynamodb;
pub mod http;
pub mod kinesis;
pub mod memory;
pub mod ssm;
