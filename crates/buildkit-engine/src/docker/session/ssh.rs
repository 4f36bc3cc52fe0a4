//! The ssh agents a build forwards (`RUN --mount=type=ssh`): per id, the socket of a running
//! agent, or key files loaded into a private `ssh-agent` that lives as long as the build
//! (as the docker CLI's `--ssh id=path`). Without paths, the provider's `SSH_AUTH_SOCK`.
//!
//! Not for: relaying the agent's bytes (`services.rs`).

use crate::settings::Setting;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::docker::plan::SshForward;
use crate::docker::{BuildError, Result};

/// The agents of one build, by id. Private agents stop when this is dropped.
#[derive(Debug, Default)]
pub struct Agents {
    pub sockets: BTreeMap<String, PathBuf>,
    _private: Vec<PrivateAgent>,
}

#[derive(Debug)]
struct PrivateAgent {
    _child: tokio::process::Child,
    dir: PathBuf,
}

impl Drop for PrivateAgent {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn error(id: &str, reason: impl Into<String>) -> crate::docker::EngineError {
    BuildError::Ssh {
        id: id.to_string(),
        reason: reason.into(),
    }
    .into()
}

/// What a path of `ssh[].paths` is.
#[derive(Debug, PartialEq, Eq)]
pub enum PathKind {
    Socket,
    KeyFile,
}

/// Whether `path` is an agent socket or a key file; anything else is an error naming it.
pub fn path_kind(path: &Path) -> std::result::Result<PathKind, String> {
    let md = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if md.file_type().is_socket() {
            return Ok(PathKind::Socket);
        }
    }
    if md.is_file() {
        Ok(PathKind::KeyFile)
    } else {
        Err(format!(
            "{} is neither an ssh agent socket nor a key file",
            path.display()
        ))
    }
}

/// The paths of `forward`: its own, or the agent of `SSH_AUTH_SOCK`.
pub fn paths_of(forward: &SshForward) -> std::result::Result<Vec<PathBuf>, String> {
    if !forward.paths.is_empty() {
        return Ok(forward.paths.clone());
    }
    match std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
        Some(sock) => Ok(vec![PathBuf::from(sock)]),
        None => Err(format!(
            "no ssh agent: {paths} is empty and {env} is not set (start one with `eval $(ssh-agent)` and `ssh-add`, or list key files in {paths})",
            paths = Setting::SshAgentPaths,
            env = Setting::AgentSocketEnv,
        )),
    }
}

/// Finds or starts the agent of every entry.
pub async fn prepare(forwards: &[SshForward]) -> Result<Agents> {
    let mut agents = Agents::default();
    for forward in forwards {
        let id = forward.id.as_str();
        let paths = paths_of(forward).map_err(|e| error(id, e))?;
        let mut sockets = Vec::new();
        let mut keys = Vec::new();
        for p in &paths {
            match path_kind(p).map_err(|e| error(id, e))? {
                PathKind::Socket => sockets.push(p.clone()),
                PathKind::KeyFile => keys.push(p.clone()),
            }
        }
        match (sockets.as_slice(), keys.is_empty()) {
            ([socket], true) => {
                agents.sockets.insert(id.to_string(), socket.clone());
            }
            ([], false) => {
                let agent = PrivateAgent::start(id, &keys).await?;
                agents
                    .sockets
                    .insert(id.to_string(), agent.dir.join("agent.sock"));
                agents._private.push(agent);
            }
            _ => {
                return Err(error(
                    id,
                    "an agent socket must be the only path of its id (key files go into a private agent of their own)",
                ));
            }
        }
    }
    Ok(agents)
}

impl PrivateAgent {
    async fn start(id: &str, keys: &[PathBuf]) -> Result<PrivateAgent> {
        let dir =
            std::env::temp_dir().join(format!("docker-buildkit-ssh-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).map_err(|e| error(id, format!("{}: {e}", dir.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        let socket = dir.join("agent.sock");
        let child = tokio::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let agent = PrivateAgent {
            _child: child.map_err(|e| {
                let _ = std::fs::remove_dir_all(&dir);
                error(
                    id,
                    format!("key files need OpenSSH's ssh-agent, which cannot be started: {e}"),
                )
            })?,
            dir,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if tokio::time::Instant::now() > deadline {
                return Err(error(id, "ssh-agent did not start within 10 s"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A key with a passphrase cannot be asked for here: askpass is forced and fails.
        let added = tokio::process::Command::new("ssh-add")
            .args(keys)
            .env("SSH_AUTH_SOCK", &socket)
            .env("SSH_ASKPASS", "/bin/false")
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", "none")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(10), added)
            .await
            .map_err(|_| error(id, "ssh-add did not finish within 10 s"))?
            .map_err(|e| error(id, format!("ssh-add cannot be run: {e}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(error(
                id,
                format!(
                    "the key files cannot be loaded into an ssh agent ({}): {} (a key with a passphrase must be added to your own agent, with no {})",
                    keys.iter()
                        .map(|k| k.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    stderr.trim(),
                    Setting::SshAgentPaths,
                ),
            ));
        }
        Ok(agent)
    }
}
