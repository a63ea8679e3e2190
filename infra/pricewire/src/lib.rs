//! The pricewire operator CLI as a library: the upstream simulator, the local twin (Lambda
//! Runtime API host, scheduler clock, event source mapping semantics), and its report.

pub mod demo;
pub mod report;
pub mod runtime_api;
pub mod simulator;
pub mod twin;

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// SDK configuration for the emulator: explicit endpoint, fake credentials.
pub async fn emulator_sdk(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "pricewire-twin",
        ))
        .load()
        .await
}

/// S3 with path-style addressing (an emulator on loopback has no bucket DNS names).
pub fn emulator_s3(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}
