//! One `Solve` on a buildkitd, with its session attached over `Control.Session` and its
//! progress read from `Status`.
//!
//! The session: buildkitd reads the session's id, name, shared key and the gRPC methods we
//! serve from the stream's metadata (BuildKit's `x-docker-expose-session-*` headers), then
//! dials an HTTP/2 connection through the stream's `BytesMessage`s; we serve the build's
//! services on our end of it ([`session::serve`]). The stream lives as long as the solve.
//!
//! `local` caches are the client's to serve and to index ([`local_cache`]): their stores
//! join the session, and their `index.json` is updated once the solve went well.

use std::collections::{BTreeMap, HashMap};

use bollard_buildkit_proto::moby::buildkit::v1::{
    BytesMessage, CacheOptions, CacheOptionsEntry, Exporter, SolveRequest, StatusRequest,
};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;

use super::{BuildkitError, Buildkitd, local_cache};
use crate::docker::plan::{Events, Level};
use crate::docker::progress::ProgressPrinter;
use crate::docker::session::{self, SessionSpec, shared_key};

/// The Dockerfile frontend built into BuildKit.
pub const DOCKERFILE_FRONTEND: &str = "dockerfile.v0";

/// Bytes of one `BytesMessage` we send (grpc-go's hijacked streams use 32 KiB too).
const CHUNK: usize = 32 * 1024;

/// What one solve builds and where its result goes.
pub struct Solve {
    /// The files, credentials, secrets and agents the build's session serves.
    pub session: SessionSpec,
    /// The Dockerfile frontend's options (`filename`, `target`, `build-arg:NAME`,
    /// `label:NAME`, `platform`, …).
    pub frontend_attrs: BTreeMap<String, String>,
    /// `(type, attrs)`: e.g. `("image", {name, push: "true"})`.
    pub exporters: Vec<(String, BTreeMap<String, String>)>,
    /// `(type, attrs)` of the caches to export (`inline`, `registry`, `local` with `dest`:
    /// a directory, whose `index.json` the solve updates).
    pub cache_exports: Vec<(String, BTreeMap<String, String>)>,
    /// `(type, attrs)` of the caches to import (`local` with `src`: a directory, read by
    /// the `digest` given or its `tag`'s in `index.json`; one with no cache is skipped with
    /// a warning).
    pub cache_imports: Vec<(String, BTreeMap<String, String>)>,
}

/// What a solve made.
#[derive(Debug, Clone, Default)]
pub struct SolveOutcome {
    /// What the exporters said (`containerimage.digest`, …).
    pub exporter_response: BTreeMap<String, String>,
    /// Files and bytes buildkitd fetched through FileSync.
    pub sent: (u64, u64),
    /// Bytes written to each completed export target, by exporter index (FileSend).
    pub exported: BTreeMap<u32, u64>,
    /// The plain progress of the build (its tail).
    pub log: String,
}

impl SolveOutcome {
    /// The digest of the image (or index) the image exporter wrote.
    pub fn image_digest(&self) -> Option<&str> {
        self.exporter_response
            .get("containerimage.digest")
            .map(String::as_str)
    }
}

/// The pumps between a `Control.Session` stream and our end of the HTTP/2 connection in it;
/// stopped with the session.
struct Attached {
    session: session::Session,
    pumps: [JoinHandle<()>; 2],
}

impl Drop for Attached {
    fn drop(&mut self) {
        for p in &self.pumps {
            p.abort();
        }
    }
}

fn entries(list: Vec<(String, BTreeMap<String, String>)>) -> Vec<CacheOptionsEntry> {
    list.into_iter()
        .map(|(r#type, attrs)| CacheOptionsEntry {
            r#type,
            attrs: attrs.into_iter().collect::<HashMap<_, _>>(),
        })
        .collect()
}

impl Buildkitd {
    /// Runs `solve`; progress lines go to `events` as they come. Stops within a moment
    /// when `cancel` fires (the solve's context is cancelled on the daemon when the call is
    /// dropped).
    pub async fn solve(
        &self,
        solve: Solve,
        events: &dyn Events,
        cancel: &CancellationToken,
    ) -> Result<SolveOutcome, BuildkitError> {
        let host = self.host.clone();
        // `local` caches: their directories made ready and attached to the session, as
        // BuildKit's client does ([`local_cache`]).
        let (exports, imports) = (solve.cache_exports, solve.cache_imports);
        let caches = tokio::task::spawn_blocking(move || local_cache::prepare(exports, imports))
            .await
            .map_err(|e| BuildkitError::LocalCache {
                dir: String::new(),
                reason: format!("preparing the local caches failed: {e}"),
            })??;
        for w in &caches.warnings {
            events.log(Level::Warning, w).await;
        }
        let mut spec = solve.session;
        spec.content_stores.extend(caches.stores.clone());
        let attached = self.attach(spec).await?;
        let session_id = attached.session.id.clone();
        let build_ref = format!("dbk{}", uuid::Uuid::new_v4().simple());
        let mut frontend_attrs = solve.frontend_attrs;
        if !caches.imports.is_empty() {
            // A frontend solves the build itself: it takes the imports as an attribute (as
            // BuildKit's own client passes them), beside the solve's own cache options.
            let imports: Vec<serde_json::Value> = caches
                .imports
                .iter()
                .map(|(t, attrs)| serde_json::json!({"Type": t, "Attrs": attrs}))
                .collect();
            frontend_attrs.insert(
                "cache-imports".to_string(),
                serde_json::Value::Array(imports).to_string(),
            );
        }
        // A Docker Engine's BuildKit may predate the list of exporters (v0.13): there, one
        // exporter goes in the single fields that came before, as BuildKit's client sends it.
        let (exporter_deprecated, exporter_attrs_deprecated) = match solve.exporters.as_slice() {
            [(kind, attrs)] if self.docker.is_some() => (
                kind.clone(),
                attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ),
            _ => (String::new(), HashMap::new()),
        };
        let request = SolveRequest {
            r#ref: build_ref.clone(),
            exporter_deprecated,
            exporter_attrs_deprecated,
            session: session_id,
            frontend: DOCKERFILE_FRONTEND.to_string(),
            frontend_attrs: frontend_attrs.into_iter().collect(),
            exporters: solve
                .exporters
                .into_iter()
                .map(|(r#type, attrs)| Exporter {
                    r#type,
                    attrs: attrs.into_iter().collect(),
                })
                .collect(),
            cache: Some(CacheOptions {
                exports: entries(caches.exports.clone()),
                imports: entries(caches.imports.clone()),
                ..CacheOptions::default()
            }),
            ..SolveRequest::default()
        };
        let mut solver = self.client.clone();
        let mut watcher = self.client.clone();
        let mut printer = ProgressPrinter::new();
        let solved = solver.solve(request);
        let progress = async {
            // Status waits for the solve of that ref to start; it ends when the solve does.
            let Ok(stream) = watcher
                .status(StatusRequest {
                    r#ref: build_ref.clone(),
                })
                .await
            else {
                return;
            };
            let mut stream = stream.into_inner();
            while let Ok(Some(status)) = stream.message().await {
                for line in printer.handle(&status) {
                    events.progress(&line).await;
                }
                for w in printer.take_warnings() {
                    events.log(Level::Warning, &w).await;
                }
            }
        };
        let both = async { tokio::join!(solved, progress).0 };
        let result = tokio::select! {
            r = both => r,
            () = cancel.cancelled() => {
                return Err(BuildkitError::Cancelled { host });
            }
        };
        let sent = attached.session.transfer.snapshot();
        let exported = attached
            .session
            .exported
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        drop(attached);
        let log = printer.log();
        match result {
            Ok(response) => {
                // The solve went well, so a cache export that failed was one with
                // `ignore-error`: the user hears of it.
                for failed in printer.take_failed_cache_exports() {
                    events
                        .log(
                            Level::Warning,
                            &format!(
                                "a cache export failed and was ignored (ignoreError): {failed}"
                            ),
                        )
                        .await;
                }
                let exporter_response: BTreeMap<String, String> = response
                    .into_inner()
                    .exporter_response
                    .into_iter()
                    .collect();
                if !caches.to_update.is_empty() {
                    let response = exporter_response.clone();
                    let notes = tokio::task::spawn_blocking(move || {
                        local_cache::finish(&caches, &response)
                    })
                    .await
                    .map_err(|e| BuildkitError::LocalCache {
                        dir: String::new(),
                        reason: format!("updating the local caches failed: {e}"),
                    })??;
                    for (level, note) in notes {
                        match level {
                            Level::Info => events.progress(&note).await,
                            _ => events.log(level, &note).await,
                        }
                    }
                }
                Ok(SolveOutcome {
                    exporter_response,
                    sent,
                    exported,
                    log,
                })
            }
            Err(status) => Err(BuildkitError::Failed {
                host,
                message: status.message().to_string(),
                log,
            }),
        }
    }

    /// Opens a session on the daemon and serves `spec` on it.
    async fn attach(&self, spec: SessionSpec) -> Result<Attached, BuildkitError> {
        let failed = |reason: String| BuildkitError::Session {
            host: self.host.clone(),
            reason,
        };
        if let Some(dialer) = &self.docker {
            // A Docker Engine's BuildKit: the session is the Engine's `/session` upgrade.
            let session = session::open(dialer, spec)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let idle = || tokio::spawn(async {});
            return Ok(Attached {
                session,
                pumps: [idle(), idle()],
            });
        }
        let id = session::new_id();
        let (to_daemon, outgoing) = mpsc::channel::<BytesMessage>(16);
        let mut request = tonic::Request::new(ReceiverStream::new(outgoing));
        let header = |v: &str| {
            MetadataValue::try_from(v).map_err(|e| failed(format!("{v:?} is no header value: {e}")))
        };
        let md = request.metadata_mut();
        md.insert("x-docker-expose-session-uuid", header(&id)?);
        md.insert(
            "x-docker-expose-session-sharedkey",
            header(&shared_key(&spec.context_dir))?,
        );
        if let Some(name) = session::session_name(&spec.context_dir) {
            md.insert("x-docker-expose-session-name", header(&name)?);
        }
        for m in session::methods() {
            md.append("x-docker-expose-session-grpc-method", header(m)?);
        }
        let mut client = self.client.clone();
        let mut incoming = client
            .session(request)
            .await
            .map_err(|s| failed(format!("{}: {}", s.code(), s.message())))?
            .into_inner();
        let (ours, theirs) = tokio::io::duplex(4 * CHUNK);
        let (mut from_server, mut to_server) = tokio::io::split(theirs);
        let out = tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match from_server.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let data = buf[..n].to_vec();
                        if to_daemon.send(BytesMessage { data }).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let inn = tokio::spawn(async move {
            while let Ok(Some(m)) = incoming.message().await {
                if to_server.write_all(&m.data).await.is_err() {
                    return;
                }
            }
            let _ = to_server.shutdown().await;
        });
        let session = session::serve(id, spec, TokioIo::new(ours));
        Ok(Attached {
            session,
            pumps: [out, inn],
        })
    }
}
