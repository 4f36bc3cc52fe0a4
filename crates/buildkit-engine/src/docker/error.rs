//! The build engine's errors, typed by concern (the daemon, a build, a push, the registry,
//! credentials), each with the sentence a user acts on and its source kept. [`Kind`] says
//! whose problem an error is; the resource layer maps it to a gRPC code in one place.
//!
//! Where the daemon gives only text, [`classify`] is the one place that reads it, with its own
//! table test: nothing else matches on message text.
//!
//! Not for: deciding what to do about an error (the engine does that from the variants).

use crate::context::ContextError;
use crate::registry::RegistryError;
use crate::settings::Setting;

use crate::credentials::AuthError;

/// Whose problem an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The inputs or the configuration cannot work: the user fixes them.
    InvalidInput,
    /// Something outside (daemon, registry) could not be reached: try again later.
    Unavailable,
    /// The work was stopped on request.
    Cancelled,
    /// Anything else.
    Failed,
}

/// What a piece of daemon or registry text means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonText {
    /// Credentials missing or refused.
    Unauthorized,
    /// A registry (or other host) that could not be reached.
    Unreachable,
    /// BuildKit lost the context it was sent (e.g. a concurrent `docker builder prune`).
    ContextLost,
    /// A program for another architecture could not run (no emulator on the host).
    ExecFormat,
    Other,
}

/// The one reader of daemon text.
pub fn classify(text: &str) -> DaemonText {
    let t = text.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
    if any(&["failed to read downloaded context", "context not found"]) {
        DaemonText::ContextLost
    } else if any(&["exec format error"]) {
        DaemonText::ExecFormat
    } else if any(&[
        "unauthorized",
        "authentication required",
        "failed to authorize",
        "403 forbidden",
        "denied",
        "401",
    ]) {
        DaemonText::Unauthorized
    } else if any(&[
        "connection refused",
        "no such host",
        "i/o timeout",
        "dial tcp",
        "connection reset",
    ]) {
        DaemonText::Unreachable
    } else {
        DaemonText::Other
    }
}

/// Talking to the Docker daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "the Docker host {host:?} is not supported: use unix:///path/to/docker.sock or tcp://host:port"
    )]
    Unsupported { host: String },
    #[error(
        "the Docker host {host} uses TLS: give {} (a directory with ca.pem, cert.pem and key.pem), or set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH",
        Setting::DaemonCerts
    )]
    TlsWithoutCerts { host: String },
    #[error("the Docker host {host:?} cannot be used: {reason}")]
    InvalidHost { host: String, reason: String },
    #[error("cannot reach the Docker daemon at {host}: {reason}. {hint}")]
    Unreachable {
        host: String,
        reason: String,
        hint: String,
    },
    #[error(
        "the Docker daemon at {host} closed the connection during the {what} (did it stop or restart?): {reason}"
    )]
    ConnectionLost {
        host: String,
        what: &'static str,
        reason: String,
    },
    #[error("the Docker daemon at {host} stopped answering during the {what}")]
    NoAnswer { host: String, what: &'static str },
    #[error("cannot ask the Docker daemon at {host} for {reference}: {source}")]
    Inspect {
        host: String,
        reference: String,
        #[source]
        source: bollard::errors::Error,
    },
}

impl DaemonError {
    /// The connection to the daemon at `host` failed in the middle of `what`.
    pub fn lost(host: String, what: &'static str, source: bollard::errors::Error) -> Self {
        match source {
            bollard::errors::Error::RequestTimeoutError => DaemonError::NoAnswer { host, what },
            source => DaemonError::ConnectionLost {
                host,
                what,
                reason: source.to_string(),
            },
        }
    }
}

/// One build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// What a Docker host's `/build` cannot do (export a cache but the inline one, attest).
    #[error(
        "the Docker host {host} cannot {what} (its /build cannot): build on a BuildKit daemon (`driver: buildkit`)"
    )]
    NeedsBuildkit { host: String, what: String },
    /// A named context in an OCI layout that does not give its image.
    #[error("the named context {name}: {source}")]
    NamedLayout {
        name: String,
        #[source]
        source: crate::docker::session::content::LayoutError,
    },
    #[error("the build context {dir} cannot be read: {source}")]
    Context {
        dir: String,
        #[source]
        source: ContextError,
    },
    /// The daemon reported a failure (`step`: the failing step, when known).
    #[error("docker build of {tag} failed{}: {reason}{}", step.as_ref().map(|s| format!(" at step `{s}`")).unwrap_or_default(), hint.as_deref().map(|h| format!(". {h}")).unwrap_or_default())]
    Failed {
        tag: String,
        step: Option<String>,
        reason: String,
        hint: Option<String>,
        /// What the reason (or the step's log) says happened.
        meaning: DaemonText,
    },
    #[error(
        "the Docker daemon at {host} ended the build of {tag} without reporting an image (did it stop or restart?)"
    )]
    NoImage { host: String, tag: String },
    #[error(
        "several platforms need `push: true`: the Docker daemon cannot keep a multi-platform image locally"
    )]
    IndexNeedsPush,
    /// Exports of an image built one platform at a time on several builders.
    #[error(
        "exports of several platforms need them built in one solve, on one BuildKit daemon: these platforms are spread over builders ({hosts})"
    )]
    ExportsNeedOneSolve { hosts: String },
    /// An export could not be written.
    #[error("the export to {target} failed: {reason}")]
    Export { target: String, reason: String },
    /// An `ssh` entry cannot be served (no agent, a key the agent refuses, …).
    #[error("ssh: {id:?}: {reason}")]
    Ssh { id: String, reason: String },
    /// Every builder listing a platform is down.
    #[error("no builder for {platform} can be reached: {tried}")]
    NoBuilder { platform: String, tried: String },
    /// The build session could not be opened on the daemon.
    #[error("cannot open a build session on the Docker daemon at {host}: {reason}")]
    Session { host: String, reason: String },
}

/// Tagging and pushing.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot tag the image as {target}: {source}")]
    Tag {
        target: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("authentication failed for {server}: {} ({detail})", if *had_credentials { "check the registry username and password".to_string() } else { format!("no credentials were found for it: set {} or log in with `docker login`", Setting::RegistryLogin) })]
    Unauthorized {
        server: String,
        detail: String,
        had_credentials: bool,
    },
    #[error("registry {server} is unreachable: {detail}")]
    Unreachable { server: String, detail: String },
    #[error("push to {server} failed: {detail}")]
    Failed { server: String, detail: String },
    #[error("the push of {target} reported no digest")]
    NoDigest { target: String },
    #[error("cannot inspect {target} after pushing it: {source}")]
    Inspect {
        target: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(
        "{target} kept being moved to other images by concurrent builds on the same Docker daemon; the image was pushed {attempts} times without the tag staying on it: run again"
    )]
    TagKeptMoving { target: String, attempts: usize },
    #[error("{reference} was pushed but the registry does not have it")]
    Missing { reference: String },
    #[error("nothing was pushed")]
    Nothing,
}

impl PushError {
    /// The daemon's text about a push to `server`, as the error a user can act on.
    pub fn from_daemon(server: &str, detail: &str, had_credentials: bool) -> Self {
        let (server, detail) = (server.to_string(), detail.to_string());
        match classify(&detail) {
            DaemonText::Unauthorized => PushError::Unauthorized {
                server,
                detail,
                had_credentials,
            },
            DaemonText::Unreachable => PushError::Unreachable { server, detail },
            _ => PushError::Failed { server, detail },
        }
    }
}

/// Anything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Push(#[from] PushError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Credentials(#[from] AuthError),
    #[error(transparent)]
    Reference(#[from] crate::reference::ReferenceError),
    #[error("cancelled: the {what} of {target} was stopped")]
    Cancelled { what: &'static str, target: String },
    /// A standalone buildkitd builder's error.
    #[error(transparent)]
    Buildkit(#[from] crate::buildkit::BuildkitError),
    /// What a buildkitd cannot do (it keeps no images of its own).
    #[error(
        "{what} needs a Docker host: the BuildKit daemon at {host} keeps no images of its own; {fix}"
    )]
    NotOnBuildkit {
        host: String,
        what: &'static str,
        fix: String,
    },
    /// One platform of a multi-platform build failed on the builder it was given.
    #[error("{platform} (built on {host}): {source}")]
    OnBuilder {
        platform: String,
        host: String,
        source: Box<EngineError>,
    },
    /// A task of the engine's own died (a panic in a blocking thread).
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// Whose problem this is.
    pub fn kind(&self) -> Kind {
        match self {
            EngineError::Daemon(
                DaemonError::Unsupported { .. }
                | DaemonError::TlsWithoutCerts { .. }
                | DaemonError::InvalidHost { .. },
            ) => Kind::InvalidInput,
            EngineError::Daemon(_) => Kind::Unavailable,
            EngineError::Build(
                BuildError::Context { .. }
                | BuildError::NamedLayout { .. }
                | BuildError::IndexNeedsPush
                | BuildError::ExportsNeedOneSolve { .. }
                | BuildError::Ssh { .. }
                | BuildError::NeedsBuildkit { .. },
            ) => Kind::InvalidInput,
            EngineError::Build(BuildError::Session { .. } | BuildError::NoBuilder { .. }) => {
                Kind::Unavailable
            }
            EngineError::Build(_) => Kind::Failed,
            EngineError::Push(PushError::Unauthorized { .. }) => Kind::InvalidInput,
            EngineError::Push(PushError::Unreachable { .. }) => Kind::Unavailable,
            // The daemon's connection broke during the push.
            EngineError::Push(_) => Kind::Failed,
            EngineError::Registry(RegistryError::Unreachable { .. }) => Kind::Unavailable,
            EngineError::Registry(RegistryError::Unauthorized { .. }) => Kind::InvalidInput,
            EngineError::Registry(RegistryError::InvalidArgument(_)) => Kind::InvalidInput,
            EngineError::Registry(_) => Kind::Failed,
            EngineError::Credentials(_) | EngineError::Reference(..) => Kind::InvalidInput,
            EngineError::Cancelled { .. } => Kind::Cancelled,
            EngineError::Buildkit(
                crate::buildkit::BuildkitError::BadAddress { .. }
                | crate::buildkit::BuildkitError::CacheOption { .. },
            )
            | EngineError::NotOnBuildkit { .. } => Kind::InvalidInput,
            EngineError::Buildkit(
                crate::buildkit::BuildkitError::Unreachable { .. }
                | crate::buildkit::BuildkitError::Session { .. },
            ) => Kind::Unavailable,
            EngineError::Buildkit(crate::buildkit::BuildkitError::Cancelled { .. }) => {
                Kind::Cancelled
            }
            EngineError::Buildkit(
                crate::buildkit::BuildkitError::Failed { .. }
                | crate::buildkit::BuildkitError::LocalCache { .. },
            ) => Kind::Failed,
            EngineError::OnBuilder { source, .. } => source.kind(),
            EngineError::Internal(_) => Kind::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_text_is_read_in_one_place() {
        let table: &[(&str, DaemonText)] = &[
            (
                "unauthorized: authentication required",
                DaemonText::Unauthorized,
            ),
            (
                "denied: requested access to the resource is denied",
                DaemonText::Unauthorized,
            ),
            (
                "failed to authorize: failed to fetch anonymous token: unexpected status: 401 Unauthorized",
                DaemonText::Unauthorized,
            ),
            ("unexpected status: 403 Forbidden", DaemonText::Unauthorized),
            (
                "Get \"http://r:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused",
                DaemonText::Unreachable,
            ),
            ("lookup nope.invalid: no such host", DaemonText::Unreachable),
            (
                "read tcp 1.2.3.4:5->6.7.8.9:443: read: connection reset by peer",
                DaemonText::Unreachable,
            ),
            (
                "failed to read downloaded context: context not found",
                DaemonText::ContextLost,
            ),
            (
                "failed to solve: rpc error: code = Unknown desc = context not found",
                DaemonText::ContextLost,
            ),
            ("exec /bin/sh: exec format error", DaemonText::ExecFormat),
            (
                "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3",
                DaemonText::Other,
            ),
            ("", DaemonText::Other),
        ];
        for (text, want) in table {
            assert_eq!(classify(text), *want, "{text}");
        }
    }

    #[test]
    fn push_errors_say_what_to_fix() {
        let e = PushError::from_daemon("r:5000", "unauthorized: authentication required", true);
        assert!(
            e.to_string().starts_with(
                "authentication failed for r:5000: check the registry username and password"
            ),
            "{e}"
        );
        let e = PushError::from_daemon("r:5000", "unauthorized", false);
        assert!(e.to_string().contains("docker login"), "{e}");
        let e = PushError::from_daemon(
            "r:5000",
            "dial tcp 127.0.0.1:5000: connect: connection refused",
            true,
        );
        assert!(
            e.to_string().starts_with("registry r:5000 is unreachable"),
            "{e}"
        );
        assert_eq!(EngineError::from(e).kind(), Kind::Unavailable);
        let e = PushError::from_daemon("r:5000", "blob upload unknown", true);
        assert_eq!(e.to_string(), "push to r:5000 failed: blob upload unknown");
    }

    #[test]
    fn build_failures_read_as_before() {
        let e = BuildError::Failed {
            tag: "r/a:latest".into(),
            step: Some("[2/2] RUN exit 3".into()),
            reason: "exit code: 3".into(),
            hint: None,
            meaning: DaemonText::Other,
        };
        assert_eq!(
            e.to_string(),
            "docker build of r/a:latest failed at step `[2/2] RUN exit 3`: exit code: 3"
        );
        let e = BuildError::Failed {
            tag: "t".into(),
            step: None,
            reason: "x".into(),
            hint: Some("install qemu".into()),
            meaning: DaemonText::ExecFormat,
        };
        assert_eq!(e.to_string(), "docker build of t failed: x. install qemu");
    }
}
