//! Prometheus metrics: counters and latency histograms kept per server and
//! rendered at `/metrics` in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use time::OffsetDateTime;

use crate::store::{ByteStream, ObjectKey, ObjectMeta, ObjectStore, StoreError};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The metrics of one server.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, Labels), u64>>,
    histograms: Mutex<BTreeMap<(&'static str, Labels), Histogram>>,
}

/// What each metric counts, for `# HELP`.
const HELP: &[(&str, &str, &str)] = &[
    (
        "callproof_webhooks_total",
        "counter",
        "Provider webhooks answered, by route and HTTP status.",
    ),
    (
        "callproof_outcomes_total",
        "counter",
        "Confirmations that reached an outcome, by outcome.",
    ),
    (
        "callproof_jobs_total",
        "counter",
        "Jobs by kind (recording, callback) and what happened: accepted, duplicate, stored, delivered, failed, parked.",
    ),
    (
        "callproof_jobs",
        "gauge",
        "Jobs in the store at the last sweep, by kind and state: queued or parked.",
    ),
    (
        "callproof_recordings_refused_total",
        "counter",
        "Recording callbacks refused and never fetched, by reason: account (another AccountSid), host (not on CALLPROOF_MEDIA_HOSTS), count (over CALLPROOF_MAX_RECORDINGS_PER_CALL).",
    ),
    (
        "callproof_recording_download_retries_total",
        "counter",
        "Recording downloads retried after a 404, 429, 5xx or network error.",
    ),
    (
        "callproof_inbound_calls_total",
        "counter",
        "Calls answered on the inbound number (POST /voice/incoming).",
    ),
    (
        "callproof_identity_checks_total",
        "counter",
        "Identity checks decided on the inbound number, by method (pin, otp, kba) and result (pass, fail); a provider retry of one attempt counts once.",
    ),
    (
        "callproof_identity_repeat_caller_failures_total",
        "counter",
        "Failed identity checks by a caller ID that has failed the checks of more than one request in the signal window (see GET /v1/identity/signals).",
    ),
    (
        "callproof_inbound_unmatched_recordings_total",
        "counter",
        "Recordings of inbound calls that reached no request (no check passed or failed on every try); logged and not kept.",
    ),
    (
        "callproof_provider_api_total",
        "counter",
        "Requests to the provider's REST API, by action (pause, resume) and result: paused, resumed, refused (3xx or 4xx: not changed), unclear (timeout, network, 5xx, an unreadable answer: maybe changed), invalid (a SID of the wrong shape: not sent).",
    ),
    (
        "callproof_store_seconds",
        "histogram",
        "Time of each store operation, by operation and result.",
    ),
];

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// The entry of `name` with labels `pairs`, made when missing. An existing
/// entry is found without building its key: no allocation per observation.
fn entry<'m, V: Default>(
    map: &'m mut BTreeMap<(&'static str, Labels), V>,
    name: &'static str,
    pairs: &[(&'static str, &str)],
) -> Option<&'m mut V> {
    let same = |l: &Labels| {
        l.len() == pairs.len()
            && l.iter()
                .zip(pairs)
                .all(|((lk, lv), (k, v))| lk == k && lv == v)
    };
    // An empty Vec allocates nothing: the range starts at `name`'s first entry.
    let from = (name, Vec::new())..;
    let known = map
        .range(from.clone())
        .take_while(|((n, _), _)| *n == name)
        .any(|((_, l), _)| same(l));
    if !known {
        map.insert((name, labels(pairs)), V::default());
    }
    map.range_mut(from)
        .take_while(|((n, _), _)| *n == name)
        .find(|((_, l), _)| same(l))
        .map(|(_, v)| v)
}

fn render_labels(l: &Labels, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

impl Metrics {
    /// Changes the counter or gauge `name` with labels `pairs` by `change`.
    fn update(
        &self,
        name: &'static str,
        pairs: &[(&'static str, &str)],
        change: impl FnOnce(&mut u64),
    ) {
        let mut c = self.counters.lock().ok();
        if let Some(v) = c.as_mut().and_then(|c| entry(c, name, pairs)) {
            change(v);
        }
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, pairs: &[(&'static str, &str)]) {
        self.update(name, pairs, |c| *c += 1);
    }

    /// Sets a gauge (kept beside the counters; its `# TYPE` says gauge).
    pub fn set(&self, name: &'static str, pairs: &[(&'static str, &str)], value: u64) {
        self.update(name, pairs, |c| *c = value);
    }

    /// Records one observation of a histogram, in seconds.
    pub fn observe(&self, name: &'static str, pairs: &[(&'static str, &str)], secs: f64) {
        let mut h = self.histograms.lock().ok();
        if let Some(hist) = h.as_mut().and_then(|h| entry(h, name, pairs)) {
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    hist.counts[i] += 1;
                }
            }
            hist.sum += secs;
            hist.count += 1;
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        let histograms = self.histograms.lock();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, l), v) in counters.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{n}{} {v}", render_labels(l, None));
            }
            if let Ok(h) = &histograms {
                for ((n, l), hist) in h.iter().filter(|((n, _), _)| n == name) {
                    for (i, bound) in BUCKETS.iter().enumerate() {
                        let _ = writeln!(
                            out,
                            "{n}_bucket{} {}",
                            render_labels(l, Some(("le", bound.to_string()))),
                            hist.counts[i]
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{n}_bucket{} {}",
                        render_labels(l, Some(("le", "+Inf".into()))),
                        hist.count
                    );
                    let _ = writeln!(out, "{n}_sum{} {}", render_labels(l, None), hist.sum);
                    let _ = writeln!(out, "{n}_count{} {}", render_labels(l, None), hist.count);
                }
            }
        }
        out
    }
}

/// An [`ObjectStore`] that times every operation of the store it wraps.
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, metrics: Arc<Metrics>) -> Self {
        MeteredStore { inner, metrics }
    }

    fn done<T>(
        &self,
        op: &'static str,
        key: &dyn std::fmt::Display,
        started: Instant,
        r: &Result<T, StoreError>,
    ) {
        let result = match r {
            Ok(_) => "ok",
            Err(StoreError::AlreadyExists(_)) => "exists",
            Err(_) => "error",
        };
        tracing::trace!(target: "callproof::store", op, %key, result, "store operation");
        self.metrics.observe(
            "callproof_store_seconds",
            &[("op", op), ("result", result)],
            started.elapsed().as_secs_f64(),
        );
    }
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn create(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.create(key, bytes).await;
        self.done("create", key, t, &r);
        r
    }

    async fn create_retained(
        &self,
        key: &ObjectKey,
        bytes: Bytes,
        until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.create_retained(key, bytes, until).await;
        self.done("create", key, t, &r);
        r
    }

    async fn create_file(&self, key: &ObjectKey, path: &Path) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.create_file(key, path).await;
        self.done("create_file", key, t, &r);
        r
    }

    async fn create_file_retained(
        &self,
        key: &ObjectKey,
        path: &Path,
        until: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.create_file_retained(key, path, until).await;
        self.done("create_file", key, t, &r);
        r
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<Bytes>, StoreError> {
        let t = Instant::now();
        let r = self.inner.get(key).await;
        self.done("get", key, t, &r);
        r
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, StoreError> {
        let t = Instant::now();
        let r = self.inner.head(key).await;
        self.done("head", key, t, &r);
        r
    }

    async fn read_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<Option<ByteStream>, StoreError> {
        let t = Instant::now();
        let r = self.inner.read_range(key, range).await;
        self.done("read_range", key, t, &r);
        r
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectKey>, StoreError> {
        let t = Instant::now();
        let r = self.inner.list(prefix).await;
        self.done("list", &prefix, t, &r);
        r
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.delete(key).await;
        self.done("delete", key, t, &r);
        r
    }

    async fn purge(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.purge(key).await;
        self.done("purge", key, t, &r);
        r
    }

    async fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectKey>, StoreError> {
        let t = Instant::now();
        let r = self.inner.list_versions(prefix).await;
        self.done("list_versions", &prefix, t, &r);
        r
    }

    async fn get_newest_version(&self, key: &ObjectKey) -> Result<Option<Bytes>, StoreError> {
        let t = Instant::now();
        let r = self.inner.get_newest_version(key).await;
        self.done("get_newest_version", key, t, &r);
        r
    }

    async fn set_legal_hold(&self, key: &ObjectKey, on: bool) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.set_legal_hold(key, on).await;
        self.done("set_legal_hold", key, t, &r);
        r
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_exposition_format() {
        let m = Metrics::default();
        m.inc("callproof_outcomes_total", &[("outcome", "confirmed")]);
        m.inc("callproof_outcomes_total", &[("outcome", "confirmed")]);
        m.observe(
            "callproof_store_seconds",
            &[("op", "get"), ("result", "ok")],
            0.003,
        );
        let text = m.render();
        assert!(
            text.contains("# TYPE callproof_outcomes_total counter"),
            "{text}"
        );
        assert!(
            text.contains("callproof_outcomes_total{outcome=\"confirmed\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "callproof_store_seconds_bucket{op=\"get\",result=\"ok\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "callproof_store_seconds_bucket{op=\"get\",result=\"ok\",le=\"0.0025\"} 0"
            ),
            "{text}"
        );
        assert!(
            text.contains("callproof_store_seconds_count{op=\"get\",result=\"ok\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.inc("callproof_webhooks_total", &[("route", "a\"b")]);
        assert!(m.render().contains("route=\"a\\\"b\""));
    }
}
