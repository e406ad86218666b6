//! The commands that write configuration for the processes the services
//! sit behind, from the same settings as the services: nginx for the
//! gateway (scenario 9), Envoy for the sidecars (scenario 10); and
//! `app topology`, where every process runs.

pub mod deploy_files;
pub mod gateway_config;
pub mod mesh_config;
pub mod topology;

pub use deploy_files::Args as DeployFilesArgs;
pub use gateway_config::Args as GatewayConfigArgs;
pub use mesh_config::Args as MeshConfigArgs;
pub use topology::Args as TopologyArgs;
