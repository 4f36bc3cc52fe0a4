//! Our own BuildKit client: BuildKit's gRPC Control API (`moby.buildkit.v1.Control`) to a
//! standalone `buildkitd` (buildx's `remote` driver: a `unix://` socket, or `tcp://` with
//! the CA, certificate and key of mutual TLS).
//!
//! A build is one `Solve` with the Dockerfile frontend, whose files, registry credentials,
//! secrets and ssh agents come over a session we attach the way BuildKit's own client does:
//! a `Control.Session` stream whose bytes carry an HTTP/2 connection on which buildkitd is
//! the client and we serve the same services as for a Docker host
//! ([`crate::docker::session`]). `Status` streams the progress, rendered as docker's plain
//! lines. BuildKit's exporters do the rest (the image exporter pushes by itself).
//!
//! Not for: Docker hosts (`crate::docker`, the Engine API's `/build`), or deciding what to
//! build (the caller's plan).

mod connect;
pub mod local_cache;
mod solve;

pub use connect::{BuildkitAddress, Buildkitd};
pub use solve::{Solve, SolveOutcome};

/// What went wrong talking to a buildkitd.
#[derive(Debug, thiserror::Error)]
pub enum BuildkitError {
    #[error("{host:?} is not a BuildKit daemon address: {reason}")]
    BadAddress { host: String, reason: String },
    #[error("cannot reach the BuildKit daemon at {host}: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("the build session with the BuildKit daemon at {host} failed: {reason}")]
    Session { host: String, reason: String },
    #[error("the build on the BuildKit daemon at {host} failed: {message}\n{log}")]
    Failed {
        host: String,
        message: String,
        /// The build's plain progress, its tail at least.
        log: String,
    },
    #[error("the build on the BuildKit daemon at {host} was cancelled")]
    Cancelled { host: String },
    /// A cache option lacks what its type needs (`local` needs `dest` or `src`).
    #[error("{what} needs {needs}")]
    CacheOption {
        what: &'static str,
        needs: &'static str,
    },
    /// A `local` cache's directory cannot be prepared or updated.
    #[error("the local cache {dir}: {reason}")]
    LocalCache { dir: String, reason: String },
}
