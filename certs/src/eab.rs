//! External account binding (RFC 8555 7.3.4): the key ID and HMAC key a CA such as
//! InCommon/Sectigo or HARICA hands out, which binds a new ACME account to the site's
//! account at the CA. It is used once, when the account is registered; the stored account
//! is bound from then on, so a later run (and `renew`) needs no EAB.
//!
//! The key comes from `--eab-kid`/`--eab-hmac-key`, or from `--eab-file`, which keeps it off
//! the command line (and out of `ps`) and is refused unless it belongs to the user running
//! `lvs-cert` and neither group nor others can read it, like a private key (a file another
//! user owns can be rewritten or re-opened to others by that user, whatever its mode now).
//! The file is TOML:
//!
//! ```toml
//! kid = "the key ID"
//! hmac_key = "the HMAC key, base64url as the CA shows it"
//! ```
//!
//! The key is never logged or written anywhere: the renewal record keeps the file's path.

use crate::cli::AcmeArgs;
use crate::error::usage;
use anyhow::Result;
use base64::Engine;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The flags to name when a CA wants a binding and none was given.
pub const FLAGS: &str = "--eab-file PATH (or --eab-kid KID --eab-hmac-key KEY)";

/// A binding key, ready for account registration.
pub struct Eab {
    pub kid: String,
    key: Vec<u8>,
    /// Where it came from, for messages: `--eab-kid` or `--eab-file PATH`.
    pub from: String,
}

impl std::fmt::Debug for Eab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Eab {{ kid: {:?}, from: {:?}, key: <hidden> }}",
            self.kid, self.from
        )
    }
}

impl Eab {
    pub fn key(&self) -> instant_acme::ExternalAccountKey {
        instant_acme::ExternalAccountKey::new(self.kid.clone(), &self.key)
    }
}

/// Where the binding comes from; the file is read only when an account is registered.
#[derive(Debug)]
pub enum Source {
    None,
    Flags(Eab),
    File(PathBuf),
}

impl Source {
    /// The flags, checked: a key ID needs its key and the reverse, the flags and the file
    /// exclude each other, and the key must be base64url.
    pub fn from_args(a: &AcmeArgs) -> Result<Source> {
        const FIX_PAIR: &str =
            "pass both --eab-kid KID and --eab-hmac-key KEY as the CA gave them, or put them in --eab-file PATH";
        match (&a.eab_kid, &a.eab_hmac_key, &a.eab_file) {
            (None, None, None) => Ok(Source::None),
            (Some(_), _, Some(f)) | (_, Some(_), Some(f)) => Err(usage(
                format!("--eab-file {}", f.display()),
                "given together with --eab-kid/--eab-hmac-key",
                "use one: --eab-file PATH (keeps the key out of `ps`) or --eab-kid KID --eab-hmac-key KEY",
            )),
            (Some(_), None, None) => Err(usage(
                "--eab-kid",
                "given without --eab-hmac-key",
                FIX_PAIR,
            )),
            (None, Some(_), None) => Err(usage(
                "--eab-hmac-key",
                "given without --eab-kid",
                FIX_PAIR,
            )),
            (Some(kid), Some(key), None) => Ok(Source::Flags(Eab {
                kid: check_kid(kid, "--eab-kid")?,
                key: decode(key, "--eab-hmac-key")?,
                from: "--eab-kid/--eab-hmac-key".into(),
            })),
            (None, None, Some(f)) => Ok(Source::File(f.clone())),
        }
    }

    /// The binding for a registration: None without EAB, the file read (and checked) now.
    pub fn load(&self) -> Result<Option<Eab>> {
        match self {
            Source::None => Ok(None),
            Source::Flags(e) => Ok(Some(Eab {
                kid: e.kid.clone(),
                key: e.key.clone(),
                from: e.from.clone(),
            })),
            Source::File(p) => load_file(p).map(Some),
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Source::None)
    }
}

fn check_kid(kid: &str, what: &str) -> Result<String> {
    let kid = kid.trim();
    if kid.is_empty() || kid.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(usage(
            what,
            "the key ID is empty or holds spaces or control characters",
            "copy the EAB key ID (kid) exactly as the CA shows it",
        ));
    }
    Ok(kid.to_string())
}

/// The HMAC key as CAs show it: base64url (RFC 4648 section 5), padding optional.
fn decode(key: &str, what: &str) -> Result<Vec<u8>> {
    let k = key.trim().trim_end_matches('=');
    let bad = |problem: &str| {
        usage(
            what,
            problem,
            "copy the EAB HMAC key exactly as the CA shows it (base64url: letters, digits, `-` and `_`)",
        )
    };
    if k.is_empty() {
        return Err(bad("the HMAC key is empty"));
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(k)
        .map_err(|e| bad(&format!("the HMAC key is not base64url ({e})")))?;
    if raw.len() < 16 {
        return Err(bad(&format!(
            "the HMAC key decodes to {} bytes; a CA's key has at least 16 (usually 32 or 64)",
            raw.len()
        )));
    }
    Ok(raw)
}

/// Reads `--eab-file`: owned by the user running lvs-cert (root under the shipped unit),
/// no group or other permission bits, TOML with exactly `kid` and `hmac_key`.
pub fn load_file(p: &Path) -> Result<Eab> {
    let what = format!("--eab-file {}", p.display());
    let meta = std::fs::metadata(p).map_err(|e| {
        usage(
            &what,
            format!("cannot read: {e}"),
            "write the file (kid = \"...\" and hmac_key = \"...\", mode 0600) or fix the path",
        )
    })?;
    let mode = meta.permissions().mode() & 0o777;
    let me = nix::unistd::geteuid();
    if meta.uid() != me.as_raw() {
        let name = |uid: u32| {
            nix::unistd::User::from_uid(uid.into())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| uid.to_string())
        };
        return Err(usage(
            &what,
            format!(
                "belongs to {} (uid {}), not to {} who runs lvs-cert; it holds a secret key \
                 that its owner can change or show to others",
                name(meta.uid()),
                meta.uid(),
                name(me.as_raw())
            ),
            format!(
                "chown {} {p} && chmod 600 {p}",
                name(me.as_raw()),
                p = p.display()
            ),
        ));
    }
    if mode & 0o077 != 0 {
        return Err(usage(
            &what,
            format!("is readable by group or others (mode {mode:04o}); it holds a secret key"),
            format!("chmod 600 {}", p.display()),
        ));
    }
    let text = std::fs::read_to_string(p).map_err(|e| {
        usage(
            &what,
            format!("cannot read: {e}"),
            "make it readable by root",
        )
    })?;
    const FORMAT: &str = "write two lines: kid = \"KEY-ID\" and hmac_key = \"BASE64URL-KEY\"";
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| usage(&what, format!("not TOML: {}", e.message()), FORMAT))?;
    for k in table.keys() {
        if k != "kid" && k != "hmac_key" {
            return Err(usage(
                format!("{what}: {k}"),
                "is not an EAB setting",
                FORMAT,
            ));
        }
    }
    let get = |k: &str| match table.get(k) {
        Some(toml::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(usage(format!("{what}: {k}"), "expected a string", FORMAT)),
        None => Err(usage(&what, format!("has no `{k}`"), FORMAT)),
    };
    Ok(Eab {
        kid: check_kid(&get("kid")?, &format!("{what}: kid"))?,
        key: decode(&get("hmac_key")?, &format!("{what}: hmac_key"))?,
        from: what,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_base64url_with_or_without_padding() {
        let raw: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37)).collect();
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(decode(&enc, "k").unwrap(), raw);
        let padded = base64::engine::general_purpose::URL_SAFE.encode(&raw[..31]);
        assert!(padded.ends_with('='));
        assert_eq!(decode(&padded, "k").unwrap(), raw[..31]);
        for bad in ["", "not base64!", "ab+/cdefghijklmnopqrstuv", "c2hvcnQ"] {
            let e = decode(bad, "--eab-hmac-key").unwrap_err().to_string();
            assert!(e.starts_with("--eab-hmac-key: "), "{e}");
        }
    }

    #[test]
    fn the_debug_form_hides_the_key() {
        let e = Eab {
            kid: "kid-1".into(),
            key: b"secret-secret-secret".to_vec(),
            from: "--eab-kid".into(),
        };
        let d = format!("{e:?}");
        assert!(d.contains("kid-1") && !d.contains("secret"), "{d}");
    }
}
