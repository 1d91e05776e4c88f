//! The health state's metrics, read from one snapshot per scrape: a collector registered
//! into the public part of the registry (`report::metrics`). Only states, numbers and
//! configured names: no file path, no free text.

use super::{Health, Snapshot};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
pub struct HealthCollector(pub Arc<Health>);

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Health")
    }
}

fn put(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    m: &impl EncodeMetric,
) -> std::fmt::Result {
    let me = enc.encode_descriptor(name, help, None, m.metric_type())?;
    m.encode(me)
}

impl Collector for HealthCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        encode_snapshot(&self.0.snapshot(), &mut enc)
    }
}

fn gauge(v: i64) -> Gauge {
    let g = Gauge::<i64>::default();
    g.set(v);
    g
}

pub fn encode_snapshot(s: &Snapshot, enc: &mut DescriptorEncoder) -> std::fmt::Result {
    let vip = Family::<Labels, Gauge>::default();
    for v in &s.vips {
        vip.get_or_create(&vec![("vip", v.address.clone())])
            .set(v.present as i64);
    }
    put(
        enc,
        "vip_present",
        "1 when the VIP is on its device and usable",
        &vip,
    )?;
    put(
        enc,
        "arp_suppressed",
        "1 when ARP suppression for the VIPs is intact",
        &gauge(s.arp_suppressed as i64),
    )?;

    let up = Family::<Labels, Gauge>::default();
    let lat = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for c in &s.checks {
        let l = vec![("check", c.name.clone()), ("kind", c.kind.clone())];
        up.get_or_create(&l).set((c.up == Some(true)) as i64);
        lat.get_or_create(&l).set(c.latency_ms / 1000.0);
    }
    put(
        enc,
        "check_up",
        "Debounced state of each check (dataplane included)",
        &up,
    )?;
    put(
        enc,
        "check_latency_seconds",
        "Duration of each check's last run",
        &lat,
    )?;
    put(
        enc,
        "advertised_weight",
        "Weight reported to directors (0 unless up)",
        &gauge(s.weight as i64),
    )?;
    put(
        enc,
        "up",
        "1 when /health answers 200",
        &gauge(s.http_ok() as i64),
    )?;
    put(
        enc,
        "shared_failure",
        "1 when every failing check is `shared` (admin ready): the node may be held in by [pool] depool_threshold",
        &gauge(s.shared_failure as i64),
    )?;
    put(
        enc,
        "held",
        "1 when the node serves although its shared checks fail, because [pool] depool_threshold needs it",
        &gauge(s.held as i64),
    )?;
    put(
        enc,
        "admin_state",
        "0 ready, 1 drain, 2 maint",
        &gauge(s.admin.admin.code()),
    )?;
    put(
        enc,
        "admin_state_change_timestamp_seconds",
        "When the admin state last changed (drain, maint, resume), unix seconds; 0 never",
        &gauge(s.admin.since as i64),
    )?;

    let certs = Family::<Labels, Gauge>::default();
    for f in &s.certificates {
        if let Some(t) = f.not_after {
            certs
                .get_or_create(&vec![("check", f.check.clone())])
                .set(t);
        }
    }
    put(
        enc,
        "certificate_expiry_timestamp_seconds",
        "notAfter of the certificate each `certificate` check reads, by check, unix seconds",
        &certs,
    )?;
    put(
        enc,
        "established_sessions",
        "Established TCP sessions on VIP service ports",
        &gauge(s.load.sessions as i64),
    )?;
    let repairs = Counter::<u64>::default();
    repairs.inc_by(s.repairs_total);
    put(
        enc,
        "repairs",
        "Data plane repairs applied by the agent",
        &repairs,
    )?;
    put(
        enc,
        "config_reload_ok",
        "0 when the last SIGHUP was refused and the previous config is still in force",
        &gauge(s.reload_error.is_none() as i64),
    )?;
    put(
        enc,
        "build",
        "Agent build",
        &Info::new(vec![("version", s.version.to_string())]),
    )
}
