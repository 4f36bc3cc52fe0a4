//! BuildKit's FileSync `DiffCopy`, sending side: the daemon asks for a local source by name
//! (`context`, `dockerfile`); we send a stat for every file of it in fsutil's order, the daemon
//! compares them with the copy it keeps under the session's shared key and asks only for the
//! files that differ; we send those, then both sides say FIN.
//!
//! The file set of `context` is exactly what our walker yields (the `.dockerignore` filter
//! that the hash uses): the daemon's own exclude patterns are not applied again, so hash and
//! build cannot disagree. `dockerfile` holds one file, [`DOCKERFILE_NAME`]. The daemon may
//! narrow a request to some paths (`followpaths`, e.g. to read `.dockerignore`) or patterns
//! (`include-patterns`); both are honoured.
//!
//! Not for: deciding what is in the context (`crate::context`), the session itself (`mod.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard_buildkit_proto::fsutil::types::packet::PacketType;
use bollard_buildkit_proto::fsutil::types::{Packet, Stat};
use bollard_buildkit_proto::moby::filesync::v1::file_sync_server::FileSync;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::context::{
    BuildContext, ContextError, DockerIgnore, DockerfileSource, Entry, EntryKind,
};

/// The name of the Dockerfile in the `dockerfile` source (and the `/build` `dockerfile`).
pub const DOCKERFILE_NAME: &str = "Dockerfile";

/// Bytes of file data per packet (fsutil's own size).
const DATA_CHUNK: usize = 32 * 1024;
/// Files read and sent at once.
const FILES_IN_FLIGHT: usize = 4;

/// Go's `os.FileMode` bits, which fsutil's stats carry.
pub(super) const GO_MODE_DIR: u32 = 1 << 31;
pub(super) const GO_MODE_SYMLINK: u32 = 1 << 27;

/// What the daemon fetched in one session: files, and bytes of file data.
#[derive(Debug, Default)]
pub struct Transfer {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
}

impl Transfer {
    /// (files, bytes).
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// Where an item's bytes come from.
#[derive(Debug, Clone)]
enum Content {
    None,
    /// A context file, read through [`crate::context::open_regular`] (the same checks as the
    /// hash: no symlink swapped in, the same inode the walk saw).
    Disk(PathBuf, Box<Entry>),
    Memory(Arc<[u8]>),
}

#[derive(Debug, Clone)]
struct Item {
    stat: Stat,
    content: Content,
}

impl Item {
    fn is_file(&self) -> bool {
        self.stat.mode & (GO_MODE_DIR | GO_MODE_SYMLINK) == 0
    }
}

/// One local source: its items in fsutil's order.
#[derive(Debug, Clone, Default)]
pub struct FileSource {
    items: Vec<Item>,
}

/// fsutil's path order: byte order, except that `/` sorts before every other byte (a
/// directory's contents come right after it).
pub fn compare_path(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |c: u8| if c == b'/' { 0u16 } else { u16::from(c) + 1 };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

/// Go's `os.FileMode` bits for setuid, setgid and sticky.
pub(super) const GO_MODE_SETUID: u32 = 1 << 23;
pub(super) const GO_MODE_SETGID: u32 = 1 << 22;
pub(super) const GO_MODE_STICKY: u32 = 1 << 20;

/// Unix permission bits (`0o7777`) as Go's `os.FileMode` writes them.
fn go_permissions(mode: u32) -> u32 {
    let mut m = mode & 0o777;
    if mode & 0o4000 != 0 {
        m |= GO_MODE_SETUID;
    }
    if mode & 0o2000 != 0 {
        m |= GO_MODE_SETGID;
    }
    if mode & 0o1000 != 0 {
        m |= GO_MODE_STICKY;
    }
    m
}

/// An entry's stat as the docker CLI's BuildKit client sends it: the permission bits as on
/// disk, owners reset to root, the mtime in nanoseconds (what BuildKit compares, with the
/// size, to its copy).
fn stat_of(entry: &Entry) -> Stat {
    let (mode, size, linkname) = match entry.kind {
        EntryKind::Dir => (GO_MODE_DIR | go_permissions(entry.mode), 0, String::new()),
        EntryKind::Symlink => (
            GO_MODE_SYMLINK | 0o777,
            0,
            entry
                .link_target
                .as_deref()
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        EntryKind::File => (go_permissions(entry.mode), entry.size as i64, String::new()),
    };
    Stat {
        path: entry.path.clone(),
        mode,
        uid: 0,
        gid: 0,
        size,
        mod_time: entry.stamp.mtime_ns,
        linkname,
        ..Default::default()
    }
}

impl FileSource {
    /// The context as the walker yields it, plus any parent directory it left out.
    pub fn context(context: &BuildContext) -> Result<FileSource, ContextError> {
        let root = context.root().to_path_buf();
        let entries = context.entries()?;
        let present: BTreeSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        let mut items: Vec<Item> = Vec::with_capacity(entries.len());
        let mut added: BTreeSet<String> = BTreeSet::new();
        for entry in &entries {
            let mut parent = entry.path.as_str();
            while let Some((dir, _)) = parent.rsplit_once('/') {
                if !present.contains(dir) && added.insert(dir.to_string()) {
                    items.push(Item {
                        stat: Stat {
                            path: dir.to_string(),
                            mode: GO_MODE_DIR | 0o755,
                            ..Default::default()
                        },
                        content: Content::None,
                    });
                }
                parent = dir;
            }
            let content = match entry.kind {
                EntryKind::File => Content::Disk(root.join(&entry.path), Box::new(entry.clone())),
                _ => Content::None,
            };
            items.push(Item {
                stat: stat_of(entry),
                content,
            });
        }
        items.sort_by(|a, b| compare_path(&a.stat.path, &b.stat.path));
        Ok(FileSource { items })
    }

    /// The Dockerfile alone, as [`DOCKERFILE_NAME`]: read now (it is small), so that the
    /// build uses the text the hash saw.
    pub fn dockerfile(context: &BuildContext) -> Result<FileSource, ContextError> {
        let (text, mtime): (Vec<u8>, Option<i64>) = match context.dockerfile() {
            DockerfileSource::Inline(text) => (text.as_bytes().to_vec(), None),
            DockerfileSource::Path(rel) => {
                let path = context.root().join(rel);
                let entry = context
                    .dockerfile_entry()?
                    .expect("a Dockerfile path has an entry");
                let mut file = crate::context::open_regular(&path, &entry)?;
                let mut text = Vec::new();
                file.read_to_end(&mut text)
                    .map_err(|source| ContextError::ReadFile { path, source })?;
                (text, Some(entry.stamp.mtime_ns))
            }
        };
        Ok(FileSource::single(DOCKERFILE_NAME, text, mtime))
    }

    /// One file held in memory. Without an mtime, one is made from the content, so that
    /// the daemon's cached copy (compared by size and mtime) is replaced when it changes.
    pub fn single(name: &str, data: Vec<u8>, mtime: Option<i64>) -> FileSource {
        let mod_time = mtime.unwrap_or_else(|| {
            // Positive, below 2^62: a time in the 2000s..2100s range would do too, but any
            // value works for a comparison.
            (xxhash_rust::xxh3::xxh3_64(&data) >> 2) as i64
        });
        FileSource {
            items: vec![Item {
                stat: Stat {
                    path: name.to_string(),
                    mode: 0o644,
                    size: data.len() as i64,
                    mod_time,
                    ..Default::default()
                },
                content: Content::Memory(data.into()),
            }],
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items the daemon asked for: all, or those `follow` names (with their parent
    /// directories, everything under a followed directory, and a followed symlink's target),
    /// or those `include` patterns match (with everything under a matched directory and the
    /// parents of what is sent).
    fn select(&self, follow: &[String], include: &[String]) -> Vec<&Item> {
        if follow.is_empty() && include.is_empty() {
            return self.items.iter().collect();
        }
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        let clean = |p: &str| {
            p.trim_start_matches("./")
                .trim_start_matches('/')
                .trim_end_matches('/')
                .to_string()
        };
        let follow: Vec<String> = follow.iter().map(|p| clean(p)).collect();
        for p in &follow {
            wanted.insert(p.clone());
            // One level of symlink: fsutil includes the target of a followed link.
            if let Some(item) = self.items.iter().find(|i| &i.stat.path == p)
                && item.stat.mode & GO_MODE_SYMLINK != 0
                && !item.stat.linkname.starts_with('/')
            {
                let base = p.rsplit_once('/').map_or("", |(d, _)| d);
                let target = if base.is_empty() {
                    item.stat.linkname.clone()
                } else {
                    format!("{base}/{}", item.stat.linkname)
                };
                wanted.insert(clean(&normalize(&target)));
            }
        }
        let patterns = (!include.is_empty()).then(|| {
            DockerIgnore::parse(
                &include
                    .iter()
                    .map(|p| clean(p))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        });
        // A followed path is an include pattern to fsutil (its symlinks resolved): a
        // directory brings everything under it, as a matched pattern does.
        let selected = |path: &str| {
            let mut prefix = path;
            loop {
                if wanted.contains(prefix)
                    || patterns.as_ref().is_some_and(|p| p.is_excluded(prefix))
                {
                    return true;
                }
                match prefix.rsplit_once('/') {
                    Some((dir, _)) => prefix = dir,
                    None => return false,
                }
            }
        };
        let chosen: BTreeSet<&str> = self
            .items
            .iter()
            .map(|i| i.stat.path.as_str())
            .filter(|p| selected(p))
            .collect();
        let mut keep: BTreeSet<&str> = BTreeSet::new();
        for p in &chosen {
            keep.insert(p);
            let mut parent = *p;
            while let Some((dir, _)) = parent.rsplit_once('/') {
                keep.insert(dir);
                parent = dir;
            }
        }
        self.items
            .iter()
            .filter(|i| keep.contains(i.stat.path.as_str()))
            .collect()
    }
}

/// `a/./b/../c` → `a/c` (lexically).
fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out.join("/")
}

/// The FileSync service of one session.
pub struct FileSyncService {
    pub context: Arc<FileSource>,
    pub dockerfile: Arc<FileSource>,
    /// Named build contexts, by their local source's name.
    pub named: Arc<BTreeMap<String, FileSource>>,
    pub transfer: Arc<Transfer>,
}

fn metadata_values(request: &Request<Streaming<Packet>>, key: &str) -> Vec<String> {
    request
        .metadata()
        .get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

type PacketResult = Result<Packet, Status>;

#[tonic::async_trait]
impl FileSync for FileSyncService {
    type DiffCopyStream = ReceiverStream<PacketResult>;
    type TarStreamStream = ReceiverStream<PacketResult>;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::DiffCopyStream>, Status> {
        let name = metadata_values(&request, "dir-name")
            .into_iter()
            .next()
            .unwrap_or_default();
        let source: &FileSource = match name.as_str() {
            "context" => &self.context,
            "dockerfile" => &self.dockerfile,
            other => self.named.get(other).ok_or_else(|| {
                Status::not_found(format!("no local source {other:?} in this session"))
            })?,
        };
        let follow = metadata_values(&request, "followpaths");
        let include = metadata_values(&request, "include-patterns");
        let items: Vec<Item> = source
            .select(&follow, &include)
            .into_iter()
            .cloned()
            .collect();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(send(items, request.into_inner(), tx, self.transfer.clone()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn tar_stream(
        &self,
        _request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::TarStreamStream>, Status> {
        Err(Status::unimplemented(
            "TarStream is not served: use DiffCopy",
        ))
    }
}

fn packet(kind: PacketType) -> Packet {
    Packet {
        r#type: kind as i32,
        ..Default::default()
    }
}

/// The sending side of one DiffCopy: stats, then the files asked for, until FIN.
async fn send(
    items: Vec<Item>,
    mut incoming: Streaming<Packet>,
    tx: mpsc::Sender<PacketResult>,
    transfer: Arc<Transfer>,
) {
    let items = Arc::new(items);
    let stats = {
        let items = items.clone();
        let tx = tx.clone();
        async move {
            for item in items.iter() {
                let p = Packet {
                    stat: Some(item.stat.clone()),
                    ..packet(PacketType::PacketStat)
                };
                if tx.send(Ok(p)).await.is_err() {
                    return;
                }
            }
            // The end of the stats: a stat packet without a stat.
            let _ = tx.send(Ok(packet(PacketType::PacketStat))).await;
        }
    };
    // The daemon's requests are read as fast as they come (thousands of tiny packets left
    // unread would make h2 close the connection: "too_many_data_frames"); a few workers send
    // the files asked for, in the order asked.
    let (queue, ids) = mpsc::unbounded_channel::<usize>();
    let ids = Arc::new(tokio::sync::Mutex::new(ids));
    let workers: Vec<_> = (0..FILES_IN_FLIGHT)
        .map(|_| {
            let ids = ids.clone();
            let items = items.clone();
            let tx = tx.clone();
            let transfer = transfer.clone();
            tokio::spawn(async move {
                loop {
                    let next = ids.lock().await.recv().await;
                    let Some(id) = next else { return };
                    let (items, tx, transfer) = (items.clone(), tx.clone(), transfer.clone());
                    let sent = tokio::task::spawn_blocking(move || {
                        send_file(&items[id], id as u32, &tx, &transfer)
                    })
                    .await;
                    if !matches!(sent, Ok(true)) {
                        return;
                    }
                }
            })
        })
        .collect();
    let requests = async move {
        let mut sent = vec![false; items.len()];
        while let Some(message) = incoming.next().await {
            let Ok(p) = message else { return };
            match PacketType::try_from(p.r#type) {
                Ok(PacketType::PacketReq) => {
                    let id = p.id as usize;
                    let valid = items.get(id).is_some_and(Item::is_file) && !sent[id];
                    if !valid {
                        let _ = tx
                            .send(Err(Status::invalid_argument(format!(
                                "invalid file id {id}"
                            ))))
                            .await;
                        return;
                    }
                    sent[id] = true;
                    if queue.send(id).is_err() {
                        return;
                    }
                }
                Ok(PacketType::PacketFin) => {
                    // Every file asked for is queued when the daemon says FIN: let the
                    // workers finish, then answer.
                    drop(queue);
                    for w in workers {
                        let _ = w.await;
                    }
                    let _ = tx.send(Ok(packet(PacketType::PacketFin))).await;
                    return;
                }
                Ok(PacketType::PacketErr) => {
                    let _ = tx
                        .send(Err(Status::aborted(format!(
                            "error from the daemon: {}",
                            String::from_utf8_lossy(&p.data)
                        ))))
                        .await;
                    return;
                }
                _ => {}
            }
        }
    };
    tokio::join!(stats, requests);
}

/// Sends one file's data (blocking: runs on a blocking thread), then its empty DATA packet;
/// `false` when the stream is gone or the file could not be read (the error was sent).
fn send_file(item: &Item, id: u32, tx: &mpsc::Sender<PacketResult>, transfer: &Transfer) -> bool {
    let data_packet = |data: Vec<u8>| Packet {
        id,
        data,
        ..packet(PacketType::PacketData)
    };
    let mut send_chunk = |data: Vec<u8>| -> bool {
        let n = data.len() as u64;
        let ok = tx.blocking_send(Ok(data_packet(data))).is_ok();
        transfer.bytes.fetch_add(n, Ordering::Relaxed);
        ok
    };
    match &item.content {
        Content::None => {}
        Content::Memory(data) => {
            for chunk in data.chunks(DATA_CHUNK) {
                if !send_chunk(chunk.to_vec()) {
                    return false;
                }
            }
        }
        Content::Disk(path, entry) => match send_disk_file(path, entry, &mut send_chunk) {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
                return false;
            }
        },
    }
    transfer.files.fetch_add(1, Ordering::Relaxed);
    tx.blocking_send(Ok(data_packet(Vec::new()))).is_ok()
}

/// Reads exactly the size the stat announced: a file that changed size since the walk is
/// an error (the daemon would otherwise keep a file the hash never saw). `Ok(false)`: the
/// stream is gone.
fn send_disk_file(
    path: &Path,
    entry: &Entry,
    send_chunk: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<bool, ContextError> {
    let mut file = crate::context::open_regular(path, entry)?;
    let mut remaining = entry.size;
    let changed = || ContextError::ChangedWhileReading {
        path: path.to_path_buf(),
    };
    while remaining > 0 {
        let mut buf = vec![0u8; DATA_CHUNK.min(remaining as usize)];
        let n = file
            .read(&mut buf)
            .map_err(|source| ContextError::ReadFile {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            return Err(changed());
        }
        buf.truncate(n);
        remaining -= n as u64;
        if !send_chunk(buf) {
            return Ok(false);
        }
    }
    let mut probe = [0u8; 1];
    if file.read(&mut probe).unwrap_or(0) != 0 {
        return Err(changed());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsutil_order_puts_a_directory_before_its_siblings_with_longer_names() {
        let mut paths = vec!["a.b", "a/b", "a", "a-c", "a/b/c", "ab"];
        paths.sort_by(|a, b| compare_path(a, b));
        assert_eq!(paths, ["a", "a/b", "a/b/c", "a-c", "a.b", "ab"]);
    }

    fn source(paths: &[(&str, u32, &str)]) -> FileSource {
        let mut items: Vec<Item> = paths
            .iter()
            .map(|(p, mode, link)| Item {
                stat: Stat {
                    path: p.to_string(),
                    mode: *mode,
                    linkname: link.to_string(),
                    ..Default::default()
                },
                content: Content::None,
            })
            .collect();
        items.sort_by(|a, b| compare_path(&a.stat.path, &b.stat.path));
        FileSource { items }
    }

    fn paths(items: Vec<&Item>) -> Vec<&str> {
        items.iter().map(|i| i.stat.path.as_str()).collect()
    }

    #[test]
    fn followpaths_send_the_paths_their_parents_and_a_followed_link_target() {
        let s = source(&[
            (".dockerignore", 0o644, ""),
            ("a", GO_MODE_DIR, ""),
            ("a/x", 0o644, ""),
            ("a/link", GO_MODE_SYMLINK, "../b/real"),
            ("b", GO_MODE_DIR, ""),
            ("b/real", 0o644, ""),
            ("c", 0o644, ""),
        ]);
        assert_eq!(
            paths(s.select(&[".dockerignore".into()], &[])),
            [".dockerignore"]
        );
        assert_eq!(
            paths(s.select(&["a/link".into()], &[])),
            ["a", "a/link", "b", "b/real"]
        );
        assert_eq!(
            paths(s.select(&["/missing".into()], &[])),
            Vec::<&str>::new()
        );
        // `COPY a/ …`: the directory and what it holds (a BuildKit 0.34 frontend asks so).
        assert_eq!(
            paths(s.select(&["a".into(), "c".into()], &[])),
            ["a", "a/link", "a/x", "c"]
        );
        assert_eq!(s.select(&[], &[]).len(), 7);
    }

    #[test]
    fn include_patterns_send_matches_everything_under_them_and_their_parents() {
        let s = source(&[
            ("a", GO_MODE_DIR, ""),
            ("a/x.go", 0o644, ""),
            ("a/y.txt", 0o644, ""),
            ("b", GO_MODE_DIR, ""),
            ("b/c", 0o644, ""),
            ("z.go", 0o644, ""),
        ]);
        assert_eq!(
            paths(s.select(&[], &["**/*.go".into()])),
            ["a", "a/x.go", "z.go"]
        );
        assert_eq!(paths(s.select(&[], &["b".into()])), ["b", "b/c"]);
    }

    #[test]
    fn permission_bits_go_as_go_writes_them() {
        assert_eq!(go_permissions(0o644), 0o644);
        assert_eq!(go_permissions(0o4755), GO_MODE_SETUID | 0o755);
        assert_eq!(
            go_permissions(0o3777),
            GO_MODE_SETGID | GO_MODE_STICKY | 0o777
        );
    }

    #[test]
    fn an_in_memory_file_changes_its_mtime_with_its_content() {
        let a = FileSource::single("Dockerfile", b"FROM scratch\n".to_vec(), None);
        let b = FileSource::single("Dockerfile", b"FROM scratcH\n".to_vec(), None);
        assert_eq!(a.items[0].stat.size, b.items[0].stat.size);
        assert_ne!(a.items[0].stat.mod_time, b.items[0].stat.mod_time);
    }
}
