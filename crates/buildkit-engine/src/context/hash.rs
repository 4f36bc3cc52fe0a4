//! Content hashing of a build context (xxh3-128).
//!
//! This is for deciding whether a context changed since the last build and,
//! if so, which paths changed (for diff messages). It hashes exactly what
//! the tar writer sends, minus what must not trigger rebuilds: per entry the
//! path, the kind, the owner exec bit, and the file content or symlink
//! target; never mtimes, owners, or other permission bits. It is not a
//! security digest (xxh3 is not collision resistant against an adversary)
//! and not the image/layer digest BuildKit computes.
//!
//! Framing: every entry gets its own digest over
//! `len(path) ‖ path ‖ kind ‖ exec ‖ payload`, where the payload (content, or
//! `len(target) ‖ target`) is last, so no two different entries can produce
//! the same byte stream. The context hash is then taken over a version tag,
//! the entry count and the fixed-size entry digests, then the same for the
//! build files (Dockerfile, ignore file).
//!
//! Because every entry digest stands alone, files are read on several
//! threads (the context's worker pool, `pool.rs`, largest files first) and
//! the digests are combined in path order afterwards: the result does not
//! depend on scheduling, and digests known from the stat cache
//! (`statcache.rs`) slot in without reading. Each thread owns one
//! [`CHUNK`]-sized buffer, so memory does not grow with file sizes; a file
//! that fits in the buffer together with its framing is hashed in one shot,
//! which gives the same digest as streaming.
//!
//! Every context file, here and in the tar writer, is opened by
//! [`open_regular`]: never through a symlink in its last component, and only
//! if it is still the file (device and inode) the walk saw, so a file swapped
//! between the walk and the read cannot bring outside data in.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use xxhash_rust::xxh3::{Xxh3Default, xxh3_128};

use super::pool;
use super::{BuildFile, ContextDigest, ContextError, Entry, EntryKind};

/// Bumped whenever the framing changes, so old digests never match new ones.
const VERSION_TAG: &[u8] = b"docker-buildkit/context-hash/v1\0";

/// Read buffer size for file contents, per thread. Large enough that a big
/// file costs few syscalls, small enough to stay in the core's L2 cache so
/// the hash reads what the copy from the page cache just wrote.
const CHUNK: usize = 256 * 1024;

/// Below this much work, threads cost more than they save.
const PARALLEL_MIN_FILES: usize = 16;
const PARALLEL_MIN_BYTES: u64 = 4 * 1024 * 1024;

/// Files at least this large are read first (largest first), so that one
/// big file at the end of the sorted list does not leave the other threads
/// idle.
const BIG_FILE: u64 = 1024 * 1024;

/// The outcome of [`hash_entries`].
#[derive(Debug)]
pub(crate) struct Hashed {
    /// The context hash, 32 hex digits.
    pub(crate) hash: String,
    /// [`ContextDigest::build_files`].
    pub(crate) build_files: Vec<(String, String)>,
    /// The contents of the build files read from disk (`None` for the inline Dockerfile),
    /// same order: the Dockerfile check reads them from here, not from disk again.
    pub(crate) build_texts: Vec<Option<Vec<u8>>>,
    /// One digest per entry, same order as the entries.
    pub(crate) entry_digests: Vec<u128>,
    /// Entry files read (not known beforehand).
    pub(crate) files_read: usize,
    /// Content bytes of those files.
    pub(crate) bytes_read: u64,
    /// Threads that read files (0 when none were read).
    pub(crate) threads: usize,
}

/// Hashes the given entries and build files (file contents are read from
/// `root`), on one thread, without a stat cache: the reference definition
/// the tests compare everything else with.
#[cfg(test)]
pub(crate) fn hash_all(
    root: &Path,
    entries: &[Entry],
    build_files: &[BuildFile<'_>],
) -> Result<ContextDigest, ContextError> {
    hash_entries(root, entries, build_files, &[], 1)
        .map(|hashed| hashed.into_digest(entries.to_vec()))
}

/// Hashes the given entries and build files. `known[i]`, when present and
/// `Some`, is the digest of `entries[i]` (a file), which is then not read.
/// `threads` is the most threads to read files with (`0`: one per core).
///
/// If several files cannot be read, the error names the first of them in
/// path order among those attempted (the others stop early).
pub(crate) fn hash_entries(
    root: &Path,
    entries: &[Entry],
    build_files: &[BuildFile<'_>],
    known: &[Option<u128>],
    threads: usize,
) -> Result<Hashed, ContextError> {
    let mut digests = vec![0u128; entries.len()];
    let mut to_read = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        match (entry.kind, known.get(i).copied().flatten()) {
            (EntryKind::File, Some(digest)) => digests[i] = digest,
            (EntryKind::File, None) => to_read.push(i),
            (EntryKind::Dir | EntryKind::Symlink, _) => {
                digests[i] = entry_digest(root, entry, &mut [])?;
            }
        }
    }
    let files_read = to_read.len();
    let (bytes_read, threads) = read_files(root, entries, to_read, &mut digests, threads)?;

    let mut total = Xxh3Default::new();
    total.update(VERSION_TAG);
    total.update(&(entries.len() as u64).to_le_bytes());
    for digest in &digests {
        total.update(&digest.to_le_bytes());
    }

    total.update(&(build_files.len() as u64).to_le_bytes());
    let mut build = Vec::with_capacity(build_files.len());
    let mut build_texts = Vec::with_capacity(build_files.len());
    for file in build_files {
        let digest = match file {
            BuildFile::Disk(entry) => {
                // Small files, read whole: the Dockerfile check takes the text from here.
                let path = root.join(&entry.path);
                let mut bytes = Vec::new();
                open_regular(&path, entry)?
                    .read_to_end(&mut bytes)
                    .map_err(|source| ContextError::ReadFile { path, source })?;
                let mut h = entry_header(&entry.path, EntryKind::File, entry.executable);
                h.update(&bytes);
                build_texts.push(Some(bytes));
                h.digest128()
            }
            BuildFile::Inline(text) => {
                let mut h = entry_header(file.name(), EntryKind::File, false);
                h.update(text.as_bytes());
                build_texts.push(None);
                h.digest128()
            }
        };
        total.update(&digest.to_le_bytes());
        build.push((file.name().to_owned(), hex(digest)));
    }

    Ok(Hashed {
        hash: hex(total.digest128()),
        build_files: build,
        build_texts,
        entry_digests: digests,
        files_read,
        bytes_read,
        threads,
    })
}

impl Hashed {
    /// The digest of the context whose `entries` were hashed (their paths
    /// are moved into [`ContextDigest::files`], not copied).
    pub(crate) fn into_digest(self, entries: Vec<Entry>) -> ContextDigest {
        let symlinks = entries
            .iter()
            .filter(|e| e.kind == EntryKind::Symlink)
            .map(|e| e.path.clone())
            .collect();
        let dockerfile = self
            .build_texts
            .into_iter()
            .next()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok());
        let files = entries
            .into_iter()
            .zip(&self.entry_digests)
            .map(|(entry, digest)| (entry.path, hex(*digest)))
            .collect();
        ContextDigest {
            hash: self.hash,
            files,
            build_files: self.build_files,
            symlinks,
            dockerfile,
        }
    }
}

/// Reads and hashes the files `entries[i]` for `i` in `to_read` (sorted),
/// storing each digest in `digests[i]`, on the context's worker pool.
/// Returns the bytes read and the number of threads used.
fn read_files(
    root: &Path,
    entries: &[Entry],
    mut to_read: Vec<usize>,
    digests: &mut [u128],
    threads: usize,
) -> Result<(u64, usize), ContextError> {
    if to_read.is_empty() {
        return Ok((0, 0));
    }
    let bytes: u64 = to_read.iter().map(|&i| entries[i].size).sum();
    let threads = if to_read.len() < PARALLEL_MIN_FILES && bytes < PARALLEL_MIN_BYTES {
        1
    } else {
        super::thread_count(threads).min(to_read.len())
    };
    if threads > 1 {
        // Big files first, largest first; the rest in path (directory)
        // order.
        let (mut big, small): (Vec<usize>, Vec<usize>) = to_read
            .into_iter()
            .partition(|&i| entries[i].size >= BIG_FILE);
        big.sort_by_key(|&i| std::cmp::Reverse(entries[i].size));
        big.extend(small);
        to_read = big;
    }
    // The pool takes the last task first.
    to_read.reverse();
    let readers = pool::run("context-hash", threads, to_read, || Reader {
        root,
        entries,
        buf: Vec::new(),
        digests: Vec::new(),
        bytes: 0,
    })?;
    let used = readers.len();
    let mut total = 0;
    for reader in readers {
        total += reader.bytes;
        for (i, digest) in reader.digests {
            digests[i] = digest;
        }
    }
    Ok((total, used))
}

/// One reading thread of the pool: its buffer and what it read.
struct Reader<'a> {
    root: &'a Path,
    entries: &'a [Entry],
    /// [`CHUNK`] bytes once the thread reads a file.
    buf: Vec<u8>,
    digests: Vec<(usize, u128)>,
    bytes: u64,
}

impl pool::Worker for Reader<'_> {
    /// The index of the entry to read.
    type Task = usize;
    /// The entry index: the first failing file in path order is reported.
    type Key = usize;

    fn work(&mut self, i: usize, _: &mut Vec<usize>) -> Result<(), (usize, ContextError)> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; CHUNK];
        }
        let (digest, n) =
            file_digest(self.root, &self.entries[i], &mut self.buf).map_err(|e| (i, e))?;
        self.digests.push((i, digest));
        self.bytes += n;
        Ok(())
    }
}

/// Given two `files` lists, the paths added, removed or changed, sorted
/// (for "3 files changed: a, b, c" diff messages).
pub fn changed_paths(old: &[(String, String)], new: &[(String, String)]) -> Vec<String> {
    let old_map: BTreeMap<&str, &str> = old.iter().map(|(p, d)| (p.as_str(), d.as_str())).collect();
    let new_map: BTreeMap<&str, &str> = new.iter().map(|(p, d)| (p.as_str(), d.as_str())).collect();
    let mut changed: Vec<String> = new_map
        .iter()
        .filter(|(path, digest)| old_map.get(*path) != Some(*digest))
        .map(|(path, _)| (*path).to_owned())
        .chain(
            old_map
                .keys()
                .filter(|path| !new_map.contains_key(*path))
                .map(|path| (*path).to_owned()),
        )
        .collect();
    changed.sort_unstable();
    changed
}

/// 32 lowercase hex digits (what `format!("{:032x}")` gives, without the
/// formatting machinery: this runs once per entry).
fn hex(digest: u128) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(32);
    for byte in digest.to_be_bytes() {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// The framing that starts an entry's digest: path length, path, kind and
/// exec bit. Writes it to `out` and returns its length.
fn header_bytes(path: &str, kind: EntryKind, executable: bool, out: &mut [u8]) -> Option<usize> {
    let len = 8 + path.len() + 2;
    let out = out.get_mut(..len)?;
    out[..8].copy_from_slice(&(path.len() as u64).to_le_bytes());
    out[8..8 + path.len()].copy_from_slice(path.as_bytes());
    out[8 + path.len()] = kind_byte(kind);
    out[9 + path.len()] = u8::from(executable);
    Some(len)
}

fn kind_byte(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::File => 1,
        EntryKind::Dir => 2,
        EntryKind::Symlink => 3,
    }
}

/// Starts an entry's hasher with the framed path, kind and exec bit.
fn entry_header(path: &str, kind: EntryKind, executable: bool) -> Xxh3Default {
    let mut h = Xxh3Default::new();
    h.update(&(path.len() as u64).to_le_bytes());
    h.update(path.as_bytes());
    h.update(&[kind_byte(kind), u8::from(executable)]);
    h
}

/// The digest of one entry (reads file contents in chunks of `buf`, which
/// must not be empty for files).
pub(crate) fn entry_digest(
    root: &Path,
    entry: &Entry,
    buf: &mut [u8],
) -> Result<u128, ContextError> {
    match entry.kind {
        EntryKind::Dir => Ok(entry_header(&entry.path, entry.kind, false).digest128()),
        EntryKind::Symlink => {
            let mut h = entry_header(&entry.path, entry.kind, false);
            let target = entry
                .link_target
                .as_deref()
                .map(path_bytes)
                .unwrap_or_default();
            h.update(&(target.len() as u64).to_le_bytes());
            h.update(&target);
            Ok(h.digest128())
        }
        EntryKind::File if buf.is_empty() => {
            file_digest(root, entry, &mut [0u8; 4096]).map(|d| d.0)
        }
        EntryKind::File => file_digest(root, entry, buf).map(|d| d.0),
    }
}

/// The digest of a file entry and the number of content bytes read. The
/// framing and the content go through `buf`; if the file ends before `buf`
/// is full the whole is hashed in one call, otherwise streamed.
fn file_digest(root: &Path, entry: &Entry, buf: &mut [u8]) -> Result<(u128, u64), ContextError> {
    debug_assert!(
        !buf.is_empty(),
        "reading into an empty buffer reads nothing"
    );
    let path = root.join(&entry.path);
    let mut file = open_regular(&path, entry)?;
    let (mut hasher, mut filled) =
        match header_bytes(&entry.path, EntryKind::File, entry.executable, buf) {
            Some(len) => (None, len),
            None => (
                Some(entry_header(&entry.path, EntryKind::File, entry.executable)),
                0,
            ),
        };
    let mut content = 0u64;
    loop {
        if filled == buf.len() {
            hasher
                .get_or_insert_with(Xxh3Default::new)
                .update(&buf[..filled]);
            filled = 0;
        }
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                content += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(source) => return Err(ContextError::ReadFile { path, source }),
        }
    }
    let digest = match hasher {
        None => xxh3_128(&buf[..filled]),
        Some(mut h) => {
            h.update(&buf[..filled]);
            h.digest128()
        }
    };
    Ok((digest, content))
}

/// Opens the file at `path` that the walk recorded as `entry` (a regular
/// file), making sure the file opened is that very file: the last component
/// is not followed if it is a symlink (`O_NOFOLLOW`), a FIFO swapped in does
/// not block the open (`O_NONBLOCK`), and the opened file must be a regular
/// file with the device and inode numbers the walk's `lstat` saw. So a file
/// replaced (by a symlink out of the context, another file, or through a
/// directory swapped for a symlink) between the walk and the read is an
/// error, [`ContextError::ChangedWhileReading`], never data from elsewhere
/// in the hash or the tar. Every read of a context file goes through here.
pub(crate) fn open_regular(path: &Path, entry: &Entry) -> Result<File, ContextError> {
    let changed = || ContextError::ChangedWhileReading {
        path: path.to_path_buf(),
    };
    let file = match open_no_follow(path) {
        Ok(file) => file,
        Err(e) if is_symlink_refused(&e) => return Err(changed()),
        Err(source) => {
            return Err(ContextError::ReadFile {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let md = file.metadata().map_err(|source| ContextError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    if !md.is_file() || !same_file(&md, entry) {
        return Err(changed());
    }
    Ok(file)
}

/// Opens `path` read-only without following a symlink in its last
/// component and without blocking on a FIFO.
#[cfg(unix)]
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

/// Whether an open failed because the last component is a symlink
/// (`ELOOP` with `O_NOFOLLOW`).
#[cfg(unix)]
fn is_symlink_refused(error: &std::io::Error) -> bool {
    error.raw_os_error() == Some(libc::ELOOP)
}

#[cfg(not(unix))]
fn is_symlink_refused(_error: &std::io::Error) -> bool {
    false
}

/// Whether the opened file's metadata names the file the walk recorded.
#[cfg(unix)]
fn same_file(md: &std::fs::Metadata, entry: &Entry) -> bool {
    use std::os::unix::fs::MetadataExt;
    md.dev() == entry.dev && md.ino() == entry.stamp.ino
}

/// Without device and inode numbers only the file type can be checked.
#[cfg(not(unix))]
fn same_file(_md: &std::fs::Metadata, _entry: &Entry) -> bool {
    true
}

/// Raw bytes of a path (symlink targets need not be UTF-8).
/// The bytes of a path as the OS holds them (for hashing and cache keys).
#[cfg(unix)]
pub(super) fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
pub(super) fn path_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().as_bytes().to_vec()
}

#[cfg(all(test, unix))]
mod tests {
    use super::super::test_support::{build_tree, write};
    use super::super::{BuildContext, DockerfileSource};
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, SystemTime};

    fn open(root: &Path) -> BuildContext {
        BuildContext::open(root, DockerfileSource::Path("Dockerfile".into())).expect("open")
    }

    fn digest(root: &Path) -> ContextDigest {
        open(root).hash().expect("hash")
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        build_tree(
            dir.path(),
            &[
                "Dockerfile",
                "src/main.rs",
                "src/lib.rs",
                "run.sh",
                "empty/",
                "link -> src/main.rs",
            ],
        );
        write(dir.path(), ".dockerignore", "*.tmp\nscratch\n");
        write(dir.path(), "notes.tmp", "ignored");
        chmod(&dir.path().join("src/main.rs"), 0o644);
        dir
    }

    /// The hash definition is pinned: state stored by earlier versions must
    /// not rebuild. This value was computed by the original single-threaded
    /// implementation; change it only together with `VERSION_TAG`.
    #[test]
    fn hash_definition_is_pinned() {
        let dir = tempfile::tempdir().expect("tempdir");
        super::super::test_support::golden_tree(dir.path());
        let d = digest(dir.path());
        assert_eq!(d.hash, "53f60a80a64c39590dbf739b8c373af2");
        let file = |p: &str| {
            d.files
                .iter()
                .find(|(path, _)| path == p)
                .expect(p)
                .1
                .clone()
        };
        assert_eq!(file("sub/big.bin"), "ff2f9b27aeb37f0b528e481238eda1e9");
        assert_eq!(file("bin/run.sh"), "c76e00dc281925d12774ce490bb583b9");
        assert_eq!(file("empty.txt"), "74f5401c0c369b29be317d16561bf84d");
        assert_eq!(file("link"), "4350225e4429b249541e5d1923f2ace2");
        assert_eq!(file("sub/empty"), "377a3ed958a4620fa0e728124b89157f");
    }

    #[test]
    fn digest_shape() {
        let dir = fixture();
        let d = digest(dir.path());
        assert_eq!(d.hash.len(), 32);
        assert!(
            d.hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        let paths: Vec<&str> = d.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".dockerignore",
                "Dockerfile",
                "empty",
                "link",
                "run.sh",
                "src",
                "src/lib.rs",
                "src/main.rs"
            ]
        );
        let names: Vec<&str> = d.build_files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["Dockerfile", ".dockerignore"]);
        assert_eq!(digest(dir.path()), d, "deterministic");
    }

    #[test]
    fn full_mode_and_mtime_do_not_matter() {
        let dir = fixture();
        let before = digest(dir.path());
        let main = dir.path().join("src/main.rs");
        chmod(&main, 0o600);
        assert_eq!(digest(dir.path()).hash, before.hash, "0644 -> 0600");
        chmod(&dir.path().join("src"), 0o700);
        assert_eq!(digest(dir.path()).hash, before.hash, "dir mode");
        let file = fs::File::options().write(true).open(&main).expect("open");
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
            .expect("set mtime");
        assert_eq!(digest(dir.path()).hash, before.hash, "mtime");
    }

    #[test]
    fn exec_bit_matters() {
        let dir = fixture();
        let before = digest(dir.path());
        chmod(&dir.path().join("src/main.rs"), 0o744);
        let after = digest(dir.path());
        assert_ne!(after.hash, before.hash);
        assert_eq!(changed_paths(&before.files, &after.files), ["src/main.rs"]);
    }

    #[test]
    fn rename_matters() {
        let dir = fixture();
        let before = digest(dir.path());
        fs::rename(
            dir.path().join("src/lib.rs"),
            dir.path().join("src/lib2.rs"),
        )
        .expect("mv");
        let after = digest(dir.path());
        assert_ne!(after.hash, before.hash);
        assert_eq!(
            changed_paths(&before.files, &after.files),
            ["src/lib.rs", "src/lib2.rs"]
        );
    }

    #[test]
    fn excluded_edits_do_not_matter_included_edits_do() {
        let dir = fixture();
        let before = digest(dir.path());
        write(dir.path(), "notes.tmp", "changed");
        write(dir.path(), "scratch/new.txt", "new");
        assert_eq!(digest(dir.path()).hash, before.hash);

        write(dir.path(), "src/lib.rs", "fn changed() {}");
        let after = digest(dir.path());
        assert_ne!(after.hash, before.hash);
        assert_eq!(changed_paths(&before.files, &after.files), ["src/lib.rs"]);
    }

    #[test]
    fn symlinks_are_hashed_as_links() {
        let dir = fixture();
        let before = digest(dir.path());
        // Changing what the link points at (not the target's content).
        fs::remove_file(dir.path().join("link")).expect("rm");
        std::os::unix::fs::symlink("src/lib.rs", dir.path().join("link")).expect("symlink");
        let after = digest(dir.path());
        assert_ne!(after.hash, before.hash);
        assert_eq!(changed_paths(&before.files, &after.files), ["link"]);

        // A link out of the context is fine and never followed: changing
        // the outside file changes nothing.
        let outside = tempfile::tempdir().expect("tempdir");
        write(outside.path(), "secret", "one");
        fs::remove_file(dir.path().join("link")).expect("rm");
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link"))
            .expect("symlink");
        let linked = digest(dir.path());
        write(outside.path(), "secret", "two, longer");
        assert_eq!(digest(dir.path()).hash, linked.hash);
        // Even a dangling link is fine.
        fs::remove_file(outside.path().join("secret")).expect("rm");
        assert_eq!(digest(dir.path()).hash, linked.hash);
    }

    #[test]
    fn file_kind_changes_matter() {
        let dir = fixture();
        let before = digest(dir.path());
        fs::remove_dir(dir.path().join("empty")).expect("rmdir");
        write(dir.path(), "empty", "");
        let after = digest(dir.path());
        assert_ne!(after.hash, before.hash);
        assert_eq!(changed_paths(&before.files, &after.files), ["empty"]);
    }

    #[test]
    fn framing_is_unambiguous() {
        let a = tempfile::tempdir().expect("tempdir");
        build_tree(a.path(), &["Dockerfile"]);
        write(a.path(), "ab", "c");
        let b = tempfile::tempdir().expect("tempdir");
        build_tree(b.path(), &["Dockerfile"]);
        write(b.path(), "a", "bc");
        let (da, db) = (digest(a.path()), digest(b.path()));
        assert_ne!(da.hash, db.hash);
        // Same per-file framing regardless of where the context lives.
        assert_eq!(
            da.files[0], db.files[0],
            "Dockerfile digest is root-independent"
        );
    }

    #[test]
    fn excluded_dockerfile_still_counts() {
        let dir = fixture();
        write(dir.path(), ".dockerignore", "Dockerfile\n.dockerignore\n");
        let before = digest(dir.path());
        assert!(
            !before
                .files
                .iter()
                .any(|(p, _)| p == "Dockerfile" || p == ".dockerignore")
        );
        write(dir.path(), "Dockerfile", "FROM other");
        let after = digest(dir.path());
        assert_ne!(after.hash, before.hash);
        assert!(changed_paths(&before.files, &after.files).is_empty());
        assert_ne!(after.build_files[0], before.build_files[0]);
    }

    #[test]
    fn inline_dockerfile_counts() {
        let dir = fixture();
        let hash = |text: &str| {
            BuildContext::open(dir.path(), DockerfileSource::Inline(text.to_owned()))
                .expect("open")
                .hash()
                .expect("hash")
        };
        let one = hash("FROM a");
        assert_eq!(one.build_files[0].0, super::super::INLINE_DOCKERFILE_NAME);
        assert_ne!(one.hash, hash("FROM b").hash);
        assert_eq!(one.hash, hash("FROM a").hash);
    }

    #[test]
    fn unreadable_included_file_is_an_error_naming_it() {
        let dir = fixture();
        let ctx = open(dir.path());
        let entries = ctx.entries().expect("entries");
        let build_files = ctx.build_files().expect("build files");
        // Works whether or not we run as root (where chmod 000 cannot make a
        // read fail): the file disappears between the walk and the read.
        fs::remove_file(dir.path().join("src/lib.rs")).expect("rm");
        let err = hash_all(dir.path(), &entries, &build_files).expect_err("missing file");
        assert!(matches!(err, ContextError::ReadFile { .. }), "{err}");
        assert!(err.to_string().contains("src/lib.rs"), "{err}");

        // And as a normal user, the chmod 000 case.
        write(dir.path(), "src/lib.rs", "x");
        chmod(&dir.path().join("src/lib.rs"), 0o000);
        if fs::File::open(dir.path().join("src/lib.rs")).is_err() {
            let err = ctx.hash().expect_err("unreadable file");
            assert!(err.to_string().contains("src/lib.rs"), "{err}");
        }
        chmod(&dir.path().join("src/lib.rs"), 0o644);
    }

    /// Replaces `rel` under `root` by a new file with `content` (a new
    /// inode, renamed over the old one, as an editor or `git checkout`
    /// does).
    fn replace_file(root: &Path, rel: &str, content: &str) {
        let tmp = root.join(format!("{rel}.new"));
        fs::write(&tmp, content).expect("write replacement");
        fs::rename(&tmp, root.join(rel)).expect("rename over");
    }

    /// Swaps `rel` under `root` for a symlink to `target`.
    fn swap_for_symlink(root: &Path, rel: &str, target: &Path) {
        fs::remove_file(root.join(rel)).expect("rm");
        std::os::unix::fs::symlink(target, root.join(rel)).expect("symlink");
    }

    fn assert_changed(err: ContextError, rel: &str) {
        assert!(
            matches!(err, ContextError::ChangedWhileReading { .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(rel) && msg.contains("changed"), "{msg}");
    }

    #[test]
    fn file_swapped_for_a_symlink_after_the_walk_is_not_followed() {
        let dir = fixture();
        let root = dir.path();
        let ctx = open(root);
        let entries = ctx.entries().expect("entries");
        let build_files = ctx.build_files().expect("build files");
        let outside = tempfile::tempdir().expect("tempdir");
        // Same length as the file it replaces, so nothing but the identity
        // check can notice.
        write(outside.path(), "secret", "SECRET!!!!");
        assert_eq!(
            fs::metadata(root.join("src/lib.rs")).expect("stat").len(),
            10
        );
        swap_for_symlink(root, "src/lib.rs", &outside.path().join("secret"));
        for threads in [1, 4] {
            let err = hash_entries(root, &entries, &build_files, &[], threads)
                .expect_err("symlink swapped in");
            assert_changed(err, "src/lib.rs");
        }

        // The Dockerfile (a build file, hashed even when excluded) too.
        fs::remove_file(root.join("src/lib.rs")).expect("rm");
        write(root, "src/lib.rs", "src/lib.rs");
        let entries = ctx.entries().expect("entries");
        let build_files = ctx.build_files().expect("build files");
        swap_for_symlink(root, "Dockerfile", &outside.path().join("secret"));
        let err = hash_all(root, &entries, &build_files).expect_err("Dockerfile swapped");
        assert_changed(err, "Dockerfile");
    }

    #[test]
    fn file_replaced_after_the_walk_is_not_read() {
        let dir = fixture();
        let root = dir.path();
        let ctx = open(root);
        let entries = ctx.entries().expect("entries");
        let build_files = ctx.build_files().expect("build files");
        // Another file, same size, renamed over the one the walk saw.
        replace_file(root, "src/lib.rs", "SRC/LIB.RS");
        let err = hash_all(root, &entries, &build_files).expect_err("replaced file");
        assert_changed(err, "src/lib.rs");

        // A directory on the way swapped for a symlink to an outside
        // directory holding files of the same names: the last component is
        // a regular file, but not the one the walk saw.
        let ctx = open(root);
        let entries = ctx.entries().expect("entries");
        let outside = tempfile::tempdir().expect("tempdir");
        write(outside.path(), "main.rs", "outside data");
        write(outside.path(), "lib.rs", "outside!!!");
        fs::rename(root.join("src"), root.join("src.old")).expect("mv");
        std::os::unix::fs::symlink(outside.path(), root.join("src")).expect("symlink");
        let err = hash_all(root, &entries, &build_files).expect_err("dir swapped");
        assert_changed(err, "src/");

        // A fresh walk sees the new state and is fine.
        assert!(open(root).hash().is_ok());
    }

    /// The definition as first written (one thread, streamed in fixed
    /// chunks through the generic hasher), kept verbatim as an oracle for
    /// the parallel, one-shot-for-small-files implementation.
    fn original_definition(root: &Path) -> String {
        use xxhash_rust::xxh3::Xxh3;
        fn header(path: &str, kind: u8, exec: bool) -> Xxh3 {
            let mut h = Xxh3::new();
            h.update(&(path.len() as u64).to_le_bytes());
            h.update(path.as_bytes());
            h.update(&[kind, u8::from(exec)]);
            h
        }
        let ctx = open(root);
        let entries = ctx.entries().expect("entries");
        let mut total = Xxh3::new();
        total.update(VERSION_TAG);
        total.update(&(entries.len() as u64).to_le_bytes());
        let mut buf = vec![0u8; 128 * 1024];
        let mut digest_of = |path: &str, exec: bool| {
            let mut h = header(path, 1, exec);
            let mut file = fs::File::open(root.join(path)).expect("open");
            loop {
                let n = file.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            h.digest128()
        };
        for e in &entries {
            let d = match e.kind {
                EntryKind::File => digest_of(&e.path, e.executable),
                EntryKind::Dir => header(&e.path, 2, false).digest128(),
                EntryKind::Symlink => {
                    let mut h = header(&e.path, 3, false);
                    let target = path_bytes(e.link_target.as_deref().expect("target"));
                    h.update(&(target.len() as u64).to_le_bytes());
                    h.update(&target);
                    h.digest128()
                }
            };
            total.update(&d.to_le_bytes());
        }
        total.update(&1u64.to_le_bytes());
        total.update(&digest_of("Dockerfile", false).to_le_bytes());
        format!("{:032x}", total.digest128())
    }

    #[test]
    fn parallel_hashing_matches_the_original_definition() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        build_tree(root, &["Dockerfile", "empty/", "link -> nowhere"]);
        // Sizes around the read buffer, where one-shot hashing gives way to
        // streaming (the framing of `sizes/NNNNNNN` takes 23 bytes).
        let mut sizes = vec![0, 1, 239, 240, 241, 4096, 3 * CHUNK + 5];
        for edge in [CHUNK - 23, CHUNK, 2 * CHUNK - 23] {
            sizes.extend([edge - 1, edge, edge + 1]);
        }
        for (i, size) in sizes.iter().enumerate() {
            let content: Vec<u8> = (0..*size).map(|j| (j * 7 + i) as u8).collect();
            let name = format!("sizes/{i:07}");
            assert_eq!(8 + name.len() + 2, 23);
            write(root, "sizes/.keep", "");
            fs::write(root.join(&name), content).expect("write");
            if i % 3 == 0 {
                chmod(&root.join(&name), 0o755);
            }
        }
        for i in 0..200 {
            write(root, &format!("many/{}/{i}", i % 7), &"x".repeat(i * 31));
        }
        let want = original_definition(root);
        for threads in [1, 2, 3, 8] {
            let options = super::super::HashOptions {
                threads,
                stat_cache: super::super::StatCacheLocation::Off,
            };
            let (got, _) = open(root).hash_with(&options).expect("hash");
            assert_eq!(got.hash, want, "{threads} threads");
        }
    }

    #[test]
    fn parallel_read_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        build_tree(root, &["Dockerfile"]);
        for i in 0..300 {
            write(root, &format!("d{}/f{i:03}", i % 4), "content");
        }
        let ctx = open(root);
        let entries = ctx.entries().expect("entries");
        let build_files = ctx.build_files().expect("build files");
        fs::remove_file(root.join("d2/f150")).expect("rm");
        let err = hash_entries(root, &entries, &build_files, &[], 4).expect_err("missing file");
        assert!(matches!(err, ContextError::ReadFile { .. }), "{err}");
        assert!(err.to_string().contains("d2/f150"), "{err}");
    }

    #[test]
    fn changed_paths_cases() {
        let list = |items: &[(&str, &str)]| -> Vec<(String, String)> {
            items
                .iter()
                .map(|(p, d)| ((*p).to_owned(), (*d).to_owned()))
                .collect()
        };
        let old = list(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let new = list(&[("a", "1"), ("b", "9"), ("d", "4")]);
        assert_eq!(changed_paths(&old, &new), ["b", "c", "d"]);
        assert!(changed_paths(&old, &old).is_empty());
        assert_eq!(changed_paths(&[], &old), ["a", "b", "c"]);
        assert_eq!(changed_paths(&old, &[]), ["a", "b", "c"]);
    }
}
