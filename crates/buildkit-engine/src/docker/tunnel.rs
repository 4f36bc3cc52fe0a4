//! `ssh://[user@]host[:port]` Docker hosts, reached as the docker CLI reaches them: for every
//! connection, the system's OpenSSH client runs `docker system dial-stdio` on the remote and
//! its stdin and stdout are the connection. Key auth, host keys, jump hosts and the agent are
//! the user's ssh configuration's business; nothing ever prompts (`BatchMode`).
//!
//! A [`Tunnel`] is a private unix socket in front of that, one per host per process, so that
//! bollard and our own [`super::dial::Dialer`] reach an ssh host like any unix daemon socket.
//! What ssh said when it failed is kept, to explain a failed connection ([`Tunnel::explain`]):
//! an unknown host key, a refused key, a remote without docker.
//!
//! Not for: anything said over the connection.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// An `ssh://` host as OpenSSH takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshHost {
    /// `ssh://[user@]host[:port]` (no path, as the docker CLI requires).
    pub fn parse(url: &str) -> Result<SshHost, String> {
        let rest = url
            .strip_prefix("ssh://")
            .ok_or_else(|| format!("{url:?} is not an ssh:// host"))?;
        if rest.contains('/') && !rest.ends_with('/') || rest.contains('?') {
            return Err(format!(
                "{url:?}: an ssh:// Docker host takes no path (write ssh://[user@]host[:port])"
            ));
        }
        let rest = rest.trim_end_matches('/');
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
            Some(_) => return Err(format!("{url:?} has an empty user name")),
            None => (None, rest),
        };
        let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
            // [v6]:port
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
            let port = after.strip_prefix(':').filter(|p| !p.is_empty());
            (h.to_string(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{url:?}: {p:?} is not a port"))
            })
            .transpose()?;
        if host.is_empty() || host.starts_with('-') || host.chars().any(char::is_whitespace) {
            return Err(format!("{url:?} names no host"));
        }
        if user
            .as_deref()
            .is_some_and(|u| u.starts_with('-') || u.chars().any(char::is_whitespace))
        {
            return Err(format!("{url:?}: not a user name"));
        }
        Ok(SshHost { user, host, port })
    }

    /// The arguments of `ssh` that run `docker system dial-stdio` there.
    fn ssh_args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]
            .into_iter()
            .map(String::from)
            .collect();
        if let Some(user) = &self.user {
            args.extend(["-l".to_string(), user.clone()]);
        }
        if let Some(port) = self.port {
            args.extend(["-p".to_string(), port.to_string()]);
        }
        args.extend([
            "--".to_string(),
            self.host.clone(),
            "docker".to_string(),
            "system".to_string(),
            "dial-stdio".to_string(),
        ]);
        args
    }
}

/// A local socket whose connections are `docker system dial-stdio` over ssh.
#[derive(Debug)]
pub struct Tunnel {
    /// The `ssh://` host as configured.
    pub url: String,
    /// Where bollard and the dialer connect.
    pub socket: PathBuf,
    /// What the last failed ssh said (its stderr and exit status).
    last_failure: Mutex<Option<String>>,
}

impl Tunnel {
    /// Why connections failed, in the user's terms: `reason` (what the client saw) with the
    /// cause ssh reported, and the fix.
    pub fn explain(&self, reason: &str) -> String {
        let Some(said) = self.last_failure.lock().ok().and_then(|f| f.clone()) else {
            return reason.to_string();
        };
        let lower = said.to_ascii_lowercase();
        let url = &self.url;
        let fix = if lower.contains("host key verification failed")
            || lower.contains("no host key is known")
        {
            format!(
                "ssh does not know the host key of {url}: connect once with ssh and accept it, or add it to ~/.ssh/known_hosts"
            )
        } else if lower.contains("host key") && lower.contains("changed") {
            format!(
                "the host key of {url} changed since ssh last saw it: check the host, then update ~/.ssh/known_hosts"
            )
        } else if lower.contains("permission denied") {
            format!(
                "{url} refused the ssh key: add your public key to the remote's ~/.ssh/authorized_keys, or load the right key into your ssh-agent (or name it in ~/.ssh/config)"
            )
        } else if lower.contains("command not found")
            || lower.contains("docker: not found")
            || lower.contains("exit status 127")
        {
            format!(
                "{url} has no docker CLI on its PATH: the provider runs `docker system dial-stdio` there (install Docker there, or use a login whose PATH has it)"
            )
        } else if lower.contains("cannot connect to the docker daemon")
            || lower.contains("is the docker daemon running")
        {
            format!("the docker CLI on {url} cannot reach its daemon: is dockerd running there?")
        } else if lower.contains("could not resolve hostname")
            || lower.contains("connection refused")
            || lower.contains("connection timed out")
            || lower.contains("no route to host")
        {
            format!("ssh cannot reach {url}: is the host up, and sshd listening on that port?")
        } else {
            format!("ssh to {url} failed")
        };
        format!("{fix} (ssh said: {})", said.trim())
    }
}

fn tunnels() -> &'static Mutex<HashMap<String, Arc<Tunnel>>> {
    static TUNNELS: OnceLock<Mutex<HashMap<String, Arc<Tunnel>>>> = OnceLock::new();
    TUNNELS.get_or_init(Default::default)
}

/// The tunnel to `url` (`ssh://…`), made on first use. Needs a tokio runtime.
pub fn tunnel(url: &str) -> Result<Arc<Tunnel>, String> {
    let mut all = tunnels().lock().map_err(|e| e.to_string())?;
    if let Some(t) = all.get(url) {
        return Ok(t.clone());
    }
    let host = SshHost::parse(url)?;
    remove_stale();
    let dir = std::env::temp_dir().join(format!(
        "docker-buildkit-ssh-{}-{:016x}",
        std::process::id(),
        xxhash_rust::xxh3::xxh3_64(url.as_bytes())
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    let socket = dir.join("docker.sock");
    let listener = UnixListener::bind(&socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    let tunnel = Arc::new(Tunnel {
        url: url.to_string(),
        socket,
        last_failure: Mutex::new(None),
    });
    let args = host.ssh_args();
    let weak = Arc::downgrade(&tunnel);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Some(tunnel) = weak.upgrade() else { return };
            tokio::spawn(relay(client, args.clone(), tunnel));
        }
    });
    all.insert(url.to_string(), tunnel.clone());
    Ok(tunnel)
}

/// Removes the tunnel directories of provider processes that are gone (a provider the
/// engine killed had no chance to remove its own).
fn remove_stale() {
    // Whether a process lives is read from /proc: elsewhere, leave them all.
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix("docker-buildkit-ssh-"))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive && pid != std::process::id() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Removes the directories of every tunnel (their sockets); for the provider's exit.
pub fn remove_all() {
    if let Ok(all) = tunnels().lock() {
        for t in all.values() {
            if let Some(dir) = t.socket.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// One connection: `ssh … docker system dial-stdio`, bytes both ways, and ssh's complaint
/// kept when it fails.
async fn relay(client: UnixStream, args: Vec<String>, tunnel: Arc<Tunnel>) {
    let child = tokio::process::Command::new("ssh")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            if let Ok(mut f) = tunnel.last_failure.lock() {
                *f = Some(format!("the ssh client cannot be started: {e}"));
            }
            return;
        }
    };
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let upstream = async {
        let _ = tokio::io::copy(&mut from_client, &mut stdin).await;
        let _ = stdin.shutdown().await;
        drop(stdin);
        // The client is done sending; the answer may still be coming.
        std::future::pending::<()>().await;
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut stdout, &mut to_client).await;
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
    // ssh is done (or the client went away): what did it say?
    let mut said = String::new();
    let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    let _ =
        tokio::time::timeout(Duration::from_millis(200), stderr.read_to_string(&mut said)).await;
    if let Ok(Ok(status)) = status
        && !status.success()
    {
        let code = status
            .code()
            .map_or_else(|| "a signal".to_string(), |c| format!("exit status {c}"));
        if let Ok(mut f) = tunnel.last_failure.lock() {
            *f = Some(format!("{} ({code})", said.trim()));
        }
    }
    let _ = to_client.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls_are_read_as_the_docker_cli_reads_them() {
        let h = |url: &str| SshHost::parse(url).unwrap();
        assert_eq!(
            h("ssh://me@build.example:2222"),
            SshHost {
                user: Some("me".into()),
                host: "build.example".into(),
                port: Some(2222)
            }
        );
        assert_eq!(h("ssh://alias").host, "alias");
        assert_eq!(h("ssh://[::1]:22").host, "::1");
        assert_eq!(h("ssh://a@b/").port, None);
        for bad in [
            "ssh://",
            "ssh://@h",
            "ssh://h:0",
            "ssh://h:x",
            "ssh://h/path",
            "ssh://-oProxyCommand=x",
            "ssh://h?x=1",
        ] {
            assert!(SshHost::parse(bad).is_err(), "{bad}");
        }
        let args = h("ssh://me@h:2").ssh_args();
        assert!(args.ends_with(&[
            "--".to_string(),
            "h".into(),
            "docker".into(),
            "system".into(),
            "dial-stdio".into()
        ]));
        assert!(args.windows(2).any(|w| w == ["-p", "2"]));
        assert!(args.windows(2).any(|w| w == ["-l", "me"]));
    }
}
