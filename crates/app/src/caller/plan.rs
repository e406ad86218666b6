//! What servicea does for one leg of a scenario, decided in one place:
//! [`plan`] turns (the scenario's check, the peer, `?expired`) into a
//! [`Plan`]: where the token comes from, which client carries the call,
//! and where it goes. It is pure, so it is tested without a network;
//! [`super::legs`] only carries plans out. A new scenario that reuses a
//! token source and a transport is a row of the table and an arm here.

use crate::{role::Role, scenarios::Check};

/// Where a leg's token comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenSource {
    /// jwt-factory's `POST /issueToken/servicea` (the workshop's token
    /// service); `expired` asks it for an expired token.
    IssueToken { expired: bool },
    /// jwt-factory's `POST /token` (`private_key_jwt`), cached. `bound`:
    /// over mTLS, bound to servicea's certificate (RFC 8705).
    /// `expired_assertion`: authenticate with an expired client assertion
    /// on purpose, past the cache, so the factory's refusal shows.
    Sts {
        bound: bool,
        expired_assertion: bool,
    },
    /// servicea signs it with its own key; `expired` an hour ago.
    SelfSigned { expired: bool },
    /// No token: servicea's workload certificate is its credential.
    Nothing,
}

/// Which of servicea's clients carries the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// The plain-http client.
    Http,
    /// The peer's one-way TLS client, pinned to its SPIFFE ID.
    Tls,
    /// The peer's mTLS client, presenting servicea's workload certificate.
    Mtls,
    /// Plain http through servicea's sidecar (`MESH_PROXY`).
    Sidecar,
}

/// Where the call goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Destination {
    /// The peer's own listener: http or https, as the transport.
    Peer,
    /// The gateway (nginx), which leads `/PEER/...` to the peer.
    Gateway,
    /// The peer as the mesh names it; the sidecar finds it.
    Mesh,
}

/// One leg, decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The receiver the token is for (its `aud`).
    pub(crate) peer: Role,
    pub(crate) token: TokenSource,
    pub(crate) transport: Transport,
    pub(crate) to: Destination,
}

impl Plan {
    /// Whom servicea calls, and names when it cannot be reached: through
    /// the gateway, the gateway.
    pub(crate) fn callee(&self) -> &'static str {
        match self.to {
            Destination::Gateway => "gateway",
            Destination::Peer | Destination::Mesh => self.peer.name(),
        }
    }
}

/// The leg of a scenario checked by `check`, to `peer`, with an expired
/// credential if `expired`.
pub(crate) fn plan(check: Check, peer: Role, expired: bool) -> Plan {
    use {Destination as To, TokenSource as Token, Transport as Via};
    // Through the gateway or the mesh: the token a production caller would
    // have, scenario 6's cached access token. `?expired=1` asks
    // /issueToken for an expired one, so the edge's refusal shows.
    let production_token = if expired {
        Token::IssueToken { expired }
    } else {
        Token::Sts {
            bound: false,
            expired_assertion: false,
        }
    };
    let sts = |bound| Token::Sts {
        bound,
        expired_assertion: expired,
    };
    let (token, transport, to) = match check {
        Check::Factory | Check::Jwks => (Token::IssueToken { expired }, Via::Http, To::Peer),
        Check::CallerKey => (Token::SelfSigned { expired }, Via::Tls, To::Peer),
        Check::Sts => (sts(false), Via::Http, To::Peer),
        Check::Identity => (Token::Nothing, Via::Mtls, To::Peer),
        Check::BoundSts => (sts(true), Via::Mtls, To::Peer),
        Check::Gateway => (production_token, Via::Http, To::Gateway),
        Check::Mesh => (production_token, Via::Sidecar, To::Mesh),
    };
    Plan {
        peer,
        token,
        transport,
        to,
    }
}

#[cfg(test)]
mod tests {
    use super::{Destination as To, TokenSource as Token, Transport as Via, *};
    use crate::scenarios::SCENARIOS;

    fn of(n: u8, expired: bool) -> Plan {
        let s = SCENARIOS.iter().find(|s| s.n == n).unwrap();
        plan(s.check, Role::B, expired)
    }

    #[test]
    fn every_scenario_has_the_plan_its_row_teaches() {
        let sts = |bound| Token::Sts {
            bound,
            expired_assertion: false,
        };
        let expected = [
            (1, Token::IssueToken { expired: false }, Via::Http, To::Peer),
            (2, Token::IssueToken { expired: false }, Via::Http, To::Peer),
            (3, Token::SelfSigned { expired: false }, Via::Tls, To::Peer),
            (4, Token::SelfSigned { expired: false }, Via::Tls, To::Peer),
            (5, Token::IssueToken { expired: false }, Via::Http, To::Peer),
            (6, sts(false), Via::Http, To::Peer),
            (7, Token::Nothing, Via::Mtls, To::Peer),
            (8, sts(true), Via::Mtls, To::Peer),
            (9, sts(false), Via::Http, To::Gateway),
            (10, sts(false), Via::Sidecar, To::Mesh),
        ];
        assert_eq!(expected.len(), SCENARIOS.len());
        for (n, token, transport, to) in expected {
            let p = of(n, false);
            assert_eq!((p.token, p.transport, p.to), (token, transport, to), "{n}");
        }
    }

    #[test]
    fn expired_asks_for_the_expired_credential_of_each_source() {
        assert_eq!(of(1, true).token, Token::IssueToken { expired: true });
        assert_eq!(of(3, true).token, Token::SelfSigned { expired: true });
        for n in [6, 8] {
            let Token::Sts {
                expired_assertion, ..
            } = of(n, true).token
            else {
                panic!("{n}: not the STS")
            };
            assert!(expired_assertion, "{n}");
        }
        // The edge refuses what /issueToken expired: no cached STS token.
        assert_eq!(of(9, true).token, Token::IssueToken { expired: true });
        assert_eq!(of(10, true).token, Token::IssueToken { expired: true });
        assert_eq!(of(7, true).token, Token::Nothing);
    }

    #[test]
    fn through_the_gateway_the_gateway_is_called() {
        assert_eq!(of(9, false).callee(), "gateway");
        assert_eq!(of(10, false).callee(), "serviceb");
        assert_eq!(plan(Check::Factory, Role::C, false).callee(), "servicec");
    }
}
