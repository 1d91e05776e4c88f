//! The demo's pool: the nodes (agent config, GridFTP, transfer logs), fetching files through
//! the VIP, and the director's rotation as the steps see it.

use super::*;

pub(crate) struct Node<'a> {
    pub(crate) host: &'a Host,
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) cfg: PathBuf,
    pub(crate) gridftp: u32,
    pub(crate) starts: usize,
}

pub(crate) struct Demo<'a> {
    pub(crate) lab: &'a Director,
    pub(crate) work: PathBuf,
    pub(crate) data: PathBuf,
    pub(crate) nodes: Vec<Node<'a>>,
    pub(crate) hap: Haproxy,
    /// (when, rotation) each time the director's controller rewrote the DR table.
    pub(crate) rotation: &'a Mutex<Vec<(Instant, Vec<usize>)>>,
    pub(crate) files: usize,
}

pub(crate) fn node_toml(h: &Host, dir: &Path, method: &str) -> String {
    format!(
        "# lvs-node config of this lab node ({method} ARP suppression)\n\
         interface = \"eth0\"\nreal_ip = \"{ip}\"\nstate_dir = \"{dir}/state\"\n\n\
         [arp]\nmethod = \"{method}\"\n\n\
         [[vip]]\naddress = \"{VIP}\"\nports = [2811]\nhostname = \"gridftp.lab\"\n\n\
         [daemon]\ncontrol_socket = \"{dir}/control.sock\"\nrecheck_interval = \"1s\"\n\n\
         [[check]]\nname = \"gridftp\"\nkind = \"gridftp\"\ninterval = \"250ms\"\ntimeout = \"200ms\"\nrise = 2\nfall = 1\n\n\
         [report]\nhttp = \"{ip}:{HTTP_PORT}\"\nagent_check = \"{ip}:{AGENT_PORT}\"\nallow = [\"{dir_ip}\", \"{cl_ip}\"]\n",
        ip = h.ip,
        dir = dir.display(),
        dir_ip = lab::dr::DIRECTOR_IP,
        cl_ip = lab::dr::CLIENT_IP,
    )
}

pub(crate) fn lvs_node() -> String {
    lab::bins::lvs_node().display().to_string()
}

/// GET /health from the observer (the emulated director, or the client beside the real
/// one): (status code, body).
pub(crate) fn health(lab: &Director, ip: impl std::fmt::Display) -> (u16, String) {
    let out = lab.observer().run(&format!(
        "curl -s -m 1 -w '\\n%{{http_code}}' http://{ip}:{HTTP_PORT}/health"
    ));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.trim().to_string())
}

pub(crate) fn names(idx: &[usize]) -> String {
    let v: Vec<String> = idx.iter().map(|i| format!("rs{}", i + 1)).collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

pub(crate) fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl<'a> Demo<'a> {
    pub(crate) fn node_log(&self, i: usize) -> String {
        let n = &self.nodes[i];
        (1..=n.starts)
            .map(|k| std::fs::read_to_string(n.dir.join(format!("transfers{k}.log"))))
            .filter_map(Result::ok)
            .collect()
    }

    /// Which node's GridFTP transfer log (`-Z`) names this file.
    pub(crate) fn served_by(&self, file: &Path) -> Option<usize> {
        let key = format!("FILE={} ", file.display());
        wait_for(Duration::from_secs(2), || {
            (0..self.nodes.len()).find(|&i| self.node_log(i).contains(&key))
        })
    }

    /// Fetches a fresh file through the VIP with globus-url-copy from the client; prints
    /// the command and the result. Returns (serving node, intact).
    pub(crate) fn fetch(
        &mut self,
        r: &mut Report,
        size: usize,
        show_cmd: bool,
    ) -> (Option<usize>, bool) {
        self.files += 1;
        let name = format!("file{:02}.bin", self.files);
        // A slightly different size per file gives every file its own content.
        let size = size + self.files * 1024;
        let (src, sum) = gridftp::make_file(&self.data, &name, size);
        let dst = self.work.join("client").join(&name);
        let cmd = gridftp::url_copy_cmd(&VIP.to_string(), &src, &dst);
        if show_cmd {
            r.cmd("cl", &cmd);
        }
        let t = Instant::now();
        let o = self
            .lab
            .client()
            .ns
            .run(&format!("timeout 30 {cmd} && sha256sum {}", dst.display()));
        let took = t.elapsed();
        let got = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        let intact = o.status.success() && got == sum;
        let by = if o.status.success() {
            self.served_by(&src)
        } else {
            None
        };
        let who = by.map(|i| self.nodes[i].name.clone());
        println!(
            "      {name} ({} KiB) {} in {:>4} ms, served by {:<4} sha256 {}…{}",
            size >> 10,
            if o.status.success() {
                "fetched"
            } else {
                "FAILED "
            },
            took.as_millis(),
            who.as_deref().unwrap_or("?"),
            &sum[..12],
            if intact {
                " = source ✔"
            } else {
                " ≠ source ✘"
            }
        );
        if !o.status.success() {
            r.out(&text(&o));
        }
        (by, intact)
    }

    pub(crate) fn hap_state(&self, i: usize) -> String {
        self.hap
            .server(self.lab.observer(), &self.nodes[i].name)
            .map(|(s, w)| format!("{s} weight {w}"))
            .unwrap_or_else(|| "?".into())
    }

    pub(crate) fn rotation_now(&self) -> Vec<usize> {
        self.rotation
            .lock()
            .unwrap()
            .last()
            .map(|r| r.1.clone())
            .unwrap_or_default()
    }

    /// Waits until the controller has set a rotation that satisfies `f`; returns when.
    pub(crate) fn wait_rotation(
        &self,
        f: impl Fn(&[usize]) -> bool,
        timeout: Duration,
    ) -> Option<Instant> {
        wait_for(timeout, || {
            let r = self.rotation.lock().unwrap();
            r.last().filter(|x| f(&x.1)).map(|x| x.0)
        })
    }

    pub(crate) fn show_rotation(&self, r: &Report) {
        let states: Vec<String> = (0..self.nodes.len())
            .map(|i| format!("{} {}", self.nodes[i].name, self.hap_state(i)))
            .collect();
        r.info(&format!("HAProxy (show stat): {}", states.join(" | ")));
        match self.lab.ipvs() {
            Some(d) => {
                r.cmd("director guest", "ipvsadm -Ln");
                r.out(&d.vm.run("ipvsadm -Ln").map(|o| o.out).unwrap_or_default());
                r.info(&format!(
                    "IPVS: new connections → {} (weight > 0)",
                    names(&self.rotation_now())
                ));
            }
            None => r.info(&format!(
                "emulated director's nftables DR table: new connections → {}",
                names(&self.rotation_now())
            )),
        }
    }
}
