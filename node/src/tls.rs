//! The federation CA and the mutual-TLS configurations every QUIC link uses.
//!
//! One CA (`ca.pem` + `ca.key`, made by [`ca_init`]) issues one certificate per node
//! ([`ca_issue`]). A node certificate names its node in exactly one DNS SubjectAlternativeName,
//! `NodeId::dns_name()` (`s0042.130102.1301.13.mingchu`), carries both the serverAuth and the
//! clientAuth EKU (every node dials its parent and accepts its children), and nothing else names
//! it: [`node_id_from_cert`] never reads the CN or a URI SAN.
//!
//! [`server_config`] requires a client certificate from the CA; [`client_config`] presents the
//! node's certificate and checks the server against the CA, under the server name the dialer
//! passes to quinn (the expected peer's DNS name), so reaching the wrong node fails the handshake.
//!
//! The same CA also issues the web console's server certificate ([`ca_issue_web`]: `web.pem` +
//! `web.key`, serverAuth only, the console's host names and IP addresses as SANs), which
//! [`web_server_config`] serves over HTTPS. Browsers trust it once the CA certificate is installed.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, NameConstraints, SanType,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use topology::NodeId;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The ALPN protocol every mingchu link negotiates.
pub const ALPN: &[u8] = b"mingchu/1";

/// Common name of the federation CA.
pub const CA_COMMON_NAME: &str = "mingchu federation CA";

/// File names inside the CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";
/// A delegated CA's directory (a city's or a county's, made by [`ca_delegate`]): `ca.pem` is the
/// federation root's certificate (the one trust anchor; its key stays at the province),
/// `sub-ca.pem` the delegated CA's certificate followed by its issuers' up to the root, and
/// `sub-ca.key` its key.
pub const SUB_CA_CERT_FILE: &str = "sub-ca.pem";
pub const SUB_CA_KEY_FILE: &str = "sub-ca.key";
/// Sub-directory holding the issued node certificates (`nodes/<id>.pem`, `nodes/<id>.key`).
pub const NODES_DIR: &str = "nodes";
/// The web console's certificate and key inside the certificate directory.
pub const WEB_CERT_FILE: &str = "web.pem";
pub const WEB_KEY_FILE: &str = "web.key";

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// Validity of the CA certificate (~10 years).
const CA_VALIDITY: Duration = Duration::from_secs(3_652 * 24 * 60 * 60);
/// Validity of a node certificate (~2 years).
const NODE_VALIDITY: Duration = Duration::from_secs(731 * 24 * 60 * 60);
/// Certificates start one day in the past so that a node whose clock is a little behind accepts them.
const BACKDATE: Duration = DAY;

/// Bounds shared by the server and the client side of every connection.
const MAX_BIDI_STREAMS: u32 = 8;
const MAX_UNI_STREAMS: u32 = 16;
const STREAM_RECEIVE_WINDOW: u32 = 256 * 1024;
const RECEIVE_WINDOW: u32 = 1024 * 1024;
const SEND_WINDOW: u64 = 1024 * 1024;
const MAX_IDLE_TIMEOUT_MS: u32 = 60_000;
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// Why a CA or certificate operation failed. Never a panic: bad files give one of these.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("a CA already exists at {}; refusing to overwrite it", path.display())]
    CaExists { path: PathBuf },
    #[error("{}: no usable PEM {what}: {reason}", path.display())]
    Pem { path: PathBuf, what: &'static str, reason: String },
    #[error("{}: not a CA certificate", path.display())]
    NotCa { path: PathBuf },
    #[error("{}: the private key does not match the certificate", path.display())]
    KeyMismatch { path: PathBuf },
    #[error("malformed certificate: {0}")]
    Certificate(String),
    #[error("certificate identity refused: {0}")]
    Identity(String),
    #[error("certificate names {found}, expected {expected}")]
    WrongNode { found: NodeId, expected: NodeId },
    #[error("{}: certificate does not verify against the CA: {reason}", path.display())]
    Untrusted { path: PathBuf, reason: String },
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("TLS configuration failed: {0}")]
    Config(String),
    /// A host a web certificate cannot name (the message is Chinese and English).
    #[error("{0}")]
    BadHost(String),
    /// A delegated CA asked to sign for a node outside its subtree (Chinese and English).
    #[error(
        "{issuer} 的证书机构只能为本辖区（{issuer} 及其下级）签发，不能为 {node} 签发（a CA delegated to {issuer} cannot sign for {node}）"
    )]
    OutOfScope { issuer: NodeId, node: NodeId },
    /// A CA asked to delegate to a node that cannot hold one (Chinese and English).
    #[error("{0}")]
    Delegation(String),
    /// A private key that others than its owner may read or write: the node does not start.
    #[error(
        "{}：私钥文件的权限是 {mode:04o}，除所有者外还有人能读写它。请执行 chmod 600 {} 后再启动（a private key must be readable by its owner only）",
        path.display(),
        path.display()
    )]
    KeyExposed { path: PathBuf, mode: u32 },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io { path: path.to_path_buf(), source }
}

fn gen_err(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

fn config_err(e: impl fmt::Display) -> TlsError {
    TlsError::Config(e.to_string())
}

/// Path of a node's certificate (`dir/nodes/<id>.pem`) and key (`dir/nodes/<id>.key`).
pub fn node_paths(dir: &Path, node: NodeId) -> (PathBuf, PathBuf) {
    let nodes = dir.join(NODES_DIR);
    (nodes.join(format!("{node}.pem")), nodes.join(format!("{node}.key")))
}

/// Sets `params` valid from a day ago for `validity`. rcgen exposes no clock and `time` is not a
/// direct dependency, so "now" is the epoch (`date_time_ymd`) plus the system clock's offset.
fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
}

/// The CA's parameters. The same function rebuilds them when issuing, so the issuer name written
/// into node certificates is byte-identical to the CA's subject.
fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Creates `dir/ca.pem` and `dir/ca.key` (mode 0600). Refuses to touch an existing CA.
pub fn ca_init(dir: &Path) -> Result<(), TlsError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    for path in [&cert_path, &key_path] {
        if path.exists() {
            return Err(TlsError::CaExists { path: path.clone() });
        }
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;

    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = ca_params(CA_COMMON_NAME);
    set_validity(&mut params, CA_VALIDITY);
    let cert = params.self_signed(&key).map_err(gen_err)?;

    // The key first, with create_new: two concurrent `ca init` cannot both succeed.
    write_new(&key_path, key.serialize_pem().as_bytes(), true)?;
    if let Err(e) = write_new(&cert_path, cert.pem().as_bytes(), false) {
        let _ = fs::remove_file(&key_path);
        return Err(e);
    }
    Ok(())
}

/// Creates `path`, failing if it exists; `secret` files get mode 0600 from the start.
fn write_new(path: &Path, contents: &[u8], secret: bool) -> Result<(), TlsError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    set_mode(&mut options, secret);
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            TlsError::CaExists { path: path.to_path_buf() }
        } else {
            TlsError::Io { path: path.to_path_buf(), source }
        }
    })?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(io_err(path))
}

/// Writes `path` atomically (temporary file + rename), replacing any previous file.
fn write_replace(path: &Path, contents: &[u8], secret: bool) -> Result<(), TlsError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(TlsError::Io { path: tmp, source }),
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    set_mode(&mut options, secret);
    let mut file = options.open(&tmp).map_err(io_err(&tmp))?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(unix)]
fn set_mode(options: &mut fs::OpenOptions, secret: bool) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(if secret { 0o600 } else { 0o644 });
}

#[cfg(not(unix))]
fn set_mode(_options: &mut fs::OpenOptions, _secret: bool) {}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(io_err(path))
}

fn read_cert(path: &Path) -> Result<CertificateDer<'static>, TlsError> {
    CertificateDer::from_pem_slice(&read_file(path)?).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        what: "certificate",
        reason: e.to_string(),
    })
}

/// Refuses a private key file that anyone but its owner may read or write (on Unix).
pub fn check_private(path: &Path) -> Result<(), TlsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map_err(io_err(path))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TlsError::KeyExposed { path: path.to_path_buf(), mode });
        }
    }
    Ok(())
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    check_private(path)?;
    PrivateKeyDer::from_pem_slice(&read_file(path)?).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        what: "private key",
        reason: e.to_string(),
    })
}

fn parse_cert<'a>(der: &'a [u8]) -> Result<X509Certificate<'a>, TlsError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| TlsError::Certificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(TlsError::Certificate(format!("{} trailing bytes after the certificate", rest.len())));
    }
    Ok(cert)
}

/// The CA loaded for issuing: its parameters rebuilt from the certificate, and its key.
struct LoadedCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's subject as encoded in its certificate; issued certificates must carry it verbatim.
    subject_raw: Vec<u8>,
    /// A delegated CA's subtree (`None`: the federation root, which may sign for any node).
    scope: Option<NodeId>,
    /// A delegated CA's own certificate and its issuers' (PEM), sent after every certificate it
    /// issues so that peers can build the chain up to the root.
    chain_pem: String,
}

impl LoadedCa {
    fn check_scope(&self, node: NodeId) -> Result<(), TlsError> {
        match self.scope {
            Some(issuer) if !issuer.is_ancestor_or_self_of(node) => Err(TlsError::OutOfScope { issuer, node }),
            _ => Ok(()),
        }
    }
}

/// Reads a PEM file's certificates in order; an empty or broken file is an error naming it.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |reason: String| TlsError::Pem { path: path.to_path_buf(), what: "certificate", reason };
    let chain = CertificateDer::pem_slice_iter(&read_file(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if chain.is_empty() {
        return Err(pem("no certificate in the file".into()));
    }
    Ok(chain)
}

/// The subtree a delegated CA certificate is constrained to: its one permitted DNS name.
fn delegated_scope(path: &Path, cert: &X509Certificate<'_>) -> Result<NodeId, TlsError> {
    let bad = |why: &str| TlsError::Certificate(format!("{}: {why}", path.display()));
    let constraints = cert
        .name_constraints()
        .map_err(|_| bad("malformed name constraints"))?
        .ok_or_else(|| bad("a delegated CA without name constraints"))?;
    let permitted = constraints.value.permitted_subtrees.as_deref().unwrap_or_default();
    match permitted {
        [one] => match &one.base {
            GeneralName::DNSName(name) => NodeId::from_dns_name(name).map_err(|e| bad(&e.to_string())),
            _ => Err(bad("the permitted subtree is not a DNS name")),
        },
        _ => Err(bad("a delegated CA names exactly one permitted subtree")),
    }
}

/// The CA in `dir` for issuing: the federation root (`ca.key`) or a delegated CA (`sub-ca.key`).
fn load_ca(dir: &Path) -> Result<LoadedCa, TlsError> {
    if dir.join(CA_KEY_FILE).exists() || !dir.join(SUB_CA_KEY_FILE).exists() {
        return load_ca_files(&dir.join(CA_CERT_FILE), &dir.join(CA_KEY_FILE), false);
    }
    load_ca_files(&dir.join(SUB_CA_CERT_FILE), &dir.join(SUB_CA_KEY_FILE), true)
}

fn load_ca_files(cert_path: &Path, key_path: &Path, delegated: bool) -> Result<LoadedCa, TlsError> {
    let cert_path = cert_path.to_path_buf();
    let key_path = key_path.to_path_buf();
    let chain = if delegated { read_chain(&cert_path)? } else { vec![read_cert(&cert_path)?] };
    let der = chain[0].clone();
    let cert = parse_cert(&der)?;
    let not_ca = || TlsError::NotCa { path: cert_path.clone() };
    let is_ca = cert.basic_constraints().map_err(|_| not_ca())?.is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(not_ca());
    }
    // Only CAs made by `ca_init` are supported: a subject that is a single common name.
    let mut names = cert.subject().iter_attributes();
    let cn = match (names.next(), names.next()) {
        (Some(attr), None) if *attr.attr_type() == x509_parser::oid_registry::OID_X509_COMMON_NAME => attr
            .as_str()
            .map_err(|_| TlsError::Certificate(format!("{}: CA common name is not a string", cert_path.display())))?,
        _ => {
            return Err(TlsError::Certificate(format!(
                "{}: CA subject must be a single common name",
                cert_path.display()
            )));
        }
    };
    check_private(&key_path)?;
    let key_pem = String::from_utf8(read_file(&key_path)?).map_err(|_| TlsError::Pem {
        path: key_path.clone(),
        what: "private key",
        reason: "not UTF-8 text".into(),
    })?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| TlsError::Pem {
        path: key_path.clone(),
        what: "private key",
        reason: e.to_string(),
    })?;
    if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
        return Err(TlsError::KeyMismatch { path: key_path });
    }
    let (scope, chain_pem) = if delegated {
        let pem = String::from_utf8(read_file(&cert_path)?).map_err(|_| TlsError::Pem {
            path: cert_path.clone(),
            what: "certificate",
            reason: "not UTF-8 text".into(),
        })?;
        let pem = if pem.ends_with('\n') { pem } else { pem + "\n" };
        (Some(delegated_scope(&cert_path, &cert)?), pem)
    } else {
        (None, String::new())
    };
    Ok(LoadedCa {
        issuer: Issuer::new(ca_params(cn), key),
        subject_raw: cert.subject().as_raw().to_vec(),
        scope,
        chain_pem,
    })
}

/// Issues (or re-issues, overwriting) the certificate of `node`: `dir/nodes/<id>.pem` (the leaf)
/// and `dir/nodes/<id>.key` (mode 0600). Returns the two paths.
pub fn ca_issue(dir: &Path, node: NodeId) -> Result<(PathBuf, PathBuf), TlsError> {
    ca_issue_for(dir, node, NODE_VALIDITY)
}

/// [`ca_issue`] with another validity than the default two years (a short-lived certificate).
pub fn ca_issue_for(dir: &Path, node: NodeId, validity: Duration) -> Result<(PathBuf, PathBuf), TlsError> {
    let ca = load_ca(dir)?;
    ca.check_scope(node)?;
    let (cert, key) = sign_leaf(&ca, node, validity)?;
    let nodes = dir.join(NODES_DIR);
    fs::create_dir_all(&nodes).map_err(io_err(&nodes))?;
    let (cert_path, key_path) = node_paths(dir, node);
    write_replace(&key_path, key.serialize_pem().as_bytes(), true)?;
    // A delegated CA's certificates follow the leaf: the chain a peer needs to reach the root.
    write_replace(&cert_path, (cert.pem() + &ca.chain_pem).as_bytes(), false)?;
    Ok((cert_path, key_path))
}

/// A certificate's fingerprint as revocations name it: the SHA-256 of its DER, lowercase hex.
pub fn cert_fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The fingerprint of the first certificate in a PEM file (a node's certificate).
pub fn cert_file_fingerprint(path: &Path) -> Result<(String, NodeId), TlsError> {
    let der = read_cert(path)?;
    Ok((cert_fingerprint(&der), node_id_from_cert(&der)?))
}

/// Signs a certificate for `node` with the CA in `dir` *without* checking the CA's subtree: what
/// a stolen delegated key (or a patched binary) could make. No command offers it; the tests use
/// it to show that every peer refuses such a certificate. Returns the chain's PEM and the key's.
#[doc(hidden)]
pub fn sign_ignoring_scope(dir: &Path, node: NodeId) -> Result<(String, String), TlsError> {
    let ca = load_ca(dir)?;
    let (cert, key) = sign_leaf(&ca, node, NODE_VALIDITY)?;
    Ok((cert.pem() + &ca.chain_pem, key.serialize_pem()))
}

/// A node certificate for `node` signed by `ca` (no scope check: the callers do it).
fn sign_leaf(ca: &LoadedCa, node: NodeId, validity: Duration) -> Result<(rcgen::Certificate, KeyPair), TlsError> {
    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node.to_string());
    params.distinguished_name = dn;
    let dns = node.dns_name().try_into().map_err(gen_err)?;
    params.subject_alt_names = vec![SanType::DnsName(dns)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, validity);
    let cert = params.signed_by(&key, &ca.issuer).map_err(gen_err)?;

    // Belt and braces: the issuer name must match the CA's subject byte for byte, or no verifier
    // would ever chain the certificate to the CA.
    if parse_cert(cert.der())?.issuer().as_raw() != ca.subject_raw.as_slice() {
        return Err(TlsError::Generate("the issued certificate's issuer does not match the CA subject".into()));
    }
    Ok((cert, key))
}

/// A CA certificate for `node` signed by `ca`, allowed `path_len` more CAs below it and
/// constrained to `permitted` (no checks: the callers do them).
fn sign_sub_ca(
    ca: &LoadedCa,
    node: NodeId,
    path_len: u8,
    permitted: Option<String>,
) -> Result<(rcgen::Certificate, KeyPair), TlsError> {
    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = ca_params(&format!("mingchu CA {node}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.name_constraints = permitted.map(|name| NameConstraints {
        permitted_subtrees: vec![rcgen::GeneralSubtree::DnsName(name)],
        excluded_subtrees: Vec::new(),
    });
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, CA_VALIDITY);
    let cert = params.signed_by(&key, &ca.issuer).map_err(gen_err)?;
    if parse_cert(cert.der())?.issuer().as_raw() != ca.subject_raw.as_slice() {
        return Err(TlsError::Generate("the delegated CA's issuer does not match the issuing CA's subject".into()));
    }
    Ok((cert, key))
}

/// Makes a CA for `node` (a city or a county) signed by the CA in `issuer_dir` (the federation
/// root, or a city's delegated CA for one of its counties), name-constrained to the node's
/// subtree: every peer's verifier (webpki) then refuses any certificate it signs for a name
/// outside that subtree, whatever the CA's holder does. A city's CA may delegate once more (to
/// its counties); a county's may not. Writes `out/ca.pem` (the root, the trust anchor),
/// `out/sub-ca.pem` (the new CA and its issuers) and `out/sub-ca.key` (mode 0600); refuses to
/// overwrite an existing delegated CA. Returns the path of `sub-ca.pem`.
pub fn ca_delegate(issuer_dir: &Path, node: NodeId, out: &Path) -> Result<PathBuf, TlsError> {
    let path_len = match node.tier() {
        topology::Tier::City => 1,
        topology::Tier::County => 0,
        _ => {
            return Err(TlsError::Delegation(format!(
                "只有市级和县级单位可以持有下级证书机构，{node} 是{}（only a city or a county can hold a delegated CA）",
                node.tier().zh()
            )));
        }
    };
    let ca = load_ca(issuer_dir)?;
    if ca.scope == Some(node) {
        return Err(TlsError::Delegation(format!(
            "{node} 的证书机构不能再委托给自己（a delegated CA cannot delegate to its own node）"
        )));
    }
    ca.check_scope(node)?;
    let root = read_file(&issuer_dir.join(CA_CERT_FILE))?;
    let (cert, key) = sign_sub_ca(&ca, node, path_len, Some(node.dns_name()))?;

    fs::create_dir_all(out).map_err(io_err(out))?;
    let (cert_path, key_path) = (out.join(SUB_CA_CERT_FILE), out.join(SUB_CA_KEY_FILE));
    write_new(&key_path, key.serialize_pem().as_bytes(), true)?;
    let written = write_new(&cert_path, (cert.pem() + &ca.chain_pem).as_bytes(), false)
        .and_then(|()| write_replace(&out.join(CA_CERT_FILE), &root, false));
    if let Err(e) = written {
        let _ = fs::remove_file(&key_path);
        let _ = fs::remove_file(&cert_path);
        return Err(e);
    }
    Ok(cert_path)
}

/// Path of the web console's certificate (`dir/web.pem`) and key (`dir/web.key`).
pub fn web_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join(WEB_CERT_FILE), dir.join(WEB_KEY_FILE))
}

/// A name a browser reaches the console by: a DNS name (`mingchu.luqu.edu.cn`, `console`) or an IP
/// address (`192.168.10.5`, `::1`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WebHost {
    Dns(String),
    Ip(std::net::IpAddr),
}

impl fmt::Display for WebHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebHost::Dns(n) => f.write_str(n),
            WebHost::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl std::str::FromStr for WebHost {
    type Err = TlsError;

    /// An IP address (IPv6 with or without brackets), or a DNS name: letters, digits and `-` in
    /// dot-separated labels of 1–63 characters, 253 at most, no wildcard; compared lowercase.
    fn from_str(given: &str) -> Result<WebHost, TlsError> {
        let bad = |zh: &str, en: &str| {
            TlsError::BadHost(format!(
                "“{given}”不是有效的主机名或 IP 地址：{zh} / `{given}` is not a valid host name or IP address: {en}"
            ))
        };
        let host = given.trim();
        let unbracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if let Ok(ip) = unbracketed.parse::<std::net::IpAddr>() {
            if ip.is_unspecified() {
                return Err(bad("这是“任意地址”，浏览器无法用它访问", "the unspecified address names no host"));
            }
            return Ok(WebHost::Ip(ip));
        }
        let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if name.is_empty() {
            return Err(bad("不能为空", "empty"));
        }
        if name.contains('*') {
            return Err(bad("不签发通配符证书", "wildcards are not issued"));
        }
        if name.contains(':') {
            return Err(bad("只写主机名，不带端口或协议", "give the host alone, without port or scheme"));
        }
        if name.len() > 253 {
            return Err(bad("超过 253 个字符", "longer than 253 characters"));
        }
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(bad("每一段须为 1–63 个字符", "each label needs 1 to 63 characters"));
            }
            if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(bad(
                    "只能含英文字母、数字、连字符和点（中文域名请写成 xn-- 形式）",
                    "only letters, digits, hyphens and dots (write an internationalised name as xn--)",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(bad("一段不能以连字符开头或结尾", "a label cannot start or end with a hyphen"));
            }
        }
        if name.rsplit('.').next().is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit())) {
            return Err(bad("既不是 IP 地址，也不是主机名", "neither an IP address nor a host name"));
        }
        Ok(WebHost::Dns(name))
    }
}

/// Issues (or re-issues, overwriting) the web console's server certificate for `hosts`:
/// `dir/web.pem` (the leaf) and `dir/web.key` (mode 0600), signed by the CA in `dir`. Each host is
/// a SubjectAlternativeName (DNS or IP); the EKU is serverAuth only, so it cannot pose as a node.
pub fn ca_issue_web(dir: &Path, hosts: &[WebHost]) -> Result<(PathBuf, PathBuf), TlsError> {
    let mut hosts = hosts.to_vec();
    hosts.sort();
    hosts.dedup();
    let Some(first) = hosts.first() else {
        return Err(TlsError::BadHost(
            "至少要给出一个 --host（浏览器访问控制台所用的主机名或 IP） / give at least one --host".into(),
        ));
    };
    let ca = load_ca(dir)?;
    if let Some(scope) = ca.scope {
        // Its name constraints permit node names only: browsers would refuse a console host name.
        return Err(TlsError::Delegation(format!(
            "{} 是 {scope} 的下级证书机构，只能签发节点证书；控制台网页证书请用省级联盟 CA 签发（a delegated CA issues node certificates only）",
            dir.display()
        )));
    }
    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, first.to_string());
    params.distinguished_name = dn;
    params.subject_alt_names = hosts
        .iter()
        .map(|h| match h {
            WebHost::Dns(n) => n.clone().try_into().map(SanType::DnsName).map_err(gen_err),
            WebHost::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        })
        .collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, NODE_VALIDITY);
    let cert = params.signed_by(&key, &ca.issuer).map_err(gen_err)?;
    if parse_cert(cert.der())?.issuer().as_raw() != ca.subject_raw.as_slice() {
        return Err(TlsError::Generate("the issued certificate's issuer does not match the CA subject".into()));
    }
    let (cert_path, key_path) = web_paths(dir);
    write_replace(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_replace(&cert_path, cert.pem().as_bytes(), false)?;
    Ok((cert_path, key_path))
}

/// The console's HTTPS configuration: the certificate chain in `cert` (PEM, leaf first) and the
/// key in `key`, which must match. TLS 1.3 and 1.2 (ring's suites), ALPN `http/1.1`; no client
/// certificate (people sign in with a password).
pub fn web_server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let pem = read_file(cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| TlsError::Pem {
        path: cert.to_path_buf(),
        what: "certificate",
        reason: e.to_string(),
    })?;
    if chain.is_empty() {
        return Err(TlsError::Pem { path: cert.to_path_buf(), what: "certificate", reason: "none in the file".into() });
    }
    parse_cert(&chain[0])?;
    let key_der = read_key(key)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(config_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch { path: key.to_path_buf() },
            other => TlsError::Pem { path: key.to_path_buf(), what: "private key", reason: other.to_string() },
        })?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// The node identity a certificate carries: its single SubjectAlternativeName DNS name, parsed with
/// `NodeId::from_dns_name`. Never the CN, never a URI SAN; no name, several DNS names or a
/// wildcard are refused. The certificate is only parsed here: chain checks are the verifier's job.
pub fn node_id_from_cert(der: &[u8]) -> Result<NodeId, TlsError> {
    let cert = parse_cert(der)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::Identity(format!("unreadable SubjectAlternativeName: {e}")))?
        .ok_or_else(|| {
            TlsError::Identity("no SubjectAlternativeName: the node must be named by one DNS name".into())
        })?;
    let mut dns_names = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(n) => dns_names.push(*n),
            GeneralName::Invalid(..) => {
                return Err(TlsError::Identity("a SubjectAlternativeName entry is malformed".into()));
            }
            _ => {}
        }
    }
    let name = match dns_names.as_slice() {
        [name] => *name,
        [] => {
            return Err(TlsError::Identity("no DNS name in SubjectAlternativeName".into()));
        }
        many => {
            return Err(TlsError::Identity(format!(
                "{} DNS names ({}); a node certificate carries exactly one",
                many.len(),
                many.join(", ")
            )));
        }
    };
    if name.contains('*') {
        return Err(TlsError::Identity(format!("wildcard name `{name}` refused")));
    }
    NodeId::from_dns_name(name).map_err(|e| TlsError::Identity(e.to_string()))
}

/// One node's TLS material: the CA certificate (the only trust anchor), the node's leaf
/// certificate and its private key.
pub struct NodeCredentials {
    pub(crate) node: NodeId,
    pub(crate) ca: CertificateDer<'static>,
    pub(crate) cert: CertificateDer<'static>,
    /// The delegated CAs between the leaf and the root, nearest first (empty when the root
    /// signed the leaf itself).
    pub(crate) intermediates: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

impl fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCredentials").field("node", &self.node).finish_non_exhaustive()
    }
}

impl Clone for NodeCredentials {
    fn clone(&self) -> Self {
        NodeCredentials {
            node: self.node,
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            intermediates: self.intermediates.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl NodeCredentials {
    /// Reads `dir/ca.pem`, `dir/nodes/<node>.pem` and `dir/nodes/<node>.key`, and checks that the
    /// certificate names exactly `node`, verifies against the CA (as a server and as a client,
    /// now) and matches the key: a node cannot be started with another node's certificate.
    pub fn load(dir: &Path, node: NodeId) -> Result<NodeCredentials, TlsError> {
        let (cert_path, key_path) = node_paths(dir, node);
        let ca = read_cert(&dir.join(CA_CERT_FILE))?;
        let mut chain = read_chain(&cert_path)?;
        let cert = chain.remove(0);
        let intermediates = chain;
        let key = read_key(&key_path)?;

        let found = node_id_from_cert(&cert)?;
        if found != node {
            return Err(TlsError::WrongNode { found, expected: node });
        }

        let provider = provider();
        rustls::sign::CertifiedKey::from_der(vec![cert.clone()], key.clone_key(), &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch { path: key_path.clone() },
            other => TlsError::Pem { path: key_path.clone(), what: "private key", reason: other.to_string() },
        })?;

        let untrusted = |reason: String| TlsError::Untrusted { path: cert_path.clone(), reason };
        let roots = roots(&ca)?;
        let now = UnixTime::now();
        let server_name = ServerName::try_from(node.dns_name()).map_err(|e| untrusted(e.to_string()))?;
        WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(config_err)?
            .verify_server_cert(&cert, &intermediates, &server_name, &[], now)
            .map_err(|e| untrusted(e.to_string()))?;
        WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(config_err)?
            .verify_client_cert(&cert, &intermediates, now)
            .map_err(|e| untrusted(e.to_string()))?;

        Ok(NodeCredentials { node, ca, cert, intermediates, key })
    }

    /// The node these credentials belong to.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The CA certificate (DER).
    pub fn ca_cert(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// The leaf and the delegated CAs above it: what the node presents in every handshake.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        std::iter::once(self.cert.clone()).chain(self.intermediates.iter().cloned()).collect()
    }

    /// The node's leaf certificate (DER).
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// See [`server_config`].
    pub fn server_config(&self) -> Result<quinn::ServerConfig, TlsError> {
        server_config(self)
    }

    /// See [`client_config`].
    pub fn client_config(&self) -> Result<quinn::ClientConfig, TlsError> {
        client_config(self)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone())
        .map_err(|e| TlsError::Certificate(format!("CA certificate unusable as a trust anchor: {e}")))?;
    Ok(Arc::new(roots))
}

/// The bounded transport parameters shared by both sides of every connection: a parent with
/// hundreds of children must not let one of them claim unbounded memory or streams.
pub fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(MAX_BIDI_STREAMS))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(MAX_UNI_STREAMS))
        .stream_receive_window(quinn::VarInt::from_u32(STREAM_RECEIVE_WINDOW))
        .receive_window(quinn::VarInt::from_u32(RECEIVE_WINDOW))
        .send_window(SEND_WINDOW)
        .max_idle_timeout(Some(quinn::VarInt::from_u32(MAX_IDLE_TIMEOUT_MS).into()))
        .keep_alive_interval(Some(KEEP_ALIVE_INTERVAL));
    Arc::new(t)
}

/// The accepting side: TLS 1.3 only, ALPN `mingchu/1`, a client certificate from the CA required.
/// The client's node id is not checked here (webpki checks chain and EKU only): read it from the
/// connection's peer identity with [`node_id_from_cert`].
pub fn server_config(creds: &NodeCredentials) -> Result<quinn::ServerConfig, TlsError> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(&creds.ca)?, provider.clone()).build().map_err(config_err)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(creds.chain(), creds.key.clone_key())
        .map_err(config_err)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(config_err)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport_config());
    Ok(config)
}

/// The dialing side: TLS 1.3 only, ALPN `mingchu/1`, presents the node's certificate, and trusts
/// only the CA. The server name given to `Endpoint::connect` must be the expected peer's
/// `dns_name()`: the server's certificate is checked against it.
pub fn client_config(creds: &NodeCredentials) -> Result<quinn::ClientConfig, TlsError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_err)?
        .with_root_certificates(roots(&creds.ca)?)
        .with_client_auth_cert(creds.chain(), creds.key.clone_key())
        .map_err(config_err)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(config_err)?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport_config());
    Ok(config)
}

/// One certificate of a cert dir and when it stops being valid.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CertExpiry {
    pub path: PathBuf,
    /// `CA`, `web`, or the node's id.
    pub what: String,
    /// Unix ms after which it is no longer valid.
    pub not_after_ms: u64,
}

impl CertExpiry {
    /// Whole days left at `now_ms` (negative once expired).
    pub fn days_left(&self, now_ms: u64) -> i64 {
        (self.not_after_ms as i64 - now_ms as i64).div_euclid(86_400_000)
    }
}

/// When a certificate (PEM file) stops being valid.
fn not_after(path: &Path) -> Result<u64, TlsError> {
    let der = read_cert(path)?;
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| TlsError::Certificate(format!("{}: {e}", path.display())))?;
    Ok((cert.validity().not_after.timestamp().max(0) as u64).saturating_mul(1_000))
}

/// Every certificate in a cert dir — the CA, the console's web certificate, the nodes' — with
/// when it stops being valid, soonest first. A file that is not a certificate is an error naming it.
pub fn cert_expiries(dir: &Path) -> Result<Vec<CertExpiry>, TlsError> {
    let mut found = Vec::new();
    for (file, what) in [(CA_CERT_FILE, "CA"), (SUB_CA_CERT_FILE, "sub-CA"), (WEB_CERT_FILE, "web")] {
        let path = dir.join(file);
        if path.exists() {
            found.push(CertExpiry { not_after_ms: not_after(&path)?, path, what: what.into() });
        }
    }
    let nodes = dir.join(NODES_DIR);
    if nodes.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(&nodes)
            .map_err(io_err(&nodes))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pem"))
            .collect();
        entries.sort();
        for path in entries {
            let what = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            found.push(CertExpiry { not_after_ms: not_after(&path)?, path, what });
        }
    }
    if found.is_empty() {
        return Err(TlsError::Pem {
            path: dir.to_path_buf(),
            what: "certificate",
            reason: "no ca.pem, sub-ca.pem, web.pem or nodes/*.pem here".into(),
        });
    }
    found.sort_by_key(|c| c.not_after_ms);
    Ok(found)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_expired_certificate_has_negative_days_left() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = dir.path().join(NODES_DIR);
        fs::create_dir_all(&nodes).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["old".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        fs::write(nodes.join("130102.pem"), cert.pem()).unwrap();
        let found = cert_expiries(dir.path()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].what, "130102");
        assert!(found[0].days_left(crate::clock::unix_ms()) < -365, "{found:?}");
        assert_eq!(found[0].days_left(found[0].not_after_ms - 1), 0, "the last millisecond is still day 0");
        assert_eq!(found[0].days_left(found[0].not_after_ms + 1), -1, "then it has expired");
        assert!(cert_expiries(tempfile::tempdir().unwrap().path()).is_err(), "an empty folder is an error");
    }

    use super::*;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    /// A self-signed certificate with the given SANs (DNS names unless they parse as IPs) and CN.
    fn self_signed(sans: Vec<SanType>, cn: &str) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn dns(name: &str) -> SanType {
        SanType::DnsName(name.to_string().try_into().unwrap())
    }

    #[test]
    fn ca_init_and_issue() {
        let dir = tempfile::tempdir().unwrap();
        ca_init(dir.path()).unwrap();
        let school = id("130102-S0001");
        let (cert_path, key_path) = ca_issue(dir.path(), school).unwrap();
        assert_eq!(cert_path, dir.path().join("nodes/130102-S0001.pem"));
        assert_eq!(key_path, dir.path().join("nodes/130102-S0001.key"));

        let der = read_cert(&cert_path).unwrap();
        assert_eq!(node_id_from_cert(&der).unwrap(), school);
        let cert = parse_cert(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names, vec![GeneralName::DNSName("s0001.130102.1301.13.mingchu")]);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!cert.is_ca());

        let ca_der = read_cert(&dir.path().join(CA_CERT_FILE)).unwrap();
        let ca = parse_cert(&ca_der).unwrap();
        assert!(ca.is_ca());
        let usage = ca.key_usage().unwrap().unwrap().value;
        assert!(usage.key_cert_sign() && usage.crl_sign());
        assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());

        let creds = NodeCredentials::load(dir.path(), school).unwrap();
        assert_eq!(creds.node(), school);
        creds.server_config().unwrap();
        creds.client_config().unwrap();

        // Re-issuing overwrites with a fresh key, and the old credentials no longer load.
        let old_key = fs::read(&key_path).unwrap();
        ca_issue(dir.path(), school).unwrap();
        assert_ne!(fs::read(&key_path).unwrap(), old_key);
        NodeCredentials::load(dir.path(), school).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        ca_init(dir.path()).unwrap();
        let (_, key_path) = ca_issue(dir.path(), id("13")).unwrap();
        for path in [dir.path().join(CA_KEY_FILE), key_path.clone()] {
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "{}", path.display());
        }
        let (_, web_key) = ca_issue_web(dir.path(), &[WebHost::Dns("localhost".into())]).unwrap();
        // A key others may read is refused, saying what to do; issuing from an exposed CA key too.
        for mode in [0o644, 0o640, 0o604, 0o620] {
            fs::set_permissions(&key_path, fs::Permissions::from_mode(mode)).unwrap();
            let err = NodeCredentials::load(dir.path(), id("13")).unwrap_err();
            assert!(matches!(err, TlsError::KeyExposed { .. }), "{mode:o}: {err}");
            assert!(err.to_string().contains("chmod 600") && err.to_string().contains(&format!("{mode:04o}")), "{err}");
        }
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o400)).unwrap();
        NodeCredentials::load(dir.path(), id("13")).unwrap();
        fs::set_permissions(&web_key, fs::Permissions::from_mode(0o644)).unwrap();
        let web_cert = dir.path().join("web.pem");
        assert!(matches!(web_server_config(&web_cert, &web_key).unwrap_err(), TlsError::KeyExposed { .. }));
        fs::set_permissions(dir.path().join(CA_KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(ca_issue(dir.path(), id("1301")).unwrap_err(), TlsError::KeyExposed { .. }));
    }

    #[test]
    fn ca_init_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        ca_init(dir.path()).unwrap();
        let before = fs::read(dir.path().join(CA_KEY_FILE)).unwrap();
        let err = ca_init(dir.path()).unwrap_err();
        assert!(matches!(err, TlsError::CaExists { .. }), "{err}");
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(fs::read(dir.path().join(CA_KEY_FILE)).unwrap(), before);

        // A lone key (half a CA) is refused too.
        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join(CA_KEY_FILE), b"x").unwrap();
        assert!(matches!(ca_init(other.path()), Err(TlsError::CaExists { .. })));
    }

    #[test]
    fn issue_needs_a_real_ca() {
        let dir = tempfile::tempdir().unwrap();
        let err = ca_issue(dir.path(), id("13")).unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");

        // A node certificate posing as the CA is refused as "not a CA".
        ca_init(dir.path()).unwrap();
        let (cert, key) = ca_issue(dir.path(), id("13")).unwrap();
        let fake = tempfile::tempdir().unwrap();
        fs::copy(&cert, fake.path().join(CA_CERT_FILE)).unwrap();
        fs::copy(&key, fake.path().join(CA_KEY_FILE)).unwrap();
        let err = ca_issue(fake.path(), id("13")).unwrap_err();
        assert!(matches!(err, TlsError::NotCa { .. }), "{err}");
        assert!(err.to_string().contains("not a CA"), "{err}");

        // The CA certificate with another key, and garbage, are refused without panicking.
        let other = tempfile::tempdir().unwrap();
        ca_init(other.path()).unwrap();
        fs::copy(other.path().join(CA_KEY_FILE), fake.path().join(CA_KEY_FILE)).unwrap();
        fs::copy(dir.path().join(CA_CERT_FILE), fake.path().join(CA_CERT_FILE)).unwrap();
        assert!(matches!(ca_issue(fake.path(), id("13")), Err(TlsError::KeyMismatch { .. })));
        fs::write(fake.path().join(CA_CERT_FILE), b"-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
        assert!(ca_issue(fake.path(), id("13")).is_err());
        fs::write(fake.path().join(CA_CERT_FILE), [0xff, 0xfe, 0x00]).unwrap();
        assert!(ca_issue(fake.path(), id("13")).is_err());
    }

    #[test]
    fn identity_comes_from_exactly_one_dns_san() {
        let county = id("130102");
        let good = self_signed(vec![dns(&county.dns_name())], "whatever");
        assert_eq!(node_id_from_cert(&good).unwrap(), county);

        let two = self_signed(vec![dns(&county.dns_name()), dns(&id("130104").dns_name())], "130102");
        let err = node_id_from_cert(&two).unwrap_err();
        assert!(err.to_string().contains("2 DNS names"), "{err}");

        let wildcard = self_signed(vec![dns("*.1301.13.mingchu")], "130102");
        assert!(node_id_from_cert(&wildcard).unwrap_err().to_string().contains("wildcard"));

        // The CN names a node, but without a DNS SAN there is no identity.
        let cn_only = self_signed(vec![], "130102");
        assert!(matches!(node_id_from_cert(&cn_only), Err(TlsError::Identity(_))));
        let uri_only = self_signed(vec![SanType::URI("mingchu://130102".to_string().try_into().unwrap())], "130102");
        assert!(matches!(node_id_from_cert(&uri_only), Err(TlsError::Identity(_))));

        let foreign = self_signed(vec![dns("example.com")], "130102");
        assert!(matches!(node_id_from_cert(&foreign), Err(TlsError::Identity(_))));
        assert!(node_id_from_cert(b"not a certificate").is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(node_id_from_cert(&trailing).is_err());
    }

    #[test]
    fn load_refuses_another_nodes_certificate() {
        let dir = tempfile::tempdir().unwrap();
        ca_init(dir.path()).unwrap();
        let (a, b) = (id("130102"), id("130104"));
        let (a_cert, a_key) = ca_issue(dir.path(), a).unwrap();
        let (b_cert, b_key) = ca_issue(dir.path(), b).unwrap();
        fs::copy(&b_cert, &a_cert).unwrap();
        fs::copy(&b_key, &a_key).unwrap();
        let err = NodeCredentials::load(dir.path(), a).unwrap_err();
        assert_eq!(err.to_string(), "certificate names 130104, expected 130102");

        // Right name, wrong key.
        let (a_cert, _) = ca_issue(dir.path(), a).unwrap();
        fs::copy(&b_key, dir.path().join("nodes/130102.key")).unwrap();
        assert!(matches!(NodeCredentials::load(dir.path(), a), Err(TlsError::KeyMismatch { .. })));

        // Right name and key, but from another CA.
        let other = tempfile::tempdir().unwrap();
        ca_init(other.path()).unwrap();
        let (o_cert, o_key) = ca_issue(other.path(), a).unwrap();
        fs::copy(&o_cert, &a_cert).unwrap();
        fs::copy(&o_key, dir.path().join("nodes/130102.key")).unwrap();
        let err = NodeCredentials::load(dir.path(), a).unwrap_err();
        assert!(matches!(err, TlsError::Untrusted { .. }), "{err}");

        let err = NodeCredentials::load(dir.path(), id("130105")).unwrap_err();
        assert!(err.to_string().contains("130105.pem"), "{err}");
    }

    #[test]
    fn web_certificate_names_its_hosts_and_verifies_against_the_ca() {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let dir = tempfile::tempdir().unwrap();
        ca_init(dir.path()).unwrap();
        let hosts: Vec<WebHost> =
            ["127.0.0.1", "Console.LuNan.edu.cn.", "[::1]", "127.0.0.1"].iter().map(|h| h.parse().unwrap()).collect();
        let (cert_path, key_path) = ca_issue_web(dir.path(), &hosts).unwrap();
        assert_eq!((cert_path.clone(), key_path.clone()), web_paths(dir.path()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&key_path).unwrap().permissions().mode() & 0o777, 0o600);
        }

        let der = read_cert(&cert_path).unwrap();
        let cert = parse_cert(&der).unwrap();
        let mut names = cert.subject_alternative_name().unwrap().unwrap().value.general_names.clone();
        names.sort_by_key(|n| format!("{n:?}"));
        assert_eq!(
            names,
            vec![
                GeneralName::DNSName("console.lunan.edu.cn"),
                GeneralName::IPAddress(&Ipv6Addr::LOCALHOST.octets()),
                GeneralName::IPAddress(&[127, 0, 0, 1]),
            ]
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth, "a web certificate cannot act as a node");
        assert!(!cert.is_ca());
        assert!(node_id_from_cert(&der).is_err(), "it names no node");

        // A browser that trusts the CA accepts it for each of its hosts, and for nothing else.
        let ca = read_cert(&dir.path().join(CA_CERT_FILE)).unwrap();
        let verifier = WebPkiServerVerifier::builder_with_provider(roots(&ca).unwrap(), provider()).build().unwrap();
        let check = |name: ServerName<'static>| verifier.verify_server_cert(&der, &[], &name, &[], UnixTime::now());
        check(ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into())).unwrap();
        check(ServerName::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST).into())).unwrap();
        check(ServerName::try_from("console.lunan.edu.cn").unwrap()).unwrap();
        assert!(check(ServerName::IpAddress(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)).into())).is_err());
        assert!(check(ServerName::try_from("localhost").unwrap()).is_err());

        // It serves; with another key it does not.
        web_server_config(&cert_path, &key_path).unwrap();
        let (_, node_key) = ca_issue(dir.path(), id("130102")).unwrap();
        let err = web_server_config(&cert_path, &node_key).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");

        // Without a CA nothing is issued; without hosts neither.
        let empty = tempfile::tempdir().unwrap();
        assert!(ca_issue_web(empty.path(), &hosts).unwrap_err().to_string().contains("ca.pem"));
        assert!(ca_issue_web(dir.path(), &[]).unwrap_err().to_string().contains("--host"));
    }

    #[test]
    fn bad_web_hosts_are_refused_in_chinese() {
        for good in ["localhost", "mingchu-130102", "a.b-c.example.cn", "10.1.2.3", "fe80::1", "XN--FIQS8S.cn"] {
            assert!(good.parse::<WebHost>().is_ok(), "{good}");
        }
        for (bad, why) in [
            ("", "不能为空"),
            ("*.example.cn", "通配符"),
            ("a b", "只能含英文字母"),
            ("明厨.cn", "xn--"),
            ("-x.cn", "连字符"),
            ("x..cn", "1–63"),
            ("https://x.cn", "不带端口"),
            ("x.cn:8443", "不带端口"),
            ("0.0.0.0", "任意地址"),
            ("1.2.3.999", "既不是 IP"),
        ] {
            let err = bad.parse::<WebHost>().unwrap_err().to_string();
            assert!(err.contains("不是有效的主机名或 IP 地址") && err.contains(why), "{bad:?}: {err}");
        }
    }

    /// The province's root, a city's CA it delegated, and a county's CA the city delegated.
    fn delegated_tree() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let (root, city, county) = (tmp.path().join("root"), tmp.path().join("city"), tmp.path().join("county"));
        ca_init(&root).unwrap();
        ca_delegate(&root, id("1301"), &city).unwrap();
        ca_delegate(&city, id("130102"), &county).unwrap();
        (tmp, root, city, county)
    }

    /// Verifies `chain` (leaf first) as a client and as the server `node`, as peers do.
    fn verify(root_dir: &Path, chain: &[CertificateDer<'static>], node: NodeId) -> Result<(), String> {
        let roots = roots(&read_cert(&root_dir.join(CA_CERT_FILE)).unwrap()).unwrap();
        let now = UnixTime::now();
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .unwrap()
            .verify_client_cert(&chain[0], &chain[1..], now)
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(node.dns_name()).unwrap();
        WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .unwrap()
            .verify_server_cert(&chain[0], &chain[1..], &name, &[], now)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    #[test]
    fn a_county_enrols_its_schools_with_the_ca_its_city_delegated() {
        let (_tmp, root, city, county) = delegated_tree();
        assert!(!county.join(CA_KEY_FILE).exists(), "the root key never leaves the province");
        assert_eq!(fs::read(county.join(CA_CERT_FILE)).unwrap(), fs::read(root.join(CA_CERT_FILE)).unwrap());
        let school = id("130102-S0001");
        let (cert_path, _) = ca_issue(&county, school).unwrap();
        let chain = read_chain(&cert_path).unwrap();
        assert_eq!(chain.len(), 3, "leaf, county CA, city CA");
        let creds = NodeCredentials::load(&county, school).unwrap();
        assert_eq!(creds.chain(), chain);
        verify(&root, &chain, school).unwrap();
        // The city enrols its county node and the county its own node, too.
        ca_issue(&city, id("130102")).unwrap();
        NodeCredentials::load(&city, id("130102")).unwrap();
        ca_issue(&county, id("130102")).unwrap();
        NodeCredentials::load(&county, id("130102")).unwrap();
        // A delegated CA is listed with its expiry.
        assert!(cert_expiries(&county).unwrap().iter().any(|c| c.what == "sub-CA"));
    }

    #[test]
    fn a_delegated_ca_cannot_sign_outside_its_subtree_and_peers_refuse_it_if_forced() {
        let (_tmp, root, city, county) = delegated_tree();
        // The commands refuse, in Chinese, and write nothing.
        let other = id("130104-S0001");
        let err = ca_issue(&county, other).unwrap_err();
        assert!(matches!(err, TlsError::OutOfScope { .. }), "{err}");
        assert!(err.to_string().contains("只能为本辖区"), "{err}");
        assert!(!node_paths(&county, other).0.exists());
        assert!(matches!(ca_delegate(&city, id("1302"), &city.join("x")), Err(TlsError::OutOfScope { .. })));
        assert!(matches!(ca_delegate(&city, id("130201"), &city.join("x")), Err(TlsError::OutOfScope { .. })));
        let err = ca_delegate(&county, id("130102-S0001"), &county.join("x")).unwrap_err();
        assert!(err.to_string().contains("只有市级和县级单位"), "{err}");
        assert!(ca_issue_web(&county, &["mingchu.example.cn".parse().unwrap()]).is_err());

        // Signed anyway with the county's key (a stolen key, a patched binary): every peer's
        // verifier refuses it, because the county CA is constrained to its own subtree.
        let ca = load_ca(&county).unwrap();
        let (forged, _) = sign_leaf(&ca, other, NODE_VALIDITY).unwrap();
        let mut chain = vec![forged.der().clone()];
        chain.extend(read_chain(&county.join(SUB_CA_CERT_FILE)).unwrap());
        let err = verify(&root, &chain, other).unwrap_err();
        assert!(err.contains("NameConstraint") || err.contains("name constraint"), "{err}");

        // A CA below the county (which may not delegate): refused for its path length.
        let (rogue_ca, rogue_key) = sign_sub_ca(&ca, id("130102"), 0, Some(id("130102").dns_name())).unwrap();
        let rogue_dir = county.join("rogue");
        fs::create_dir_all(&rogue_dir).unwrap();
        let rogue_chain = rogue_ca.pem() + &ca.chain_pem;
        fs::write(rogue_dir.join(SUB_CA_CERT_FILE), &rogue_chain).unwrap();
        write_new(&rogue_dir.join(SUB_CA_KEY_FILE), rogue_key.serialize_pem().as_bytes(), true).unwrap();
        fs::copy(root.join(CA_CERT_FILE), rogue_dir.join(CA_CERT_FILE)).unwrap();
        let school = id("130102-S0002");
        let (path, _) = ca_issue(&rogue_dir, school).unwrap();
        assert!(verify(&root, &read_chain(&path).unwrap(), school).is_err(), "a CA under a county CA is refused");
        assert!(NodeCredentials::load(&rogue_dir, school).is_err());

        // A county CA the root never delegated (made by another root): refused.
        let stranger = county.join("stranger-root");
        ca_init(&stranger).unwrap();
        let fake = county.join("fake-county");
        ca_delegate(&stranger, id("130102"), &fake).unwrap();
        let (path, _) = ca_issue(&fake, school).unwrap();
        assert!(verify(&root, &read_chain(&path).unwrap(), school).is_err(), "a sub-CA of another root is refused");

        // A CA the city signed without any constraint (a patched binary): its name constraint
        // is missing, but the city's still binds everything below the city.
        let city_ca = load_ca(&city).unwrap();
        let (wide, wide_key) = sign_sub_ca(&city_ca, id("130102"), 0, None).unwrap();
        let wide_dir = county.join("wide");
        fs::create_dir_all(&wide_dir).unwrap();
        fs::write(wide_dir.join(SUB_CA_CERT_FILE), wide.pem() + &city_ca.chain_pem).unwrap();
        write_new(&wide_dir.join(SUB_CA_KEY_FILE), wide_key.serialize_pem().as_bytes(), true).unwrap();
        let wide_ca = LoadedCa {
            scope: None,
            ..load_ca_files(&wide_dir.join(SUB_CA_CERT_FILE), &wide_dir.join(SUB_CA_KEY_FILE), false).unwrap()
        };
        let far = id("1302");
        let (forged, _) = sign_leaf(&wide_ca, far, NODE_VALIDITY).unwrap();
        let mut chain = vec![forged.der().clone()];
        chain.extend(read_chain(&wide_dir.join(SUB_CA_CERT_FILE)).unwrap());
        assert!(verify(&root, &chain, far).is_err(), "outside the city's subtree");
    }

    #[test]
    fn a_root_signed_certificate_still_works_beside_delegated_ones() {
        let (_tmp, root, _city, _county) = delegated_tree();
        let (path, _) = ca_issue(&root, id("130102-S0003")).unwrap();
        assert_eq!(read_chain(&path).unwrap().len(), 1);
        let creds = NodeCredentials::load(&root, id("130102-S0003")).unwrap();
        assert!(creds.intermediates.is_empty());
        verify(&root, &creds.chain(), id("130102-S0003")).unwrap();
    }
}
