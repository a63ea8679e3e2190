//! collector Lambda: wiring only.

use collector::{handle, Collector};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use pricewire_pipeline::config::{CollectorConfig, Vars};
use pricewire_pipeline::{adapters::ssm, aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = CollectorConfig::from_vars(&Vars::process())?;
    let sdk = aws::load().await;
    let token = ssm::secure_string(&aws::ssm(&sdk), &config.token_parameter).await?;
    let collector = Collector::from_config(&config, &sdk, token)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handle(&collector, event)
    }))
    .await
}
