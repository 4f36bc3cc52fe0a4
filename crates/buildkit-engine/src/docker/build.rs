//! One BuildKit build through the Engine API's `/build`, with the context, the Dockerfile,
//! registry credentials, secrets and ssh agents served by our own build session
//! ([`super::session`]): no tar is uploaded, and BuildKit fetches only the files its cached
//! copy of the context lacks. The options come from the plan (automatic inline cache
//! included); progress is rendered as docker's plain lines and sent to the engine as it
//! arrives; a failure is reported with the failing step and the full log.
//! Not for: tagging or pushing ([`super::push`]).

use std::collections::BTreeMap;

use bollard::Docker;
use bollard::models::{BuildInfo, BuildInfoAux};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};

use super::dial::Dialer;
use super::session::{self, SessionSpec};

use super::error::{DaemonText, classify};
use super::plan::{BuildPlan, Env, Level};
use super::progress::ProgressPrinter;
use super::{BuildError, DaemonError, EngineError, Result};
use crate::credentials::Credentials;

/// Builds the image for `platform` (the daemon's own when `None`), tagged `local_tag`
/// (which is also its inline-cache source), and returns its id.
///
/// If BuildKit loses the context during the build (a concurrent `docker builder prune`),
/// the build fails with "context not found"; it is retried once, in a new session.
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
    // The `.dockerignore` rule of this daemon's own `docker build` (as Check's hash assumed,
    // see `dialect::probe`).
    let dialect = super::dialect::for_client_version(&docker.client_version());
    let (files, dockerfile) = session::plan_sources(plan, dialect).await?;
    let agents = session::ssh::prepare(&plan.ssh).await?;
    let version = docker.client_version();
    let dialer = Dialer::new(
        &env.daemon,
        &format!("{}.{}", version.major_version, version.minor_version),
    )?;
    let context_entries = files.len();
    let session = session::open(
        &dialer,
        SessionSpec {
            context_dir: plan.context_dir.clone(),
            context: files,
            dockerfile,
            named: BTreeMap::new(),
            file_targets: BTreeMap::new(),
            credentials: creds.clone(),
            secrets: plan.secrets.0.clone(),
            agents,
            content_stores: BTreeMap::new(),
        },
    )
    .await?;

    let query = build_query(plan, platform, local_tag, &session.id);
    let request = hyper::Request::post(dialer.path(&format!("/build?{query}")))
        .header("Content-Type", "application/x-tar")
        .body(Empty::<Bytes>::new())
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    let host = dialer.host().to_string();
    let lost = |reason: String| DaemonError::ConnectionLost {
        host: host.clone(),
        what: "build",
        reason,
    };
    env.progress(&format!("building {local_tag}")).await;
    let response = tokio::select! {
        r = dialer.send(request) => r.map_err(|e| lost(e.to_string()))?,
        () = env.cancel.cancelled() => {
            return Err(EngineError::Cancelled { what: "build", target: local_tag.to_string() });
        }
    };
    let status = response.status();
    let mut body = response.into_body();
    let mut printer = ProgressPrinter::new();
    let mut image_id = None;
    let mut failure: Option<String> = None;
    let mut lines = LineBuffer::default();
    if !status.is_success() {
        let text = collect_text(&mut body).await;
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or(text);
        failure = Some(format!("{status}: {message}"));
    }
    while failure.is_none() {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = env.cancel.cancelled() => {
                drop(body);
                drop(session);
                return Err(EngineError::Cancelled { what: "build", target: local_tag.to_string() });
            }
        };
        let data = match frame {
            None => break,
            Some(Err(e)) => return Err(lost(format!("the build stream broke: {e}")).into()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
        };
        for line in lines.push(&data) {
            let info: BuildInfo = match serde_json::from_slice(&line) {
                Ok(info) => info,
                Err(_) => {
                    let text = String::from_utf8_lossy(&line);
                    if !text.trim().is_empty() {
                        env.progress(text.trim_end()).await;
                    }
                    continue;
                }
            };
            if let Some(e) = info.error_detail.as_ref().and_then(|d| d.message.clone()) {
                failure = Some(e);
                break;
            }
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
    }
    drop(body);
    let (files_sent, bytes_sent) = session.transfer.snapshot();
    drop(session);
    // What the user waits for on a rebuild; tests and the benchmark read it too.
    env.log(
        Level::Info,
        &format!(
            "{local_tag}: sent {files_sent} {} ({bytes_sent} bytes) to the builder; the context has {context_entries} entries",
            if files_sent == 1 { "file" } else { "files" }
        ),
    )
    .await;

    let log = printer.log();
    let reason = match (failure, image_id) {
        (None, Some(id)) => return Ok(id),
        (Some(reason), _) => reason,
        (None, None) => {
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

/// The `/build` query: every option, and the session that serves the context.
fn build_query(plan: &BuildPlan, platform: Option<&str>, local_tag: &str, session: &str) -> String {
    let mut build_args = plan.build_args.clone();
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
    let mut q: Vec<(&str, String)> = vec![
        ("t", local_tag.to_string()),
        ("dockerfile", session::filesync::DOCKERFILE_NAME.to_string()),
        ("remote", "client-session".to_string()),
        ("session", session.to_string()),
        ("version", "2".to_string()),
        ("rm", "1".to_string()),
        ("forcerm", "1".to_string()),
        ("buildargs", json(&build_args)),
        ("labels", json(&plan.labels)),
    ];
    if plan.no_cache {
        q.push(("nocache", "1".to_string()));
    } else if !cache_from.is_empty() {
        q.push(("cachefrom", json(&cache_from)));
    }
    if plan.pull {
        q.push(("pull", "1".to_string()));
    }
    if let Some(t) = &plan.target {
        q.push(("target", t.clone()));
    }
    if let Some(p) = platform {
        q.push(("platform", p.to_string()));
    }
    if let Some(n) = &plan.network {
        q.push(("networkmode", n.clone()));
    }
    for h in &plan.add_hosts {
        q.push(("extrahosts", h.clone()));
    }
    q.iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A map or list of strings as JSON (which cannot fail).
fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A query value, percent-encoded (everything but unreserved characters).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Splits a byte stream into lines (the daemon writes one JSON message per line).
#[derive(Default)]
struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=i).collect();
            line.pop();
            if !line.is_empty() {
                out.push(line);
            }
        }
        out
    }
}

/// The rest of a body as text (for an error answer).
async fn collect_text(body: &mut hyper::body::Incoming) -> String {
    let mut out = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
        }
        if out.len() > 64 * 1024 {
            break;
        }
    }
    String::from_utf8_lossy(&out).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_chunks() {
        let mut b = LineBuffer::default();
        assert!(b.push(b"{\"a\":").is_empty());
        assert_eq!(
            b.push(b"1}\n{\"b\"\n\n"),
            vec![b"{\"a\":1}".to_vec(), b"{\"b\"".to_vec()]
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            percent_encode("a b/{\"x\":1}&"),
            "a%20b%2F%7B%22x%22%3A1%7D%26"
        );
    }
}
