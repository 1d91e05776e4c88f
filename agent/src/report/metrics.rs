//! `/metrics` in the Prometheus text format, rendered from one snapshot per scrape.

use crate::health::Snapshot;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

type Labels = Vec<(&'static str, String)>;

/// What [`render`] writes: the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// notAfter (unix seconds) of each certificate the `certificate` checks read, by path. The
/// checks own the files; the snapshot does not carry certificate facts, so the checks
/// record them here and every scrape reads them.
static CERT_EXPIRY: Mutex<BTreeMap<String, i64>> = Mutex::new(BTreeMap::new());

/// Records (or, with None, forgets) the expiry of the certificate at `path`.
pub fn record_certificate(path: &Path, not_after: Option<i64>) {
    let mut m = CERT_EXPIRY.lock().unwrap_or_else(|e| e.into_inner());
    let k = path.display().to_string();
    match not_after {
        Some(t) => {
            m.insert(k, t);
        }
        None => {
            m.remove(&k);
        }
    }
}

pub fn render(s: &Snapshot) -> String {
    let mut r = Registry::with_prefix("lvs_realserver");

    let vip = Family::<Labels, Gauge>::default();
    for v in &s.vips {
        vip.get_or_create(&vec![("vip", v.address.clone())])
            .set(v.present as i64);
    }
    r.register(
        "vip_present",
        "1 when the VIP is on its device and usable",
        vip,
    );

    let arp = Gauge::<i64>::default();
    arp.set(s.arp_suppressed as i64);
    r.register(
        "arp_suppressed",
        "1 when ARP suppression for the VIPs is intact",
        arp,
    );

    let up = Family::<Labels, Gauge>::default();
    let lat = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for c in &s.checks {
        let l = vec![("check", c.name.clone()), ("kind", c.kind.clone())];
        up.get_or_create(&l).set((c.up == Some(true)) as i64);
        lat.get_or_create(&l).set(c.latency_ms / 1000.0);
    }
    r.register(
        "check_up",
        "Debounced state of each check (dataplane included)",
        up,
    );
    r.register(
        "check_latency_seconds",
        "Duration of each check's last run",
        lat,
    );

    let w = Gauge::<i64>::default();
    w.set(s.weight as i64);
    r.register(
        "advertised_weight",
        "Weight reported to directors (0 unless up)",
        w,
    );

    let up_state = Gauge::<i64>::default();
    up_state.set(s.http_ok() as i64);
    r.register("up", "1 when /health answers 200", up_state);

    let admin = Gauge::<i64>::default();
    admin.set(s.admin.admin.code());
    r.register("admin_state", "0 ready, 1 drain, 2 maint", admin);

    let admin_since = Gauge::<i64>::default();
    admin_since.set(s.admin.since as i64);
    r.register(
        "admin_state_change_timestamp_seconds",
        "When the admin state last changed (drain, maint, resume), unix seconds; 0 never",
        admin_since,
    );

    let certs = Family::<Labels, Gauge>::default();
    for (path, t) in CERT_EXPIRY.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        certs.get_or_create(&vec![("path", path.clone())]).set(*t);
    }
    r.register(
        "certificate_expiry_timestamp_seconds",
        "notAfter of each certificate a `certificate` check reads, unix seconds",
        certs,
    );

    let sessions = Gauge::<i64>::default();
    sessions.set(s.load.sessions as i64);
    r.register(
        "established_sessions",
        "Established TCP sessions on VIP service ports",
        sessions,
    );

    let repairs = Counter::<u64>::default();
    repairs.inc_by(s.repairs_total);
    r.register(
        "repairs",
        "Data plane repairs applied by the agent",
        repairs,
    );

    let reload = Gauge::<i64>::default();
    reload.set(s.reload_error.is_none() as i64);
    r.register(
        "config_reload_ok",
        "0 when the last SIGHUP was refused and the previous config is still in force",
        reload,
    );

    let redirects = Family::<Labels, Counter>::default();
    for ((listen, target, status), n) in crate::edge::redirect::counts() {
        redirects
            .get_or_create(&vec![
                ("listen", listen),
                ("target", target),
                ("status", status.to_string()),
            ])
            .inc_by(n);
    }
    r.register(
        "redirects",
        "Requests answered by the [[redirect]] listeners, by target (\"-\" when none could take it) and status",
        redirects,
    );

    let bfd_state = Family::<Labels, Gauge>::default();
    for (dir, st) in crate::report::bfd::states() {
        bfd_state
            .get_or_create(&vec![("director", dir.to_string())])
            .set(st as i64);
    }
    r.register(
        "bfd_session_state",
        "State of the BFD session to each director: 0 admin_down, 1 down, 2 init, 3 up",
        bfd_state,
    );
    let bfd_tr = Family::<Labels, Counter>::default();
    for ((dir, to, cause), n) in crate::report::bfd::transitions() {
        bfd_tr
            .get_or_create(&vec![
                ("director", dir.to_string()),
                ("to", to.as_str().to_string()),
                ("cause", cause.as_str().to_string()),
            ])
            .inc_by(n);
    }
    r.register(
        "bfd_transitions",
        "BFD session state changes, by director, new state and cause",
        bfd_tr,
    );
    let bfd_rej = Family::<Labels, Counter>::default();
    for (reason, n) in crate::report::bfd::rejected() {
        bfd_rej
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc_by(n);
    }
    r.register(
        "bfd_rejected_packets",
        "Received BFD packets dropped: unknown_source, ttl, invalid, discriminator",
        bfd_rej,
    );

    r.register(
        "build",
        "Agent build",
        Info::new(vec![("version", s.version.to_string())]),
    );

    let mut out = String::with_capacity(2048);
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}
