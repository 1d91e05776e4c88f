//! Hostname checks shared by `lvs-cert` and the node config. Certificates name hosts, and a
//! CA rejects a whole order for one bad name, so we reject it first with a clear reason.

use std::collections::HashSet;

/// Let's Encrypt's limit on names per certificate (classic profile).
pub const MAX_NAMES: usize = 100;

/// Checks one name against RFC 1123 (letters, digits, hyphens; labels 1..63; total
/// at most 253) and returns it lower-cased with one trailing dot removed.
pub fn validate(name: &str) -> Result<String, String> {
    let n = name.trim().strip_suffix('.').unwrap_or(name.trim());
    if n.is_empty() {
        return Err("empty hostname".into());
    }
    if n.len() > 253 {
        return Err(format!("`{name}` is longer than 253 characters"));
    }
    if n.starts_with("*.") {
        return Err(format!(
            "`{name}` is a wildcard: HTTP-01 cannot validate wildcards, list each host"
        ));
    }
    let labels: Vec<&str> = n.split('.').collect();
    for l in &labels {
        if l.is_empty() {
            return Err(format!("`{name}` has an empty label (two dots in a row?)"));
        }
        if l.len() > 63 {
            return Err(format!(
                "`{name}`: label `{l}` is longer than 63 characters"
            ));
        }
        if let Some(c) = l
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!(
                "`{name}`: character {c:?} is not allowed (only letters, digits, '-' and '.')"
            ));
        }
        if l.starts_with('-') || l.ends_with('-') {
            return Err(format!("`{name}`: label `{l}` starts or ends with '-'"));
        }
    }
    // An all-numeric last label makes the name look like an IP address (RFC 1123 2.1).
    if labels.len() > 1 && labels[labels.len() - 1].chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "`{name}` looks like an IP address; certificates here name hosts, not addresses"
        ));
    }
    Ok(n.to_ascii_lowercase())
}

/// Validates a list of names in order: each one, no duplicates (case-insensitive), at
/// most [`MAX_NAMES`]. The error names the offending entry.
pub fn validate_set<S: AsRef<str>>(names: &[S]) -> Result<Vec<String>, String> {
    if names.len() > MAX_NAMES {
        return Err(format!(
            "{} names given; a certificate may hold at most {MAX_NAMES} (Let's Encrypt's limit)",
            names.len()
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let v = validate(n.as_ref())?;
        if !seen.insert(v.clone()) {
            return Err(format!("`{}` is listed twice", n.as_ref()));
        }
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(
            validate("GridFTP.Example.org.").unwrap(),
            "gridftp.example.org"
        );
        assert_eq!(validate("node-1").unwrap(), "node-1");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "-a.example",
            "a-.example",
            "a..example",
            "a_b.example",
            "*.example.org",
            "192.0.2.1",
            "a b.example",
            &"a".repeat(64),
            &format!("{}.org", ["abc"; 70].join(".")),
        ] {
            assert!(validate(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn duplicates_and_limit() {
        let e = validate_set(&["a.example", "b.example", "A.example"]).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let many: Vec<String> = (0..101).map(|i| format!("n{i}.example")).collect();
        assert!(validate_set(&many).unwrap_err().contains("at most 100"));
        assert_eq!(validate_set(&many[..100]).unwrap().len(), 100);
    }
}
