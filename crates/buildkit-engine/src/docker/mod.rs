//! The build engine: everything that talks to the Docker daemon. It carries out a
//! [`BuildPlan`] in an [`Env`] ([`plan`]): connecting ([`connect`]), building with BuildKit
//! ([`build`]), tagging and pushing ([`push`]), rendering progress ([`progress`]), image
//! indexes and registry-side tags ([`index`]), and a standalone buildkitd as a builder
//! ([`kit`], through [`crate::buildkit`]); registry credentials come from
//! [`crate::credentials`], below both this module and [`crate::registry`].
//!
//! This file is the facade: the modules and what they offer, nothing else.
//!
//! [`build_and_push`] is the one entry point for `up`: reuse, or build, tag, push, and report
//! the digest. Cancellation drops the daemon's streams, which makes the daemon stop the build
//! or push. Imports nothing of the resource layer or the wire: the arrows are resource →
//! plan → engine. Not for: deciding *whether* to build (the resource's diff does that).

pub mod build;
mod daemon;
pub mod dial;
pub mod dialect;
pub mod error;
pub mod flow;
pub mod index;
pub mod kit;
pub mod plan;
pub mod progress;
pub mod push;
mod run;
pub mod session;
pub mod tunnel;

pub use self::daemon::{DEFAULT_SOCKET, HOST_SCHEMES, connect, daemon_host};
pub(crate) use self::daemon::{Endpoint, endpoint};
pub use self::error::{BuildError, DaemonError, EngineError, Kind, PushError};
pub use self::plan::{
    BuildPlan, BuildSecrets, BuilderSpec, CacheExport, CacheImport, DaemonAddress, Driver, Env,
    Events, Export, Exported, Level, NAMED_IMAGE_SCHEME, NAMED_OCI_LAYOUT_SCHEME, NamedContext,
    OciLayoutRef, Pending, SshForward, TarballFormat,
};
pub(crate) use self::run::docker_credentials;
pub use self::run::{Built, build_and_push, credentials_for, registry_has, retag};

/// The engine's results.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
