//! Which process this is: servicea, serviceb, servicec or the gateway's
//! verifier. Its name selects the subcommand, the env file and the
//! defaults derived from it (ports), so every role module reads them here.

use std::path::PathBuf;

/// jwt-factory's workload name: its SPIFFE ID's last segment, which its
/// https (mTLS) certificate must name, and what errors call it.
pub(crate) const FACTORY_WORKLOAD: &str = topology::FACTORY.workload;

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
    /// Where the topology puts this role: its name, ports, workload.
    pub fn process(self) -> &'static topology::Process {
        match self {
            Self::A => &topology::SERVICEA,
            Self::B => &topology::SERVICEB,
            Self::C => &topology::SERVICEC,
            Self::Verifier => &topology::VERIFIER,
        }
    }

    /// The subcommand that selects this role, also its default `SERVICE_NAME`.
    pub fn name(self) -> &'static str {
        self.process().name
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
        self.process().port
    }

    /// Its https port; a role without one in the topology gets an
    /// ephemeral port (0), should it be asked to serve https.
    pub(crate) fn default_https_port(self) -> u16 {
        self.process().https_port.unwrap_or(0)
    }
}
