//! The pricewire operator CLI as a library: the upstream simulator, the local twin (Lambda
//! Runtime API host, scheduler clock, event source mapping semantics), its report, and the
//! upstream soak (the collector against the simulator's fault mix), the AWS fault proxy, and
//! the operator commands (status, replay, redrive, normalise, history, latest, chart), and the benchmarks (`bench`, with
//! the fast AWS stub `awsstub` and the write-call measures of `wire`).

pub mod awsstub;
pub mod bench;
pub mod chart;
pub mod demo;
pub mod faultproxy;
pub mod history;
pub mod normalise;
pub mod ops;
pub mod progress;
pub mod report;
pub mod runtime_api;
pub mod simulator;
pub mod soak;
pub mod twin;
pub mod wire;
