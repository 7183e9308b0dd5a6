//! Request metrics both APIs expose on `/metrics`: latency by route pattern, method and
//! status, and outcomes by problem `code` (`ok` for successes).

use std::time::Instant;

use actix_web::dev::ServiceResponse;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Set on an error response by [`super::error::ApiError`], so metrics can count codes.
#[derive(Debug, Clone, Copy)]
pub struct ProblemCode(pub &'static str);

#[derive(Clone)]
pub struct HttpMetrics {
    latency: HistogramVec,
    outcomes: IntCounterVec,
}

impl HttpMetrics {
    /// The series, registered in `registry`.
    pub fn new(registry: &Registry) -> Self {
        let latency = HistogramVec::new(
            HistogramOpts::new("tally_http_request_seconds", "Request latency")
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 15).expect("valid buckets")),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let outcomes = IntCounterVec::new(
            Opts::new("tally_http_outcomes_total", "Responses by route and problem code (ok for successes)"),
            &["route", "code"],
        )
        .expect("valid metric");
        registry.register(Box::new(latency.clone())).expect("unique metric");
        registry.register(Box::new(outcomes.clone())).expect("unique metric");
        HttpMetrics { latency, outcomes }
    }

    /// Records one finished request.
    pub fn observe<B>(&self, res: &ServiceResponse<B>, started: Instant) {
        let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
        let status = res.status();
        self.latency
            .with_label_values(&[&route, method_label(res.request().method()), status.as_str()])
            .observe(started.elapsed().as_secs_f64());
        let code = res.response().extensions().get::<ProblemCode>().map_or("ok", |c| c.0);
        self.outcomes.with_label_values(&[&route, code]).inc();
    }
}

/// A method as a metric label: the standard ones by name, anything a client made up as
/// `other`, so no request can add a series.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The Prometheus text exposition of `registry`.
pub fn render(registry: &Registry) -> String {
    use prometheus::Encoder;
    let mut out = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Middleware body for `App::wrap_fn`: times every request and counts its outcome
/// with the app's `web::Data<HttpMetrics>` (requests pass untouched without one).
pub fn observe_requests<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: actix_web::dev::Service<
        actix_web::dev::ServiceRequest,
        Response = ServiceResponse<B>,
        Error = actix_web::Error,
    >,
{
    let metrics = req.app_data::<actix_web::web::Data<HttpMetrics>>().cloned();
    let started = Instant::now();
    let call = srv.call(req);
    async move {
        let res = call.await?;
        if let Some(metrics) = metrics {
            metrics.observe(&res, started);
        }
        Ok(res)
    }
}
