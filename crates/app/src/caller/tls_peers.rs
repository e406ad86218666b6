//! servicea's TLS clients, one per peer, each pinned to that peer's
//! SPIFFE ID ([`s2s_web::peer_pin`]).

use s2s_web::{
    outbound::{self, ClientError, Timeouts},
    peer_pin::PeerTls,
    pki,
};

use crate::role::{FACTORY_WORKLOAD, Role};

/// servicea's clients for the peers it calls over TLS: one each, built
/// once per CA (and, for mTLS, per certificate) and reused; each accepts
/// only its peer's workload certificate (SPIFFE ID in `TRUST_DOMAIN`).
#[derive(Debug)]
pub(crate) struct TlsPeers {
    /// serviceb's https listener (scenarios 3, 4, 7, 8).
    pub serviceb: reqwest::Client,
    /// servicec's https listener (scenario 4).
    pub servicec: reqwest::Client,
    /// jwt-factory's https (mTLS) token endpoint (scenario 8's `POST /token`).
    pub factory: reqwest::Client,
}

impl TlsPeers {
    /// Each peer's client, with `tls` pinned to its workload's SPIFFE ID.
    pub(super) fn build(
        timeouts: Timeouts,
        trust_domain: &str,
        tls: &PeerTls,
    ) -> Result<Self, String> {
        let client = |workload: &str| {
            let config = tls
                .config_for(&pki::spiffe_id(trust_domain, workload))
                .map_err(ClientError::from)?;
            outbound::pinned_client(timeouts, config)
        };
        let build = || -> Result<Self, ClientError> {
            Ok(Self {
                serviceb: client(Role::B.name())?,
                servicec: client(Role::C.name())?,
                factory: client(FACTORY_WORKLOAD)?,
            })
        };
        build().map_err(|e| outbound::error_chain(&e))
    }
}

impl TlsPeers {
    /// The client for `peer`, a receiver: any other role is serviceb.
    pub(super) fn for_peer(&self, peer: Role) -> reqwest::Client {
        match peer {
            Role::C => self.servicec.clone(),
            _ => self.serviceb.clone(),
        }
    }
}
