//! alerter Lambda: wiring only.

use alerter::config::AlerterConfig;
use alerter::{handle, Alerter};
use lambda_runtime::{service_fn, Error};
use pricewire_pipeline::config::Vars;
use pricewire_pipeline::{aws, telemetry};

// One thread: a function of 256 MB has a seventh of a vCPU, and a multi-thread runtime
// only adds worker threads to start and cross-thread wake-ups per call.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = AlerterConfig::from_vars(&Vars::process())?;
    let sdk = aws::load().await;
    let alerter = Alerter::from_config(config, &sdk);
    lambda_runtime::run(service_fn(|event| handle(&alerter, event))).await
}
