//! Platform metrics in Prometheus form: HTTP traffic, provisioning, the
//! reconciler, errors talking to Docker and Postgres, open streams.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Telemetry {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub provisioning_duration: HistogramVec,
    pub reconcile_retries: IntCounter,
    pub reconcile_in_flight: IntGauge,
    pub reconcile_due: IntGauge,
    pub docker_errors: IntCounter,
    pub postgres_errors: IntCounter,
    pub open_log_streams: IntGauge,
    pub open_event_streams: IntGauge,
    pub tenants: IntGaugeVec,
    pub resource_alerts: IntCounter,
    pub sampler_pass: prometheus::Histogram,
    pub sampler_tenants: IntGauge,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Names are fixed and distinct, so registration cannot collide.
    let _ = registry.register(Box::new(metric.clone()));
    metric
}

impl Telemetry {
    pub fn new() -> Self {
        let r = Registry::new_custom(Some("fresco_platform".into()), None).unwrap_or_default();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric")
        };
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        Self {
            http_requests: register(
                &r,
                counter_vec(
                    "http_requests_total",
                    "HTTP requests by route and status",
                    &["method", "route", "status"],
                ),
            ),
            http_duration: register(
                &r,
                histogram(
                    "http_request_duration_seconds",
                    "HTTP request latency by route and status",
                    &["method", "route", "status"],
                    vec![
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ],
                ),
            ),
            provisioning_duration: register(
                &r,
                histogram(
                    "provisioning_duration_seconds",
                    "Time from an action's request to its outcome",
                    &["action", "outcome"],
                    vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0],
                ),
            ),
            reconcile_retries: register(
                &r,
                counter(
                    "reconcile_retries_total",
                    "Failed reconcile steps that will be retried",
                ),
            ),
            reconcile_in_flight: register(
                &r,
                gauge(
                    "reconcile_in_flight",
                    "Tenants with a reconcile pass under way",
                ),
            ),
            reconcile_due: register(
                &r,
                gauge(
                    "reconcile_queue_depth",
                    "Tenants waiting for reconcile work",
                ),
            ),
            docker_errors: register(
                &r,
                counter("docker_errors_total", "Failed calls to the Docker engine"),
            ),
            postgres_errors: register(
                &r,
                counter(
                    "postgres_errors_total",
                    "Failed Postgres statements in reconcile passes",
                ),
            ),
            open_log_streams: register(
                &r,
                gauge(
                    "open_log_streams",
                    "Followed container log streams open now",
                ),
            ),
            open_event_streams: register(
                &r,
                gauge("open_event_streams", "Status and metrics streams open now"),
            ),
            tenants: register(
                &r,
                IntGaugeVec::new(Opts::new("tenants", "Tenants by status"), &["status"])
                    .expect("valid metric"),
            ),
            resource_alerts: register(
                &r,
                counter(
                    "resource_alerts_total",
                    "Sustained high resource use alerts raised",
                ),
            ),
            sampler_pass: register(
                &r,
                prometheus::Histogram::with_opts(
                    HistogramOpts::new(
                        "metrics_sampler_pass_seconds",
                        "Duration of one metrics sampler pass",
                    )
                    .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                )
                .expect("valid metric"),
            ),
            sampler_tenants: register(
                &r,
                gauge(
                    "metrics_sampler_tenants",
                    "Tenants sampled in the last pass",
                ),
            ),
            registry: r,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts itself in a gauge while alive: an open stream, released on drop
/// (when the client goes away and the stream is dropped).
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    pub fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
