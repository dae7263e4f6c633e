//! A real node's keys for the signed history ([`protocol::seal`]): it seals its own writes with
//! its certificate's private key, and learns each descendant's public key from the certificate
//! chain that descendant (or a relay) sends up, checked as the TLS handshake checks a peer — issued
//! under the trust anchor, within each delegated CA's subtree, valid now, naming exactly that
//! origin — and not revoked.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use protocol::seal::{PublicKey, SealError, SealSigner, SealVerifier};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use topology::NodeId;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::runtime::store::{KeyBook, SealKeys};
use crate::tls::{NodeCredentials, cert_fingerprint};

/// The OIDs of the key kinds a node certificate may carry.
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_ED25519: &str = "1.3.101.112";

/// Signs seals with the node certificate's private key (ECDSA P-256 or Ed25519, PKCS#8).
enum CertSigner {
    P256(EcdsaKeyPair, SystemRandom),
    Ed25519(Ed25519KeyPair),
}

impl SealSigner for CertSigner {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            // Signing fails only when the system's random source does: no seal can be made then,
            // and an empty signature is refused by every ancestor (the range waits, and is sealed
            // again by nothing: the node's operator sees the refusals).
            CertSigner::P256(key, rng) => key.sign(rng, message).map(|s| s.as_ref().to_vec()).unwrap_or_default(),
            CertSigner::Ed25519(key) => key.sign(message).as_ref().to_vec(),
        }
    }
}

/// The public key a certificate carries, when it is a kind seals use.
pub fn public_key_of(der: &[u8]) -> Result<PublicKey, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("证书无法解析：{e}"))?;
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    let key = spki.subject_public_key.data.to_vec();
    match alg.as_str() {
        OID_ED25519 => Ok(PublicKey::Ed25519(key)),
        OID_EC_PUBLIC_KEY => {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
            if curve.as_deref() == Some(OID_P256) {
                Ok(PublicKey::EcdsaP256(key))
            } else {
                Err(format!("证书的椭圆曲线 {} 不受支持（只支持 P-256）", curve.unwrap_or_default()))
            }
        }
        other => Err(format!("证书的密钥类型 {other} 不受支持（只支持 ECDSA P-256 与 Ed25519）")),
    }
}

/// The keys of the origins below this node, learned from their certificate chains.
pub struct CertBook {
    verifier: Arc<WebPkiServerVerifier>,
    /// Per origin: its key and its certificate's fingerprint.
    keys: Mutex<HashMap<NodeId, (PublicKey, String)>>,
    revoked: Mutex<HashSet<String>>,
}

impl CertBook {
    /// A book trusting `ca` (the root every node trusts), refusing the `revoked` fingerprints.
    pub fn new(ca: &CertificateDer<'static>, revoked: &[String]) -> Result<CertBook, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).map_err(|e| format!("CA 证书不能作为信任根：{e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("无法建立证书校验：{e}"))?;
        Ok(CertBook {
            verifier,
            keys: Mutex::new(HashMap::new()),
            revoked: Mutex::new(revoked.iter().cloned().collect()),
        })
    }
}

impl SealVerifier for CertBook {
    fn verify(&self, origin: NodeId, message: &[u8], signature: &[u8]) -> Result<(), SealError> {
        let key = {
            let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.get(&origin).map(|(k, _)| k.clone())
        };
        let key = key.ok_or(SealError::UnknownKey { origin })?;
        key.verify(message, signature).map_err(|why| SealError::BadSignature { origin, why })
    }
}

impl KeyBook for CertBook {
    fn learn(&self, origin: NodeId, chain: &[Vec<u8>]) -> Result<(), String> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err("证书链是空的".into());
        };
        let fingerprint = cert_fingerprint(leaf);
        if self.revoked.lock().unwrap_or_else(|e| e.into_inner()).contains(&fingerprint) {
            return Err(format!("{origin} 的证书已被吊销"));
        }
        let leaf_der = CertificateDer::from(leaf.clone());
        let inter: Vec<CertificateDer<'static>> =
            intermediates.iter().map(|c| CertificateDer::from(c.clone())).collect();
        let name = ServerName::try_from(origin.dns_name()).map_err(|e| e.to_string())?;
        self.verifier
            .verify_server_cert(&leaf_der, &inter, &name, &[], UnixTime::now())
            .map_err(|e| format!("{origin} 的证书不可信：{e}"))?;
        let key = public_key_of(leaf)?;
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).insert(origin, (key, fingerprint));
        Ok(())
    }

    fn revoke(&self, fingerprints: &[String]) {
        self.revoked.lock().unwrap_or_else(|e| e.into_inner()).extend(fingerprints.iter().cloned());
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, (_, fp)| !fingerprints.contains(fp));
    }
}

/// A node's seal keys from its credentials: its certificate's private key signs, and the book
/// trusts its CA. Also the chain it sends up (its certificate, then the delegated CAs).
pub fn seal_keys(creds: &NodeCredentials, revoked: &[String]) -> Result<(SealKeys, Vec<Vec<u8>>), String> {
    let pkcs8 = match &creds.key {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        _ => return Err("节点私钥不是 PKCS#8 格式，无法用来签名".into()),
    };
    let signer = match public_key_of(creds.cert())? {
        PublicKey::EcdsaP256(_) => {
            let rng = SystemRandom::new();
            let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng)
                .map_err(|e| format!("节点私钥无法用于 ECDSA P-256 签名：{e}"))?;
            CertSigner::P256(key, rng)
        }
        PublicKey::Ed25519(_) => {
            let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
                .map_err(|e| format!("节点私钥无法用于 Ed25519 签名：{e}"))?;
            CertSigner::Ed25519(key)
        }
    };
    let book = CertBook::new(creds.ca_cert(), revoked)?;
    let chain = creds.chain().iter().map(|c| c.to_vec()).collect();
    Ok((SealKeys { signer: Arc::new(signer), book: Arc::new(book) }, chain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::seal::seal_message;

    #[test]
    fn a_node_signs_with_its_certificate_and_an_ancestor_checks_with_the_chain_it_learns() {
        let dir = tempfile::tempdir().unwrap();
        crate::tls::ca_init(dir.path()).unwrap();
        let school: NodeId = "130102-S0001".parse().unwrap();
        let other: NodeId = "130102-S0002".parse().unwrap();
        crate::tls::ca_issue(dir.path(), school).unwrap();
        let creds = NodeCredentials::load(dir.path(), school).unwrap();
        let (keys, chain) = seal_keys(&creds, &[]).unwrap();
        let head = protocol::seal::genesis(school, 0);
        let m = seal_message(school, 0, 1, &head, &head);
        let sig = keys.signer.sign(&m);

        let county_book = CertBook::new(creds.ca_cert(), &[]).unwrap();
        assert_eq!(county_book.verify(school, &m, &sig), Err(SealError::UnknownKey { origin: school }));
        // A chain is good only for the node it names.
        assert!(county_book.learn(other, &chain).unwrap_err().contains("不可信"));
        county_book.learn(school, &chain).unwrap();
        county_book.verify(school, &m, &sig).unwrap();
        assert!(matches!(county_book.verify(school, b"other", &sig), Err(SealError::BadSignature { .. })));
        // Revoked: forgotten, and not learned again.
        county_book.revoke(&[cert_fingerprint(&chain[0])]);
        assert_eq!(county_book.verify(school, &m, &sig), Err(SealError::UnknownKey { origin: school }));
        assert!(county_book.learn(school, &chain).unwrap_err().contains("吊销"));
    }
}
