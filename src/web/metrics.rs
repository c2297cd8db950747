//! `GET /metrics` in the Prometheus text format: HTTP latency, queue backlog and age per
//! insurer, deliveries by state, destination states. No personal data.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{web, HttpResponse};

use super::{AppState, WebError};
use crate::domain::breaker::BreakerState;
use crate::domain::DeliveryState;
use crate::service;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// HTTP counters, shared by all workers.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    by_class: [AtomicU64; 5],
}

impl HttpMetrics {
    pub fn observe(&self, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP au_relay_http_request_duration_seconds Time to answer HTTP requests."
        );
        let _ = writeln!(
            out,
            "# TYPE au_relay_http_request_duration_seconds histogram"
        );
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "au_relay_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "au_relay_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = crate::num::f64_of(self.sum_micros.load(Ordering::Relaxed)) / 1e6;
        let _ = writeln!(out, "au_relay_http_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "au_relay_http_request_duration_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP au_relay_http_responses_total HTTP responses by status class."
        );
        let _ = writeln!(out, "# TYPE au_relay_http_responses_total counter");
        for (i, n) in self.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "au_relay_http_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                n.load(Ordering::Relaxed)
            );
        }
    }
}

/// Whether the request may read `/metrics` (`Ok(None)`), or the refusal.
fn refused(req: &actix_web::HttpRequest, state: &AppState) -> Option<HttpResponse> {
    use crate::app::MetricsAccess;
    match &state.settings.metrics {
        MetricsAccess::Open => None,
        MetricsAccess::Closed => Some(
            HttpResponse::Forbidden()
                .content_type("text/plain; charset=utf-8")
                .body("/metrics: AU_RELAY_METRICS_TOKEN setzen (der Server lauscht nicht nur lokal)\n"),
        ),
        MetricsAccess::Token(hash) => {
            let ok = super::session::bearer(req)
                .is_some_and(|given| super::session::constant_time_eq(given.as_bytes(), hash.as_bytes()));
            (!ok).then(|| {
                HttpResponse::Unauthorized()
                    .insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"))
                    .finish()
            })
        }
    }
}

pub async fn metrics(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    if let Some(refusal) = refused(&req, &state) {
        return Ok(refusal);
    }
    let m = state.db.run(service::metrics).await?;
    let mut out = String::with_capacity(4096);
    state.http_metrics.render(&mut out);
    deliveries(&mut out, &m);
    signatures(&mut out, &m);
    backlog(&mut out, &m);
    destinations(&mut out, &m);
    kim(&mut out, &m);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out))
}

/// Insurer deliveries and patient mails by state.
fn deliveries(out: &mut String, m: &service::Metrics) {
    let _ = writeln!(
        out,
        "# HELP au_relay_deliveries Insurer deliveries by state."
    );
    let _ = writeln!(out, "# TYPE au_relay_deliveries gauge");
    for (s, n) in &m.states {
        let _ = writeln!(out, "au_relay_deliveries{{state=\"{}\"}} {n}", s.code());
    }
    let _ = writeln!(
        out,
        "# HELP au_relay_mails Patient mails by state (delivered = sent to the SMTP server)."
    );
    let _ = writeln!(out, "# TYPE au_relay_mails gauge");
    for (s, n) in &m.mails {
        let _ = writeln!(out, "au_relay_mails{{state=\"{}\"}} {n}", s.code());
    }
}

/// Insurer documents by signature state.
fn signatures(out: &mut String, m: &service::Metrics) {
    let _ = writeln!(
        out,
        "# HELP au_relay_documents_by_signature Insurer documents by signature state (signed: a stored .p7s; awaiting: waiting for the practice's signature; unsigned: sent as XML)."
    );
    let _ = writeln!(out, "# TYPE au_relay_documents_by_signature gauge");
    // Waiting and all insurer documents from the deliveries by state.
    let awaiting = m
        .states
        .iter()
        .find(|(s, _)| *s == DeliveryState::AwaitingSignature)
        .map_or(0, |(_, n)| *n);
    let all = m.states.iter().map(|(_, n)| n).sum::<i64>();
    let unsigned = (all - m.signed - awaiting).max(0);
    for (s, n) in [
        ("signed", m.signed),
        ("awaiting", awaiting),
        ("unsigned", unsigned),
    ] {
        let _ = writeln!(out, "au_relay_documents_by_signature{{state=\"{s}\"}} {n}");
    }
}

/// Waiting deliveries and the age of the oldest, per insurer.
fn backlog(out: &mut String, m: &service::Metrics) {
    let _ = writeln!(
        out,
        "# HELP au_relay_backlog Deliveries waiting per insurer."
    );
    let _ = writeln!(out, "# TYPE au_relay_backlog gauge");
    let _ = writeln!(
        out,
        "# HELP au_relay_backlog_oldest_seconds Age of the oldest waiting delivery per insurer."
    );
    let _ = writeln!(out, "# TYPE au_relay_backlog_oldest_seconds gauge");
    for (ik, n, oldest) in &m.backlog {
        let age = oldest.map_or(0, |t| (m.now - t).num_seconds().max(0));
        let _ = writeln!(out, "au_relay_backlog{{ik=\"{ik}\"}} {n}");
        let _ = writeln!(out, "au_relay_backlog_oldest_seconds{{ik=\"{ik}\"}} {age}");
    }
}

/// Whether each insurer takes pushes.
fn destinations(out: &mut String, m: &service::Metrics) {
    let _ = writeln!(out, "# HELP au_relay_destination_up Whether an insurer takes pushes (breaker closed, no Störung, not paused).");
    let _ = writeln!(out, "# TYPE au_relay_destination_up gauge");
    for d in &m.destinations {
        let up = d.breaker == BreakerState::Closed && !d.outage && !d.paused;
        let _ = writeln!(
            out,
            "au_relay_destination_up{{ik=\"{}\",breaker=\"{}\",outage=\"{}\",paused=\"{}\"}} {}",
            d.ik,
            d.breaker.code(),
            d.outage,
            d.paused,
            u8::from(up)
        );
    }
}

/// Overdue KIM receipts and the mails read from KIM mailboxes.
fn kim(out: &mut String, m: &service::Metrics) {
    let _ = writeln!(out, "# HELP au_relay_kim_receipts_overdue Documents sent over KIM more than 24 hours ago without a delivery status notification (TA P5-04 AK5).");
    let _ = writeln!(out, "# TYPE au_relay_kim_receipts_overdue gauge");
    let _ = writeln!(out, "au_relay_kim_receipts_overdue {}", m.receipts_overdue);
    let _ = writeln!(out, "# HELP au_relay_kim_inbox_mails Mails read from KIM mailboxes by kind and whether they matched a document.");
    let _ = writeln!(out, "# TYPE au_relay_kim_inbox_mails gauge");
    for (kind, matched, n) in &m.inbox {
        let _ = writeln!(
            out,
            "au_relay_kim_inbox_mails{{kind=\"{kind}\",matched=\"{matched}\"}} {n}"
        );
    }
}
