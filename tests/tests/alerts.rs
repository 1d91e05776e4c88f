//! The Prometheus alert rules shipped in the packages (packaging/prometheus/), checked with
//! the real promtool (Debian package `prometheus`): the rules parse, the unit tests in
//! tests/prometheus/ (series that fire each alert and series that do not) pass, and each
//! alert's firing case is really checked (the test fails when that alert is renamed away).
//! The metrics the rules use are the ones the agent and lvs-cert export, and each is
//! documented in docs/metrics.md.

use lab::units::repo;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn promtool(args: &[&str], dir: &Path) -> Output {
    Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool not found: install the Debian package `prometheus` (tests/setup.sh)")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn rules_path() -> PathBuf {
    repo().join("packaging/prometheus/lvs-node.rules.yml")
}

fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(|s| s.trim().to_string())
        .collect()
}

/// Metric names (lvs_realserver_* / lvs_cert_*) an expression text mentions.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["lvs_realserver_", "lvs_cert_"] {
        for (i, _) in text.match_indices(prefix) {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

#[test]
fn rules_parse_and_unit_tests_pass() {
    let root = repo();
    let o = promtool(&["check", "rules", rules_path().to_str().unwrap()], &root);
    assert!(o.status.success(), "promtool check rules:\n{}", text(&o));
    let want = alert_names(&std::fs::read_to_string(rules_path()).unwrap());
    assert!(
        text(&o).contains(&format!("SUCCESS: {} rules found", want.len())),
        "{}",
        text(&o)
    );
    let o = promtool(
        &["test", "rules", "lvs-node.rules.test.yml"],
        &root.join("tests/prometheus"),
    );
    assert!(o.status.success(), "promtool test rules:\n{}", text(&o));
}

#[test]
fn every_alert_has_a_firing_case_that_is_checked() {
    let rules = std::fs::read_to_string(rules_path()).unwrap();
    let tests =
        std::fs::read_to_string(repo().join("tests/prometheus/lvs-node.rules.test.yml")).unwrap();
    let names = alert_names(&rules);
    for want in [
        "LvsNodeDown",
        "LvsNodeDrainedTooLong",
        "LvsNodeRepairFight",
        "LvsNodeHeldThroughSharedFailure",
        "LvsNodeCertificateExpiringSoon",
        "LvsCertRenewalFailed",
        "LvsPoolBelowMinimumHealthy",
    ] {
        assert!(names.iter().any(|n| n == want), "no alert {want}");
    }
    let dir = std::env::temp_dir().join(format!("lvs-alerts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // One promtool run per alert, in parallel (each takes seconds on a loaded machine).
    let runs: Vec<(String, std::thread::JoinHandle<Output>)> = names
        .iter()
        .map(|name| {
            // The rules with this one alert renamed: its expected alerts no longer appear.
            let broken = rules.replace(
                &format!("- alert: {name}\n"),
                &format!("- alert: {name}Renamed\n"),
            );
            assert_ne!(broken, rules);
            let sub = dir.join(name);
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::write(sub.join("rules.yml"), broken).unwrap();
            let t = tests.replace("../../packaging/prometheus/lvs-node.rules.yml", "rules.yml");
            std::fs::write(sub.join("t.yml"), t).unwrap();
            let h = std::thread::spawn(move || promtool(&["test", "rules", "t.yml"], &sub));
            (name.clone(), h)
        })
        .collect();
    for (name, h) in runs {
        let o = h.join().unwrap();
        assert!(
            !o.status.success(),
            "the unit tests pass with {name} renamed: no firing case checks it"
        );
        assert!(
            text(&o).contains(&format!("alertname: {name}")),
            "{name}: {}",
            text(&o)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The agent's /metrics as one scrape renders it, with a certificate recorded.
fn agent_metrics() -> String {
    use lvs_node::health::{Admin, AdminState, Health, DATAPLANE};
    let h = Health::new(
        lvs_shared::config::daemon::Weight::default(),
        AdminState {
            admin: Admin::Drain,
            reason: Some("test".into()),
            since: 1_795_392_000,
        },
    );
    h.record(DATAPLANE, Ok("ok".into()), std::time::Duration::ZERO);
    h.set_certificate(
        "hostcert",
        "/etc/grid-security/hostcert.pem",
        Ok(1_800_000_000),
    );
    let mut m = lvs_node::report::metrics::Metrics::default();
    m.public()
        .register_collector(Box::new(lvs_node::health::metrics::HealthCollector(h)));
    m.render(lvs_node::util::gate::Role::Public)
}

#[test]
fn rules_use_exported_and_documented_metrics() {
    let agent = agent_metrics();
    eprintln!("{agent}");
    let cert = lvs_cert::cmd::renew::metrics_text("", 1_795_392_000, true);
    let exported: String = format!("{agent}\n{cert}");
    let docs = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    let rules = std::fs::read_to_string(rules_path()).unwrap();
    for m in metric_names(&rules) {
        assert!(
            exported
                .lines()
                .any(|l| l.starts_with(&format!("{m} ")) || l.starts_with(&format!("{m}{{"))),
            "the rules use {m}, which is not exported:\n{exported}"
        );
    }
    // Every exported sample name is documented.
    for l in exported
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name: String = l
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            docs.contains(&format!("`{name}`")) || docs.contains(&format!("`{name}{{")),
            "{name} is exported but not documented in docs/metrics.md"
        );
    }
    // The new timestamps carry what was recorded.
    assert!(agent.contains("\nlvs_realserver_admin_state_change_timestamp_seconds 1795392000\n"));
    assert!(agent.contains(
        "\nlvs_realserver_certificate_expiry_timestamp_seconds{check=\"hostcert\"} 1800000000\n"
    ));
}

#[test]
fn lvs_cert_renew_writes_its_outcome_for_the_textfile_collector() {
    let dir = std::env::temp_dir().join(format!("lvs-alerts-renew-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let prom = dir.join("lvs-cert.prom");
    let state = dir.join("state");
    let renew = || {
        Command::new(lab::bins::lvs_cert())
            .args(["renew", "--state-dir"])
            .arg(&state)
            .arg("--metrics-file")
            .arg(&prom)
            .output()
            .unwrap()
    };
    // A corrupt renewal record: the run fails, and says so in the file.
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("renewal.json"), "not json").unwrap();
    let o = renew();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("renewal.json"), "{}", text(&o));
    let t = std::fs::read_to_string(&prom).expect("metrics file written on failure");
    assert!(t.contains("\nlvs_cert_renewal_success 0\n"), "{t}");
    assert!(
        t.contains("\nlvs_cert_renewal_last_success_timestamp_seconds 0\n"),
        "{t}"
    );
    // The file is valid exposition text, per promtool's parser and linter.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", prom.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "promtool check metrics:\n{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

mod daemon_util;

/// A real Prometheus server (in the director's namespace) scrapes a real `lvs-node run`
/// with the shipped rules loaded: the scrape is healthy, the rules load, the certificate
/// alert fires for a 10-day certificate and LvsNodeDown is pending for a node whose GridFTP
/// check fails.
#[test]
fn prometheus_scrapes_the_agent_and_evaluates_the_rules() {
    use daemon_util::*;
    use lab::{wait_for, DrLab};
    use std::time::Duration;
    let lab = DrLab::one_real("prom");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    // A certificate with 10 days left; no GridFTP server, so the node is down.
    let cert = dir.join("cert.pem");
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "10",
            "-subj",
            "/CN=gridftp.lab",
            "-keyout",
        ])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let sub = dir.join("rs0");
    std::fs::create_dir_all(&sub).unwrap();
    let toml = node_toml(rs, &sub, &NodeOpts::default()).replacen(
        "[report]",
        &format!(
            "[[check]]\nname = \"hostcert\"\nkind = \"certificate\"\ncert = \"{}\"\nmin_days = 1\n[report]",
            cert.display()
        ),
        1,
    );
    let cfg = sub.join("node.toml");
    std::fs::write(&cfg, toml).unwrap();
    prepare_real_by_hand(rs);
    start_agent(rs, &cfg, &sub.join("agent.log"), HTTP_PORT);

    let prom_dir = dir.join("prom");
    std::fs::create_dir_all(prom_dir.join("data")).unwrap();
    std::fs::write(
        prom_dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: gridftp-pool\n    static_configs:\n      - targets: ['{ip}:{HTTP_PORT}']\n",
            rules = rules_path().display(),
            ip = rs.ip
        ),
    )
    .unwrap();
    lab.director.ns.spawn_logged(
        &format!(
            "prometheus --config.file={p}/prometheus.yml --storage.tsdb.path={p}/data \
             --web.listen-address=127.0.0.1:9090",
            p = prom_dir.display()
        ),
        &prom_dir.join("prometheus.log"),
    );
    let api = |path: &str| -> Option<serde_json::Value> {
        let out = lab.director.ns.run(&format!(
            "curl -sf -m 2 'http://127.0.0.1:9090/api/v1/{path}'"
        ));
        serde_json::from_slice(&out.stdout).ok()
    };
    let plog = || std::fs::read_to_string(prom_dir.join("prometheus.log")).unwrap_or_default();

    // The scrape succeeds (health "up", no error).
    let target = wait_for(Duration::from_secs(30), || {
        let v = api("targets")?;
        let t = v["data"]["activeTargets"].get(0)?.clone();
        (t["health"] != "unknown").then_some(t)
    })
    .unwrap_or_else(|| panic!("no scrape result: {}", plog()));
    assert_eq!(
        target["health"], "up",
        "Prometheus cannot parse the agent's /metrics: {}",
        target["lastError"]
    );

    // The shipped rules are loaded and evaluate without errors.
    let rules = wait_for(Duration::from_secs(10), || {
        let v = api("rules")?;
        let r: Vec<serde_json::Value> = v["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        (!r.is_empty()).then_some(r)
    })
    .expect("rules loaded");
    let want = alert_names(&std::fs::read_to_string(rules_path()).unwrap());
    assert_eq!(rules.len(), want.len());
    for r in &rules {
        assert_eq!(
            r["health"], "ok",
            "rule {} failed: {}",
            r["name"], r["lastError"]
        );
    }

    // Alerts: the certificate one fires at once, LvsNodeDown waits for its 5 minutes.
    let alerts = wait_for(Duration::from_secs(30), || {
        let v = api("alerts")?;
        let a = v["data"]["alerts"].as_array()?.clone();
        let has = |name: &str, state: &str| {
            a.iter()
                .any(|x| x["labels"]["alertname"] == name && x["state"] == state)
        };
        (has("LvsNodeCertificateExpiringSoon", "firing") && has("LvsNodeDown", "pending"))
            .then_some(a)
    })
    .unwrap_or_else(|| panic!("alerts not as expected: {:?}", api("alerts")));
    let cert_alert = alerts
        .iter()
        .find(|x| x["labels"]["alertname"] == "LvsNodeCertificateExpiringSoon")
        .unwrap();
    assert_eq!(cert_alert["labels"]["check"], "hostcert");
    assert_eq!(cert_alert["labels"]["job"], "gridftp-pool");
    // One node, down: the pool is below its minimum too (after its 2 minutes: pending now).
    assert!(
        alerts
            .iter()
            .any(|x| x["labels"]["alertname"] == "LvsPoolBelowMinimumHealthy"
                && x["labels"]["job"] == "gridftp-pool"),
        "{alerts:?}"
    );
}
