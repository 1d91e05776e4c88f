use super::*;

fn parse(t: &str) -> Result<NodeConfig, ConfigError> {
    NodeConfig::parse(Path::new("/etc/lvs-node/node.toml"), t)
}

#[test]
fn minimal_config_defaults() {
    let c = parse("interface = \"eth0\"\n[[vip]]\naddress = \"192.0.2.100\"\n").unwrap();
    assert_eq!(c.arp_method, ArpMethod::Sysctl);
    assert_eq!(c.vips[0].device, "lo");
    assert_eq!(c.vips[0].prefix, 32);
    assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
}

#[test]
fn errors_name_key_and_fix() {
    let e = parse("interface = \"eth0\"\n[arp]\nmethod = \"sysctl\"\n[[vip]]\naddress = \"192.0.2.100\"\ndevice = \"eth0\"\n").unwrap_err();
    assert_eq!(e.key, "vip[0].device");
    assert!(e.fix.contains("lo"), "{e}");
    let e = parse("interface = \"eth0\"\n[arp]\nmethd = \"sysctl\"\n").unwrap_err();
    assert!(e.key.starts_with("line 3"), "{e}");
}
