//! The one place that builds AWS clients.
//!
//! Endpoints come from the standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`
//! variables, so the same binary talks to AWS or to an emulator without a code change.
//!
//! DynamoDB and S3 every function uses; the other services are cargo features, so a
//! function crate depends only on the SDKs it calls (the consumer has no SNS, SSM or
//! Kinesis client, the alerter no Kinesis or SSM).

use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;

pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Configuration for an AWS emulator (moto) at `endpoint`, with fake credentials: what the
/// local twin and the integration tests use instead of the environment.
pub async fn emulator(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "emulator",
        ))
        .load()
        .await
}

fn endpoint_overridden(config: &SdkConfig, service_env: &str) -> bool {
    config.endpoint_url().is_some() || std::env::var_os(service_env).is_some()
}

#[cfg(feature = "kinesis")]
pub fn kinesis(config: &SdkConfig) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::new(config)
}

pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// S3 with path-style addressing when the endpoint is overridden: virtual-host style needs
/// DNS for `<bucket>.<host>`, which an emulator on loopback does not have.
pub fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style = endpoint_overridden(config, "AWS_ENDPOINT_URL_S3");
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[cfg(feature = "sns")]
pub fn sns(config: &SdkConfig) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(config)
}

#[cfg(feature = "ssm")]
pub fn ssm(config: &SdkConfig) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(config)
}

#[cfg(feature = "sqs")]
pub fn sqs(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}
