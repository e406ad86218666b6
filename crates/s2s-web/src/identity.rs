//! Who is calling, as the TLS handshake proved it: the client certificate's
//! SPIFFE ID and its SHA-256 thumbprint (scenarios 7 and 8).
//!
//! A workload certificate from `app gen-certs` carries exactly one URI SAN,
//! `spiffe://<trust domain>/ns/default/sa/<name>`. Istio calls the part
//! after `spiffe://` the *principal* (`cluster.local/ns/default/sa/servicea`),
//! and its `AuthorizationPolicy` matches on that: so do we.
//!
//! The handshake has already checked the chain to our CA, the validity
//! dates and the client-auth usage (rustls' `WebPkiClientVerifier`); what is
//! left is to read the name. A certificate that chains to the CA but names
//! no workload (no URI SAN, two of them, another trust domain) is kept as
//! [`ClientCert::Unusable`] with the reason, so the handler can refuse it
//! with a 401 that says why, instead of a bare TLS alert.
//!
//! [`spiffe_id_of`] reads the same SAN from a server's certificate: a
//! client that pins its peer ([`crate::peer_pin`]) compares it with the ID
//! of the workload it means to call.
//!
//! [`PeerAcceptor`] wraps axum-server's TLS acceptor: after each handshake
//! it reads the peer certificate once and adds the result to every request
//! of that connection as an extension, which handlers take as a
//! [`ClientCert`] argument.

use std::{convert::Infallible, io, pin::Pin, sync::Arc};

use axum::{Extension, extract::FromRequestParts, http::request::Parts, middleware::AddExtension};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use tokio_rustls::server::TlsStream;
use tower::Layer as _;

/// The default trust domain: principals then read as in Istio.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// A verified workload identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// `spiffe://cluster.local/ns/default/sa/servicea`.
    pub spiffe_id: String,
    /// `cluster.local/ns/default/sa/servicea`: Istio's `principals` form.
    pub principal: String,
    /// base64url (no padding) of the SHA-256 of the certificate's DER:
    /// RFC 8705's `x5t#S256`.
    pub thumbprint: String,
}

/// What the client presented in the handshake.
#[derive(Clone, Debug, Default)]
pub enum ClientCert {
    /// No certificate (one-way TLS, or plain http).
    #[default]
    None,
    /// A certificate from our CA naming exactly one workload.
    Verified(Arc<PeerIdentity>),
    /// A certificate from our CA that names no usable workload; why.
    Unusable(Arc<str>),
}

impl ClientCert {
    /// The identity, if verified.
    pub fn identity(&self) -> Option<&PeerIdentity> {
        match self {
            Self::Verified(id) => Some(id),
            _ => None,
        }
    }
}

/// Handlers take `ClientCert` directly; plain-http listeners have none.
impl<S: Send + Sync> FromRequestParts<S> for ClientCert {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_default())
    }
}

/// RFC 8705's `x5t#S256` of a DER certificate.
pub fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

/// The principal (`<trust domain>/<path>`) of a SPIFFE ID in
/// `trust_domain`, or why it is not one.
pub fn principal_of(spiffe_id: &str, trust_domain: &str) -> Result<String, String> {
    let rest = spiffe_id
        .strip_prefix("spiffe://")
        .ok_or_else(|| format!("URI SAN {spiffe_id:?} is not a spiffe:// ID"))?;
    let (domain, path) = rest
        .split_once('/')
        .ok_or_else(|| format!("SPIFFE ID {spiffe_id:?} has no path"))?;
    if domain != trust_domain {
        return Err(format!(
            "SPIFFE ID {spiffe_id:?} is in trust domain {domain:?}, not {trust_domain:?}"
        ));
    }
    let segments_ok = path.split('/').all(|s| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    });
    if !segments_ok {
        return Err(format!("SPIFFE ID {spiffe_id:?} has an invalid path"));
    }
    Ok(rest.to_owned())
}

/// Reads the workload identity of a certificate the handshake verified.
pub fn identify(der: &[u8], trust_domain: &str) -> ClientCert {
    match read_identity(der, trust_domain) {
        Ok(id) => ClientCert::Verified(Arc::new(id)),
        Err(reason) => ClientCert::Unusable(reason.into()),
    }
}

fn read_identity(der: &[u8], trust_domain: &str) -> Result<PeerIdentity, String> {
    let spiffe_id = spiffe_id_of(der, "client certificate")?;
    let principal = principal_of(&spiffe_id, trust_domain)?;
    Ok(PeerIdentity {
        spiffe_id,
        principal,
        thumbprint: thumbprint(der),
    })
}

/// The one URI SAN of a workload certificate (`whose` names the
/// certificate in the reason: "client certificate", "server
/// certificate"), or why there is not exactly one. Whether it is a SPIFFE
/// ID of the trust domain is [`principal_of`]'s question.
pub fn spiffe_id_of(der: &[u8], whose: &str) -> Result<String, String> {
    use x509_parser::{extensions::GeneralName, prelude::FromDer as _};
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| format!("{whose} cannot be parsed: {e}"))?;
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| format!("{whose}'s subjectAltName cannot be parsed: {e}"))?;
    let uris: Vec<&str> = sans
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    let [spiffe_id] = uris.as_slice() else {
        return Err(format!(
            "{whose} has {} URI SANs: a workload certificate has exactly one spiffe:// ID",
            uris.len()
        ));
    };
    Ok((*spiffe_id).to_owned())
}

/// Wraps a TLS acceptor: after the handshake, the peer's certificate is
/// read once and each request of the connection carries a [`ClientCert`].
#[derive(Clone, Debug)]
pub struct PeerAcceptor<A> {
    inner: A,
    trust_domain: Arc<str>,
}

impl<A> PeerAcceptor<A> {
    pub fn new(inner: A, trust_domain: &str) -> Self {
        Self {
            inner,
            trust_domain: trust_domain.into(),
        }
    }
}

type AcceptFuture<T, U> = Pin<Box<dyn Future<Output = io::Result<(T, U)>> + Send>>;

impl<A, I, S, IO> axum_server::accept::Accept<I, S> for PeerAcceptor<A>
where
    A: axum_server::accept::Accept<I, S, Stream = TlsStream<IO>>,
    A::Future: Send + 'static,
    A::Service: Send + 'static,
    IO: Send + 'static,
{
    type Stream = TlsStream<IO>;
    type Service = AddExtension<A::Service, ClientCert>;
    type Future = AcceptFuture<Self::Stream, Self::Service>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.inner.accept(stream, service);
        let trust_domain = Arc::clone(&self.trust_domain);
        Box::pin(async move {
            let (stream, service) = inner.await?;
            let cert = match stream.get_ref().1.peer_certificates() {
                Some([leaf, ..]) => identify(leaf, &trust_domain),
                _ => ClientCert::None,
            };
            match &cert {
                ClientCert::Verified(id) => tracing::debug!(principal = %id.principal, "mTLS peer"),
                ClientCert::Unusable(why) => {
                    tracing::info!("mTLS peer without a usable identity: {why}")
                }
                ClientCert::None => {}
            }
            Ok((stream, Extension(cert).layer(service)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_read_as_in_istio() {
        assert_eq!(
            principal_of(
                "spiffe://cluster.local/ns/default/sa/servicea",
                "cluster.local"
            )
            .unwrap(),
            "cluster.local/ns/default/sa/servicea"
        );
    }

    #[test]
    fn ids_outside_the_trust_domain_or_malformed_are_refused() {
        for bad in [
            "spiffe://other.domain/ns/default/sa/servicea",
            "https://cluster.local/ns/default/sa/servicea",
            "spiffe://cluster.local",
            "spiffe://cluster.local/ns//sa/x",
            "spiffe://cluster.local/ns/../sa/x",
            "spiffe://cluster.local/ns/default/sa/x?y",
        ] {
            assert!(principal_of(bad, "cluster.local").is_err(), "{bad}");
        }
    }
}
