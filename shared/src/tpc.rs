//! The certificate a node presents as the *client* in third-party copy (TPC). XRootD and its
//! HTTP plugin (XrdHttp, HTTP-TPC) open the connection to the other storage with the host
//! certificate, so its extendedKeyUsage must allow clientAuth; the other server's TLS stack
//! refuses it otherwise ("unsupported certificate purpose"), and the copy fails far from
//! the cause. Public TLS CAs dropped clientAuth to meet Chrome's root program (Let's
//! Encrypt's default profile since 11 February 2026, its opt-in `tlsclient` profile closed
//! to new users on 13 May 2026); IGTF-accredited CA profiles keep it. `lvs-cert inspect`,
//! doctor (`cert.client_auth`) and the `certificate` check (`tpc_client = true`) give the
//! same reason and fix, from here.

/// The way out, named the same wherever the problem is reported.
pub const CLIENT_AUTH_FIX: &str = "use a host certificate whose extendedKeyUsage keeps \
    clientAuth, from an IGTF-accredited CA profile: InCommon's IGTF server certificate \
    (Sectigo), GEANT TCS's IGTF grid host certificate (HARICA), or your national grid CA; \
    `lvs-cert request --xrootd` writes the CSRs for them, and `lvs-cert acme --directory URL \
    --eab-file FILE` uses their ACME endpoint (docs/certs.md, \"Certificates for \
    third-party copy\")";

/// Why a TLS server would refuse a certificate with these extendedKeyUsage purposes from a
/// client, or None when clientAuth is allowed: no extension at all (every purpose),
/// `clientAuth`, or `anyExtendedKeyUsage`.
pub fn client_auth_problem(eku: Option<&[String]>) -> Option<String> {
    let eku = eku?;
    if eku
        .iter()
        .any(|p| p == "clientAuth" || p == "anyExtendedKeyUsage")
    {
        return None;
    }
    Some(format!(
        "no clientAuth in its extendedKeyUsage ({}): XRootD and its HTTP plugin present it as \
         the client in third-party copy, and the other server refuses it (\"unsupported \
         certificate purpose\"); Let's Encrypt certificates carry no clientAuth since \
         February 2026",
        if eku.is_empty() {
            "empty".to_string()
        } else {
            eku.join(", ")
        }
    ))
}

/// The names of the purposes an extendedKeyUsage extension allows, as openssl prints them
/// (other OIDs in dotted form): what `client_auth_problem` judges and what `lvs-cert
/// inspect` shows.
pub fn eku_names(e: &x509_parser::extensions::ExtendedKeyUsage) -> Vec<String> {
    let mut v: Vec<String> = [
        (e.any, "anyExtendedKeyUsage"),
        (e.server_auth, "serverAuth"),
        (e.client_auth, "clientAuth"),
        (e.code_signing, "codeSigning"),
        (e.email_protection, "emailProtection"),
        (e.time_stamping, "timeStamping"),
        (e.ocsp_signing, "OCSPSigning"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| n.to_string())
    .collect();
    v.extend(e.other.iter().map(|o| o.to_id_string()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_rules() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(client_auth_problem(None), None);
        assert_eq!(
            client_auth_problem(Some(&v(&["serverAuth", "clientAuth"]))),
            None
        );
        assert_eq!(
            client_auth_problem(Some(&v(&["anyExtendedKeyUsage"]))),
            None
        );
        let p = client_auth_problem(Some(&v(&["serverAuth"]))).unwrap();
        assert!(
            p.starts_with("no clientAuth in its extendedKeyUsage (serverAuth)"),
            "{p}"
        );
        let p = client_auth_problem(Some(&[])).unwrap();
        assert!(p.contains("(empty)"), "{p}");
        assert!(CLIENT_AUTH_FIX.contains("IGTF"));
    }
}
