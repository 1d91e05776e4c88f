//! This host's own name.

/// This node's name as redirect targets give it by default.
pub fn node_fqdn() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}
