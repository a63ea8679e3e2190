//! collector Lambda: wiring only.

use collector::config::CollectorConfig;
use collector::{handle, Collector};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use pricewire_pipeline::config::Vars;
use pricewire_pipeline::{aws, telemetry};

// One thread: a function of 256 MB has a seventh of a vCPU, and a multi-thread runtime
// only adds worker threads to start and cross-thread wake-ups per call.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = CollectorConfig::from_vars(&Vars::process())?;
    let sdk = aws::load().await;
    let collector = Collector::from_config(&config, &sdk);
    for problem in collector.warm_up().await {
        tracing::error!(%problem, "a source cannot be reached as configured; its jobs fail until it is fixed");
    }
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handle(&collector, event)
    }))
    .await
}
