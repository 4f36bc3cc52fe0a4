//! The `local` exporter's receiving end (`--output type=local,dest=DIR`): BuildKit's
//! `exporter/local` sends the image's files with fsutil's `Send` over `FileSend.DiffCopy`,
//! and we are fsutil's receiver. The sender walks the tree and sends one STAT packet per
//! entry in fsutil's path order (a directory before what it holds), then a STAT without a
//! stat; an entry's id is its index among all the STATs. We ask for every regular file's
//! data with a REQ of its id; its DATA packets come (interleaved with other files'), and an
//! empty DATA ends it. Once every file asked for is written we send FIN, and the sender
//! answers FIN and is done. BuildKit counts the export done at our FIN, so everything (the
//! merge, the bytes recorded) happens before it; an ERR packet instead fails the export with
//! our reason.
//!
//! The tree is received into a hidden staging directory beside the destination and merged
//! into it only when all of it arrived: each received entry replaces the entry of the same
//! path (a directory is merged into a directory), entries the export did not send are kept
//! (buildx's behaviour); a failed transfer removes the staging directory and leaves the
//! destination as it was. A missing destination is created (0700, as BuildKit's client
//! creates it). A path from the daemon is never trusted: an absolute path, an empty, `.` or
//! `..` component, an entry whose parent was not received as a directory (so nothing is ever
//! written through a symlink it sent) and a hard link to anything but a file it sent before
//! are errors. Modes (the exec, setuid, setgid and sticky bits included) and mtimes are
//! kept; the owner is us (as with BuildKit's own client); extended attributes, device nodes,
//! FIFOs and sockets are not written.
//!
//! Not for: tarball exports and the FileSend service (`filesend.rs`), the sending side of
//! fsutil (`filesync.rs`).

use std::collections::HashMap;
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard_buildkit_proto::fsutil::types::packet::PacketType;
use bollard_buildkit_proto::fsutil::types::{Packet, Stat};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::Status;

use super::filesync::{
    GO_MODE_DIR, GO_MODE_SETGID, GO_MODE_SETUID, GO_MODE_STICKY, GO_MODE_SYMLINK,
};

/// Go's `os.ModeType` bits other than a directory's and a symlink's: named pipe, socket,
/// device, char device, irregular. An entry with one of them is not a regular file (fsutil's
/// `fileCanRequestData`), and is not written.
const GO_MODE_SPECIAL: u32 = (1 << 25) | (1 << 24) | (1 << 26) | (1 << 21) | (1 << 19);

/// Packets read ahead of the writer.
const READ_AHEAD: usize = 64;
/// Files kept open at once (fsutil's sender streams four at a time): past it, the handles
/// are closed and files reopened as their data comes.
const MAX_OPEN: usize = 16;
/// How long the sender may take to answer our FIN.
const FIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where our packets go (the response stream of the `DiffCopy` call).
pub type Outgoing = dyn Fn(Packet) + Send + Sync;

/// Why a `local` export could not be received.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("the BuildKit daemon sent an unsafe path {path:?}: {reason}")]
    UnsafePath { path: String, reason: &'static str },
    #[error("the BuildKit daemon broke the file transfer protocol: {0}")]
    Protocol(String),
    #[error("a message from the BuildKit daemon is not an fsutil packet: {0}")]
    Decode(prost::DecodeError),
    #[error("the BuildKit daemon failed to send the files: {0}")]
    Sender(String),
    #[error("the file transfer stream failed: {0}")]
    Stream(String),
    #[error("the file transfer ended before every file arrived")]
    Ended,
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{} has no parent directory to receive the export beside it", .0.display())]
    NoParent(PathBuf),
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the writer of the export stopped: {0}")]
    Internal(String),
}

impl ReceiveError {
    /// The gRPC status that ends our side of the stream.
    pub fn status(&self) -> Status {
        let message = self.to_string();
        match self {
            ReceiveError::UnsafePath { .. }
            | ReceiveError::Protocol(_)
            | ReceiveError::Decode(_) => Status::invalid_argument(message),
            ReceiveError::Sender(_) | ReceiveError::Stream(_) | ReceiveError::Ended => {
                Status::aborted(message)
            }
            _ => Status::internal(message),
        }
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ReceiveError + 'a {
    move |source| ReceiveError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn packet(kind: PacketType) -> Packet {
    Packet {
        r#type: kind as i32,
        ..Default::default()
    }
}

/// Receives one fsutil stream into `dir`: `incoming` is what the sender sends, `send` takes
/// our packets. `done` is given the bytes of file data written once the tree is merged into
/// `dir`, before our FIN says so to the sender. On an error, the sender is sent an ERR
/// packet and `dir` is left as it was.
pub async fn receive<S>(
    dir: PathBuf,
    incoming: S,
    send: Arc<Outgoing>,
    done: impl FnOnce(u64) + Send,
) -> Result<u64, ReceiveError>
where
    S: Stream<Item = Result<Packet, ReceiveError>> + Send + Unpin + 'static,
{
    // The stream is read as fast as it comes, into a bounded queue the writer (on a blocking
    // thread: it is all file system calls) empties; our packets never wait.
    let (queue, mut packets) = mpsc::channel(READ_AHEAD);
    let pump = tokio::spawn(async move {
        let mut incoming = incoming;
        while let Some(p) = incoming.next().await {
            let failed = p.is_err();
            if queue.send(p).await.is_err() || failed {
                return;
            }
        }
    });
    let writer_send = send.clone();
    let written = tokio::task::spawn_blocking(move || {
        let result = write_tree(&dir, &mut packets, &*writer_send);
        (packets, result)
    })
    .await;
    let (mut packets, result) = match written {
        Ok(w) => w,
        Err(e) => {
            pump.abort();
            let e = ReceiveError::Internal(e.to_string());
            send(error_packet(&e));
            return Err(e);
        }
    };
    let outcome = match result {
        Ok(bytes) => {
            done(bytes);
            send(packet(PacketType::PacketFin));
            // The sender's FIN ends the transfer; whatever else comes (or an error once it
            // went away) does not change what was written.
            let _ = tokio::time::timeout(FIN_TIMEOUT, async {
                while let Some(Ok(p)) = packets.recv().await {
                    if p.r#type == PacketType::PacketFin as i32 {
                        return;
                    }
                }
            })
            .await;
            Ok(bytes)
        }
        Err(e) => {
            send(error_packet(&e));
            Err(e)
        }
    };
    pump.abort();
    outcome
}

fn error_packet(e: &ReceiveError) -> Packet {
    Packet {
        data: e.to_string().into_bytes(),
        ..packet(PacketType::PacketErr)
    }
}

/// Receives the tree into a staging directory beside `dir` and merges it into `dir`; the
/// bytes of file data written. The staging directory is gone afterwards, whatever happened.
fn write_tree(
    dir: &Path,
    packets: &mut mpsc::Receiver<Result<Packet, ReceiveError>>,
    send: &Outgoing,
) -> Result<u64, ReceiveError> {
    let staging = Staging::create(dir)?;
    let mut tree = Tree::new(&staging.0, send);
    tree.receive(packets)?;
    tree.commit(dir)?;
    Ok(tree.bytes)
}

/// A hidden directory beside the destination, removed on drop (once merged, only the
/// directories merged into existing ones are left in it).
struct Staging(PathBuf);

/// Tells apart the staging directories of one process (a `local` export of several
/// platforms opens one stream per platform, at once).
static STAGING_SEQ: AtomicU64 = AtomicU64::new(0);

impl Staging {
    fn create(dir: &Path) -> Result<Staging, ReceiveError> {
        let parent = match dir.parent() {
            Some(p) if p.as_os_str().is_empty() => Path::new("."),
            Some(p) => p,
            None => return Err(ReceiveError::NoParent(dir.to_path_buf())),
        };
        if dir.file_name().is_none() {
            return Err(ReceiveError::NoParent(dir.to_path_buf()));
        }
        fs::create_dir_all(parent).map_err(io("create", parent))?;
        // As a tarball's partial file is named (`filesend::partial_path`), and numbered.
        let seq = STAGING_SEQ.fetch_add(1, Ordering::Relaxed);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = parent.join(format!(".{name}.partial-{}-{seq}", std::process::id()));
        // A leftover of an earlier process that had our pid.
        if fs::symlink_metadata(&path).is_ok() {
            fs::remove_dir_all(&path).map_err(io("remove the leftover", &path))?;
        }
        make_dir(&path).map_err(io("create", &path))?;
        Ok(Staging(path))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What a received path is: only a directory may hold more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    /// A device, FIFO or socket: not written.
    Skipped,
}

/// A directory's mode and mtime, applied once everything is in it.
struct DirMeta {
    path: String,
    permissions: u32,
    mtime: i64,
}

/// A file asked for, whose data has not all come.
struct Pending {
    path: PathBuf,
    permissions: u32,
    mtime: i64,
    file: Option<File>,
}

/// The tree being received into `root`.
struct Tree<'a> {
    root: &'a Path,
    send: &'a Outgoing,
    kinds: HashMap<String, Kind>,
    dirs: Vec<DirMeta>,
    pending: HashMap<u32, Pending>,
    open: usize,
    next_id: u32,
    stats_done: bool,
    bytes: u64,
}

impl<'a> Tree<'a> {
    fn new(root: &'a Path, send: &'a Outgoing) -> Self {
        Tree {
            root,
            send,
            kinds: HashMap::new(),
            dirs: Vec::new(),
            pending: HashMap::new(),
            open: 0,
            next_id: 0,
            stats_done: false,
            bytes: 0,
        }
    }

    /// Until every stat came and every file asked for is complete.
    fn receive(
        &mut self,
        packets: &mut mpsc::Receiver<Result<Packet, ReceiveError>>,
    ) -> Result<(), ReceiveError> {
        while !(self.stats_done && self.pending.is_empty()) {
            let p = packets.blocking_recv().ok_or(ReceiveError::Ended)??;
            match PacketType::try_from(p.r#type) {
                Ok(PacketType::PacketStat) => match p.stat {
                    _ if self.stats_done => {
                        return Err(ReceiveError::Protocol(
                            "a STAT after the end of the stats".to_string(),
                        ));
                    }
                    None => self.stats_done = true,
                    Some(stat) => self.add(stat)?,
                },
                Ok(PacketType::PacketData) => self.data(p.id, &p.data)?,
                Ok(PacketType::PacketErr) => {
                    return Err(ReceiveError::Sender(
                        String::from_utf8_lossy(&p.data).into_owned(),
                    ));
                }
                Ok(PacketType::PacketFin) => {
                    return Err(ReceiveError::Protocol(
                        "FIN before every file arrived".to_string(),
                    ));
                }
                Ok(PacketType::PacketReq) => {
                    return Err(ReceiveError::Protocol("a REQ from the sender".to_string()));
                }
                Err(_) => {
                    return Err(ReceiveError::Protocol(format!(
                        "a packet of unknown type {}",
                        p.r#type
                    )));
                }
            }
        }
        Ok(())
    }

    /// One entry: made in the staging directory, and its data asked for if it is a file.
    fn add(&mut self, stat: Stat) -> Result<(), ReceiveError> {
        let id = self.next_id;
        self.next_id = id
            .checked_add(1)
            .ok_or_else(|| ReceiveError::Protocol("more entries than ids".to_string()))?;
        let path = safe_path(&stat.path)?;
        let unsafe_path = |reason| ReceiveError::UnsafePath {
            path: stat.path.clone(),
            reason,
        };
        if self.kinds.contains_key(path) {
            return Err(unsafe_path("it was sent twice"));
        }
        if let Some((parent, _)) = path.rsplit_once('/')
            && self.kinds.get(parent) != Some(&Kind::Dir)
        {
            return Err(unsafe_path(
                "its parent was not sent as a directory before it",
            ));
        }
        let target = self.root.join(path);
        let permissions = unix_permissions(stat.mode);
        let kind = if stat.mode & GO_MODE_DIR != 0 {
            make_dir(&target).map_err(io("create", &target))?;
            self.dirs.push(DirMeta {
                path: path.to_string(),
                permissions,
                mtime: stat.mod_time,
            });
            Kind::Dir
        } else if stat.mode & GO_MODE_SYMLINK != 0 {
            if stat.linkname.is_empty() {
                return Err(ReceiveError::Protocol(format!(
                    "the symlink {:?} has no target",
                    stat.path
                )));
            }
            make_symlink(&stat.linkname, &target).map_err(io("create the symlink", &target))?;
            set_symlink_mtime(&target, stat.mod_time).map_err(io("set the mtime of", &target))?;
            Kind::Symlink
        } else if stat.mode & GO_MODE_SPECIAL != 0 {
            Kind::Skipped
        } else if !stat.linkname.is_empty() {
            // A hard link: to a file sent before it (fsutil sends the first path of an inode
            // as the file, the others as links to it); no data of its own.
            let original = safe_path(&stat.linkname)?;
            if self.kinds.get(original) != Some(&Kind::File) {
                return Err(unsafe_path(
                    "it is a hard link to something not sent as a file before it",
                ));
            }
            let from = self.root.join(original);
            fs::hard_link(&from, &target).map_err(io("create the hard link", &target))?;
            Kind::File
        } else {
            new_file(&target).map_err(io("create", &target))?;
            self.pending.insert(
                id,
                Pending {
                    path: target,
                    permissions,
                    mtime: stat.mod_time,
                    file: None,
                },
            );
            (self.send)(Packet {
                id,
                ..packet(PacketType::PacketReq)
            });
            Kind::File
        };
        self.kinds.insert(path.to_string(), kind);
        Ok(())
    }

    /// A DATA packet: more of file `id`, or (empty) its end.
    fn data(&mut self, id: u32, data: &[u8]) -> Result<(), ReceiveError> {
        if !self.pending.contains_key(&id) {
            return Err(ReceiveError::Protocol(format!(
                "data for file {id}, which was not asked for (or is complete)"
            )));
        }
        if data.is_empty() {
            let Some(done) = self.pending.remove(&id) else {
                return Ok(());
            };
            if done.file.is_some() {
                self.open -= 1;
            }
            return finish_file(done);
        }
        let needs_open = self.pending.get(&id).is_some_and(|p| p.file.is_none());
        if needs_open && self.open >= MAX_OPEN {
            for p in self.pending.values_mut() {
                p.file = None;
            }
            self.open = 0;
        }
        let Some(p) = self.pending.get_mut(&id) else {
            return Ok(());
        };
        if p.file.is_none() {
            let f = OpenOptions::new()
                .append(true)
                .open(&p.path)
                .map_err(io("open", &p.path))?;
            p.file = Some(f);
            self.open += 1;
        }
        if let Some(f) = p.file.as_mut() {
            f.write_all(data).map_err(io("write", &p.path))?;
        }
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Moves the received tree into `dir`, then gives its directories their modes and mtimes
    /// (deepest first: a directory's own is final only once nothing more goes into it).
    fn commit(&self, dir: &Path) -> Result<(), ReceiveError> {
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => merge(self.root, dir)?,
            Ok(_) => return Err(ReceiveError::NotADirectory(dir.to_path_buf())),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if let Err(e) = fs::rename(self.root, dir) {
                    // Another stream of the export (another platform) made it meanwhile.
                    if !fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
                        return Err(io("create", dir)(e));
                    }
                    merge(self.root, dir)?;
                }
            }
            Err(e) => return Err(io("read", dir)(e)),
        }
        for d in self.dirs.iter().rev() {
            let path = dir.join(&d.path);
            set_dir_metadata(&path, d.permissions, d.mtime)
                .map_err(io("set the mode and mtime of", &path))?;
        }
        Ok(())
    }
}

/// A received path, checked: relative, and none of its components empty, `.` or `..`.
fn safe_path(path: &str) -> Result<&str, ReceiveError> {
    let unsafe_path = |reason| ReceiveError::UnsafePath {
        path: path.to_string(),
        reason,
    };
    if path.is_empty() {
        return Err(unsafe_path("it is empty"));
    }
    if path.starts_with('/') {
        return Err(unsafe_path("it is absolute"));
    }
    if path.contains('\0') {
        return Err(unsafe_path("it holds a NUL byte"));
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(unsafe_path("it has an empty, `.` or `..` component"));
    }
    Ok(path)
}

/// Go's `os.FileMode` permission bits as Unix's `0o7777`.
fn unix_permissions(go_mode: u32) -> u32 {
    let mut m = go_mode & 0o777;
    if go_mode & GO_MODE_SETUID != 0 {
        m |= 0o4000;
    }
    if go_mode & GO_MODE_SETGID != 0 {
        m |= 0o2000;
    }
    if go_mode & GO_MODE_STICKY != 0 {
        m |= 0o1000;
    }
    m
}

fn time_of(ns: i64) -> Option<SystemTime> {
    let d = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

fn file_times(ns: i64) -> Option<FileTimes> {
    time_of(ns).map(|t| FileTimes::new().set_accessed(t).set_modified(t))
}

/// A complete file gets its mode and mtime.
fn finish_file(p: Pending) -> Result<(), ReceiveError> {
    let file = match p.file {
        Some(f) => f,
        None => OpenOptions::new()
            .append(true)
            .open(&p.path)
            .map_err(io("open", &p.path))?,
    };
    if let Some(times) = file_times(p.mtime) {
        file.set_times(times)
            .map_err(io("set the mtime of", &p.path))?;
    }
    set_file_permissions(&file, p.permissions).map_err(io("set the mode of", &p.path))
}

/// Merges the tree at `from` into the directory `to`: an entry replaces the one of the same
/// name, a directory merges into a directory. `to`'s entries are looked at, never followed:
/// a symlink there is replaced, not written through.
fn merge(from: &Path, to: &Path) -> Result<(), ReceiveError> {
    for entry in fs::read_dir(from).map_err(io("read", from))? {
        let entry = entry.map_err(io("read", from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let src_is_dir = entry.file_type().map_err(io("read", &src))?.is_dir();
        match fs::symlink_metadata(&dst) {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io("read", &dst)(e)),
            Ok(m) if m.is_dir() && src_is_dir => {
                merge(&src, &dst)?;
                continue;
            }
            Ok(m) if m.is_dir() => fs::remove_dir_all(&dst).map_err(io("replace", &dst))?,
            // A directory cannot be renamed over a file: remove it first.
            Ok(_) if src_is_dir => fs::remove_file(&dst).map_err(io("replace", &dst))?,
            // A file or symlink is renamed over it (replaced at once).
            Ok(_) => {}
        }
        fs::rename(&src, &dst).map_err(io("move the export to", &dst))?;
    }
    Ok(())
}

#[cfg(unix)]
fn make_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().mode(0o700).create(path)
}

#[cfg(not(unix))]
fn make_dir(path: &Path) -> std::io::Result<()> {
    fs::create_dir(path)
}

/// A new empty file, ours only until its mode is set.
fn new_file(path: &Path) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

#[cfg(unix)]
fn make_symlink(target: &str, path: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

#[cfg(not(unix))]
fn make_symlink(_target: &str, _path: &Path) -> std::io::Result<()> {
    Err(std::io::Error::new(
        ErrorKind::Unsupported,
        "symlinks are written on Unix only",
    ))
}

#[cfg(unix)]
fn set_file_permissions(file: &File, permissions: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(permissions))
}

#[cfg(not(unix))]
fn set_file_permissions(file: &File, permissions: u32) -> std::io::Result<()> {
    let mut p = file.metadata()?.permissions();
    p.set_readonly(permissions & 0o222 == 0);
    file.set_permissions(p)
}

/// A symlink's own mtime (not its target's).
#[cfg(unix)]
fn set_symlink_mtime(path: &Path, ns: i64) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
    let t = libc::timespec {
        tv_sec: ns.div_euclid(1_000_000_000) as libc::time_t,
        tv_nsec: ns.rem_euclid(1_000_000_000) as libc::c_long,
    };
    let times = [t, t];
    // SAFETY: `c` is a NUL-terminated path and `times` two timespecs, both alive for the
    // call; utimensat reads them and keeps neither.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn set_symlink_mtime(_path: &Path, _ns: i64) -> std::io::Result<()> {
    Ok(())
}

/// A received directory's mode and mtime, on the directory itself (opened without following
/// a symlink).
fn set_dir_metadata(path: &Path, permissions: u32, mtime: i64) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY);
    }
    let dir = options.open(path)?;
    if let Some(times) = file_times(mtime) {
        dir.set_times(times)?;
    }
    set_file_permissions(&dir, permissions)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use tokio_stream::wrappers::ReceiverStream;

    /// One entry the fake sender sends, with a file's data.
    #[derive(Clone)]
    struct Entry {
        stat: Stat,
        data: Vec<u8>,
    }

    fn dir(path: &str, perms: u32) -> Entry {
        Entry {
            stat: Stat {
                path: path.into(),
                mode: GO_MODE_DIR | perms,
                mod_time: 1_600_000_000_000_000_000,
                ..Default::default()
            },
            data: vec![],
        }
    }

    fn file(path: &str, perms: u32, data: &[u8]) -> Entry {
        Entry {
            stat: Stat {
                path: path.into(),
                mode: perms,
                size: data.len() as i64,
                mod_time: 1_500_000_000_123_456_789,
                ..Default::default()
            },
            data: data.to_vec(),
        }
    }

    fn symlink(path: &str, target: &str) -> Entry {
        Entry {
            stat: Stat {
                path: path.into(),
                mode: GO_MODE_SYMLINK | 0o777,
                linkname: target.into(),
                mod_time: 1_400_000_000_000_000_000,
                ..Default::default()
            },
            data: vec![],
        }
    }

    fn hardlink(path: &str, original: &str) -> Entry {
        Entry {
            stat: Stat {
                path: path.into(),
                mode: 0o644,
                linkname: original.into(),
                ..Default::default()
            },
            data: vec![],
        }
    }

    /// What the fake sender saw of the receiver.
    #[derive(Debug, Default)]
    struct Seen {
        requests: Vec<u32>,
        fin: bool,
        error: Option<String>,
    }

    /// fsutil's `Send`, in miniature: the stats, then the data of each file asked for (in
    /// chunks of 3 bytes, two files interleaved), then FIN for FIN. `fail_after`: an ERR
    /// after that many stats instead of the rest.
    async fn fake_sender(
        entries: Vec<Entry>,
        to_receiver: mpsc::Sender<Result<Packet, ReceiveError>>,
        mut from_receiver: mpsc::UnboundedReceiver<Packet>,
        fail_after: Option<usize>,
    ) -> Seen {
        let mut seen = Seen::default();
        for (i, e) in entries.iter().enumerate() {
            if fail_after == Some(i) {
                let _ = to_receiver
                    .send(Ok(Packet {
                        data: b"walk failed".to_vec(),
                        ..packet(PacketType::PacketErr)
                    }))
                    .await;
                break;
            }
            let p = Packet {
                stat: Some(e.stat.clone()),
                ..packet(PacketType::PacketStat)
            };
            // A receiver that stopped reading still says why: read on.
            if to_receiver.send(Ok(p)).await.is_err() {
                break;
            }
        }
        if fail_after.is_none() {
            let _ = to_receiver.send(Ok(packet(PacketType::PacketStat))).await;
        }
        let mut queued: Vec<u32> = Vec::new();
        loop {
            let Some(p) = from_receiver.recv().await else {
                return seen;
            };
            match PacketType::try_from(p.r#type) {
                Ok(PacketType::PacketReq) => {
                    seen.requests.push(p.id);
                    queued.push(p.id);
                    // Two at a time, interleaved by chunk.
                    if queued.len() == 2 {
                        send_interleaved(&entries, &queued, &to_receiver).await;
                        queued.clear();
                    }
                }
                Ok(PacketType::PacketFin) => {
                    seen.fin = true;
                    let _ = to_receiver.send(Ok(packet(PacketType::PacketFin))).await;
                    return seen;
                }
                Ok(PacketType::PacketErr) => {
                    seen.error = Some(String::from_utf8_lossy(&p.data).into_owned());
                    return seen;
                }
                _ => {}
            }
            // What is left once the receiver has asked for all it will: send it.
            if !queued.is_empty() && from_receiver.is_empty() {
                tokio::task::yield_now().await;
                if from_receiver.is_empty() {
                    send_interleaved(&entries, &queued, &to_receiver).await;
                    queued.clear();
                }
            }
        }
    }

    async fn send_interleaved(
        entries: &[Entry],
        ids: &[u32],
        to: &mpsc::Sender<Result<Packet, ReceiveError>>,
    ) {
        let chunks: Vec<Vec<Vec<u8>>> = ids
            .iter()
            .map(|&id| {
                entries[id as usize]
                    .data
                    .chunks(3)
                    .map(<[u8]>::to_vec)
                    .collect()
            })
            .collect();
        let longest = chunks.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..longest {
            for (n, &id) in ids.iter().enumerate() {
                if let Some(c) = chunks[n].get(i) {
                    let _ = to
                        .send(Ok(Packet {
                            id,
                            data: c.clone(),
                            ..packet(PacketType::PacketData)
                        }))
                        .await;
                }
            }
        }
        for &id in ids {
            let _ = to
                .send(Ok(Packet {
                    id,
                    ..packet(PacketType::PacketData)
                }))
                .await;
        }
    }

    /// Runs a receiver into `dest` against the fake sender of `entries`.
    async fn run(
        dest: &Path,
        entries: Vec<Entry>,
        fail_after: Option<usize>,
    ) -> (Result<u64, ReceiveError>, Seen, Option<u64>) {
        let (to_receiver, incoming) = mpsc::channel(4);
        let (ours, from_receiver) = mpsc::unbounded_channel();
        let sender = tokio::spawn(fake_sender(entries, to_receiver, from_receiver, fail_after));
        let send: Arc<Outgoing> = Arc::new(move |p| {
            let _ = ours.send(p);
        });
        let recorded = Arc::new(std::sync::Mutex::new(None));
        let r = recorded.clone();
        let result = receive(
            dest.to_path_buf(),
            ReceiverStream::new(incoming),
            send,
            move |n| *r.lock().unwrap() = Some(n),
        )
        .await;
        let seen = sender.await.unwrap();
        let recorded = *recorded.lock().unwrap();
        (result, seen, recorded)
    }

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn leftovers(parent: &Path) -> Vec<String> {
        fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".partial-"))
            .collect()
    }

    fn tree() -> Vec<Entry> {
        vec![
            dir("bin", 0o755),
            file("bin/tool", 0o755, b"#!/bin/sh\necho hi\n"),
            file("empty", 0o644, b""),
            dir("etc", 0o750),
            dir("etc/app", 0o755),
            file("etc/app/conf", 0o600, b"key=value, and some more"),
            hardlink("etc/app/conf.bak", "etc/app/conf"),
            symlink("link", "etc/app/conf"),
            file("setuid", 0o755 | GO_MODE_SETUID, b"x"),
        ]
    }

    #[tokio::test]
    async fn a_tree_arrives_whole_with_modes_mtimes_links_and_the_fin_handshake() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out");
        let (result, seen, recorded) = run(&dest, tree(), None).await;
        let data_bytes = (18 + 24 + 1) as u64;
        assert_eq!(result.unwrap(), data_bytes);
        assert_eq!(recorded, Some(data_bytes), "recorded before FIN");
        assert!(seen.fin, "the receiver said FIN: {seen:?}");
        // Regular files only (no dirs, symlinks, hard links), by their index among the stats.
        let mut requests = seen.requests.clone();
        requests.sort();
        assert_eq!(requests, [1, 2, 5, 8]);

        assert_eq!(
            fs::read(dest.join("bin/tool")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        assert_eq!(mode(&dest.join("bin/tool")), 0o755);
        assert_eq!(fs::read(dest.join("empty")).unwrap(), b"");
        assert_eq!(mode(&dest.join("etc/app/conf")), 0o600);
        assert_eq!(mode(&dest.join("etc")), 0o750);
        assert_eq!(mode(&dest.join("setuid")), 0o4755);
        assert_eq!(mode(&dest), 0o700, "a missing destination is made 0700");
        let conf = fs::metadata(dest.join("etc/app/conf")).unwrap();
        let bak = fs::metadata(dest.join("etc/app/conf.bak")).unwrap();
        assert_eq!(conf.ino(), bak.ino(), "a hard link is a hard link");
        assert_eq!(
            fs::read_link(dest.join("link")).unwrap(),
            Path::new("etc/app/conf")
        );
        assert_eq!(conf.mtime(), 1_500_000_000);
        assert_eq!(conf.mtime_nsec(), 123_456_789);
        let dir_meta = fs::metadata(dest.join("etc/app")).unwrap();
        assert_eq!(dir_meta.mtime(), 1_600_000_000, "set after its contents");
        let link_meta = fs::symlink_metadata(dest.join("link")).unwrap();
        assert_eq!(link_meta.mtime(), 1_400_000_000);
        assert!(leftovers(tmp.path()).is_empty());
    }

    #[tokio::test]
    async fn a_merge_replaces_what_was_sent_and_keeps_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(dest.join("etc/old")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(dest.join("keep.txt"), "mine").unwrap();
        fs::write(dest.join("etc/old/file"), "mine too").unwrap();
        fs::write(dest.join("empty"), "was not empty").unwrap();
        // A directory where the export has a file, a file where it has a directory, a
        // symlink to elsewhere where it has a directory.
        fs::create_dir_all(dest.join("setuid/inside")).unwrap();
        fs::write(dest.join("link"), "a file").unwrap();
        std::os::unix::fs::symlink(&outside, dest.join("bin")).unwrap();

        let (result, seen, _) = run(&dest, tree(), None).await;
        result.unwrap();
        assert!(seen.fin);
        assert_eq!(fs::read_to_string(dest.join("keep.txt")).unwrap(), "mine");
        assert_eq!(
            fs::read_to_string(dest.join("etc/old/file")).unwrap(),
            "mine too"
        );
        assert_eq!(fs::read(dest.join("empty")).unwrap(), b"");
        assert_eq!(fs::read(dest.join("setuid")).unwrap(), b"x");
        assert!(
            fs::symlink_metadata(dest.join("link"))
                .unwrap()
                .is_symlink()
        );
        let bin = fs::symlink_metadata(dest.join("bin")).unwrap();
        assert!(bin.is_dir(), "the symlink was replaced by the directory");
        assert!(dest.join("bin/tool").is_file());
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing written through the old symlink"
        );
        assert!(leftovers(tmp.path()).is_empty());
    }

    /// `entries` must fail: `dest` keeps exactly its one file, nothing appears beside it
    /// or in `outside`.
    async fn refused(entries: Vec<Entry>, why: &str) {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&dest).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(dest.join("keep.txt"), "mine").unwrap();
        let (result, seen, recorded) = run(&dest, entries, None).await;
        let err = result.expect_err(why);
        assert!(!seen.fin, "{why}");
        assert_eq!(
            seen.error.as_deref(),
            Some(err.to_string().as_str()),
            "the sender is told why: {why}"
        );
        assert_eq!(recorded, None, "{why}");
        let names: Vec<_> = fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keep.txt"], "{why}");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{why}");
        let mut beside: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        beside.sort();
        assert_eq!(beside, ["out", "outside"], "{why}");
    }

    #[tokio::test]
    async fn hostile_paths_never_leave_the_destination() {
        refused(vec![file("/abs", 0o644, b"x")], "an absolute path").await;
        refused(vec![file("../outside/x", 0o644, b"x")], "a `..`").await;
        refused(
            vec![dir("a", 0o755), file("a/../../outside/x", 0o644, b"x")],
            "a `..` inside",
        )
        .await;
        refused(vec![dir("a", 0o755), file("a/./x", 0o644, b"x")], "a `.`").await;
        refused(
            vec![dir("a", 0o755), file("a//x", 0o644, b"x")],
            "an empty component",
        )
        .await;
        refused(vec![file("", 0o644, b"x")], "an empty path").await;
        refused(vec![file("a/x", 0o644, b"x")], "a parent never sent").await;
        refused(
            vec![symlink("l", "../outside"), file("l/x", 0o644, b"x")],
            "through a symlink it sent",
        )
        .await;
        refused(
            vec![symlink("l", "../outside"), dir("l/d", 0o755)],
            "a directory through a symlink",
        )
        .await;
        refused(
            vec![file("f", 0o644, b"x"), file("f/x", 0o644, b"x")],
            "under a file",
        )
        .await;
        refused(
            vec![file("f", 0o644, b"x"), file("f", 0o644, b"y")],
            "a path sent twice",
        )
        .await;
        refused(vec![hardlink("h", "../outside/x")], "a hard link out").await;
        refused(
            vec![symlink("l", "../outside/x"), hardlink("h", "l")],
            "a hard link to a symlink",
        )
        .await;
        refused(
            vec![hardlink("h", "later"), file("later", 0o644, b"x")],
            "a hard link ahead",
        )
        .await;
    }

    #[tokio::test]
    async fn a_failed_sender_leaves_the_destination_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out");
        let (result, seen, recorded) = run(&dest, tree(), Some(4)).await;
        assert!(
            matches!(&result, Err(ReceiveError::Sender(m)) if m == "walk failed"),
            "{result:?}"
        );
        assert!(!seen.fin);
        assert_eq!(recorded, None);
        assert!(!dest.exists(), "a missing destination stays missing");
        assert!(leftovers(tmp.path()).is_empty());
    }

    #[tokio::test]
    async fn a_stream_that_ends_early_or_sends_unasked_data_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out");
        let (to_receiver, incoming) = mpsc::channel(8);
        to_receiver
            .send(Ok(Packet {
                stat: Some(file("f", 0o644, b"x").stat),
                ..packet(PacketType::PacketStat)
            }))
            .await
            .unwrap();
        drop(to_receiver);
        let send: Arc<Outgoing> = Arc::new(|_| {});
        let r = receive(
            dest.clone(),
            ReceiverStream::new(incoming),
            send.clone(),
            |_| {},
        )
        .await;
        assert!(matches!(r, Err(ReceiveError::Ended)), "{r:?}");

        let (to_receiver, incoming) = mpsc::channel(8);
        for p in [
            Packet {
                stat: Some(dir("d", 0o755).stat),
                ..packet(PacketType::PacketStat)
            },
            Packet {
                id: 0,
                data: b"data for a directory".to_vec(),
                ..packet(PacketType::PacketData)
            },
        ] {
            to_receiver.send(Ok(p)).await.unwrap();
        }
        let r = receive(dest.clone(), ReceiverStream::new(incoming), send, |_| {}).await;
        assert!(matches!(r, Err(ReceiveError::Protocol(_))), "{r:?}");
        assert!(!dest.exists());
        assert!(leftovers(tmp.path()).is_empty());
    }

    #[tokio::test]
    async fn streams_of_several_platforms_merge_into_one_new_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out");
        let platform = |name: &str| {
            vec![
                dir(name, 0o755),
                file(&format!("{name}/app"), 0o755, name.as_bytes()),
            ]
        };
        let (a, b) = tokio::join!(
            run(&dest, platform("linux_amd64"), None),
            run(&dest, platform("linux_arm64"), None)
        );
        a.0.unwrap();
        b.0.unwrap();
        assert_eq!(
            fs::read(dest.join("linux_amd64/app")).unwrap(),
            b"linux_amd64"
        );
        assert_eq!(
            fs::read(dest.join("linux_arm64/app")).unwrap(),
            b"linux_arm64"
        );
        assert!(leftovers(tmp.path()).is_empty());
    }

    #[test]
    fn the_staging_directory_sits_hidden_beside_the_destination_and_goes_away() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out");
        let (a, b) = (
            Staging::create(&dest).unwrap(),
            Staging::create(&dest).unwrap(),
        );
        assert_ne!(a.0, b.0, "one per stream");
        assert_eq!(a.0.parent(), Some(tmp.path()));
        let name = a.0.file_name().unwrap().to_string_lossy().into_owned();
        let prefix = format!(".out.partial-{}-", std::process::id());
        assert!(name.starts_with(&prefix), "{name}");
        assert_eq!(mode(&a.0), 0o700);
        drop((a, b));
        assert!(leftovers(tmp.path()).is_empty());
        assert!(!dest.exists());
    }

    #[test]
    fn go_permission_bits_become_unix_ones() {
        assert_eq!(unix_permissions(0o755), 0o755);
        assert_eq!(unix_permissions(GO_MODE_DIR | 0o750), 0o750);
        assert_eq!(
            unix_permissions(GO_MODE_SETUID | GO_MODE_SETGID | GO_MODE_STICKY | 0o700),
            0o7700
        );
    }
}
