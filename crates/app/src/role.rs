//! Which process this is: servicea, serviceb, servicec or the gateway's
//! verifier. Its name selects the subcommand, the env file and the
//! defaults derived from it (ports), so every role module reads them here.

use std::path::PathBuf;

/// jwt-factory's workload name: its SPIFFE ID's last segment, which its
/// https (mTLS) certificate must name, and what errors call it.
pub(crate) const FACTORY_WORKLOAD: &str = "jwt-factory";

/// Which of the three services this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    A,
    B,
    C,
    /// The gateway's token verifier (scenario 9), asked by nginx.
    Verifier,
}

impl Role {
    /// The subcommand that selects this role, also its default `SERVICE_NAME`.
    pub fn name(self) -> &'static str {
        match self {
            Self::A => "servicea",
            Self::B => "serviceb",
            Self::C => "servicec",
            Self::Verifier => "verifier",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::A, Self::B, Self::C, Self::Verifier]
            .into_iter()
            .find(|r| r.name() == name)
    }

    /// The env file `app <role>` loads when none is named.
    pub fn env_file(self) -> PathBuf {
        PathBuf::from(format!("env/{}.env", self.name()))
    }

    pub(crate) fn default_port(self) -> u16 {
        match self {
            Self::A => 3000,
            Self::B => 3001,
            Self::C => 3002,
            Self::Verifier => 3003,
        }
    }

    pub(crate) fn default_https_port(self) -> u16 {
        match self {
            Self::A => 7443,
            Self::B => 8443,
            Self::C => 9443,
            Self::Verifier => 10443,
        }
    }
}
