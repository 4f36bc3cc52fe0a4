//! The build session, our end: the connection the daemon's BuildKit calls back over while it
//! builds. We ask the daemon to upgrade a `POST /session` to a bare HTTP/2 connection and
//! serve gRPC on it: FileSync (the context and the Dockerfile, see [`filesync`]), FileSend
//! (what exporters write to the client: tarballs, and directories through [`localdir`]),
//! containerd's Content service (the directories of `local` caches, [`content`]), Auth
//! (registry credentials), Secrets, SSH and Health ([`services`]). The `/build` that follows
//! names the session instead of uploading a tar, so BuildKit fetches only the files its
//! cached copy of this context lacks.
//!
//! A [`Session`] is closed when it is dropped: on success, failure and cancel alike.
//!
//! Not for: the `/build` request and its progress (`build.rs`).

pub mod content;
pub mod filesend;
pub mod filesync;
pub mod localdir;
pub mod services;
pub mod ssh;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bollard_buildkit_proto::health::health_server::HealthServer;
use bollard_buildkit_proto::moby::buildkit::secrets::v1::secrets_server::SecretsServer;
use bollard_buildkit_proto::moby::filesync::v1::auth_server::AuthServer;
use bollard_buildkit_proto::moby::filesync::v1::file_sync_server::FileSyncServer;
use bollard_buildkit_proto::moby::sshforward::v1::ssh_server::SshServer;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use self::content::{ContentServer, ContentService};
use self::filesend::FileSendServer;
use self::filesync::{FileSource, FileSyncService, Transfer};
use self::services::{AuthService, HealthService, SecretsService, SshService};
use super::dial::Dialer;
use super::{BuildError, Result};
use crate::credentials::Credentials;

/// The methods we serve besides FileSend's and the content store's ([`methods`]).
const OWN_METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/moby.filesync.v1.FileSync/DiffCopy",
    "/moby.filesync.v1.Auth/Credentials",
    "/moby.buildkit.secrets.v1.Secrets/GetSecret",
    "/moby.sshforward.v1.SSH/CheckAgent",
    "/moby.sshforward.v1.SSH/ForwardAgent",
];

/// Every method we serve; the daemon calls only what it was told is there.
pub fn methods() -> impl Iterator<Item = &'static str> {
    OWN_METHODS
        .iter()
        .copied()
        .chain([filesend::DIFF_COPY])
        .chain(content::METHODS.iter().copied())
}

/// How long the daemon may take to accept the session.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// What one session serves.
pub struct SessionSpec {
    /// The context directory (it names the session and keys BuildKit's cached copy).
    pub context_dir: std::path::PathBuf,
    pub context: FileSource,
    pub dockerfile: FileSource,
    /// More local sources by the name BuildKit asks for them (named build contexts).
    pub named: BTreeMap<String, FileSource>,
    /// Where exporters' tarballs and directories go, by exporter index (FileSend).
    pub file_targets: BTreeMap<u32, filesend::FileTarget>,
    pub credentials: BTreeMap<String, Credentials>,
    pub secrets: BTreeMap<String, String>,
    pub agents: ssh::Agents,
    /// The directories of `local` caches (OCI layouts), by the store id the daemon names
    /// them with (`local:<dir>`, [`content::store_id`]), served as containerd's Content.
    pub content_stores: BTreeMap<String, std::path::PathBuf>,
}

/// An open session; closed on drop.
pub struct Session {
    pub id: String,
    /// What the daemon fetched through FileSync.
    pub transfer: Arc<Transfer>,
    /// Bytes written to each export target that was completed, by exporter index.
    pub exported: Arc<std::sync::Mutex<BTreeMap<u32, u64>>>,
    task: JoinHandle<()>,
    _agents: ssh::Agents,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The key under which BuildKit keeps its copy of a context between builds: the same for
/// every build of one directory, from any provider process on this machine.
pub fn shared_key(context_dir: &Path) -> String {
    let dir = std::fs::canonicalize(context_dir).unwrap_or_else(|_| context_dir.to_path_buf());
    let mut h = Sha256::new();
    h.update(b"docker-buildkit context:");
    h.update(dir.to_string_lossy().as_bytes());
    format!("{:x}", h.finalize())
}

/// Opens a session on the daemon and serves `spec` on it until the [`Session`] is dropped.
pub async fn open(dialer: &Dialer, spec: SessionSpec) -> Result<Session> {
    let failed = |reason: String| BuildError::Session {
        host: dialer.host().to_string(),
        reason,
    };
    let id = new_id();
    let mut request = hyper::Request::post(dialer.path("/session"))
        .header("Connection", "Upgrade")
        .header("Upgrade", "h2c")
        .header("X-Docker-Expose-Session-Uuid", &id)
        .header(
            "X-Docker-Expose-Session-Sharedkey",
            shared_key(&spec.context_dir),
        );
    // A header value must be visible ASCII: a directory name that is not goes unnamed.
    if let Some(name) = session_name(&spec.context_dir) {
        request = request.header("X-Docker-Expose-Session-Name", &name);
    }
    for m in methods() {
        request = request.header("X-Docker-Expose-Session-Grpc-Method", m);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed(e.to_string()))?;
    let upgrade = async {
        let response = dialer.send(request).await.map_err(|e| e.to_string())?;
        if response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
            use http_body_util::BodyExt;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
                .unwrap_or_default();
            return Err(format!("the daemon answered {status}: {body}"));
        }
        hyper::upgrade::on(response)
            .await
            .map_err(|e| e.to_string())
    };
    let upgraded = tokio::time::timeout(OPEN_TIMEOUT, upgrade)
        .await
        .map_err(|_| failed(format!("no answer within {} s", OPEN_TIMEOUT.as_secs())))?
        .map_err(failed)?;

    Ok(serve(id, spec, upgraded))
}

/// The session's name for BuildKit's logs: the context directory's name, when it can be a
/// header value (visible ASCII).
pub fn session_name(context_dir: &Path) -> Option<String> {
    let name = context_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "context".to_string());
    name.bytes()
        .all(|b| (0x20..0x7f).contains(&b))
        .then_some(name)
}

/// The context of `plan` in `dialect` (the `.dockerignore` rule of the builder), walked
/// with its Dockerfile read, on a blocking thread (a large context takes a while): the two
/// sources a session serves.
pub async fn plan_sources(
    plan: &crate::docker::BuildPlan,
    dialect: crate::context::IgnoreDialect,
) -> super::Result<(FileSource, FileSource)> {
    let context_error = |source| BuildError::Context {
        dir: plan.context_dir.display().to_string(),
        source,
    };
    let context = crate::context::BuildContext::open(&plan.context_dir, plan.dockerfile.clone())
        .map_err(context_error)?
        .with_dialect(dialect);
    tokio::task::spawn_blocking(move || {
        Ok::<_, crate::context::ContextError>((
            FileSource::context(&context)?,
            FileSource::dockerfile(&context)?,
        ))
    })
    .await
    .map_err(|e| super::EngineError::Internal(e.to_string()))?
    .map_err(|e| context_error(e).into())
}

/// A new session id.
pub fn new_id() -> String {
    format!("dbk{}", uuid::Uuid::new_v4().simple())
}

/// Serves `spec`'s services as session `id` over `io`, a byte stream on which BuildKit is
/// the HTTP/2 client (an upgraded `/session`, or buildkitd's `Control.Session` stream),
/// until the [`Session`] is dropped.
pub fn serve<IO>(id: String, spec: SessionSpec, io: IO) -> Session
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let transfer = Arc::new(Transfer::default());
    let filesend = filesend::FileSendService {
        targets: std::sync::Mutex::new(spec.file_targets),
        written: Arc::default(),
    };
    let exported = filesend.written.clone();
    let routes = tonic::service::Routes::new(HealthServer::new(HealthService))
        .add_service(FileSyncServer::new(FileSyncService {
            context: Arc::new(spec.context),
            dockerfile: Arc::new(spec.dockerfile),
            named: Arc::new(spec.named),
            transfer: transfer.clone(),
        }))
        .add_service(FileSendServer::new(filesend))
        .add_service(AuthServer::new(AuthService {
            credentials: Arc::new(spec.credentials),
        }))
        .add_service(SecretsServer::new(SecretsService {
            secrets: Arc::new(spec.secrets),
        }))
        .add_service(SshServer::new(SshService {
            agents: Arc::new(spec.agents.sockets.clone()),
        }))
        .add_service(ContentServer::new(ContentService::new(
            &spec.content_stores,
        )));
    let service = hyper_util::service::TowerToHyperService::new(routes);
    let task = tokio::spawn(async move {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await;
    });
    Session {
        id,
        transfer,
        exported,
        task,
        _agents: spec.agents,
    }
}
