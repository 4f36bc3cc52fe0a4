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
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::private_dir::{self, PrivateDirError, euid};

/// An `ssh://` host as OpenSSH takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshHost {
    /// `ssh://[user@]host[:port]` (no path, as the docker CLI requires).
    pub fn parse(url: &str) -> Result<SshHost, SshHostError> {
        let fail = |flaw| SshHostError {
            url: url.to_string(),
            flaw,
        };
        let rest = url
            .strip_prefix("ssh://")
            .ok_or_else(|| fail(SshHostFlaw::NotSsh))?;
        if rest.contains('/') && !rest.ends_with('/') || rest.contains('?') {
            return Err(fail(SshHostFlaw::Path));
        }
        let rest = rest.trim_end_matches('/');
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
            Some(_) => return Err(fail(SshHostFlaw::EmptyUser)),
            None => (None, rest),
        };
        let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
            // [v6]:port
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| fail(SshHostFlaw::UnclosedBracket))?;
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
                    .ok_or_else(|| fail(SshHostFlaw::Port(p.to_string())))
            })
            .transpose()?;
        if host.is_empty() || host.starts_with('-') || host.chars().any(char::is_whitespace) {
            return Err(fail(SshHostFlaw::NoHost));
        }
        if user
            .as_deref()
            .is_some_and(|u| u.starts_with('-') || u.chars().any(char::is_whitespace))
        {
            return Err(fail(SshHostFlaw::User));
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

/// Why an `ssh://` Docker host is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHostError {
    pub url: String,
    pub flaw: SshHostFlaw,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshHostFlaw {
    NotSsh,
    Path,
    EmptyUser,
    UnclosedBracket,
    Port(String),
    NoHost,
    User,
}

impl std::fmt::Display for SshHostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = &self.url;
        match &self.flaw {
            SshHostFlaw::NotSsh => write!(f, "{url:?} is not an ssh:// host"),
            SshHostFlaw::Path => write!(
                f,
                "{url:?}: an ssh:// Docker host takes no path (write ssh://[user@]host[:port])"
            ),
            SshHostFlaw::EmptyUser => write!(f, "{url:?} has an empty user name"),
            SshHostFlaw::UnclosedBracket => write!(f, "{url:?}: unclosed [ in the host"),
            SshHostFlaw::Port(p) => write!(f, "{url:?}: {p:?} is not a port"),
            SshHostFlaw::NoHost => write!(f, "{url:?} names no host"),
            SshHostFlaw::User => write!(f, "{url:?}: not a user name"),
        }
    }
}

impl std::error::Error for SshHostError {}

/// Why no tunnel to an `ssh://` host could be set up.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error(transparent)]
    Host(#[from] SshHostError),
    #[error(transparent)]
    Dir(#[from] PrivateDirError),
    #[error("{}: {source}", socket.display())]
    Bind {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("the table of ssh tunnels is unusable (a thread panicked holding it)")]
    Poisoned,
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
pub fn tunnel(url: &str) -> Result<Arc<Tunnel>, TunnelError> {
    let mut all = tunnels().lock().map_err(|_| TunnelError::Poisoned)?;
    if let Some(t) = all.get(url) {
        return Ok(t.clone());
    }
    let host = SshHost::parse(url)?;
    remove_stale();
    let dir = tunnel_dir(&private_dir::default_base());
    make_private_dir(&dir)?;
    let socket = dir.join("docker.sock");
    let listener = UnixListener::bind(&socket).map_err(|source| TunnelError::Bind {
        socket: socket.clone(),
        source,
    })?;
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

/// Makes the tunnel directory `dir`, private (see [`private_dir::make`]).
fn make_private_dir(dir: &Path) -> Result<(), PrivateDirError> {
    private_dir::make(dir, "ssh tunnel directory")
}

/// The start of the name of every tunnel directory: `docker-buildkit-ssh-<pid>-<16 hex>`.
const DIR_PREFIX: &str = "docker-buildkit-ssh-";

/// A new tunnel directory's path under `base`: our pid (for [`remove_stale`]) and 64
/// random bits, so that another local user cannot guess it and make it first (in a shared
/// `/tmp`, whoever makes a directory owns it). [`make_private_dir`] still refuses one that
/// is there already and not ours.
fn tunnel_dir(base: &Path) -> PathBuf {
    let (hi, lo) = uuid::Uuid::new_v4().as_u64_pair();
    base.join(format!(
        "{DIR_PREFIX}{}-{:016x}",
        std::process::id(),
        hi ^ lo
    ))
}

/// The pid in the name of a tunnel directory, `docker-buildkit-ssh-<pid>-<16 hex>`; `None`
/// for any other name, such as a private ssh agent's `docker-buildkit-ssh-<uuid>`
/// ([`super::session`]), whose first group may well be all digits and is no pid.
fn stale_pid(name: &str) -> Option<u32> {
    let (pid, tail) = name.strip_prefix(DIR_PREFIX)?.split_once('-')?;
    let hex = tail.len() == 16 && tail.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    if hex && digits {
        pid.parse().ok()
    } else {
        None
    }
}

/// Removes the tunnel directories of provider processes that are gone (a provider the
/// engine killed had no chance to remove its own), where [`tunnel`] makes them now and in
/// the temp dir where it made them before. Only directories of ours: another user's, and
/// any symlink, are not ours to remove.
fn remove_stale() {
    // Whether a process lives is read from /proc: elsewhere, leave them all.
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let temp = std::env::temp_dir();
    let base = private_dir::base(std::env::var_os("XDG_RUNTIME_DIR").as_deref(), temp.clone());
    let bases = if base == temp {
        vec![temp]
    } else {
        vec![base, temp]
    };
    for base in bases {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(stale_pid) else {
                continue;
            };
            let ours =
                std::fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_dir() && m.uid() == euid());
            let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
            if ours && !alive && pid != std::process::id() {
                let _ = std::fs::remove_dir_all(e.path());
            }
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

/// The tunnel directory: where it goes and how it is made, without ssh.
#[cfg(test)]
mod dir_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A base directory like `/tmp`: anyone can make entries in it (a test may chown them).
    fn shared_base() -> tempfile::TempDir {
        let base = tempfile::tempdir().unwrap();
        chmod(base.path(), 0o1777);
        base
    }

    /// Set in the child process [`the_directory_is_made_0700_whatever_the_umask`] runs in.
    const UMASK_CHILD: &str = "DOCKER_BUILDKIT_TEST_UMASK_CHILD";

    /// With umask 0, the directory is never seen with any mode but 0700, not even for the
    /// moment between a mkdir and a chmod; a watcher thread looks while thousands are made
    /// (the old mkdir-then-chmod was caught at 0777 in every one of 60 runs).
    /// The umask is the whole process's, so the test runs in a child (this test binary,
    /// this one test): no other test's files are made under umask 0.
    #[test]
    fn the_directory_is_made_0700_whatever_the_umask() {
        let test = concat!(
            module_path!(),
            "::the_directory_is_made_0700_whatever_the_umask"
        );
        if !crate::private_dir::test_support::in_child(test, UMASK_CHILD) {
            return;
        }
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let base = shared_base();
        let dirs: Arc<Vec<PathBuf>> =
            Arc::new((0..3000).map(|_| tunnel_dir(base.path())).collect());
        let current = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (dirs, current, done) = (dirs.clone(), current.clone(), done.clone());
            std::thread::spawn(move || {
                let mut seen = None;
                while !done.load(Ordering::Relaxed) {
                    let dir = &dirs[current.load(Ordering::Relaxed)];
                    if let Ok(md) = std::fs::symlink_metadata(dir)
                        && md.mode() & 0o7777 != 0o700
                    {
                        seen.get_or_insert((dir.clone(), md.mode() & 0o7777));
                    }
                }
                seen
            })
        };
        // SAFETY: umask only swaps the process's file mode mask.
        let before = unsafe { libc::umask(0) };
        let made: Vec<_> = (0..dirs.len())
            .map(|i| {
                current.store(i, Ordering::Relaxed);
                make_private_dir(&dirs[i])
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
        for dir in dirs.iter() {
            let md = std::fs::symlink_metadata(dir).unwrap();
            assert!(md.is_dir() && !md.file_type().is_symlink());
            assert_eq!(md.mode() & 0o7777, 0o700, "{}", dir.display());
            assert_eq!(md.uid(), euid());
        }
        // And the socket can be made in it.
        std::os::unix::net::UnixListener::bind(dirs[0].join("docker.sock")).unwrap();
    }

    #[test]
    fn the_path_is_unguessable_and_known_to_remove_stale() {
        let base = Path::new("/base");
        let (a, b) = (tunnel_dir(base), tunnel_dir(base));
        assert_ne!(a, b);
        for d in [&a, &b] {
            assert_eq!(d.parent(), Some(base));
            let name = d.file_name().unwrap().to_str().unwrap();
            assert_eq!(stale_pid(name), Some(std::process::id()), "{name}");
        }
        // The name of the old code (a hash of the url) is still cleaned up ...
        assert_eq!(
            stale_pid("docker-buildkit-ssh-42-0123456789abcdef"),
            Some(42)
        );
        // ... but never a private agent's directory, whose uuid may start with digits.
        for other in [
            "docker-buildkit-ssh-12345678-1234-4234-8234-123456789abc",
            "docker-buildkit-ssh-42",
            "docker-buildkit-ssh--0123456789abcdef",
            "docker-buildkit-ssh-42-0123456789abcdeg",
            "docker-buildkit-ssh-x2-0123456789abcdef",
        ] {
            assert_eq!(stale_pid(other), None, "{other}");
        }
    }

    #[test]
    fn a_directory_others_can_enter_or_of_another_user_is_refused_untouched() {
        let base = shared_base();
        let dir = tunnel_dir(base.path());
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("docker.sock"), "planted").unwrap();
        chmod(&dir, 0o777);
        let err = make_private_dir(&dir).unwrap_err().to_string();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(err.contains("0777"), "{err}");
        assert_eq!(mode(&dir), 0o777, "never chmod-ed");
        assert_eq!(
            std::fs::read_to_string(dir.join("docker.sock")).unwrap(),
            "planted"
        );

        // Mode 0700, but another user's (only root can give a directory away).
        chmod(&dir, 0o700);
        if euid() == 0 {
            std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
            let err = make_private_dir(&dir).unwrap_err().to_string();
            assert!(err.contains(&dir.display().to_string()), "{err}");
            assert!(err.contains("owned by uid 65534"), "{err}");
            assert_eq!(std::fs::symlink_metadata(&dir).unwrap().uid(), 65534);
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(
                std::fs::read_to_string(dir.join("docker.sock")).unwrap(),
                "planted"
            );
            std::os::unix::fs::chown(&dir, Some(euid()), None).unwrap();
        } else {
            eprintln!("not root: the other-owner case needs chown, skipped");
        }

        // Ours and 0700 (a crashed run with our pid): made again, empty.
        make_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
    }

    #[test]
    fn a_symlink_at_the_path_is_refused_and_its_target_untouched() {
        let base = shared_base();
        // Even a target that would pass (ours, 0700) is refused: the link is someone's.
        for target_mode in [0o755, 0o700] {
            let target = tempfile::tempdir().unwrap();
            std::fs::write(target.path().join("keep"), "x").unwrap();
            chmod(target.path(), target_mode);
            let dir = tunnel_dir(base.path());
            std::os::unix::fs::symlink(target.path(), &dir).unwrap();
            let err = make_private_dir(&dir).unwrap_err().to_string();
            assert!(err.contains(&dir.display().to_string()), "{err}");
            assert!(err.contains("symbolic link"), "{err}");
            assert!(
                std::fs::symlink_metadata(&dir)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
            assert_eq!(mode(target.path()), target_mode);
            assert_eq!(
                std::fs::read_to_string(target.path().join("keep")).unwrap(),
                "x"
            );
            assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 1);
        }
    }

    #[test]
    fn xdg_runtime_dir_is_preferred_only_when_private() {
        let temp = PathBuf::from("/the/temp/dir");
        let base = |xdg: Option<&Path>| private_dir::base(xdg.map(Path::as_os_str), temp.clone());
        let runtime = tempfile::tempdir().unwrap();
        let xdg = runtime.path();
        for ok in [0o700, 0o755, 0o711] {
            chmod(xdg, ok);
            assert_eq!(base(Some(xdg)), xdg, "{ok:o}");
        }
        for writable in [0o770, 0o777, 0o1777, 0o702, 0o720] {
            chmod(xdg, writable);
            assert_eq!(base(Some(xdg)), temp, "{writable:o}");
        }
        chmod(xdg, 0o700);
        assert_eq!(base(None), temp);
        assert_eq!(base(Some(Path::new(""))), temp);
        assert_eq!(base(Some(Path::new("relative/dir"))), temp);
        assert_eq!(base(Some(&xdg.join("missing"))), temp);
        std::fs::write(xdg.join("file"), "").unwrap();
        assert_eq!(base(Some(&xdg.join("file"))), temp);
        let link = xdg.join("link");
        std::fs::create_dir(xdg.join("real")).unwrap();
        chmod(&xdg.join("real"), 0o700);
        std::os::unix::fs::symlink(xdg.join("real"), &link).unwrap();
        assert_eq!(base(Some(&link)), temp);
        if euid() == 0 {
            std::os::unix::fs::chown(xdg, Some(65534), None).unwrap();
            assert_eq!(base(Some(xdg)), temp, "another user's");
            std::os::unix::fs::chown(xdg, Some(euid()), None).unwrap();
        }
        // Made there, the directory is as private as in the temp dir.
        let dir = tunnel_dir(&base(Some(xdg)));
        assert_eq!(dir.parent(), Some(xdg));
        make_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }
}
