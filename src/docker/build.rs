//! One BuildKit build through the Engine API's `/build`: the context streamed as a tar
//! (bounded memory: a blocking writer feeds a small channel), the options from the inputs
//! (automatic inline cache included), progress rendered as docker's plain lines and sent to
//! the engine as it arrives, and a failure reported with the failing step and the full log.
//! Not for: tagging or pushing ([`super::push`]).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::BuildInfoAux;
use bollard::query_parameters::{BuildImageOptionsBuilder, BuilderVersion};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::auth::Credentials;
use super::error::{DaemonText, classify};
use super::plan::{BuildPlan, Env, Level};
use super::progress::ProgressPrinter;
use super::{BuildError, DaemonError, EngineError, Result};
use crate::context::BuildContext;

/// Bytes per chunk sent to the daemon, and chunks in flight: the tar stream's memory bound.
const CHUNK: usize = 256 * 1024;
const CHUNKS_IN_FLIGHT: usize = 4;

/// A `Write` that hands full chunks to an async channel (used from a blocking thread).
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the daemon stopped reading the context",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The daemon's credentials map: registry host → credentials.
fn daemon_credentials(creds: &BTreeMap<String, Credentials>) -> HashMap<String, DockerCredentials> {
    creds
        .iter()
        .map(|(host, c)| (host.clone(), super::docker_credentials(c, host)))
        .collect()
}

/// Builds the image for `platform` (the daemon's own when `None`), tagged `local_tag`
/// (which is also its inline-cache source), and returns its id.
///
/// The daemon can fetch an uploaded context only once; if BuildKit loses its copy during
/// the build (a concurrent `docker builder prune`), the build fails with "context not
/// found". That build is retried once, with the context sent again.
pub async fn build(
    env: &Env<'_>,
    docker: &Docker,
    plan: &BuildPlan,
    platform: Option<&str>,
    local_tag: &str,
    creds: &BTreeMap<String, Credentials>,
) -> Result<String> {
    match build_once(env, docker, plan, platform, local_tag, creds).await {
        Err(EngineError::Build(BuildError::Failed {
            meaning: DaemonText::ContextLost,
            ..
        })) => {
            env.log(
                Level::Warning,
                &format!("the Docker daemon lost the uploaded build context of {local_tag} (was the build cache pruned meanwhile?): building again"),
            )
            .await;
            build_once(env, docker, plan, platform, local_tag, creds).await
        }
        other => other,
    }
}

async fn build_once(
    env: &Env<'_>,
    docker: &Docker,
    plan: &BuildPlan,
    platform: Option<&str>,
    local_tag: &str,
    creds: &BTreeMap<String, Credentials>,
) -> Result<String> {
    let context =
        BuildContext::open(&plan.context_dir, plan.dockerfile.clone()).map_err(|source| {
            BuildError::Context {
                dir: plan.context_dir.display().to_string(),
                source,
            }
        })?;
    let dockerfile = context.dockerfile_in_tar();

    let mut build_args: HashMap<String, String> = plan
        .build_args
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut cache_from: Vec<String> = Vec::new();
    if plan.inline_cache {
        build_args
            .entry("BUILDKIT_INLINE_CACHE".into())
            .or_insert_with(|| "1".into());
        if plan.push {
            cache_from.push(local_tag.to_string());
        }
    }
    cache_from.extend(plan.cache_from.iter().cloned());
    let labels: HashMap<String, String> = plan
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let session = format!("docker-buildkit-{}", uuid::Uuid::new_v4());
    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile(&dockerfile)
        .t(local_tag)
        .version(BuilderVersion::BuilderBuildKit)
        .session(&session)
        .rm(true)
        .forcerm(true)
        .buildargs(&build_args)
        .labels(&labels)
        .nocache(plan.no_cache);
    if !cache_from.is_empty() && !plan.no_cache {
        options = options.cachefrom(&cache_from);
    }
    if let Some(t) = &plan.target {
        options = options.target(t);
    }
    if let Some(p) = platform {
        options = options.platform(p);
    }
    if let Some(n) = plan.network.as_deref() {
        options = options.networkmode(n);
    }

    // The context tar, written on a blocking thread into a bounded channel.
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let tar_error: Arc<Mutex<Option<String>>> = Arc::default();
    let tar_task = {
        let tar_error = tar_error.clone();
        tokio::task::spawn_blocking(move || {
            let mut w = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(CHUNK),
            };
            let result = context
                .write_tar(&mut w)
                .map_err(|e| e.to_string())
                .and_then(|()| w.flush().map_err(|e| e.to_string()));
            if let Err(e) = result {
                if let Ok(mut slot) = tar_error.lock() {
                    *slot = Some(e.clone());
                }
                let _ = tx.blocking_send(Err(std::io::Error::other(e)));
            }
        })
    };
    let body = bollard::body_try_stream(ReceiverStream::new(rx));

    let mut stream =
        docker.build_image(options.build(), Some(daemon_credentials(creds)), Some(body));
    let mut printer = ProgressPrinter::new();
    let mut image_id = None;
    let mut failure = None;
    env.progress(&format!("building {local_tag}")).await;
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            () = env.cancel.cancelled() => {
                drop(stream);
                tar_task.abort();
                return Err(EngineError::Cancelled { what: "build", target: local_tag.to_string() });
            }
        };
        let Some(item) = item else { break };
        match item {
            Ok(info) => {
                match info.aux {
                    Some(BuildInfoAux::BuildKit(status)) => {
                        for line in printer.handle(&status) {
                            env.progress(&line).await;
                        }
                        for w in printer.take_warnings() {
                            env.log(Level::Warning, &w).await;
                        }
                    }
                    Some(BuildInfoAux::Default(id)) => {
                        if let Some(id) = id.id {
                            image_id = Some(id);
                        }
                    }
                    None => {}
                }
                if let Some(s) = info
                    .stream
                    .as_deref()
                    .map(str::trim_end)
                    .filter(|s| !s.is_empty())
                {
                    env.progress(s).await;
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(stream);
    let _ = tar_task.await;
    let tar_error = tar_error.lock().ok().and_then(|e| e.clone());

    let log = printer.log();
    let reason = match (tar_error, failure, image_id) {
        (None, None, Some(id)) => return Ok(id),
        (Some(reason), _, _) => {
            return Err(BuildError::ContextNotSent {
                tag: local_tag.to_string(),
                reason,
            }
            .into());
        }
        (None, Some(bollard::errors::Error::DockerStreamError { error }), _) => error,
        (None, Some(e), _) => {
            return Err(DaemonError::lost(super::daemon_host(&env.daemon), "build", e).into());
        }
        (None, None, None) => {
            return Err(BuildError::NoImage {
                host: super::daemon_host(&env.daemon),
                tag: local_tag.to_string(),
            }
            .into());
        }
    };
    if !log.is_empty() {
        env.log(Level::Error, &format!("build log of {local_tag}:\n{log}"))
            .await;
    }
    let mut meaning = classify(&reason);
    if meaning == DaemonText::Other && classify(&log) == DaemonText::ExecFormat {
        // dockerd 20.10 reports only the exit code; the step's log says why.
        meaning = DaemonText::ExecFormat;
    }
    let hint = match (platform, meaning) {
        (Some(p), DaemonText::ExecFormat) => Some(format!(
            "The Docker host cannot run {p} programs: RUN steps for a foreign platform need an emulator. On the Docker host, install qemu-user-static and binfmt-support, mount binfmt_misc (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc) and enable the handler (e.g. update-binfmts --enable qemu-aarch64)"
        )),
        _ => None,
    };
    Err(BuildError::Failed {
        tag: local_tag.to_string(),
        step: printer.failed_step().map(str::to_string),
        reason,
        hint,
        meaning,
    }
    .into())
}
