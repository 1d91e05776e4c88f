//! ACME with instant-acme: the checked plan of a run, the account, and one order for the
//! VIP and the nodes (or one per node for XRootD): tokens in the shared webroot, a
//! self-check before any validation, our own rcgen CSR, verification of what the CA
//! returns. The command that drives it (lock, publish, install) is `cmd::acme`.

use crate::cli::AcmeArgs;
use crate::csr::{self, Subject};
use crate::error::usage;
use crate::install::{Hook, Target};
use crate::names::{CertSpec, Pool};
use crate::selfcheck::{self, Challenge, Endpoint};
use crate::verify::Trust;
use crate::{eab, verify, webroot};
use anyhow::{anyhow, bail, Context, Result};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, LetsEncrypt,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

const ATTEMPTS: u32 = 8;
/// A CA that did not answer within --http-timeout gets two more chances, not seven: the
/// pool lock is held meanwhile.
const TIMEOUT_ATTEMPTS: u32 = 3;

/// The error to describe: instant-acme's `Other` is transparent, and hides its inner
/// error from `source()`.
fn inner(e: &instant_acme::Error) -> &(dyn std::error::Error + 'static) {
    match e {
        instant_acme::Error::Other(i) => &**i,
        e => e,
    }
}

/// The whole cause chain, e.g. `client error (Connect): invalid peer certificate: UnknownIssuer`.
pub fn describe(e: &instant_acme::Error) -> String {
    let d = crate::http::describe(inner(e));
    if crate::http::permanent_tls(inner(e)) {
        format!(
            "{d} (TLS with the ACME server failed; not retried: check --directory and --root-ca)"
        )
    } else {
        d
    }
}

/// badNonce (instant-acme retries only 3 times itself), 5xx, connection trouble and
/// timeouts; never a TLS failure that no retry can heal (an untrusted certificate).
fn transient(e: &instant_acme::Error) -> bool {
    use instant_acme::Error as E;
    match e {
        E::Api(p) => {
            let t = p.r#type.as_deref().unwrap_or("");
            t.ends_with(":badNonce")
                || t.ends_with(":serverInternal")
                || p.status.unwrap_or(0) >= 500
        }
        E::Hyper(_) | E::Http(_) => true,
        E::Other(i) => !crate::http::permanent_tls(&**i),
        _ => false,
    }
}

fn attempts(e: &instant_acme::Error) -> u32 {
    if crate::http::timed_out(inner(e)) {
        TIMEOUT_ATTEMPTS
    } else {
        ATTEMPTS
    }
}

/// Re-evaluates `$e` (an ACME call) until it succeeds, a non-transient error comes, or
/// the attempts run out; backs off 100 ms, 200 ms, ...
macro_rules! retrying {
    ($what:expr, $e:expr) => {
        retrying!($what, $e, |_: &instant_acme::Error| None)
    };
    // `$explain` may turn the final error into a better one (e.g. a usage error).
    ($what:expr, $e:expr, $explain:expr) => {{
        let mut attempt = 0u32;
        loop {
            match $e.await {
                Ok(v) => break Ok(v),
                Err(err) if attempt + 1 < attempts(&err) && transient(&err) => {
                    attempt += 1;
                    tracing::info!("{}: {} (retry {attempt})", $what, describe(&err));
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
                }
                Err(err) => match $explain(&err) {
                    Some(better) => break Err(better),
                    None => break Err(anyhow!("{}: {}", $what, describe(&err))),
                },
            }
        }
    }};
}

/// Everything checked up front, before anything is written.
pub struct Plan {
    pub pool: Pool,
    pub specs: Vec<CertSpec>,
    /// The spec installed on this host, if any.
    pub mine: Option<CertSpec>,
    pub target: Target,
    pub shared: PathBuf,
    pub directory: String,
    pub vip: Endpoint,
    pub nodes: Vec<Endpoint>,
    pub rounds: usize,
    pub lock_stale: Duration,
    pub lock_wait: Duration,
    pub key_type: csr::KeyType,
    pub http_timeout: Duration,
    /// What an issued or published certificate must chain to.
    pub trust: Trust,
    pub hook: Option<Hook>,
    /// External account binding, for registering an account.
    pub eab: eab::Source,
}

async fn resolve(name: &str, port: u16) -> Option<IpAddr> {
    let mut it = tokio::net::lookup_host((name, port)).await.ok()?;
    it.next().map(|a| a.ip())
}

pub async fn plan(a: &AcmeArgs) -> Result<Plan> {
    let pool = Pool::new(
        a.pool.vip.as_deref(),
        &a.pool.alt,
        a.pool.hosts_file.as_deref(),
    )?;
    let specs = pool.specs(a.xrootd);
    let mine = if a.xrootd {
        let me = match &a.node {
            Some(n) => lvs_shared::hostname::validate(n)
                .map_err(|p| usage("--node", p, "pass this node's hostname as listed in --alt"))?,
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default()
                .to_ascii_lowercase(),
        };
        specs.iter().find(|s| s.label == me).cloned()
    } else {
        specs.first().cloned()
    };
    let directory = match (&a.directory, a.staging) {
        (Some(u), _) => {
            if !u.starts_with("https://") {
                return Err(usage(
                    "--directory",
                    format!("`{u}` is not an https:// URL"),
                    "pass the ACME directory URL, e.g. https://acme-v02.api.letsencrypt.org/directory",
                ));
            }
            u.clone()
        }
        (None, true) => LetsEncrypt::Staging.url().to_string(),
        (None, false) => LetsEncrypt::Production.url().to_string(),
    };
    if let Some(r) = &a.root_ca {
        let ok = std::fs::read(r)
            .ok()
            .and_then(|b| verify::parse_chain(&b).ok())
            .is_some();
        if !ok {
            return Err(usage(
                format!("--root-ca {}", r.display()),
                "not a readable PEM certificate",
                "pass the PEM CA certificate that signed the ACME server's TLS certificate",
            ));
        }
    }
    if let Some(e) = &a.email {
        if !e.contains('@') || e.contains(char::is_whitespace) {
            return Err(usage(
                "--email",
                format!("`{e}` is not an address"),
                "pass user@example.org",
            ));
        }
    }
    let dur = |flag: &str, v: &str| {
        lvs_shared::duration::parse(v)
            .map_err(|p| usage(flag, p, "write a duration such as 30s, 10m"))
    };
    let lock_stale = dur("--lock-stale", &a.lock_stale)?;
    let lock_wait = dur("--lock-wait", &a.lock_wait)?;
    let http_timeout = dur("--http-timeout", &a.http_timeout)?;
    if http_timeout.is_zero() {
        return Err(usage(
            "--http-timeout",
            "must be more than 0",
            "write a duration such as 30s",
        ));
    }
    let hook_timeout = dur("--deploy-hook-timeout", &a.deploy_hook_timeout)?;
    let trust = Trust::load(a.issuer_ca.as_deref(), "--issuer-ca")?;
    let eab = eab::Source::from_args(a)?;
    if !account_file(&a.state_dir, &directory).exists() {
        // Registration comes: check the binding now, before anything is written.
        match &eab {
            eab::Source::File(f) => drop(eab::load_file(f)?),
            eab::Source::None => {
                if eab_required(a, &directory, http_timeout).await {
                    return Err(eab_missing(&directory));
                }
            }
            eab::Source::Flags(_) => {}
        }
    }
    let shared = match &a.shared_dir {
        Some(d) => d.clone(),
        None => a
            .webroot
            .parent()
            .map(|p| p.join("lvs-cert"))
            .ok_or_else(|| {
                usage(
                    "--shared-dir",
                    "cannot derive it from --webroot",
                    "pass --shared-dir DIR",
                )
            })?,
    };
    if shared.starts_with(&a.webroot) {
        return Err(usage(
            format!("--shared-dir {}", shared.display()),
            "is inside the webroot, which every node serves to the internet",
            "put it beside the webroot, e.g. /mnt/nfsshare/lvs-cert",
        ));
    }
    // Addresses for the self-check: flags first, then the resolver.
    let mut given: HashMap<String, IpAddr> = HashMap::new();
    for kv in &a.node_ip {
        let (n, ip) = kv
            .split_once('=')
            .and_then(|(n, ip)| Some((n.to_ascii_lowercase(), ip.parse::<IpAddr>().ok()?)))
            .ok_or_else(|| {
                usage(
                    format!("--node-ip {kv}"),
                    "not NAME=IP",
                    "write e.g. --node-ip n1.example.org=192.0.2.11",
                )
            })?;
        if !pool.nodes.contains(&n) {
            return Err(usage(
                format!("--node-ip {kv}"),
                format!("`{n}` is not one of the nodes"),
                "use a name given with --alt",
            ));
        }
        given.insert(n, ip);
    }
    let port = a.http_port;
    let vip_ip = match a.vip_ip {
        Some(ip) => ip,
        None => resolve(&pool.vip, port).await.ok_or_else(|| {
            usage(
                "--vip",
                format!("cannot resolve `{}`", pool.vip),
                "fix DNS or pass --vip-ip ADDRESS",
            )
        })?,
    };
    let mut nodes = Vec::new();
    for n in &pool.nodes {
        let ip = match given.get(n) {
            Some(ip) => *ip,
            None => resolve(n, port).await.ok_or_else(|| {
                usage(
                    "--alt",
                    format!("cannot resolve node `{n}` for the self-check"),
                    format!("fix DNS or pass --node-ip {n}=IP"),
                )
            })?,
        };
        nodes.push(Endpoint {
            label: format!("node {n}"),
            addr: SocketAddr::new(ip, port),
        });
    }
    let rounds = if a.self_check_rounds > 0 {
        a.self_check_rounds
    } else {
        (2 * nodes.len()).max(3)
    };
    Ok(Plan {
        pool,
        http_timeout,
        trust,
        hook: a.deploy_hook.clone().map(|cmd| Hook {
            cmd,
            timeout: hook_timeout,
        }),
        target: Target::new(a.cert.clone(), a.key.clone(), a.xrootd),
        vip: Endpoint {
            label: "the VIP".into(),
            addr: SocketAddr::new(vip_ip, port),
        },
        specs,
        mine,
        shared,
        directory,
        nodes,
        rounds,
        lock_stale,
        lock_wait,
        key_type: a.key_type,
        eab,
    })
}

/// The directory's `meta.externalAccountRequired` (RFC 8555 7.1.1). An unreadable
/// directory says nothing here: registration reports it.
async fn eab_required(a: &AcmeArgs, directory: &str, timeout: Duration) -> bool {
    match crate::http::get(a.root_ca.as_deref(), timeout, directory).await {
        Ok(body) => serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|d| d.pointer("/meta/externalAccountRequired")?.as_bool())
            .unwrap_or(false),
        Err(e) => {
            tracing::debug!("reading the directory's meta: {e:#}");
            false
        }
    }
}

fn eab_missing(directory: &str) -> anyhow::Error {
    usage(
        "--eab-file",
        format!("the CA at {directory} requires external account binding (EAB) to register an account, and none was given"),
        format!(
            "pass the key ID and HMAC key from the CA's ACME account page: {} \
             (TOML file, mode 0600: kid = \"...\" and hmac_key = \"...\"); docs/certs.md, EAB",
            eab::FLAGS
        ),
    )
}

/// The CA's refusal of a registration, in terms of the EAB flags.
fn explain_registration(
    e: &instant_acme::Error,
    directory: &str,
    given: Option<&eab::Eab>,
) -> Option<anyhow::Error> {
    let instant_acme::Error::Api(p) = e else {
        return None;
    };
    let t = p.r#type.as_deref().unwrap_or("");
    let detail = p.detail.as_deref().unwrap_or("");
    match given {
        None if t.ends_with(":externalAccountRequired") => Some(eab_missing(directory)),
        Some(b)
            if t.ends_with(":externalAccountRequired")
                || t.ends_with(":unauthorized")
                || t.ends_with(":malformed")
                || detail.to_ascii_lowercase().contains("external account") =>
        {
            Some(usage(
                &b.from,
                format!(
                    "the CA at {directory} refused the external account binding for key ID `{}`: {}",
                    b.kid,
                    describe(e)
                ),
                "copy the key ID and HMAC key again from the CA's ACME account page (the HMAC \
                 key is base64url); a key that was already used may be spent: ask the CA for a new one",
            ))
        }
        _ => None,
    }
}

pub(crate) fn create_private_dir(d: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d)
        .with_context(|| format!("creating {}", d.display()))
}

pub fn account_path(a: &AcmeArgs, p: &Plan) -> PathBuf {
    account_file(&a.state_dir, &p.directory)
}

fn account_file(state_dir: &Path, directory: &str) -> PathBuf {
    // One account per directory URL; FNV-1a keeps the name short and stable.
    let h = directory.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    state_dir.join(format!("account-{h:016x}.json"))
}

fn builder(a: &AcmeArgs, p: &Plan) -> Result<instant_acme::AccountBuilder> {
    crate::http::builder(a.root_ca.as_deref(), p.http_timeout)
}

/// Loads the persisted account, or registers one (with the external account binding, if
/// any: a stored account is bound already) and saves it (0600).
pub async fn account(a: &AcmeArgs, p: &Plan) -> Result<Account> {
    let path = account_path(a, p);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bad = || {
            format!(
                "{} is not an account file; remove it to register anew",
                path.display()
            )
        };
        let _: AccountCredentials = serde_json::from_str(&text).with_context(bad)?;
        return retrying!(
            format!("loading the account from {}", p.directory),
            builder(a, p)?.from_credentials(serde_json::from_str(&text).with_context(bad)?)
        );
    }
    let contact = a.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(|s| s.as_str()).collect();
    let new = NewAccount {
        contact: &contacts,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let binding = p.eab.load()?;
    let key = binding.as_ref().map(|b| b.key());
    let (acct, creds) = retrying!(
        format!("registering an account at {}", p.directory),
        builder(a, p)?.create(&new, p.directory.clone(), key.as_ref()),
        |e: &instant_acme::Error| explain_registration(e, &p.directory, binding.as_ref())
    )?;
    create_private_dir(&a.state_dir)?;
    lvs_shared::atomic::write(&path, &serde_json::to_vec(&creds)?, 0o600)
        .with_context(|| format!("saving the account to {}", path.display()))?;
    match &binding {
        Some(b) => println!(
            "registered an ACME account bound to the CA's key ID `{}` (from {}), saved in {}",
            b.kid,
            b.from,
            path.display()
        ),
        None => println!("registered an ACME account, saved in {}", path.display()),
    }
    Ok(acct)
}

/// Asks the CA's ARI endpoint whether `cert` should be renewed now. None: no ARI, no
/// account yet, or an error (the 1/3-lifetime rule then decides alone).
pub async fn ari_says_due(a: &AcmeArgs, p: &Plan, cert: &verify::CertInfo) -> Option<bool> {
    if !account_path(a, p).exists() {
        return None;
    }
    let acct = account(a, p).await.ok()?;
    let der = rustls_pki_types::CertificateDer::from(cert.der.clone());
    let id = instant_acme::CertificateIdentifier::try_from(&der).ok()?;
    match acct.renewal_info(&id).await {
        Ok((info, _)) => Some(time::OffsetDateTime::now_utc() >= info.suggested_window.start),
        Err(e) => {
            tracing::debug!("no renewal info: {}", describe(&e));
            None
        }
    }
}

/// One order: authorizations, tokens, self-check, validation, CSR, certificate.
pub async fn issue(
    acct: &Account,
    p: &Plan,
    s: &CertSpec,
    chdir: &crate::sharedfs::Dir,
    prev: Option<&verify::CertInfo>,
) -> Result<(String, String, verify::CertInfo)> {
    let ids: Vec<Identifier> = s.names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let what = format!("new order for {}", s.names.join(", "));
    let replaces = prev.and_then(|c| {
        let der = rustls_pki_types::CertificateDer::from(c.der.clone());
        instant_acme::CertificateIdentifier::try_from(&der)
            .ok()
            .map(|i| i.into_owned())
    });
    let with_ari = match replaces {
        // Unsupported (no ARI, e.g. Pebble) or refused (already replaced): plain order.
        Some(id) => match acct.new_order(&NewOrder::new(&ids).replaces(id)).await {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::info!("order without ARI `replaces`: {}", describe(&e));
                None
            }
        },
        None => None,
    };
    let mut order = match with_ari {
        Some(o) => o,
        None => retrying!(what, acct.new_order(&NewOrder::new(&ids)))?,
    };
    tracing::info!("order {}", order.url());

    // Pass 1: read every authorization (cached by instant-acme, so a retry after a
    // transient error only fetches what is missing).
    let mut challenges: Vec<Challenge> = Vec::new();
    let mut attempt = 0;
    loop {
        challenges.clear();
        let mut failed = None;
        let mut it = order.authorizations();
        while let Some(r) = it.next().await {
            let mut authz = match r {
                Ok(a) => a,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            match authz.status {
                AuthorizationStatus::Valid => continue, // reused authorization
                AuthorizationStatus::Pending => {}
                st => bail!("authorization for {} is {st:?}", authz.identifier()),
            }
            let name = authz.identifier().to_string();
            let ch = authz
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| anyhow!("the CA offers no http-01 challenge for {name}"))?;
            challenges.push(Challenge {
                name,
                token: ch.token.clone(),
                key_auth: ch.key_authorization().as_str().to_string(),
            });
        }
        match failed {
            None => break,
            Some(e) if attempt + 1 < attempts(&e) && transient(&e) => attempt += 1,
            Some(e) => bail!("reading authorizations: {}", describe(&e)),
        }
    }

    let mut tokens = webroot::Tokens::new(chdir.clone());
    for c in &challenges {
        tokens.add(&c.token, &c.key_auth)?;
    }
    tracing::info!("{} tokens written", challenges.len());
    if !challenges.is_empty() {
        selfcheck::run(&challenges, &p.vip, &p.nodes, p.rounds).await?;
    }

    // Pass 2: tell the CA to validate (states are cached: no refetch).
    let mut it = order.authorizations();
    while let Some(r) = it.next().await {
        let mut authz = r.map_err(|e| anyhow!("authorization: {}", describe(&e)))?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        let name = authz.identifier().to_string();
        let mut ch = authz
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| anyhow!("no http-01 for {name}"))?;
        retrying!(format!("challenge ready for {name}"), ch.set_ready())?;
    }
    // Start polling fast (a CA validates in well under a second when reachable) and back
    // off; a Retry-After from the CA overrides this.
    let policy = RetryPolicy::new()
        .initial_delay(Duration::from_millis(50))
        .backoff(2.0)
        .timeout(Duration::from_secs(120));
    tracing::info!("challenges ready");
    let status = retrying!("waiting for validation", order.poll_ready(&policy))?;
    tracing::info!("order {status:?}");
    if status != OrderStatus::Ready {
        let mut why = Vec::new();
        let mut it = order.authorizations();
        while let Some(Ok(mut a)) = it.next().await {
            let name = a.identifier().to_string();
            if let Ok(st) = a.refresh().await {
                for c in &st.challenges {
                    if let Some(e) = &c.error {
                        why.push(format!(
                            "{name}: {}",
                            e.detail.as_deref().unwrap_or("failed")
                        ));
                    }
                }
            }
        }
        bail!("the order became {status:?}: {}", why.join("; "));
    }

    let key = csr::generate_key(p.key_type)?;
    let (der, _) = csr::make_csr(
        &s.names,
        &Subject::default(),
        &key,
        csr::Purposes::CaProfile,
    )?;
    retrying!("finalizing the order", order.finalize_csr(&der))?;
    let chain = retrying!(
        "downloading the certificate",
        order.poll_certificate(&policy)
    )?;
    drop(tokens);
    tracing::info!("certificate downloaded");
    let key_pem = key.serialize_pem();
    let leaf = verify::check_pair(chain.as_bytes(), &key_pem, &s.names)
        .and_then(|l| verify::check_trust(chain.as_bytes(), &s.names, &p.trust).map(|_| l))
        .context("the CA's certificate fails verification; nothing was published or installed")?;
    Ok((chain, key_pem, leaf))
}
