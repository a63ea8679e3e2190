//! JSON logs for CloudWatch (one object per line), level from `RUST_LOG`.

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(false)
        .flatten_event(true)
        .with_ansi(false)
        .try_init();
}
