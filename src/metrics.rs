//! Every metric nrt exposes, defined once, all named `nrt_…`.
//!
//! Each server owns a `prometheus::Registry` (no process-wide global), so two components in one process
//! or one test never register the same name twice.

use prometheus::{Encoder, IntCounterVec, Opts, Registry, TextEncoder};

/// Metrics of `nrt registry`.
#[derive(Clone)]
pub struct RegistryMetrics {
    pub registry: Registry,
    /// Requests by matched route pattern (low cardinality: never the raw path), method and status.
    pub requests: IntCounterVec,
}

impl RegistryMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "nrt_registry_requests_total",
                "Schema registry HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        register_process(&registry)?;
        Ok(RegistryMetrics { registry, requests })
    }
}

/// CPU, memory and file-descriptor figures of this process (`process_*`).
fn register_process(registry: &Registry) -> Result<(), prometheus::Error> {
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(())
}

/// The Prometheus text exposition of `registry`.
pub fn encode(registry: &Registry) -> Result<String, prometheus::Error> {
    let mut buf = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buf)?;
    String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
}
