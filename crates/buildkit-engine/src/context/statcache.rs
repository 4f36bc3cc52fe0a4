//! The stat cache: for one context directory, the digest of every included
//! file keyed by what `lstat` says about it, so that an unchanged file is not
//! read again on the next hash.
//!
//! This is for making a repeated [`super::BuildContext::hash`] cost little
//! more than the directory walk it needs anyway. It is not for correctness:
//! a missing, truncated, corrupt, foreign or unwritable cache file means
//! "read every file" (and the file is rewritten), never an error, and the
//! hash is the same with or without it. The tar stream never consults it.
//!
//! A cached digest is reused only when the file's path, exec bit, size,
//! mtime, ctime and inode number all match what was recorded, and the file
//! was not changed shortly before the run that recorded it. That last guard
//! is git's "racily clean" rule: a file written in the same clock tick as it
//! was read can change again without its stat changing, so every entry whose
//! mtime or ctime is not older than [`RACY_MARGIN`] before the recording run
//! started is hashed again next time.
//!
//! File format (little-endian, all integers fixed-size unless "varint",
//! which is unsigned LEB128):
//!
//! ```text
//! "DBKSTAT1" | key_len u32 | key | threshold_ns i64 | count u64
//! count × record, sorted strictly by path bytes:
//!     shared varint | suffix_len varint | suffix | flags u8 (bit 0: exec)
//!     | size varint | mtime_ns i64 | zigzag(ctime_ns - mtime_ns) varint
//!     | inode varint | digest u128
//! xxh3-64 of everything before it, u64
//! ```
//!
//! `key` is the canonical context root and the ignore file in use (the
//! file name is its xxh3-128), `threshold_ns` the racy threshold, `shared`
//! the number of leading bytes a path shares with the previous one. About
//! 40 bytes per file; it is read whole and merged with the sorted entries in
//! one pass, without building a map.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use super::hash::path_bytes;
use super::{Entry, EntryKind, StatCacheState};

/// What `lstat` says about an entry beyond its size and exec bit; the stat
/// cache reuses a digest only if it is unchanged. All zero when unknown (an
/// all-zero stamp is never trusted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct Stamp {
    /// Modification time, nanoseconds since the Unix epoch.
    pub(crate) mtime_ns: i64,
    /// Status change time (any write, chmod, rename, link count change),
    /// nanoseconds since the Unix epoch. Cannot be set back by users.
    pub(crate) ctime_ns: i64,
    /// Inode number.
    pub(crate) ino: u64,
}

/// Files whose mtime or ctime is this close before (or after) the start of
/// the run that recorded them are re-hashed on the next run. Covers the
/// kernel's coarse file clock lagging the system clock by a tick and file
/// systems with 1 s or 2 s timestamp granularity.
pub(crate) const RACY_MARGIN: Duration = Duration::from_secs(2);

/// Cache files not written for this long are deleted when another cache
/// file is written; stale temporary files after [`TEMP_MAX_AGE`].
const MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
const TEMP_MAX_AGE: Duration = Duration::from_secs(3600);
/// A cache file loaded but not rewritten for this long is rewritten anyway,
/// so that pruning by age never removes a cache in use.
const REFRESH_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

const MAGIC: &[u8; 8] = b"DBKSTAT1";
const FLAG_EXEC: u8 = 1;
/// Smallest possible record, to bound `count` before trusting it.
const MIN_RECORD: usize = 1 + 1 + 1 + 1 + 1 + 8 + 1 + 1 + 16;

/// The stat cache file of one context (root plus ignore file).
#[derive(Debug, Clone)]
pub(crate) struct StatCache {
    path: PathBuf,
    key: Vec<u8>,
}

/// The result of matching the cache against a walk.
#[derive(Debug)]
pub(crate) struct Lookup {
    /// Per entry (same indices), the cached digest when it can be trusted.
    pub(crate) known: Vec<Option<u128>>,
    pub(crate) state: StatCacheState,
    /// Records in the cache file.
    pub(crate) records: usize,
    /// The file is old enough that it should be rewritten even if nothing
    /// changed (see [`REFRESH_AGE`]).
    pub(crate) stale: bool,
}

impl StatCache {
    /// The cache for `root` with the given ignore file, stored in `dir`.
    pub(crate) fn new(dir: &Path, root: &Path, ignore_file: Option<&str>) -> StatCache {
        let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let mut key = path_bytes(&canonical);
        key.push(0);
        key.extend_from_slice(ignore_file.unwrap_or("").as_bytes());
        let path = dir.join(format!("{:032x}", xxh3_128(&key)));
        StatCache { path, key }
    }

    /// Reads the cache file and matches it against the (sorted) entries.
    pub(crate) fn lookup(&self, entries: &[Entry]) -> Lookup {
        let miss = |state| Lookup {
            known: vec![None; entries.len()],
            state,
            records: 0,
            stale: false,
        };
        let (bytes, modified) = match read_with_mtime(&self.path) {
            Ok(read) => read,
            Err(e) if e.kind() == ErrorKind::NotFound => return miss(StatCacheState::Missing),
            Err(_) => return miss(StatCacheState::Rejected),
        };
        match decode(&bytes, &self.key, entries) {
            Some((known, records)) => Lookup {
                known,
                state: StatCacheState::Loaded,
                records,
                stale: modified
                    .and_then(|m| m.elapsed().ok())
                    .is_none_or(|age| age > REFRESH_AGE),
            },
            None => miss(StatCacheState::Rejected),
        }
    }

    /// Records the digests of the file entries of a run that started at
    /// `started`; `digests` has one digest per entry. Returns whether the
    /// file was written. Failures are ignored: the cache is an optimization.
    pub(crate) fn store(&self, started: SystemTime, entries: &[Entry], digests: &[u128]) -> bool {
        let threshold = started
            .checked_sub(RACY_MARGIN)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let bytes = encode(&self.key, threshold, entries, digests);
        let written = crate::cache::write_atomic(&self.path, &bytes).is_ok();
        if written && let Some(dir) = self.path.parent() {
            prune(dir, &self.path);
        }
        written
    }
}

fn read_with_mtime(path: &Path) -> std::io::Result<(Vec<u8>, Option<SystemTime>)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let md = file.metadata()?;
    let mut bytes = Vec::with_capacity(usize::try_from(md.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok((bytes, md.modified().ok()))
}

/// Deletes cache files of other contexts that were not written for
/// [`MAX_AGE`], and temporary files left by crashed writers.
fn prune(dir: &Path, keep: &Path) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for item in listing.flatten() {
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let max_age = if name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            MAX_AGE
        } else if name.starts_with('.') && name.ends_with(".tmp") {
            TEMP_MAX_AGE
        } else {
            continue;
        };
        let path = item.path();
        if path == keep {
            continue;
        }
        let old = item
            .metadata()
            .ok()
            .and_then(|md| md.modified().ok())
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > max_age);
        if old {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Serializes the file entries (see the module docs for the format).
pub(crate) fn encode(
    key: &[u8],
    threshold_ns: i64,
    entries: &[Entry],
    digests: &[u128],
) -> Vec<u8> {
    let files = entries.iter().filter(|e| e.kind == EntryKind::File).count();
    let mut out = Vec::with_capacity(64 + key.len() + files * 48);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&threshold_ns.to_le_bytes());
    out.extend_from_slice(&(files as u64).to_le_bytes());
    let mut prev: &[u8] = b"";
    for (entry, digest) in entries.iter().zip(digests) {
        if entry.kind != EntryKind::File {
            continue;
        }
        let path = entry.path.as_bytes();
        let shared = prev.iter().zip(path).take_while(|(a, b)| a == b).count();
        put_varint(&mut out, shared as u64);
        put_varint(&mut out, (path.len() - shared) as u64);
        out.extend_from_slice(&path[shared..]);
        out.push(if entry.executable { FLAG_EXEC } else { 0 });
        put_varint(&mut out, entry.size);
        out.extend_from_slice(&entry.stamp.mtime_ns.to_le_bytes());
        let delta = entry.stamp.ctime_ns.wrapping_sub(entry.stamp.mtime_ns);
        put_varint(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
        put_varint(&mut out, entry.stamp.ino);
        out.extend_from_slice(&digest.to_le_bytes());
        prev = path;
    }
    let check = xxh3_64(&out);
    out.extend_from_slice(&check.to_le_bytes());
    out
}

/// Parses a cache file and merges it with the sorted entries: per entry,
/// the cached digest if the record matches and is not racy. `None` if the
/// file is not a valid cache for `key` (it is then ignored and rewritten).
pub(crate) fn decode(
    bytes: &[u8],
    key: &[u8],
    entries: &[Entry],
) -> Option<(Vec<Option<u128>>, usize)> {
    let body_len = bytes.len().checked_sub(8)?;
    let (body, check) = bytes.split_at(body_len);
    if xxh3_64(body).to_le_bytes() != check {
        return None;
    }
    let mut r = Reader { buf: body, pos: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let key_len = usize::try_from(r.u32()?).ok()?;
    if r.take(key_len)? != key {
        return None;
    }
    let threshold = r.i64()?;
    let count = usize::try_from(r.u64()?).ok()?;
    if count > body.len() / MIN_RECORD {
        return None;
    }

    let mut known = vec![None; entries.len()];
    let mut path: Vec<u8> = Vec::with_capacity(256);
    let mut next = 0;
    for _ in 0..count {
        let shared = usize::try_from(r.varint()?).ok()?;
        let suffix_len = usize::try_from(r.varint()?).ok()?;
        let suffix = r.take(suffix_len)?;
        // Strictly increasing, with `shared` maximal (as written).
        let first = *suffix.first()?;
        if shared > path.len() || (shared < path.len() && first <= path[shared]) {
            return None;
        }
        path.truncate(shared);
        path.extend_from_slice(suffix);
        let flags = r.u8()?;
        if flags & !FLAG_EXEC != 0 {
            return None;
        }
        let size = r.varint()?;
        let mtime_ns = r.i64()?;
        let delta = r.varint()?;
        let delta = ((delta >> 1) as i64) ^ -((delta & 1) as i64);
        let stamp = Stamp {
            mtime_ns,
            ctime_ns: mtime_ns.wrapping_add(delta),
            ino: r.varint()?,
        };
        let digest = r.u128()?;

        while next < entries.len() && entries[next].path.as_bytes() < path.as_slice() {
            next += 1;
        }
        if let Some(entry) = entries.get(next)
            && entry.path.as_bytes() == path.as_slice()
        {
            let trusted = entry.kind == EntryKind::File
                && entry.size == size
                && entry.executable == (flags & FLAG_EXEC != 0)
                && entry.stamp == stamp
                && stamp != Stamp::default()
                && stamp.mtime_ns.max(stamp.ctime_ns) < threshold;
            if trusted {
                known[next] = Some(digest);
            }
            next += 1;
        }
    }
    if r.pos != body.len() {
        return None;
    }
    Some((known, count))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over the cache bytes; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        let byte = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(byte)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }

    fn u128(&mut self) -> Option<u128> {
        self.array().map(u128::from_le_bytes)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::super::hash::{hash_all, hash_entries};
    use super::super::test_support::{build_tree, golden_tree, write};
    use super::super::{
        BuildContext, ContextDigest, DockerfileSource, HashOptions, HashStats, StatCacheLocation,
    };
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::process::Command;

    fn open(root: &Path) -> BuildContext {
        BuildContext::open(root, DockerfileSource::Path("Dockerfile".into())).expect("open")
    }

    /// The reference: one thread, no cache.
    fn reference(root: &Path) -> ContextDigest {
        let ctx = open(root);
        let entries = ctx.entries().expect("entries");
        let build_files = ctx.build_files().expect("build files");
        hash_all(root, &entries, &build_files).expect("hash")
    }

    fn hash(root: &Path, cache: &Path, threads: usize) -> (ContextDigest, HashStats) {
        let options = HashOptions {
            threads,
            stat_cache: StatCacheLocation::Dir(cache.to_path_buf()),
        };
        open(root).hash_with(&options).expect("hash")
    }

    fn cache_of(root: &Path, cache: &Path) -> StatCache {
        StatCache::new(cache, root, open(root).ignore_file())
    }

    /// Waits until files written so far are older than the racy margin, so
    /// that a cache written from now on trusts them.
    fn let_settle() {
        std::thread::sleep(RACY_MARGIN + Duration::from_millis(100));
    }

    /// A few hundred files: small, empty, exec, larger than a read chunk,
    /// in nested directories, plus links and an excluded directory.
    fn varied_tree(root: &Path) {
        golden_tree(root);
        for i in 0..300u32 {
            let len = match i % 7 {
                0 => 0,
                1 => 300 * 1024 + usize::try_from(i).expect("small"),
                _ => usize::try_from(i * 13).expect("small"),
            };
            let content: Vec<u8> = (0..len).map(|j| (j as u32 ^ i) as u8).collect();
            let path = root.join(format!("d{}/e{}/f{i}", i % 5, i % 3));
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, content).expect("write");
            if i % 11 == 0 {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
            }
        }
        build_tree(root, &["ignored.tmp", "d1/link -> ../a.txt"]);
    }

    #[test]
    fn same_digest_with_and_without_cache_on_any_number_of_threads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("ctx");
        varied_tree(&root);
        let want = reference(&root);
        assert!(want.files.len() > 300);
        for threads in [0, 1, 2, 4] {
            let off = HashOptions {
                threads,
                stat_cache: StatCacheLocation::Off,
            };
            let (got, stats) = open(&root).hash_with(&off).expect("hash");
            assert_eq!(got, want, "no cache, {threads} threads");
            assert_eq!(stats.stat_cache, StatCacheState::Off);
            assert_eq!(stats.files_read, stats.files);
        }
        // Cold cache on several threads, then the (racy: just written) cache
        // on one thread: everything is read again, nothing differs.
        let cache = dir.path().join("cache");
        let (got, stats) = hash(&root, &cache, 4);
        assert_eq!(got, want);
        assert_eq!(stats.stat_cache, StatCacheState::Missing);
        assert!(stats.stat_cache_written && stats.threads > 1, "{stats:?}");
        let (got, stats) = hash(&root, &cache, 1);
        assert_eq!(got, want);
        assert_eq!(stats.files_read, stats.files, "fresh files are racy");

        // Once the files are old enough, the cache answers for all of them.
        let_settle();
        hash(&root, &cache, 2);
        for threads in [1, 2] {
            let (got, stats) = hash(&root, &cache, threads);
            assert_eq!(got, want, "warm cache, {threads} threads");
            assert_eq!(stats.stat_cache, StatCacheState::Loaded);
            assert_eq!((stats.files_read, stats.stat_cache_written), (0, false));
        }

        // Changes show through the warm cache exactly as without it.
        write(&root, "d2/e0/new", "new file");
        fs::remove_file(root.join("d0/e0/f0")).expect("rm");
        write(&root, "a.txt", "HELLO");
        fs::set_permissions(root.join("d1/e1/f1"), fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let want = reference(&root);
        let (got, stats) = hash(&root, &cache, 2);
        assert_eq!(got, want);
        assert_eq!(stats.files_read, 3, "new, edited, chmod'ed: {stats:?}");
        assert!(stats.stat_cache_written);
    }

    /// Replaces the racy threshold recorded in a cache file.
    fn set_threshold(cache: &StatCache, threshold_ns: i64) {
        let mut bytes = fs::read(&cache.path).expect("read cache");
        let at = MAGIC.len() + 4 + cache.key.len();
        bytes[at..at + 8].copy_from_slice(&threshold_ns.to_le_bytes());
        let body = bytes.len() - 8;
        let check = xxh3_64(&bytes[..body]);
        bytes[body..].copy_from_slice(&check.to_le_bytes());
        fs::write(&cache.path, bytes).expect("write cache");
    }

    fn threshold_of(cache: &StatCache) -> i64 {
        let bytes = fs::read(&cache.path).expect("read cache");
        let at = MAGIC.len() + 4 + cache.key.len();
        i64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
    }

    /// Rewrites `path` with other content of the same size and the same
    /// mtime (as `cp -p` or a careful editor would): only ctime changes.
    fn edit_keeping_size_and_mtime(path: &Path, content: &str) {
        let before = fs::symlink_metadata(path).expect("stat");
        assert_eq!(before.len(), content.len() as u64);
        fs::write(path, content).expect("write");
        let file = fs::File::options().write(true).open(path).expect("open");
        file.set_modified(before.modified().expect("mtime"))
            .expect("set mtime");
        let after = fs::symlink_metadata(path).expect("stat");
        assert_eq!(
            (after.len(), after.mtime(), after.mtime_nsec(), after.ino()),
            (
                before.len(),
                before.mtime(),
                before.mtime_nsec(),
                before.ino()
            )
        );
    }

    #[test]
    fn an_edit_keeping_size_and_mtime_is_detected_by_its_ctime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, cache_dir) = (dir.path().join("ctx"), dir.path().join("cache"));
        build_tree(&root, &["Dockerfile", "app/config", "app/other"]);
        let_settle();
        hash(&root, &cache_dir, 1);
        let (before, stats) = hash(&root, &cache_dir, 1);
        assert_eq!(
            (stats.files_read, stats.stat_cache),
            (0, StatCacheState::Loaded)
        );

        // With the racy rule out of the way (every entry counts as old),
        // only the stamp can notice the edit.
        let cache = cache_of(&root, &cache_dir);
        set_threshold(&cache, i64::MAX);
        let config = root.join("app/config");
        let ctime = |md: fs::Metadata| (md.ctime(), md.ctime_nsec());
        let ctime_before = ctime(fs::symlink_metadata(&config).expect("stat"));
        std::thread::sleep(Duration::from_millis(20));
        edit_keeping_size_and_mtime(&config, "APP/CONFIG");
        assert_ne!(
            ctime(fs::symlink_metadata(&config).expect("stat")),
            ctime_before
        );
        let (after, stats) = hash(&root, &cache_dir, 1);
        assert_eq!(stats.files_read, 1, "{stats:?}");
        assert_eq!(after, reference(&root));
        assert_ne!(after.hash, before.hash);
        assert_eq!(changed_paths(&before, &after), ["app/config"]);
    }

    fn changed_paths(a: &ContextDigest, b: &ContextDigest) -> Vec<String> {
        super::super::changed_paths(&a.files, &b.files)
    }

    #[test]
    fn a_racily_clean_entry_is_hashed_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, cache_dir) = (dir.path().join("ctx"), dir.path().join("cache"));
        build_tree(&root, &["Dockerfile", "a.txt"]);
        let ctx = open(&root);
        let (first, _) = hash(&root, &cache_dir, 1);
        let cache = cache_of(&root, &cache_dir);
        let written_threshold = threshold_of(&cache);
        let entries = ctx.entries().expect("entries");
        let old_digests = hash_entries(&root, &entries, &[], &[], 1)
            .expect("hash")
            .entry_digests;

        // The race: `a.txt` changes within the clock tick in which the run
        // above read it, so its stat is exactly what the run recorded. Play
        // it by writing the cache that run would then have written: the
        // file's current stat, the digest of its old content, the threshold
        // that run recorded (the edit is newer than it: racy).
        fs::write(root.join("a.txt"), "A.TXT").expect("edit");
        let now_entries = ctx.entries().expect("entries");
        let racy_cache = |threshold| {
            fs::write(
                &cache.path,
                encode(&cache.key, threshold, &now_entries, &old_digests),
            )
            .expect("write cache");
        };
        let truth = reference(&root);
        assert_ne!(truth.hash, first.hash);

        racy_cache(written_threshold);
        let (got, stats) = hash(&root, &cache_dir, 1);
        assert_eq!(got, truth, "the racy entry must be read again");
        assert_eq!(stats.stat_cache, StatCacheState::Loaded);
        assert!(stats.files_read >= 1, "{stats:?}");

        // The control: had the cache been written later (the files being
        // old), the same records would be trusted, and the edit missed.
        racy_cache(i64::MAX);
        let (stale, stats) = hash(&root, &cache_dir, 1);
        assert_eq!(stats.files_read, 0);
        assert_eq!(
            stale.hash, first.hash,
            "the scenario does fool a stat check"
        );
    }

    #[test]
    fn a_damaged_cache_is_ignored_and_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, cache_dir) = (dir.path().join("ctx"), dir.path().join("cache"));
        varied_tree(&root);
        let other = dir.path().join("other");
        build_tree(&other, &["Dockerfile", "x"]);
        let_settle();
        let want = reference(&root);
        hash(&root, &cache_dir, 2);
        let cache = cache_of(&root, &cache_dir);
        let good = fs::read(&cache.path).expect("read cache");
        hash(&other, &cache_dir, 1);
        let foreign = fs::read(&cache_of(&other, &cache_dir).path).expect("other cache");

        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 0x40;
        let damaged: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("truncated", good[..good.len() / 2].to_vec()),
            ("one byte short", good[..good.len() - 1].to_vec()),
            ("bit flip", flipped),
            ("garbage", (0..5000u32).map(|i| (i * 7) as u8).collect()),
            ("another context's cache", foreign),
            ("text", b"DBKSTAT1 not really\n".to_vec()),
        ];
        for (what, bytes) in damaged {
            fs::write(&cache.path, bytes).expect("damage");
            let (got, stats) = hash(&root, &cache_dir, 2);
            assert_eq!(got, want, "{what}");
            assert_eq!(stats.stat_cache, StatCacheState::Rejected, "{what}");
            assert_eq!(stats.files_read, stats.files, "{what}");
            assert!(stats.stat_cache_written, "{what}");
            let (got, stats) = hash(&root, &cache_dir, 2);
            assert_eq!(got, want, "{what}, rewritten");
            assert_eq!(
                (stats.stat_cache, stats.files_read),
                (StatCacheState::Loaded, 0),
                "{what}, rewritten"
            );
        }

        // A cache that cannot be read or written is no error either.
        fs::remove_file(&cache.path).expect("rm");
        fs::create_dir(&cache.path).expect("dir in its place");
        let (got, stats) = hash(&root, &cache_dir, 2);
        assert_eq!(got, want);
        assert_eq!(stats.stat_cache, StatCacheState::Rejected);
        assert!(!stats.stat_cache_written);
        let file_as_dir = dir.path().join("not-a-dir");
        fs::write(&file_as_dir, "x").expect("write");
        let (got, stats) = hash(&root, &file_as_dir, 2);
        assert_eq!(got, want);
        assert!(!stats.stat_cache_written);
    }

    #[test]
    fn format_round_trips_and_rejects_every_truncation_and_flip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        build_tree(
            root,
            &["Dockerfile", "a", "ab", "abc/d", "abc/é", "b/c", "sub/"],
        );
        let entries = open(root).entries().expect("entries");
        let digests: Vec<u128> = (0..entries.len() as u128)
            .map(|i| i * 0x1234_5678_9abc)
            .collect();
        let bytes = encode(b"key", i64::MAX, &entries, &digests);
        let files = entries.iter().filter(|e| e.kind == EntryKind::File).count();
        let (known, records) = decode(&bytes, b"key", &entries).expect("decodes");
        assert_eq!(records, files);
        for ((entry, digest), known) in entries.iter().zip(&digests).zip(&known) {
            let want = (entry.kind == EntryKind::File).then_some(*digest);
            assert_eq!(*known, want, "{}", entry.path);
        }
        assert!(decode(&bytes, b"other key", &entries).is_none());
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut], b"key", &entries).is_none(),
                "cut at {cut}"
            );
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 1;
            assert!(decode(&flipped, b"key", &entries).is_none(), "flip at {at}");
        }
        // A subset of the entries (files deleted since) still matches.
        let fewer: Vec<_> = entries.iter().filter(|e| e.path != "ab").cloned().collect();
        let (known, _) = decode(&bytes, b"key", &fewer).expect("decodes");
        assert_eq!(known.iter().flatten().count(), files - 1);
    }

    /// Hashes one context over and over in a child process (see
    /// `processes_sharing_one_cache_do_not_corrupt_it`); does nothing when
    /// run by the normal test run.
    #[test]
    fn child_hashing_process() {
        let Some(root) = std::env::var_os("DBK_TEST_CHILD_ROOT") else {
            return;
        };
        let cache_dir = PathBuf::from(std::env::var_os("DBK_TEST_CHILD_CACHE").expect("cache"));
        let want = std::env::var("DBK_TEST_CHILD_WANT").expect("want");
        let seed: usize = std::env::var("DBK_TEST_CHILD_SEED")
            .expect("seed")
            .parse()
            .expect("number");
        let root = PathBuf::from(root);
        let cache = cache_of(&root, &cache_dir);
        let mut states = [0usize; 3];
        for i in 0..40 {
            let (got, stats) = hash(&root, &cache_dir, 2);
            assert_eq!(got.hash, want, "iteration {i}: {stats:?}");
            let slot = match stats.stat_cache {
                StatCacheState::Loaded => 0,
                StatCacheState::Missing => 1,
                _ => 2,
            };
            states[slot] += 1;
            // Sabotage now and then, as a crash, a full disk or an older
            // version writing in place would.
            match (i + seed) % 6 {
                1 => {
                    let _ = fs::remove_file(&cache.path);
                }
                4 => {
                    if let Ok(bytes) = fs::read(&cache.path) {
                        let _ = fs::write(&cache.path, &bytes[..bytes.len() / 3]);
                    }
                }
                _ => {}
            }
        }
        println!("STATES {} {} {}", states[0], states[1], states[2]);
    }

    #[test]
    fn processes_sharing_one_cache_do_not_corrupt_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, cache_dir) = (dir.path().join("ctx"), dir.path().join("cache"));
        varied_tree(&root);
        for i in 0..2000 {
            write(&root, &format!("many/{}/{i}", i % 20), &format!("file {i}"));
        }
        let_settle();
        let want = reference(&root);
        let exe = std::env::current_exe().expect("test binary");
        let children: Vec<_> = (0..3)
            .map(|seed| {
                Command::new(&exe)
                    .args([
                        "context::statcache::tests::child_hashing_process",
                        "--exact",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env("DBK_TEST_CHILD_ROOT", &root)
                    .env("DBK_TEST_CHILD_CACHE", &cache_dir)
                    .env("DBK_TEST_CHILD_WANT", &want.hash)
                    .env("DBK_TEST_CHILD_SEED", seed.to_string())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn child")
            })
            .collect();
        let mut loaded = 0;
        for child in children {
            let out = child.wait_with_output().expect("child");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "child failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let states: Vec<usize> = stdout
                .lines()
                .find_map(|l| l.split_once("STATES ").map(|(_, s)| s))
                .unwrap_or_else(|| panic!("child did not run the hashing loop:\n{stdout}"))
                .split(' ')
                .map(|n| n.parse().expect("number"))
                .collect();
            assert_eq!(states.iter().sum::<usize>(), 40);
            loaded += states[0];
        }
        assert!(loaded > 0, "the children never used the shared cache");

        // Whatever the children left, it is survived, then used.
        let (got, _) = hash(&root, &cache_dir, 2);
        assert_eq!(got, want);
        let (got, stats) = hash(&root, &cache_dir, 2);
        assert_eq!(got, want);
        assert_eq!(
            (stats.stat_cache, stats.files_read),
            (StatCacheState::Loaded, 0)
        );
        let names: Vec<String> = fs::read_dir(&cache_dir)
            .expect("cache dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        let file_name = cache_of(&root, &cache_dir)
            .path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert_eq!(names, [file_name], "one cache file, no temp files left");
    }

    /// `BuildContext::hash` uses `$XDG_CACHE_HOME/docker-buildkit/statcache`
    /// unless `DOCKER_BUILDKIT_NO_CACHE=1`; run in a child process so the
    /// environment is its own. Does nothing in the normal test run.
    #[test]
    fn child_default_hash() {
        let Some(root) = std::env::var_os("DBK_TEST_DEFAULT_ROOT") else {
            return;
        };
        let digest = open(Path::new(&root)).hash().expect("hash");
        println!("HASH {}", digest.hash);
    }

    #[test]
    fn the_user_cache_is_used_unless_disabled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("ctx");
        build_tree(&root, &["Dockerfile", "a", "b/c"]);
        let want = reference(&root);
        let run = |xdg: &Path, disable: bool| {
            let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
            cmd.args([
                "context::statcache::tests::child_default_hash",
                "--exact",
                "--nocapture",
            ])
            .env("DBK_TEST_DEFAULT_ROOT", &root)
            .env("XDG_CACHE_HOME", xdg)
            .env_remove("DOCKER_BUILDKIT_NO_CACHE");
            if disable {
                cmd.env("DOCKER_BUILDKIT_NO_CACHE", "1");
            }
            let out = cmd.output().expect("child");
            assert!(out.status.success());
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.split_once("HASH ").map(|(_, h)| h.to_owned()))
                .expect("child printed its hash")
        };
        let (on, off) = (dir.path().join("on"), dir.path().join("off"));
        assert_eq!(run(&on, false), want.hash);
        assert_eq!(run(&off, true), want.hash);
        let cached = fs::read_dir(on.join("docker-buildkit/statcache"))
            .expect("stat cache dir")
            .count();
        assert_eq!(cached, 1);
        assert!(!off.join("docker-buildkit").exists());
    }
}
