//! consumer Lambda: wiring only.

use consumer::config::ConsumerConfig;
use consumer::{handle, Consumer};
use lambda_runtime::{service_fn, Error};
use pricewire_pipeline::config::Vars;
use pricewire_pipeline::{aws, telemetry};

// One thread: a function of 256 MB has a seventh of a vCPU, and a multi-thread runtime
// only adds worker threads to start and cross-thread wake-ups per call.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = ConsumerConfig::from_vars(&Vars::process())?;
    let sdk = aws::load().await;
    let consumer = Consumer::from_config(&config, &sdk);
    lambda_runtime::run(service_fn(|event| handle(&consumer, event))).await
}
