//! The Docker build context: which files are sent to BuildKit and their
//! content hash.
//!
//! This is for turning a context directory plus a Dockerfile into
//! walk → `.dockerignore` filter → (hash | build session). Both the hasher
//! and the build session's FileSync (`docker/session/filesync.rs`) take their
//! file list from [`BuildContext::entries`], so the hash changes exactly when
//! what BuildKit receives changes (mtimes, owners and permission bits other
//! than the exec bit are deliberately ignored by the hash). No tar is made:
//! BuildKit asks for the files it does not have. Hashing reads files on all
//! cores and skips files whose stat is unchanged since the last hash of the
//! same context (`statcache.rs`, under the user's cache directory), so a
//! repeated hash costs about a stat walk. It is not for talking to BuildKit
//! or for building anything other than a local directory context.
//!
//! Decisions worth knowing:
//! - The Dockerfile (when given as a path) and the ignore file that was
//!   used are always sent, like the docker CLI does, because
//!   the builder needs them even if the ignore file excludes them. They
//!   appear in [`BuildContext::entries`] and [`ContextDigest::files`] only
//!   when not excluded, but their content always feeds the hash (see
//!   [`ContextDigest::build_files`]); an inline Dockerfile is written as
//!   [`INLINE_DOCKERFILE_NAME`] and hashed the same way.
//! - Symlinks are recorded as links (never followed), whatever they point
//!   at. Sockets are skipped silently (the docker CLI cannot archive them
//!   either and skips them); FIFOs and device files that are not excluded
//!   are an error asking the user to exclude them (they are never opened).
//! - `.dockerignore` follows Docker in one of two dialects (see
//!   `dockerignore.rs`), chosen with [`BuildContext::with_dialect`]: the
//!   docker CLI 20.10's BuildKit client (the default), or buildx (Docker 23
//!   and later). The dialect lives in the context's [`DockerIgnore`], so the
//!   hash and the build session, which both take [`BuildContext::entries`],
//!   cannot disagree; it is not hashed itself (the entries it selects are).
//!   An excluded directory is not opened unless the dialect's walk-into
//!   rule says so, as in Docker.

mod dockerignore;
mod hash;
mod pool;
mod statcache;
mod walk;

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use dockerignore::{DockerIgnore, IgnoreDialect, PatternError, PatternFlaw};
pub use hash::changed_paths;
pub(crate) use hash::open_regular;

/// Name under which an inline Dockerfile is sent to the builder.
pub const INLINE_DOCKERFILE_NAME: &str = ".dockerbuildkit.Dockerfile";

/// Suffix appended to the Dockerfile path to find its own ignore file.
const IGNORE_SUFFIX: &str = ".dockerignore";

/// Where the Dockerfile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerfileSource {
    /// Path of the Dockerfile relative to the context root, `/`-separated.
    Path(String),
    /// The Dockerfile text itself.
    Inline(String),
}

/// What kind of file system object an [`Entry`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// One included file, directory or symlink of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the context root, `/`-separated, never empty.
    pub path: String,
    pub kind: EntryKind,
    /// Owner exec bit (files only; always `false` for dirs and symlinks).
    pub executable: bool,
    /// The permission bits as on disk (`0o7777`: rwx, setuid, setgid, sticky), which the
    /// build session sends as Docker's clients do (never hashed: only `executable` is).
    pub(crate) mode: u32,
    /// Size in bytes (files only; `0` otherwise).
    pub size: u64,
    /// Modification time in seconds since the Unix epoch (used for tar
    /// headers only, never hashed).
    pub mtime: u64,
    /// Symlink target as stored on disk (symlinks only).
    pub link_target: Option<PathBuf>,
    /// mtime/ctime in ns and inode from the same `lstat`, for the stat
    /// cache (never hashed).
    pub(crate) stamp: statcache::Stamp,
    /// Device number from the same `lstat` (0 where unknown): with
    /// `stamp.ino`, the identity of the file the walk saw, which a later
    /// read must find again (never hashed).
    pub(crate) dev: u64,
}

/// How [`BuildContext::hash_with`] works; the digest is the same whatever
/// the options.
#[derive(Debug, Clone, Default)]
pub struct HashOptions {
    /// The most threads listing directories and reading files at once; `0`
    /// (the default) means one per available core.
    pub threads: usize,
    /// Where the stat cache lives, if anywhere.
    pub stat_cache: StatCacheLocation,
}

/// Where the stat cache of a context is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StatCacheLocation {
    /// `statcache/` under the user's cache directory (see
    /// [`crate::cache::cache_dir`]); off when `DOCKER_BUILDKIT_NO_CACHE=1` or
    /// no home is known.
    #[default]
    UserCache,
    /// No stat cache: every file is read.
    Off,
    /// This directory (tests, benchmarks).
    Dir(PathBuf),
}

/// What the stat cache file was when a hash started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatCacheState {
    /// Disabled.
    #[default]
    Off,
    /// No cache file yet.
    Missing,
    /// Unreadable, truncated, corrupt or not for this context: ignored.
    Rejected,
    /// Read and used.
    Loaded,
}

/// What a hash cost (for benchmarks, tests and debug logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashStats {
    /// Included entries (files, directories, symlinks).
    pub entries: usize,
    /// Included regular files.
    pub files: usize,
    /// Files read and hashed (the others' digests came from the stat cache).
    pub files_read: usize,
    /// Content bytes of the files read.
    pub bytes_read: u64,
    /// Threads that read files.
    pub threads: usize,
    /// The stat cache file as found.
    pub stat_cache: StatCacheState,
    /// Whether the stat cache file was (re)written.
    pub stat_cache_written: bool,
}

/// Content hash of a context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextDigest {
    /// xxh3-128 over all entries and build files, 32 lowercase hex chars.
    pub hash: String,
    /// `(path, digest)` for every entry of [`BuildContext::entries`],
    /// sorted by path.
    pub files: Vec<(String, String)>,
    /// `(name in the context, digest)` for the Dockerfile and the ignore file, which
    /// are always hashed even when excluded from `files`.
    pub build_files: Vec<(String, String)>,
    /// The paths of the symlinks among `files`, sorted.
    pub symlinks: Vec<String>,
    /// The Dockerfile's text as hashed (`None` for an inline Dockerfile, a named context, or
    /// a Dockerfile that is not UTF-8).
    pub dockerfile: Option<String>,
}

/// Errors from reading a build context. Every message names the path
/// involved.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context directory {path} does not exist")]
    RootNotFound { path: PathBuf },
    #[error("build context {path} is not a directory")]
    RootNotDir { path: PathBuf },
    #[error("cannot access build context directory {path}: {source}")]
    RootUnreadable { path: PathBuf, source: io::Error },
    #[error(
        "invalid Dockerfile path `{path}`: {reason}; give a path relative to the build context \
         root, such as `Dockerfile` or `docker/app.Dockerfile`"
    )]
    DockerfileInvalidPath { path: String, reason: &'static str },
    #[error(
        "Dockerfile {path} does not exist (Dockerfile paths are relative to the build context {root})"
    )]
    DockerfileNotFound { path: PathBuf, root: PathBuf },
    #[error(
        "Dockerfile {path} {problem}; it must be a regular file inside the build context \
         (symlinks are not followed)"
    )]
    DockerfileNotRegular { path: PathBuf, problem: String },
    #[error("ignore file {path} {problem}; it must be a regular file (symlinks are not followed)")]
    IgnoreFileNotRegular { path: PathBuf, problem: String },
    #[error("cannot read ignore file {path}: {source}")]
    IgnoreFileRead { path: PathBuf, source: io::Error },
    #[error("ignore file {path} is not valid UTF-8 text")]
    IgnoreFileNotUtf8 { path: PathBuf },
    #[error("ignore file {path}, {error}")]
    IgnorePattern { path: PathBuf, error: PatternError },
    #[error("cannot list directory {path}: {source}")]
    ReadDir { path: PathBuf, source: io::Error },
    #[error(
        "cannot list directory {path}: {source}; it is excluded by the ignore file, but an \
         exception (`!`) pattern begins with its path, so Docker reads it too"
    )]
    ReadExcludedDir { path: PathBuf, source: io::Error },
    #[error("cannot read metadata of {path}: {source}")]
    Stat { path: PathBuf, source: io::Error },
    #[error("cannot read symlink {path}: {source}")]
    ReadLink { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("file name {path} is not valid UTF-8; rename it or add it to .dockerignore")]
    NonUtf8Path { path: PathBuf },
    #[error("{path} is a {what}, which cannot be part of a build context; add it to .dockerignore")]
    SpecialFile { path: PathBuf, what: &'static str },
    #[error("{path} changed while the build context was being read; retry the build")]
    ChangedWhileReading { path: PathBuf },
    #[error(
        "{path} clashes with the name reserved for the inline Dockerfile; rename it or add \
         `{INLINE_DOCKERFILE_NAME}` to .dockerignore"
    )]
    ReservedName { path: PathBuf },
}

/// A context directory, its Dockerfile and its ignore rules.
#[derive(Debug, Clone)]
pub struct BuildContext {
    root: PathBuf,
    dockerfile: DockerfileSource,
    ignore: DockerIgnore,
    /// Context-relative path of the ignore file in use, if any.
    ignore_file: Option<String>,
    /// False for a named context ([`BuildContext::open_named`]): no Dockerfile of its own.
    has_dockerfile: bool,
}

/// A file that must be sent whether or not it is excluded.
#[derive(Debug, Clone)]
pub(crate) enum BuildFile<'a> {
    /// A file in the context (its entry, as it would appear in `entries`).
    Disk(Entry),
    /// The inline Dockerfile, written as [`INLINE_DOCKERFILE_NAME`].
    Inline(&'a str),
}

impl BuildFile<'_> {
    pub(crate) fn name(&self) -> &str {
        match self {
            BuildFile::Disk(entry) => &entry.path,
            BuildFile::Inline(_) => INLINE_DOCKERFILE_NAME,
        }
    }
}

impl BuildContext {
    /// Opens a context dir: checks root exists and is a dir, loads the
    /// ignore file, checks the Dockerfile exists (Path case) and is a file
    /// inside the root.
    ///
    /// The ignore file is `<dockerfile>.dockerignore` (next to the
    /// Dockerfile) if it exists, else `<root>/.dockerignore`; with an inline
    /// Dockerfile only the latter. A missing ignore file excludes nothing; a
    /// pattern Docker would reject is an error naming the file and line.
    pub fn open(root: &Path, dockerfile: DockerfileSource) -> Result<BuildContext, ContextError> {
        check_root(root)?;
        let dockerfile = match dockerfile {
            DockerfileSource::Path(raw) => {
                let rel = normalize_dockerfile_path(&raw)?;
                check_dockerfile(root, &rel)?;
                DockerfileSource::Path(rel)
            }
            inline @ DockerfileSource::Inline(_) => inline,
        };

        let mut candidates = Vec::new();
        if let DockerfileSource::Path(rel) = &dockerfile {
            candidates.push(format!("{rel}{IGNORE_SUFFIX}"));
        }
        candidates.push(IGNORE_SUFFIX.to_owned());
        let (ignore, ignore_file) = load_ignore(root, candidates)?;
        Ok(BuildContext {
            root: root.to_path_buf(),
            dockerfile,
            ignore,
            ignore_file,
            has_dockerfile: true,
        })
    }

    /// Opens a named build context (`--build-context name=dir`): a directory with its own
    /// `<root>/.dockerignore` (BuildKit reads only that one for a named context) and no
    /// Dockerfile. Its entries and hash cover its files and its ignore file.
    pub fn open_named(root: &Path) -> Result<BuildContext, ContextError> {
        check_root(root)?;
        let (ignore, ignore_file) = load_ignore(root, vec![IGNORE_SUFFIX.to_owned()])?;
        Ok(BuildContext {
            root: root.to_path_buf(),
            dockerfile: DockerfileSource::Inline(String::new()),
            ignore,
            ignore_file,
            has_dockerfile: false,
        })
    }

    /// The same context with its ignore file applied in `dialect` (a
    /// context opens in [`IgnoreDialect::Classic20_10`]).
    pub fn with_dialect(mut self, dialect: IgnoreDialect) -> BuildContext {
        self.ignore = self.ignore.with_dialect(dialect);
        self
    }

    /// The dialect the ignore file is applied in.
    pub fn dialect(&self) -> IgnoreDialect {
        self.ignore.dialect()
    }

    /// The context directory as given to [`BuildContext::open`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The Dockerfile source (a `Path` is normalized: no `.` segments or
    /// repeated `/`).
    pub fn dockerfile(&self) -> &DockerfileSource {
        &self.dockerfile
    }

    /// The ignore rules in effect (empty if there is no ignore file).
    pub fn dockerignore(&self) -> &DockerIgnore {
        &self.ignore
    }

    /// Context-relative path of the ignore file in use, if any.
    pub fn ignore_file(&self) -> Option<&str> {
        self.ignore_file.as_deref()
    }

    /// The included entries, sorted by relative path (byte order), never
    /// including the root itself.
    pub fn entries(&self) -> Result<Vec<Entry>, ContextError> {
        self.entries_with(0)
    }

    /// [`BuildContext::entries`], listing directories on at most `threads`
    /// threads (`0`: one per core).
    fn entries_with(&self, threads: usize) -> Result<Vec<Entry>, ContextError> {
        let reserved = match self.dockerfile {
            DockerfileSource::Inline(_) if self.has_dockerfile => Some(INLINE_DOCKERFILE_NAME),
            DockerfileSource::Inline(_) | DockerfileSource::Path(_) => None,
        };
        walk::walk(&self.root, &self.ignore, reserved, threads)
    }

    /// xxh3-128 over the entries plus per-file digests for diff messages.
    ///
    /// Covers, per entry: path, kind, exec bit, and file content or symlink
    /// target; plus the Dockerfile and the ignore file (see
    /// [`ContextDigest::build_files`]). Not covered: mtimes, owners, other
    /// permission bits.
    ///
    /// Uses every core and the stat cache in the user's cache directory
    /// (see [`HashOptions`]).
    pub fn hash(&self) -> Result<ContextDigest, ContextError> {
        self.hash_with(&HashOptions::default())
            .map(|(digest, _)| digest)
    }

    /// [`BuildContext::hash`] with explicit options, and what it cost.
    ///
    /// A file is read unless the stat cache has its digest for the same
    /// path, exec bit, size, mtime, ctime and inode, recorded by a run that
    /// started at least 2 s after the file last changed (git's "racily
    /// clean" guard, see `statcache.rs`). The cache is rewritten when
    /// a file had to be read, a file disappeared, or the cache was missing
    /// or unusable.
    pub fn hash_with(
        &self,
        options: &HashOptions,
    ) -> Result<(ContextDigest, HashStats), ContextError> {
        // Taken before anything is stat'ed: a file changed after this moment
        // is "racy" for the cache written by this run.
        let started = SystemTime::now();
        let entries = self.entries_with(options.threads)?;
        let build_files = self.build_files()?;
        let dir = match &options.stat_cache {
            // Without inode numbers and ctimes a stat cannot prove a file
            // unchanged.
            _ if !cfg!(unix) => None,
            StatCacheLocation::UserCache => crate::cache::stat_cache_dir(),
            StatCacheLocation::Off => None,
            StatCacheLocation::Dir(dir) => Some(dir.clone()),
        };
        let cache = dir.map(|dir| statcache::StatCache::new(&dir, &self.root, self.ignore_file()));
        let lookup = cache.as_ref().map(|cache| cache.lookup(&entries));
        let known = lookup.as_ref().map_or(&[][..], |l| &l.known[..]);
        let hashed =
            hash::hash_entries(&self.root, &entries, &build_files, known, options.threads)?;

        let files = entries.iter().filter(|e| e.kind == EntryKind::File).count();
        let mut stats = HashStats {
            entries: entries.len(),
            files,
            files_read: hashed.files_read,
            bytes_read: hashed.bytes_read,
            threads: hashed.threads,
            stat_cache: lookup.as_ref().map_or(StatCacheState::Off, |l| l.state),
            stat_cache_written: false,
        };
        if let (Some(cache), Some(lookup)) = (&cache, &lookup) {
            let rewrite = lookup.state != StatCacheState::Loaded
                || lookup.stale
                || hashed.files_read > 0
                || lookup.records != files;
            if rewrite {
                stats.stat_cache_written = cache.store(started, &entries, &hashed.entry_digests);
            }
        }
        Ok((hashed.into_digest(entries), stats))
    }

    /// The Dockerfile's name as the builder sees it, relative to the context (the normalized
    /// path for `Path`; [`INLINE_DOCKERFILE_NAME`] for `Inline`).
    pub fn dockerfile_name(&self) -> String {
        match &self.dockerfile {
            DockerfileSource::Path(rel) => rel.clone(),
            DockerfileSource::Inline(_) => INLINE_DOCKERFILE_NAME.to_owned(),
        }
    }

    /// The Dockerfile's entry as it is now (`None` for an inline Dockerfile).
    pub(crate) fn dockerfile_entry(&self) -> Result<Option<Entry>, ContextError> {
        match &self.dockerfile {
            DockerfileSource::Path(rel) => regular_file_entry(&self.root, rel, |path, problem| {
                ContextError::DockerfileNotRegular { path, problem }
            })
            .map(Some),
            DockerfileSource::Inline(_) => Ok(None),
        }
    }

    /// The Dockerfile and the ignore file in use, as they are sent.
    pub(crate) fn build_files(&self) -> Result<Vec<BuildFile<'_>>, ContextError> {
        let mut files = Vec::with_capacity(2);
        match &self.dockerfile {
            _ if !self.has_dockerfile => {}
            DockerfileSource::Path(rel) => {
                files.push(BuildFile::Disk(regular_file_entry(
                    &self.root,
                    rel,
                    |path, problem| ContextError::DockerfileNotRegular { path, problem },
                )?));
            }
            DockerfileSource::Inline(text) => files.push(BuildFile::Inline(text)),
        }
        if let Some(rel) = &self.ignore_file {
            files.push(BuildFile::Disk(regular_file_entry(
                &self.root,
                rel,
                |path, problem| ContextError::IgnoreFileNotRegular { path, problem },
            )?));
        }
        Ok(files)
    }
}

/// The number of threads to use for `requested` (`0`: one per available
/// core, asked once per process: the answer involves reading cgroup files).
pub(crate) fn thread_count(requested: usize) -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    match requested {
        0 => *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        n => n,
    }
}

/// Validates and normalizes a Dockerfile path: relative, no `..`, `.` and
/// empty segments dropped.
fn normalize_dockerfile_path(raw: &str) -> Result<String, ContextError> {
    let invalid = |reason| ContextError::DockerfileInvalidPath {
        path: raw.to_owned(),
        reason,
    };
    if raw.trim().is_empty() {
        return Err(invalid("it is empty"));
    }
    if raw.starts_with('/') || Path::new(raw).is_absolute() {
        return Err(invalid("it is absolute"));
    }
    let segments: Vec<&str> = raw
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if segments.contains(&"..") {
        return Err(invalid(
            "it contains `..` (the Dockerfile must be inside the build context)",
        ));
    }
    if segments.is_empty() {
        return Err(invalid("it does not name a file"));
    }
    Ok(segments.join("/"))
}

/// Checks that every directory on the way to the Dockerfile is a real
/// directory (not a symlink) and that the Dockerfile is a regular file.
fn check_dockerfile(root: &Path, rel: &str) -> Result<(), ContextError> {
    let mut path = root.to_path_buf();
    let segments: Vec<&str> = rel.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        path.push(segment);
        let last = i + 1 == segments.len();
        let md = match std::fs::symlink_metadata(&path) {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ContextError::DockerfileNotFound {
                    path: root.join(rel),
                    root: root.to_path_buf(),
                });
            }
            Err(source) => return Err(ContextError::Stat { path, source }),
        };
        let problem = if md.file_type().is_symlink() {
            if last {
                Some("is a symlink".to_owned())
            } else {
                Some(format!("is reached through the symlink {}", path.display()))
            }
        } else if last && !md.is_file() {
            Some(format!(
                "is not a regular file ({})",
                kind_name(&md.file_type())
            ))
        } else if !last && !md.is_dir() {
            Some(format!(
                "is not reachable: {} is not a directory",
                path.display()
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(ContextError::DockerfileNotRegular {
                path: root.join(rel),
                problem,
            });
        }
    }
    Ok(())
}

/// Reads an ignore file if it exists. `Ok(None)` when it does not.
/// A context root must be a directory that exists and can be read.
fn check_root(root: &Path) -> Result<(), ContextError> {
    match std::fs::metadata(root) {
        Ok(md) if md.is_dir() => Ok(()),
        Ok(_) => Err(ContextError::RootNotDir {
            path: root.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ContextError::RootNotFound {
            path: root.to_path_buf(),
        }),
        Err(source) => Err(ContextError::RootUnreadable {
            path: root.to_path_buf(),
            source,
        }),
    }
}

/// The first of `candidates` (root-relative ignore files) that exists, parsed strictly (a
/// pattern Docker would reject is an error naming the file and line); none: nothing excluded.
fn load_ignore(
    root: &Path,
    candidates: Vec<String>,
) -> Result<(DockerIgnore, Option<String>), ContextError> {
    for candidate in candidates {
        if let Some(text) = read_ignore_file(root, &candidate)? {
            let path = root.join(&candidate);
            let ignore = DockerIgnore::parse_strict(&text)
                .map_err(|error| ContextError::IgnorePattern { path, error })?;
            return Ok((ignore, Some(candidate)));
        }
    }
    Ok((DockerIgnore::default(), None))
}

fn read_ignore_file(root: &Path, rel: &str) -> Result<Option<String>, ContextError> {
    let path = root.join(rel);
    let md = match std::fs::symlink_metadata(&path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ContextError::IgnoreFileRead { path, source }),
    };
    if !md.is_file() {
        let problem = format!("is a {}", kind_name(&md.file_type()));
        return Err(ContextError::IgnoreFileNotRegular { path, problem });
    }
    // Read the file just `lstat`ed, not whatever replaced it since.
    let seen = walk::entry_from_metadata(rel.to_owned(), EntryKind::File, &md, None);
    let mut bytes = Vec::new();
    let read = hash::open_regular(&path, &seen).and_then(|mut file| {
        io::Read::read_to_end(&mut file, &mut bytes).map_err(|source| ContextError::ReadFile {
            path: path.clone(),
            source,
        })
    });
    match read {
        Ok(_) => {}
        Err(ContextError::ReadFile { source, .. }) => {
            return Err(ContextError::IgnoreFileRead { path, source });
        }
        Err(other) => return Err(other),
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(text)),
        Err(_) => Err(ContextError::IgnoreFileNotUtf8 { path }),
    }
}

/// The entry for a file that must be a regular file (Dockerfile, ignore
/// file), re-checked at hash/tar time.
fn regular_file_entry(
    root: &Path,
    rel: &str,
    not_regular: impl FnOnce(PathBuf, String) -> ContextError,
) -> Result<Entry, ContextError> {
    let path = root.join(rel);
    let md = match std::fs::symlink_metadata(&path) {
        Ok(md) => md,
        Err(source) => return Err(ContextError::Stat { path, source }),
    };
    if !md.is_file() {
        let problem = format!("is a {}", kind_name(&md.file_type()));
        return Err(not_regular(path, problem));
    }
    Ok(walk::entry_from_metadata(
        rel.to_owned(),
        EntryKind::File,
        &md,
        None,
    ))
}

/// Human name of a file type for error messages.
fn kind_name(ft: &std::fs::FileType) -> &'static str {
    if ft.is_symlink() {
        return "symlink";
    }
    if ft.is_dir() {
        return "directory";
    }
    if ft.is_file() {
        return "regular file";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "socket";
        }
        if ft.is_char_device() {
            return "character device";
        }
        if ft.is_block_device() {
            return "block device";
        }
    }
    "special file"
}

#[cfg(all(test, unix))]
pub(crate) mod test_support {
    //! Helpers shared by the module tests: building temp trees.

    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// Creates `spec` under `root`: a path ending in `/` is an (empty)
    /// directory, `name -> target` is a symlink, anything else a file whose
    /// content is its own path (so every file differs).
    pub(crate) fn build_tree(root: &Path, spec: &[&str]) {
        for item in spec {
            if let Some((link, target)) = item.split_once(" -> ") {
                let path = root.join(link);
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).expect("create parent");
                }
                std::os::unix::fs::symlink(target, &path).expect("symlink");
            } else if let Some(dir) = item.strip_suffix('/') {
                fs::create_dir_all(root.join(dir)).expect("create dir");
            } else {
                write(root, item, item);
            }
        }
    }

    /// A fixed tree covering every kind of entry, a file crossing read-chunk
    /// boundaries, an exec bit, an excluded file and an empty file.
    pub(crate) fn golden_tree(root: &Path) {
        write(root, "Dockerfile", "FROM scratch\nCOPY . /\n");
        write(root, ".dockerignore", "*.tmp\n");
        write(root, "a.txt", "hello");
        write(root, "empty.txt", "");
        write(root, "skip.tmp", "excluded");
        write(root, "bin/run.sh", "#!/bin/sh\necho hi\n");
        fs::set_permissions(root.join("bin/run.sh"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        fs::set_permissions(root.join("a.txt"), fs::Permissions::from_mode(0o640)).expect("chmod");
        fs::create_dir_all(root.join("sub/empty")).expect("mkdir");
        std::os::unix::fs::symlink("a.txt", root.join("link")).expect("symlink");
        let big: Vec<u8> = (0..1_000_003u32)
            .map(|i| ((i * 31 + 7) % 251) as u8)
            .collect();
        fs::write(root.join("sub/big.bin"), big).expect("write big");
    }

    pub(crate) fn write(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent");
        }
        fs::write(&path, content).expect("write file");
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::test_support::{build_tree, write};
    use super::*;

    fn open(root: &Path, dockerfile: &str) -> Result<BuildContext, ContextError> {
        BuildContext::open(root, DockerfileSource::Path(dockerfile.to_owned()))
    }

    #[test]
    fn open_rejects_bad_roots_and_dockerfiles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        build_tree(root, &["Dockerfile", "sub/", "file", "real/Dockerfile"]);
        std::os::unix::fs::symlink("real", root.join("link")).expect("symlink");
        std::os::unix::fs::symlink("Dockerfile", root.join("Dockerfile.link")).expect("symlink");

        let missing = root.join("nope");
        let err = open(&missing, "Dockerfile").expect_err("missing root");
        assert!(matches!(err, ContextError::RootNotFound { .. }), "{err}");
        assert!(err.to_string().contains("nope"), "{err}");

        let err = open(&root.join("file"), "Dockerfile").expect_err("file root");
        assert!(matches!(err, ContextError::RootNotDir { .. }), "{err}");

        let err = open(root, "Missing.Dockerfile").expect_err("missing Dockerfile");
        assert!(err.to_string().contains("Missing.Dockerfile"), "{err}");
        assert!(
            matches!(err, ContextError::DockerfileNotFound { .. }),
            "{err}"
        );

        for (path, needle) in [
            ("sub", "not a regular file"),
            ("Dockerfile.link", "is a symlink"),
            ("link/Dockerfile", "through the symlink"),
            ("file/Dockerfile", "not a directory"),
        ] {
            let err = open(root, path).expect_err(path);
            assert!(err.to_string().contains(needle), "{path}: {err}");
        }
        for path in [
            "",
            "/etc/passwd",
            "../Dockerfile",
            "a/../../Dockerfile",
            "./",
        ] {
            let err = open(root, path).expect_err(path);
            assert!(
                matches!(err, ContextError::DockerfileInvalidPath { .. }),
                "{err}"
            );
        }

        let ctx = open(root, ".//real/./Dockerfile").expect("normalized path");
        assert_eq!(ctx.dockerfile_name(), "real/Dockerfile");
        assert_eq!(ctx.ignore_file(), None);
    }

    #[test]
    fn open_reports_bad_ignore_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        build_tree(root, &["Dockerfile"]);
        write(root, ".dockerignore", "ok\n\n[oops\n");
        let err = open(root, "Dockerfile").expect_err("bad pattern");
        let msg = err.to_string();
        assert!(
            msg.contains(".dockerignore") && msg.contains("line 3"),
            "{msg}"
        );
        assert!(msg.contains("[oops"), "{msg}");

        std::fs::write(root.join(".dockerignore"), b"\xff\xfe").expect("write");
        let err = open(root, "Dockerfile").expect_err("not utf-8");
        assert!(
            matches!(err, ContextError::IgnoreFileNotUtf8 { .. }),
            "{err}"
        );

        std::fs::remove_file(root.join(".dockerignore")).expect("rm");
        std::fs::create_dir(root.join(".dockerignore")).expect("mkdir");
        let err = open(root, "Dockerfile").expect_err("dir ignore file");
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn inline_dockerfile_uses_root_ignore_and_reserved_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        build_tree(root, &["a", "Dockerfile.dockerignore"]);
        write(root, ".dockerignore", "a\n");
        let ctx = BuildContext::open(root, DockerfileSource::Inline("FROM scratch".into()))
            .expect("open");
        assert_eq!(ctx.ignore_file(), Some(".dockerignore"));
        assert_eq!(ctx.dockerfile_name(), INLINE_DOCKERFILE_NAME);
        let names: Vec<String> = ctx
            .entries()
            .expect("entries")
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(names, vec![".dockerignore", "Dockerfile.dockerignore"]);

        write(root, INLINE_DOCKERFILE_NAME, "x");
        let err = ctx.entries().expect_err("reserved name");
        assert!(matches!(err, ContextError::ReservedName { .. }), "{err}");
        assert!(err.to_string().contains(INLINE_DOCKERFILE_NAME), "{err}");
        // Excluding it resolves the clash.
        write(
            root,
            ".dockerignore",
            &format!("a\n{INLINE_DOCKERFILE_NAME}\n"),
        );
        let ctx = BuildContext::open(root, DockerfileSource::Inline("FROM scratch".into()))
            .expect("open");
        ctx.entries().expect("entries");
    }
}
