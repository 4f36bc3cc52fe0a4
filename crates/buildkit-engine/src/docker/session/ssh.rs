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
use crate::private_dir;

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

/// Why a path of an ssh forward cannot be used, or why there is no agent.
#[derive(Debug, thiserror::Error)]
pub enum SshPathError {
    #[error("{}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is neither an ssh agent socket nor a key file", .0.display())]
    NeitherSocketNorKey(PathBuf),
    #[error(
        "no ssh agent: {paths} is empty and {env} is not set (start one with `eval $(ssh-agent)` and `ssh-add`, or list key files in {paths})",
        paths = Setting::SshAgentPaths,
        env = Setting::AgentSocketEnv
    )]
    NoAgent,
}

/// Whether `path` is an agent socket or a key file; anything else is an error naming it.
pub fn path_kind(path: &Path) -> std::result::Result<PathKind, SshPathError> {
    let md = std::fs::metadata(path).map_err(|source| SshPathError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
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
        Err(SshPathError::NeitherSocketNorKey(path.to_path_buf()))
    }
}

/// The paths of `forward`: its own, or the agent of `SSH_AUTH_SOCK`.
pub fn paths_of(forward: &SshForward) -> std::result::Result<Vec<PathBuf>, SshPathError> {
    if !forward.paths.is_empty() {
        return Ok(forward.paths.clone());
    }
    match std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
        Some(sock) => Ok(vec![PathBuf::from(sock)]),
        None => Err(SshPathError::NoAgent),
    }
}

/// Finds or starts the agent of every entry.
pub async fn prepare(forwards: &[SshForward]) -> Result<Agents> {
    let mut agents = Agents::default();
    for forward in forwards {
        let id = forward.id.as_str();
        let paths = paths_of(forward).map_err(|e| error(id, e.to_string()))?;
        let mut sockets = Vec::new();
        let mut keys = Vec::new();
        for p in &paths {
            match path_kind(p).map_err(|e| error(id, e.to_string()))? {
                PathKind::Socket => sockets.push(p.clone()),
                PathKind::KeyFile => keys.push(p.clone()),
            }
        }
        match (sockets.as_slice(), keys.is_empty()) {
            ([socket], true) => {
                agents.sockets.insert(id.to_string(), socket.clone());
            }
            ([], false) => {
                let agent = PrivateAgent::start(id, &keys, &private_dir::default_base()).await?;
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

/// Makes a new private agent's directory under `base`, only ours to enter (see
/// [`private_dir::make`]): `docker-buildkit-ssh-<uuid>`, an unguessable name that the
/// tunnel's stale-directory cleanup never takes for one of its own.
fn make_agent_dir(base: &Path) -> std::result::Result<PathBuf, private_dir::PrivateDirError> {
    let dir = base.join(format!("docker-buildkit-ssh-{}", uuid::Uuid::new_v4()));
    private_dir::make(&dir, "ssh agent directory")?;
    Ok(dir)
}

impl PrivateAgent {
    /// Starts `ssh-agent` on a socket in a new private directory under `base`, and loads
    /// `keys` into it.
    async fn start(id: &str, keys: &[PathBuf], base: &Path) -> Result<PrivateAgent> {
        // The agent's socket holds the keys: a directory only we can enter, made with mode
        // 0700 at once, under an unguessable name (never created and chmod-ed after, and
        // never with a failed chmod ignored).
        let dir = make_agent_dir(base).map_err(|e| error(id, e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    /// Set in the child process [`agent_dirs_are_made_0700_whatever_the_umask`] runs in.
    const UMASK_CHILD: &str = "DOCKER_BUILDKIT_TEST_AGENT_UMASK_CHILD";

    /// With umask 0, an agent directory is never seen with any mode but 0700, not even
    /// between a mkdir and a chmod (the old `create_dir` then an unchecked chmod was); a
    /// watcher thread looks while thousands are made. In a child process: the umask is the
    /// whole process's.
    #[test]
    fn agent_dirs_are_made_0700_whatever_the_umask() {
        let test = concat!(
            module_path!(),
            "::agent_dirs_are_made_0700_whatever_the_umask"
        );
        if !crate::private_dir::test_support::in_child(test, UMASK_CHILD) {
            return;
        }
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let base = tempfile::tempdir().unwrap();
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (root, done) = (base.path().to_path_buf(), done.clone());
            std::thread::spawn(move || {
                let mut seen = None;
                while !done.load(Ordering::Relaxed) {
                    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                        if let Ok(md) = std::fs::symlink_metadata(entry.path())
                            && md.mode() & 0o7777 != 0o700
                        {
                            seen.get_or_insert((entry.path(), md.mode() & 0o7777));
                        }
                    }
                }
                seen
            })
        };
        // SAFETY: umask only swaps the process's file mode mask.
        let before = unsafe { libc::umask(0) };
        let made: Vec<_> = (0..2000)
            .map(|_| {
                let dir = make_agent_dir(base.path());
                if let Ok(d) = &dir {
                    // Keep the directory small for the watcher: check, then remove.
                    assert_eq!(mode(d), 0o700, "{}", d.display());
                    std::fs::remove_dir(d).unwrap();
                }
                dir
            })
            .collect();
        // SAFETY: as above.
        unsafe { libc::umask(before) };
        done.store(true, Ordering::Relaxed);
        let seen = watcher.join().unwrap();
        for made in made {
            made.unwrap();
        }
        if let Some((dir, mode)) = seen {
            panic!("{} was seen with mode {mode:04o}", dir.display());
        }
    }

    /// A key file goes into a private agent whose socket lies in a 0700 directory of ours
    /// under the base it was given; the directory goes when the agent does.
    #[tokio::test]
    async fn a_private_agent_lives_in_a_private_directory_under_its_base() {
        let keys = tempfile::tempdir().unwrap();
        let key = keys.path().join("id_ed25519");
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipped: ssh-keygen cannot make a key here");
            return;
        }
        let base = tempfile::tempdir().unwrap();
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let agent = match PrivateAgent::start("default", &[key], base.path()).await {
            Ok(a) => a,
            Err(e) if e.to_string().contains("cannot be started") => {
                eprintln!("skipped: no ssh-agent here ({e})");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let dir = agent.dir.clone();
        assert_eq!(dir.parent(), Some(base.path()));
        let md = std::fs::symlink_metadata(&dir).unwrap();
        assert!(md.is_dir() && !md.file_type().is_symlink());
        assert_eq!(md.mode() & 0o7777, 0o700);
        assert_eq!(md.uid(), private_dir::euid());
        assert!(dir.join("agent.sock").exists());
        drop(agent);
        assert!(!dir.exists(), "the agent's directory outlived it");
    }
}
