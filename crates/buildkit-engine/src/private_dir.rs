//! Directories only this user can enter, for the sockets that carry credentials: the ssh
//! tunnel to a Docker host (the Docker API, registry passwords included) and the private
//! ssh agent a build's key files are loaded into.
//!
//! In a shared `/tmp`, whoever makes a directory first owns it. So a directory is made
//! atomically with mode 0700 (never made and chmod-ed after, and never with an ignored
//! chmod), preferably under `$XDG_RUNTIME_DIR` when that is private, and a path that is
//! there already and not ours (a symlink, another user's, one that others can enter) is
//! refused untouched.
//!
//! Not for: what goes into the directories (`docker::tunnel`, `docker::session::ssh`).

use std::ffi::OsStr;
use std::fmt;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Our effective uid: the owner every directory we make has, and the only owner of a
/// directory we will put a socket in (or remove).
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Where private directories go: `$XDG_RUNTIME_DIR` (`xdg_runtime_dir`) when it is a
/// directory of ours that nobody else can write to, as the spec promises (a per-user,
/// usually tmpfs, directory nobody else can even list), else `temp`. A runtime dir that
/// fails that (another owner, group- or world-writable, a symlink, relative, missing) is
/// ignored rather than trusted.
pub fn base(xdg_runtime_dir: Option<&OsStr>, temp: PathBuf) -> PathBuf {
    let usable = |dir: &Path| {
        dir.is_absolute()
            && std::fs::symlink_metadata(dir)
                .is_ok_and(|m| m.is_dir() && m.uid() == euid() && m.mode() & 0o022 == 0)
    };
    match xdg_runtime_dir.map(Path::new) {
        Some(dir) if usable(dir) => dir.to_path_buf(),
        _ => temp,
    }
}

/// [`base`] of this process's environment.
pub fn default_base() -> PathBuf {
    base(
        std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
        std::env::temp_dir(),
    )
}

/// Why a path is not a private directory of ours: the end of a sentence that starts with
/// the path.
#[derive(Debug, thiserror::Error)]
pub enum NotPrivate {
    #[error("cannot be inspected ({0})")]
    Uninspectable(std::io::Error),
    #[error("is a symbolic link (to {0}), not a directory")]
    Symlink(String),
    #[error("is not a directory")]
    NotADirectory,
    #[error("is owned by uid {owner}, not by this user (uid {us})")]
    Owner { owner: u32, us: u32 },
    #[error("has mode {0:04o}, not 0700 (others can get in)")]
    Mode(u32),
}

/// Why [`make`] made no private directory; each names the directory, as `what` calls it.
#[derive(Debug)]
pub struct PrivateDirError {
    /// What the directory is for, e.g. "ssh tunnel directory".
    pub what: &'static str,
    pub dir: PathBuf,
    pub problem: Problem,
}

#[derive(Debug)]
pub enum Problem {
    /// It was there already and is not ours to use.
    Planted(NotPrivate),
    /// It was ours, from an earlier run, and cannot be removed.
    StaleNotRemoved(std::io::Error),
    Create(std::io::Error),
    Inspect(std::io::Error),
    Chmod(std::io::Error),
    /// Made, yet not private (something changed it under us).
    NotPrivateAfter(NotPrivate),
}

impl fmt::Display for PrivateDirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, dir) = (self.what, self.dir.display());
        match &self.problem {
            Problem::Planted(why) => {
                write!(
                    f,
                    "the {what} {dir} exists already and {why}: refusing to use it"
                )
            }
            Problem::StaleNotRemoved(e) => write!(
                f,
                "the {what} {dir} exists already (ours, from an earlier run) and cannot be removed: {e}"
            ),
            Problem::Create(e) => write!(f, "cannot create the {what} {dir}: {e}"),
            Problem::Inspect(e) => write!(f, "cannot inspect the {what} {dir}: {e}"),
            Problem::Chmod(e) => {
                write!(f, "cannot make the {what} {dir} private (chmod 0700): {e}")
            }
            Problem::NotPrivateAfter(why) => write!(
                f,
                "the {what} {dir} {why} just after being made: refusing to use it"
            ),
        }
    }
}

impl std::error::Error for PrivateDirError {}

/// Makes `dir` a directory that only we can enter, or says why not, naming it.
///
/// mkdir makes it with mode 0700; the umask can only take bits away, and if it took ours
/// they are put back on the directory just made. A `dir` that is there already is
/// refused, untouched, unless it is a directory of ours with mode 0700 (a crashed run drew
/// the same name), which is removed and made again: a symlink, or a directory of another
/// user or that others can enter, is what someone else would plant there to get at the
/// socket.
pub fn make(dir: &Path, what: &'static str) -> Result<(), PrivateDirError> {
    let fail = |problem| PrivateDirError {
        what,
        dir: dir.to_path_buf(),
        problem,
    };
    let mkdir = || std::fs::DirBuilder::new().mode(0o700).create(dir);
    match mkdir() {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            check(dir).map_err(|why| fail(Problem::Planted(why)))?;
            std::fs::remove_dir_all(dir).map_err(|e| fail(Problem::StaleNotRemoved(e)))?;
            mkdir().map_err(|e| fail(Problem::Create(e)))?;
        }
        Err(e) => return Err(fail(Problem::Create(e))),
    }
    let md = std::fs::symlink_metadata(dir).map_err(|e| fail(Problem::Inspect(e)))?;
    if md.is_dir()
        && !md.file_type().is_symlink()
        && md.uid() == euid()
        && md.mode() & 0o777 != 0o700
    {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| fail(Problem::Chmod(e)))?;
    }
    check(dir).map_err(|why| fail(Problem::NotPrivateAfter(why)))
}

/// `Ok` when `dir` is a real directory (not a symlink), owned by us, mode 0700.
pub fn check(dir: &Path) -> Result<(), NotPrivate> {
    let md = std::fs::symlink_metadata(dir).map_err(NotPrivate::Uninspectable)?;
    if md.file_type().is_symlink() {
        let to =
            std::fs::read_link(dir).map_or_else(|_| "?".to_string(), |t| t.display().to_string());
        return Err(NotPrivate::Symlink(to));
    }
    if !md.is_dir() {
        return Err(NotPrivate::NotADirectory);
    }
    if md.uid() != euid() {
        return Err(NotPrivate::Owner {
            owner: md.uid(),
            us: euid(),
        });
    }
    if md.mode() & 0o777 != 0o700 {
        return Err(NotPrivate::Mode(md.mode() & 0o777));
    }
    Ok(())
}

/// For tests that change the umask, which is the whole process's: they run in a child.
#[cfg(test)]
pub(crate) mod test_support {
    /// `false` after running the test `path` (as `module_path!()::name`) alone in a child
    /// process of this test binary with `var` set, and asserting that it passed; `true` in
    /// that child, where the caller does the work.
    pub fn in_child(path: &str, var: &str) -> bool {
        if std::env::var_os(var).is_some() {
            return true;
        }
        let name = path.split_once("::").map_or(path, |(_, n)| n);
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(var, "1")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{said}");
        assert!(said.contains("1 passed"), "the child ran no test: {said}");
        false
    }
}
