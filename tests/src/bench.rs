//! What the real-director benchmarks (`lvs-lab-director-bench`, `lvs-lab-bfd-bench`) share:
//! their environment knobs, the node's config, the keepalived checkers they compare, the
//! clock from a failure to the node leaving rotation, and how figures are printed. Keeping
//! it here makes the two benchmarks measure the same way, so their tables can be compared.

use crate::dr::{IpvsLab, VIP};
use crate::vm::director::{keepalived_conf, with_probe_path, IpvsDirector};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The agent's report port on the node.
pub const HTTP_PORT: u16 = 8080;

/// The INFN seed's checker (`delay_loop 6`, default `connect_timeout`): the baseline.
pub const TCP_CHECK_INFN: &str = "TCP_CHECK {\n    connect_port 2811\n}\n";
pub const TCP_CHECK_INFN_NAME: &str =
    "TCP_CHECK, INFN seed (delay_loop 6, connect_timeout default)";

/// A benchmark knob from the environment (`RUNS=5`), else its default.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Boots the lab with the real director (one node) and says how long the guest took.
pub fn boot(tag: &str) -> IpvsLab {
    let t = Instant::now();
    let lab = IpvsLab::build(tag, 1).unwrap_or_else(|e| panic!("director guest: {e:#}"));
    println!(
        "director guest ready in {:.1} s (qemu TCG)",
        t.elapsed().as_secs_f64()
    );
    lab
}

/// The node's config: the VIP managed by the agent, one `gridftp` check at `interval` /
/// `timeout` (rise 2, fall 1), the weight terms off (weight stays 100), `report` lines
/// inside `[report]` after `http`, and `extra` tables at the end.
pub fn node_toml(
    ip: &str,
    dir: &Path,
    interval: &str,
    timeout: &str,
    report: &str,
    extra: &str,
) -> String {
    format!(
        "interface = \"eth0\"\nreal_ip = \"{ip}\"\nstate_dir = \"{d}/state\"\n\
         [[vip]]\naddress = \"{VIP}\"\nports = [2811]\n\
         [daemon]\nmanage_dataplane = true\ncontrol_socket = \"{d}/control.sock\"\nrecheck_interval = \"1s\"\n\
         [[check]]\nname = \"gridftp\"\nkind = \"gridftp\"\ninterval = \"{interval}\"\ntimeout = \"{timeout}\"\nrise = 2\nfall = 1\n\
         [report]\nhttp = \"{ip}:{HTTP_PORT}\"\n{report}\
         [weight]\nbase = 100\nsessions_per_core = 0\nload_per_core = 0\n{extra}",
        d = dir.display()
    )
}

/// HTTP_GET on the agent's `/health` (`connect_timeout 1`, `retry 0`).
pub fn http_get(rip: &str) -> String {
    format!(
        "HTTP_GET {{\n    url {{\n        path /health\n        status_code 200\n    }}\n    \
         connect_ip {rip}\n    connect_port {HTTP_PORT}\n    connect_timeout 1\n    retry 0\n}}\n"
    )
}

/// MISC_CHECK through `lvs-node probe`, weight from its exit code (`misc_dynamic`).
pub fn misc_check(rip: &str, lvs_node: &Path) -> String {
    format!(
        "MISC_CHECK {{\n    misc_path \"{} probe --agent http://{rip}:{HTTP_PORT} --timeout 1s\"\n    \
         misc_timeout 3\n    misc_dynamic\n}}\n",
        lvs_node.display()
    )
}

/// A whole keepalived config: one DR virtual server on the VIP's 2811 (`wlc`) with the node
/// as its only real server, checked by `checker`; MISC_CHECKs run the `lvs-node` under test.
pub fn checker_conf(rip: &str, delay_loop: u32, checker: &str, lvs_node: &Path) -> String {
    let body = format!("real_server {rip} 2811 {{\n    weight 100\n    {checker}}}\n");
    with_probe_path(
        &keepalived_conf(VIP, 2811, "wlc", delay_loop, &body),
        lvs_node,
    )
}

/// In rotation: the node's 2811 is in the guest's watched copy of the table with a weight
/// above 0 (`IpvsDirector::start_table_watch` must run).
pub fn in_rotation(director: &IpvsDirector, rip: &str) -> bool {
    let addr = format!("{rip}:2811");
    director
        .watched_table()
        .iter()
        .flat_map(|s| s.reals.iter())
        .any(|r| r.addr == addr && r.weight > 0)
}

/// Sleeps `base` plus 0-999 ms (the clock's sub-second part), so a failure lands at a
/// random phase of the checkers' cycles.
pub fn random_pause(base: Duration) {
    let phase = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_millis() as u64)
        .unwrap_or(0);
    std::thread::sleep(base + Duration::from_millis(phase));
}

/// Seconds from `t0` (taken just before the failure) until `gone` holds, polled every
/// 10 ms; None when not within `bound`.
pub fn seconds_until(t0: Instant, bound: Duration, mut gone: impl FnMut() -> bool) -> Option<f64> {
    while t0.elapsed() < bound {
        if gone() {
            return Some(t0.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// `min, median, mean, max (N runs)` of times in seconds, printed in `unit` ("ms" or "s"). `runs` is
/// how many were tried: runs missing from `v` (not detected within the bound) are counted
/// in the text, never dropped silently.
pub fn stats(v: &[f64], runs: usize, unit: &str) -> String {
    let missed = runs.saturating_sub(v.len());
    if v.is_empty() {
        return if runs == 0 {
            "-".into()
        } else {
            format!("none of {runs} run(s) detected within the bound")
        };
    }
    if missed > 0 {
        return format!(
            "{}; {missed} of {runs} runs NOT detected within the bound, left out of min/median/mean/max",
            stats(v, v.len(), unit)
        );
    }
    let min = v.iter().cloned().fold(f64::MAX, f64::min);
    let max = v.iter().cloned().fold(0.0, f64::max);
    let f = |x: f64| {
        if unit == "ms" {
            format!("{:.0} ms", x * 1000.0)
        } else {
            format!("{x:.2} s")
        }
    };
    format!(
        "min {}, median {}, mean {}, max {} ({} run{})",
        f(min),
        f(median(v).unwrap_or(0.0)),
        f(mean(v).unwrap_or(0.0)),
        f(max),
        v.len(),
        if v.len() == 1 { "" } else { "s" }
    )
}

pub fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

/// Prints the rows again under `summary:`, for copying into docs/benchmarks.md.
pub fn print_summary(rows: &[String]) {
    println!("\nsummary:");
    for r in rows {
        println!("{r}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[9.0, 1.0, 1.2, 1.1, 8.0]), Some(1.2));
    }

    #[test]
    fn stats_in_both_units() {
        assert_eq!(stats(&[], 0, "ms"), "-");
        assert_eq!(
            stats(&[], 3, "ms"),
            "none of 3 run(s) detected within the bound"
        );
        assert_eq!(
            stats(&[0.5], 1, "s"),
            "min 0.50 s, median 0.50 s, mean 0.50 s, max 0.50 s (1 run)"
        );
        assert_eq!(
            stats(&[0.1, 0.2, 0.3], 3, "ms"),
            "min 100 ms, median 200 ms, mean 200 ms, max 300 ms (3 runs)"
        );
        assert_eq!(
            stats(&[1.0, 2.5], 2, "s"),
            "min 1.00 s, median 1.75 s, mean 1.75 s, max 2.50 s (2 runs)"
        );
        assert_eq!(
            stats(&[1.0, 2.5], 3, "s"),
            "min 1.00 s, median 1.75 s, mean 1.75 s, max 2.50 s (2 runs); 1 of 3 runs NOT detected within the bound, left out of min/median/mean/max"
        );
    }

    #[test]
    fn node_config_parses_as_the_agent_reads_it() {
        let t = node_toml(
            "192.0.2.11",
            Path::new("/tmp/x"),
            "100ms",
            "90ms",
            "agent_check = \"192.0.2.11:8081\"\n",
            "[bfd]\ndirectors = [\"192.0.2.2\"]\n",
        );
        let dir = std::env::temp_dir().join(format!("lab-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("node.toml");
        std::fs::write(&p, &t).unwrap();
        let c = lvs_shared::config::NodeConfig::load(&p);
        let _ = std::fs::remove_dir_all(&dir);
        let c = c.unwrap_or_else(|e| panic!("{e}\n{t}"));
        assert!(c.bfd.is_some());
        assert!(c.daemon.report.agent_check.is_some());
    }
}
