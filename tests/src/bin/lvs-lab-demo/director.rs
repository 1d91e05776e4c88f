//! The demo's director: the REAL one (a qemu guest with IPVS and keepalived, see
//! tests/src/vm.rs) when it boots, otherwise the nftables EMULATION as a labelled fallback.
//! Either way the steps read the director's rotation (which nodes get new connections) from
//! one list: a poller fills it from the guest's IPVS table, or the emulation's controller
//! fills it from HAProxy's agent-check states and rewrites the nftables table to match.

use super::*;
use lab::dr::IpvsLab;
use lab::vm::director::{keepalived_conf, IpvsDirector};

pub(crate) enum Director {
    Ipvs(IpvsLab),
    /// The nftables MAC-rewrite EMULATION: no IPVS, no keepalived.
    Emulation(DrLab),
}

impl Director {
    /// Boots the real director unless `LVS_DEMO_DIRECTOR=emulation`; falls back to the
    /// emulation, saying why.
    pub(crate) fn build(prefix: &str) -> Director {
        if std::env::var("LVS_DEMO_DIRECTOR").as_deref() == Ok("emulation") {
            println!("director: nftables EMULATION (LVS_DEMO_DIRECTOR=emulation)");
        } else {
            println!("director: booting the real one (qemu guest with IPVS and keepalived)...");
            match IpvsLab::build_with_prefix(prefix, 3) {
                Ok(l) => {
                    println!(
                        "director: real IPVS + keepalived, guest ready in {:.1} s",
                        l.director.boot_time.as_secs_f64()
                    );
                    return Director::Ipvs(l);
                }
                Err(e) => {
                    println!("director: the real director did not come up: {e:#}");
                    println!(
                        "director: FALLING BACK to the nftables EMULATION (no IPVS; run \
                         tests/setup.sh for the real one)"
                    );
                }
            }
        }
        Director::Emulation(DrLab::build_with_prefix(
            prefix,
            LabOpts {
                reals: 3,
                ..LabOpts::default()
            },
        ))
    }

    pub(crate) fn is_real(&self) -> bool {
        matches!(self, Director::Ipvs(_))
    }

    pub(crate) fn ipvs(&self) -> Option<&IpvsDirector> {
        match self {
            Director::Ipvs(l) => Some(&l.director),
            Director::Emulation(_) => None,
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        match self {
            Director::Ipvs(l) => &l.prefix,
            Director::Emulation(l) => &l.prefix,
        }
    }

    pub(crate) fn client(&self) -> &Host {
        match self {
            Director::Ipvs(l) => &l.client,
            Director::Emulation(l) => &l.client,
        }
    }

    pub(crate) fn reals(&self) -> &[Host] {
        match self {
            Director::Ipvs(l) => &l.reals,
            Director::Emulation(l) => &l.reals,
        }
    }

    pub(crate) fn director_mac(&self) -> String {
        match self {
            Director::Ipvs(_) => lab::dr::DIRECTOR_MAC.to_string(),
            Director::Emulation(l) => l.director.mac.clone(),
        }
    }

    /// Where HAProxy runs and where the demo reads the agents from: the emulated
    /// director's namespace, or the client's beside the real director.
    pub(crate) fn observer(&self) -> &Netns {
        match self {
            Director::Ipvs(l) => &l.client.ns,
            Director::Emulation(l) => &l.director.ns,
        }
    }

    /// The observer's role name in printed commands.
    pub(crate) fn observer_role(&self) -> &'static str {
        match self {
            Director::Ipvs(_) => "cl",
            Director::Emulation(_) => "dir",
        }
    }

    pub(crate) fn arp_answers(&self, ip: &str) -> Vec<String> {
        match self {
            Director::Ipvs(l) => l.arp_answers(ip),
            Director::Emulation(l) => l.arp_answers(ip),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Director::Ipvs(_) => format!(
                "director {} = qemu guest (real IPVS, keepalived lb_kind DR), VIP {VIP} on its eth0",
                lab::dr::DIRECTOR_IP
            ),
            Director::Emulation(l) => format!(
                "{}dir (director {}, VIP {VIP} on eth0; nftables DR EMULATION)",
                l.prefix, l.director.ip
            ),
        }
    }
}

/// The keepalived config the demo loads into the real director: every node's
/// `lvs-node director-config` stanza (HTTP_GET on /health, inhibit_on_failure), with the
/// checker's loop shortened to 0.5 s (`retry 0` as printed), so a kill shows within about a
/// second.
pub(crate) fn keepalived_for(cfgs: &[PathBuf]) -> anyhow::Result<String> {
    let mut body = String::new();
    for c in cfgs {
        let o = Command::new(lab::bins::lvs_node())
            .arg("-c")
            .arg(c)
            .arg("director-config")
            .output()?;
        anyhow::ensure!(
            o.status.success(),
            "director-config: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        body.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    let body = body.replace("delay_loop 2", "delay_loop 0.5");
    Ok(keepalived_conf(VIP, 2811, "rr", 1, &body))
}

/// The rotation read from the real director: the guest copies /proc/net/ip_vs when it
/// changes (read every 50 ms);
/// a realserver with weight > 0 gets new connections.
pub(crate) fn ipvs_poller(
    d: &IpvsDirector,
    reals: &[Host],
    rotation: &Mutex<Vec<(Instant, Vec<usize>)>>,
    stop: &AtomicBool,
) {
    let mut last: Option<Vec<usize>> = None;
    while !stop.load(Ordering::SeqCst) {
        let table = d.watched_table();
        if !table.is_empty() {
            let up: Vec<usize> = (0..reals.len())
                .filter(|&i| {
                    let a = format!("{}:2811", reals[i].ip);
                    table
                        .iter()
                        .flat_map(|s| s.reals.iter())
                        .any(|r| r.addr == a && r.weight > 0)
                })
                .collect();
            if last.as_ref() != Some(&up) {
                rotation.lock().unwrap().push((Instant::now(), up.clone()));
                last = Some(up);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The EMULATION's control loop: HAProxy runs the agent-checks; every server it has UP is
/// in rotation, and the nftables DR table (IPVS's job on a real director) is rewritten
/// whenever that set changes. Established connections keep their server.
pub(crate) fn controller(
    lab: &DrLab,
    hap: &Haproxy,
    n: usize,
    rotation: &Mutex<Vec<(Instant, Vec<usize>)>>,
    stop: &AtomicBool,
) {
    let mut last: Vec<usize> = (0..n).collect();
    rotation
        .lock()
        .unwrap()
        .push((Instant::now(), last.clone()));
    while !stop.load(Ordering::SeqCst) {
        let states: Option<Vec<String>> = (0..n)
            .map(|i| {
                hap.server(&lab.director.ns, &format!("rs{}", i + 1))
                    .map(|s| s.0)
            })
            .collect();
        if let Some(states) = states {
            let up: Vec<usize> = (0..n).filter(|&i| states[i].starts_with("UP")).collect();
            if up != last {
                lab.set_backends(&up);
                rotation.lock().unwrap().push((Instant::now(), up.clone()));
                last = up;
            }
        }
        std::thread::sleep(Duration::from_millis(40));
    }
}
