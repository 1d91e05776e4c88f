//! A path that never opens must not freeze the agent. A FIFO stands in for a certificate on
//! a hung NFS mount: a blocking open of it waits for a writer forever. The `certificate`
//! check that watches it must fail by itself (its reason says why), while `/health`, the
//! agent-check and `/status` keep answering from the director's address, and SIGTERM still
//! ends the agent within the unit's stop timeout.

mod daemon_util;

use daemon_util::*;
use lab::{wait_for, DrLab};
use std::time::{Duration, Instant};

#[test]
fn a_fifo_in_place_of_the_certificate_freezes_nothing() {
    let lab = DrLab::one_real("hung");
    let dir = TestDir::new(&lab.prefix);
    let rs = &lab.reals[0];
    prepare_real_by_hand(rs);
    let fifo = dir.join("hostcert.pem");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let extra = format!(
        "[[check]]\nname = \"hostcert\"\nkind = \"certificate\"\ncert = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
        fifo.display()
    );
    let cfg = write_config(
        rs,
        &dir.join("rs0"),
        &NodeOpts {
            extra: &extra,
            report_extra: &format!(
                "allow = [\"{}\"]\npublic_health = true",
                lab::dr::DIRECTOR_IP
            ),
            ..NodeOpts::default()
        },
    );
    // No GridFTP here: only the certificate check decides.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[[check]]\nname = \"gridftp\"\nkind = \"gridftp\"\ninterval = \"500ms\"\ntimeout = \"300ms\"\nrise = 2\nfall = 1\n",
        "",
    );
    std::fs::write(&cfg, text).unwrap();
    let log = dir.join("agent.log");
    let pid = start_agent(rs, &cfg, &log, HTTP_PORT);
    let d = &lab.director.ns;
    let logtext = || std::fs::read_to_string(&log).unwrap_or_default();

    // The check fails by itself, with the reason.
    let body = wait_for(Duration::from_secs(8), || {
        let (code, body) = health(d, rs.ip, HTTP_PORT);
        (code == 503 && body.contains("hostcert")).then_some(body)
    })
    .unwrap_or_else(|| {
        panic!(
            "the certificate check did not fail: {:?}\n{}",
            health(d, rs.ip, HTTP_PORT),
            logtext()
        )
    });
    assert!(body.contains("not a regular file"), "{body}");

    // Everything a director reads keeps answering, /status included (it reported the
    // certificate by reading the file on the event loop).
    for round in 0..5 {
        let t0 = Instant::now();
        let status = d.run(&format!(
            "curl -s -m 3 -w '\\n%{{http_code}}' http://{}:{HTTP_PORT}/status",
            rs.ip
        ));
        let out = String::from_utf8_lossy(&status.stdout).into_owned();
        assert!(
            out.ends_with("200") && out.contains("not a regular file"),
            "/status round {round}: {out:?} after {:?}\n{}",
            t0.elapsed(),
            logtext()
        );
        let (code, _) = health(d, rs.ip, HTTP_PORT);
        assert_eq!(code, 503, "/health round {round}\n{}", logtext());
        let line = agent_line(d, rs.ip);
        assert!(
            line.starts_with("down ready"),
            "agent-check round {round}: {line:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // SIGTERM ends the agent well within the unit's stop timeout.
    let t0 = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let gone = wait_for(Duration::from_secs(10), || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true))
        .then_some(())
    });
    assert!(
        gone.is_some(),
        "SIGTERM did not end the agent within 10 s\n{}",
        logtext()
    );
    eprintln!("agent stopped {:?} after SIGTERM", t0.elapsed());
}
