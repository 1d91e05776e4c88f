//! Who keeps the director's rotation: the nftables EMULATION's controller loop.

use super::*;

/// The director's control loop: HAProxy runs the agent-checks; every server it has UP is
/// in rotation, and the nftables DR table (the data path, IPVS's job on a real director)
/// is rewritten whenever that set changes. Established connections keep their server.
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
