//! A TLS client pins the peer it means to call: the server's workload
//! certificate must name that peer's SPIFFE ID, not merely chain to our CA.
//!
//! Why: every workload certificate `gen-certs` issues comes from the same
//! CA and is valid for `localhost`. A client that checks only the chain and
//! the name `localhost` accepts *any* workload as *any* service: servicec's
//! workload, bound first to serviceb's https port, would receive servicea's
//! scenario-3/4 tokens; on the factory's mTLS port (:5556) it would receive
//! servicea's client assertion, which it could replay at `:5555/token`
//! within the assertion's lifetime. nginx pins its upstream
//! (`proxy_ssl_name`), Envoy its peers (SAN matchers); servicea does too.
//!
//! [`PinnedPeer`] is a rustls [`ServerCertVerifier`] over rustls' own
//! WebPKI verifier: first the usual checks (chain to our CA alone, dates,
//! server-auth usage, the host name in the URL), then the end-entity
//! certificate's one URI SAN must equal the expected SPIFFE ID exactly. A
//! refusal ([`PeerMismatch`]) names both IDs, and fails the handshake, so
//! nothing (no token, no assertion) is ever sent to the wrong peer. The
//! handshake signatures are the WebPKI verifier's to check, with the same
//! crypto provider (aws-lc-rs) as every other TLS configuration here.
//!
//! [`PeerTls`] builds one rustls configuration per peer (ALPN h2 and
//! http/1.1, as reqwest sets it; a client certificate for mTLS);
//! [`crate::outbound::pinned_client`] hands it to reqwest.

use std::{error::Error as StdError, sync::Arc};

use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject as _},
};
use s2s_auth::untrusted::Untrusted;

/// How much of a presented SPIFFE ID a message shows (a SPIFFE ID may be
/// up to 2048 bytes; ours are under 64).
const MAX_SHOWN_ID: usize = 128;

/// The server is not the workload the client meant to call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, the server presented {presented}")]
pub struct PeerMismatch {
    /// The SPIFFE ID of the peer the client meant to call.
    pub expected: String,
    /// The SPIFFE ID the server's certificate names (bounded, escaped), or
    /// why it names none.
    pub presented: String,
}

/// Why a pinned TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("not a usable CA certificate: {0}")]
    BadCa(String),
    #[error("not a usable client certificate and key: {0}")]
    BadIdentity(String),
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// A server certificate verifier that accepts one workload only.
#[derive(Debug)]
pub struct PinnedPeer {
    webpki: Arc<WebPkiServerVerifier>,
    expected: String,
}

impl PinnedPeer {
    /// Accepts what `webpki` accepts, and only from the workload `expected`
    /// (`spiffe://<trust domain>/ns/default/sa/<name>`).
    pub fn new(webpki: Arc<WebPkiServerVerifier>, expected: impl Into<String>) -> Self {
        Self {
            webpki,
            expected: expected.into(),
        }
    }

    /// The end-entity certificate names exactly the expected SPIFFE ID.
    pub fn check(&self, end_entity: &[u8]) -> Result<(), PeerMismatch> {
        let presented = match crate::identity::spiffe_id_of(end_entity, "server certificate") {
            Ok(id) if id == self.expected => return Ok(()),
            Ok(id) => Untrusted::at_most(&id, MAX_SHOWN_ID).to_string(),
            Err(why) => format!("no single SPIFFE ID ({why})"),
        };
        Err(PeerMismatch {
            expected: self.expected.clone(),
            presented,
        })
    }
}

impl ServerCertVerifier for PinnedPeer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.check(end_entity).map_err(|mismatch| {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                mismatch,
            ))))
        })?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A client certificate chain and its key, presented in mTLS.
struct ClientAuth {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// What every pinned configuration of one client shares: the CA (the only
/// trust anchor), the crypto provider, and for mTLS the client certificate.
pub struct PeerTls {
    provider: Arc<CryptoProvider>,
    webpki: Arc<WebPkiServerVerifier>,
    client_auth: Option<ClientAuth>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls")
            .field("mutual", &self.client_auth.is_some())
            .finish_non_exhaustive()
    }
}

impl PeerTls {
    /// Trusting the CA certificate(s) in `ca_pem` and no other.
    pub fn new(ca_pem: &[u8]) -> Result<Self, PinError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| PinError::BadCa(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| PinError::BadCa(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(PinError::BadCa("no certificate in the file".to_owned()));
        }
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| PinError::BadCa(e.to_string()))?;
        Ok(Self {
            provider,
            webpki,
            client_auth: None,
        })
    }

    /// Presenting the certificate chain `cert_pem` with its key `key_pem`
    /// (mTLS).
    pub fn with_client_auth(mut self, cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, PinError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PinError::BadIdentity(format!("certificate: {e}")))?;
        if chain.is_empty() {
            return Err(PinError::BadIdentity("no certificate in the file".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| PinError::BadIdentity(format!("private key: {e}")))?;
        self.client_auth = Some(ClientAuth { chain, key });
        Ok(self)
    }

    /// The configuration for calling the workload `expected` (its SPIFFE
    /// ID): only a server presenting that ID completes the handshake.
    pub fn config_for(&self, expected: &str) -> Result<ClientConfig, PinError> {
        let verifier = PinnedPeer::new(Arc::clone(&self.webpki), expected);
        // `dangerous()` is rustls' door to a custom verifier; this one
        // checks more than the default, never less.
        let builder = ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(PinError::Config)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match &self.client_auth {
            Some(auth) => builder
                .with_client_auth_cert(auth.chain.clone(), auth.key.clone_key())
                .map_err(|e| PinError::BadIdentity(e.to_string()))?,
            None => builder.with_no_client_auth(),
        };
        // What reqwest sets on a configuration it builds itself.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// The [`PeerMismatch`] that failed a handshake, if that is what `err`
/// (a reqwest error, or any cause chain around a rustls error) says.
pub fn mismatch_in(err: &(dyn StdError + 'static)) -> Option<PeerMismatch> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) =
            e.downcast_ref::<rustls::Error>()
            && let Some(mismatch) = other.0.downcast_ref::<PeerMismatch>()
        {
            return Some(mismatch.clone());
        }
        // An `io::Error` wrapping another error shows that error's
        // `source()`, not the error itself: step into it.
        cause = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType, string::Ia5String,
    };

    const SERVICEB: &str = "spiffe://cluster.local/ns/default/sa/serviceb";

    /// A CA, and a server certificate for `localhost` with `uris` as URI
    /// SANs, made for this case alone.
    fn ca_and_leaf(uris: &[&str]) -> (String, CertificateDer<'static>) {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        // A name of its own: another case's CA is then an unknown issuer.
        let name = format!("test CA {}", uuid::Uuid::new_v4().simple());
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let mut sans = vec![SanType::DnsName(Ia5String::try_from("localhost").unwrap())];
        sans.extend(
            uris.iter()
                .map(|u| SanType::URI(Ia5String::try_from(*u).unwrap())),
        );
        let mut leaf = CertificateParams::default();
        leaf.subject_alt_names = sans;
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        (ca_cert.pem(), cert.der().clone())
    }

    /// `PinnedPeer` for serviceb, over a WebPKI verifier of `ca_pem`, on
    /// `leaf` presented for `localhost`.
    fn verify(ca_pem: &str, leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let tls = PeerTls::new(ca_pem.as_bytes()).unwrap();
        let pinned = PinnedPeer::new(Arc::clone(&tls.webpki), SERVICEB);
        let name = ServerName::try_from("localhost").unwrap();
        pinned
            .verify_server_cert(leaf, &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    fn refusal(uris: &[&str]) -> PeerMismatch {
        let (ca, leaf) = ca_and_leaf(uris);
        let err = verify(&ca, &leaf).unwrap_err();
        let Some(mismatch) = mismatch_in(&err) else {
            panic!("not a mismatch: {err}")
        };
        assert_eq!(mismatch.expected, SERVICEB);
        mismatch
    }

    #[test]
    fn the_expected_workload_is_accepted() {
        let (ca, leaf) = ca_and_leaf(&[SERVICEB]);
        verify(&ca, &leaf).unwrap();
    }

    #[test]
    fn another_workload_is_refused_naming_both_ids() {
        let servicec = "spiffe://cluster.local/ns/default/sa/servicec";
        let mismatch = refusal(&[servicec]);
        assert_eq!(
            mismatch.to_string(),
            format!("expected {SERVICEB}, the server presented {servicec}")
        );
    }

    #[test]
    fn the_same_name_in_another_trust_domain_is_refused() {
        let other = "spiffe://other.domain/ns/default/sa/serviceb";
        assert_eq!(refusal(&[other]).presented, other);
    }

    #[test]
    fn a_certificate_without_a_single_uri_san_is_refused() {
        let none = refusal(&[]);
        assert!(none.presented.contains("0 URI SANs"), "{none}");
        let two = refusal(&[SERVICEB, "spiffe://cluster.local/ns/default/sa/servicec"]);
        assert!(two.presented.contains("2 URI SANs"), "{two}");
    }

    #[test]
    fn the_webpki_checks_come_first() {
        // The right ID from another CA: refused as an unknown issuer.
        let (_, leaf) = ca_and_leaf(&[SERVICEB]);
        let (other_ca, _) = ca_and_leaf(&[]);
        let err = verify(&other_ca, &leaf).unwrap_err();
        assert!(mismatch_in(&err).is_none(), "{err}");
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    }

    #[test]
    fn a_mismatch_is_found_through_an_io_error() {
        let (ca, leaf) = ca_and_leaf(&[]);
        let err = verify(&ca, &leaf).unwrap_err();
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, err);
        assert!(mismatch_in(&io).is_some());
    }
}
