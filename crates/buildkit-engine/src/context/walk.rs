//! Walking a context directory and applying the `.dockerignore` filter.
//!
//! This is for producing the one sorted list of included entries that both
//! the hasher and the tar writer consume, touching the file system as
//! little as possible: excluded files are never opened or stat'ed beyond
//! their directory listing, and an excluded directory is only listed when
//! Docker lists it too (an exception pattern begins with its path; it is
//! then an entry like any other, see `dockerignore.rs`). It is not
//! for reading file contents (see `hash.rs` / `tar.rs`) and it never follows
//! symlinks. A large tree is listed on several threads (directories from the
//! context's worker pool, `pool.rs`) and sorted at the end, so the result
//! does not depend on scheduling.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::pool;
use super::statcache::Stamp;
use super::{ContextError, DockerIgnore, Entry, EntryKind, kind_name};

/// A directory still to be listed.
struct PendingDir {
    abs: PathBuf,
    /// Relative path (`""` for the root).
    rel: String,
    /// Number of components of `rel` (0 for the root).
    depth: usize,
    /// The matcher's per-pattern state for the children (see
    /// `DockerIgnore::match_dir`).
    state: Vec<bool>,
    /// Whether the directory itself is matched by the ignore file (listed
    /// only because an exception pattern begins with its path).
    excluded: bool,
}

/// Directory entries listed on the calling thread before the walk spreads
/// over several threads: a small context never pays for threads.
const SEQUENTIAL_ENTRIES: usize = 1024;

/// Lists every included entry under `root`, sorted by path (byte order).
/// `reserved` is a root-relative name that must not be included (the
/// inline Dockerfile's name). `threads` is the most threads to list
/// directories with (`0`: one per core); the result does not depend on it.
///
/// Directories are listed from a shared stack; when one cannot be read or
/// holds something that cannot be included, the walk stops, and of the
/// errors seen the one in the first directory (in path order) is returned.
pub(crate) fn walk(
    root: &Path,
    ignore: &DockerIgnore,
    reserved: Option<&str>,
    threads: usize,
) -> Result<Vec<Entry>, ContextError> {
    let walker = Walker { ignore, reserved };
    let mut found = Found::default();
    let mut queue = vec![PendingDir {
        abs: root.to_path_buf(),
        rel: String::new(),
        depth: 0,
        state: Vec::new(),
        excluded: false,
    }];
    let threads = super::thread_count(threads);
    let mut listed = 0;
    while listed < SEQUENTIAL_ENTRIES || threads <= 1 {
        let Some(dir) = queue.pop() else { break };
        listed += walker.list(&dir, &mut found, &mut queue)?;
    }
    let Found {
        mut entries,
        mut excluded_dirs,
    } = found;
    entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    if !queue.is_empty() {
        let listers = pool::run("context-walk", threads, queue, || Lister {
            walker: &walker,
            found: Found::default(),
        })?;
        // Each thread sorted what it found; the stable sort then only
        // merges these runs.
        for lister in listers {
            entries.extend(lister.found.entries);
            excluded_dirs.extend(lister.found.excluded_dirs);
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
    }
    if !ignore.sends_walked_excluded_dirs() {
        drop_excluded_dirs_without_content(&mut entries, excluded_dirs);
    }
    Ok(entries)
}

/// What listing found: the included entries, and (when the dialect sends a
/// matched directory only as the parent of something sent) the matched
/// directories walked into, which are among the entries until
/// [`drop_excluded_dirs_without_content`] runs.
#[derive(Default)]
struct Found {
    entries: Vec<Entry>,
    excluded_dirs: Vec<String>,
}

/// Removes from `entries` (sorted by path) each directory of
/// `excluded_dirs` that has no entry under it once the same is done for the
/// directories under it (Modern: fsutil sends a matched directory only
/// before the first thing under it that it sends).
fn drop_excluded_dirs_without_content(entries: &mut Vec<Entry>, mut excluded_dirs: Vec<String>) {
    if excluded_dirs.is_empty() {
        return;
    }
    // Deepest first: a directory sorts before everything under it.
    excluded_dirs.sort_unstable_by(|a, b| b.cmp(a));
    let mut keep = vec![true; entries.len()];
    for dir in &excluded_dirs {
        let Ok(at) = entries.binary_search_by(|e| e.path.as_str().cmp(dir)) else {
            continue;
        };
        let prefix = format!("{dir}/");
        // Everything under `dir` sorts together, right from `dir/`.
        let from = entries.partition_point(|e| e.path.as_str() < prefix.as_str());
        let has_content = entries[from..]
            .iter()
            .zip(&keep[from..])
            .take_while(|(e, _)| e.path.starts_with(&prefix))
            .any(|(_, kept)| *kept);
        if !has_content {
            keep[at] = false;
        }
    }
    let mut kept = keep.into_iter();
    entries.retain(|_| kept.next().unwrap_or(true));
}

/// The filter applied while listing.
struct Walker<'a> {
    ignore: &'a DockerIgnore,
    reserved: Option<&'a str>,
}

/// One walking thread of the pool.
struct Lister<'a> {
    walker: &'a Walker<'a>,
    found: Found,
}

impl pool::Worker for Lister<'_> {
    type Task = PendingDir;
    /// The directory's relative path: the first failing directory in path
    /// order is reported.
    type Key = String;

    fn work(
        &mut self,
        dir: PendingDir,
        subdirs: &mut Vec<PendingDir>,
    ) -> Result<(), (String, ContextError)> {
        match self.walker.list(&dir, &mut self.found, subdirs) {
            Ok(_) => Ok(()),
            Err(error) => Err((dir.rel, error)),
        }
    }

    fn finish(&mut self) {
        self.found
            .entries
            .sort_unstable_by(|a, b| a.path.cmp(&b.path));
    }
}

impl Walker<'_> {
    /// Lists one directory: included entries go to `entries`, directories
    /// to descend into to `subdirs`. Returns the number of items listed.
    fn list(
        &self,
        dir: &PendingDir,
        found: &mut Found,
        subdirs: &mut Vec<PendingDir>,
    ) -> Result<usize, ContextError> {
        let (ignore, reserved) = (self.ignore, self.reserved);
        let entries = &mut found.entries;
        let listing = match fs::read_dir(&dir.abs) {
            Ok(listing) => listing,
            Err(source)
                if dir.excluded
                    && source.kind() == std::io::ErrorKind::PermissionDenied
                    && ignore.skips_unlistable_excluded_dirs() =>
            {
                return Ok(0);
            }
            Err(source) => return Err(read_dir_error(dir, source)),
        };
        let mut listed = 0;
        for item in listing {
            let item = item.map_err(|source| read_dir_error(dir, source))?;
            listed += 1;
            let name = item.file_name();
            // Non-UTF-8 names are matched by their lossy form; they are an
            // error only if they end up included.
            let (name, utf8) = match name.to_str() {
                Some(name) => (std::borrow::Cow::Borrowed(name), true),
                None => (name.to_string_lossy(), false),
            };
            let mut rel = String::with_capacity(dir.rel.len() + 1 + name.len());
            if !dir.rel.is_empty() {
                rel.push_str(&dir.rel);
                rel.push('/');
            }
            rel.push_str(&name);
            // The absolute path, built only when needed.
            let abs = || item.path();
            let stat_error = |source| ContextError::Stat {
                path: abs(),
                source,
            };
            let file_type = item.file_type().map_err(stat_error)?;

            if file_type.is_dir() {
                // Like Docker (fsutil's walk): a matched directory is skipped
                // whole unless the dialect's walk-into rule says otherwise
                // (an exception begins with its path); then it is walked into
                // and sent (Classic: even if nothing inside ends up included;
                // Modern: only as the parent of something included, see
                // `drop_excluded_dirs_without_content`).
                let depth = dir.depth + 1;
                let (excluded, state) = ignore.match_dir(&dir.state, &rel, depth);
                if excluded && !ignore.walks_into_excluded(&rel) {
                    continue;
                }
                check_included(&abs, &rel, utf8, reserved)?;
                let md = item.metadata().map_err(stat_error)?;
                entries.push(entry_from_metadata(rel.clone(), EntryKind::Dir, &md, None));
                if excluded && !ignore.sends_walked_excluded_dirs() {
                    found.excluded_dirs.push(rel.clone());
                }
                subdirs.push(PendingDir {
                    abs: abs(),
                    state,
                    rel,
                    depth,
                    excluded,
                });
                continue;
            }

            if ignore.matched_in(&dir.state, &rel) {
                continue;
            }
            if is_socket(&file_type) {
                // Like the docker CLI (whose tar writer cannot archive
                // sockets): skipped, not an error.
                continue;
            }
            check_included(&abs, &rel, utf8, reserved)?;
            if file_type.is_symlink() {
                let target = fs::read_link(abs()).map_err(|source| ContextError::ReadLink {
                    path: abs(),
                    source,
                })?;
                let md = item.metadata().map_err(stat_error)?;
                entries.push(entry_from_metadata(
                    rel,
                    EntryKind::Symlink,
                    &md,
                    Some(target),
                ));
            } else if file_type.is_file() {
                let md = item.metadata().map_err(stat_error)?;
                entries.push(entry_from_metadata(rel, EntryKind::File, &md, None));
            } else {
                return Err(ContextError::SpecialFile {
                    path: abs(),
                    what: kind_name(&file_type),
                });
            }
        }
        Ok(listed)
    }
}

fn read_dir_error(dir: &PendingDir, source: std::io::Error) -> ContextError {
    let path = dir.abs.clone();
    if dir.excluded {
        ContextError::ReadExcludedDir { path, source }
    } else {
        ContextError::ReadDir { path, source }
    }
}

/// Checks an entry that is about to be included (`abs` gives its absolute
/// path for the error).
fn check_included(
    abs: &dyn Fn() -> PathBuf,
    rel: &str,
    utf8: bool,
    reserved: Option<&str>,
) -> Result<(), ContextError> {
    if !utf8 {
        return Err(ContextError::NonUtf8Path { path: abs() });
    }
    if reserved == Some(rel) {
        return Err(ContextError::ReservedName { path: abs() });
    }
    Ok(())
}

/// Builds an entry from `lstat` metadata.
pub(crate) fn entry_from_metadata(
    path: String,
    kind: EntryKind,
    md: &fs::Metadata,
    link_target: Option<PathBuf>,
) -> Entry {
    let mtime = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let (executable, size) = match kind {
        EntryKind::File => (is_executable(md), md.len()),
        EntryKind::Dir | EntryKind::Symlink => (false, 0),
    };
    Entry {
        path,
        kind,
        executable,
        mode: permission_bits(md),
        size,
        mtime,
        link_target,
        stamp: stamp(md),
        dev: dev(md),
    }
}

/// The device number of an `lstat` result.
#[cfg(unix)]
fn dev(md: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    md.dev()
}

#[cfg(not(unix))]
fn dev(_md: &fs::Metadata) -> u64 {
    0
}

/// The change-detection stamp of an `lstat` result (see [`Stamp`]).
#[cfg(unix)]
fn stamp(md: &fs::Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let ns = |secs: i64, nsec: i64| secs.saturating_mul(1_000_000_000).saturating_add(nsec);
    Stamp {
        mtime_ns: ns(md.mtime(), md.mtime_nsec()),
        ctime_ns: ns(md.ctime(), md.ctime_nsec()),
        ino: md.ino(),
    }
}

/// Without ctime and inode numbers a stamp cannot prove a file unchanged:
/// an all-zero stamp is never trusted by the stat cache.
#[cfg(not(unix))]
fn stamp(_md: &fs::Metadata) -> Stamp {
    Stamp::default()
}

/// The permission bits of an `lstat` result (`0o7777`).
#[cfg(unix)]
fn permission_bits(md: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o7777
}

/// Without unix modes: what a umask of 022 gives.
#[cfg(not(unix))]
fn permission_bits(md: &fs::Metadata) -> u32 {
    if md.is_dir() { 0o755 } else { 0o644 }
}

/// The owner exec bit, as git tracks it (group/other bits vary with umask).
#[cfg(unix)]
fn is_executable(md: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o100 != 0
}

#[cfg(not(unix))]
fn is_executable(_md: &fs::Metadata) -> bool {
    false
}

#[cfg(unix)]
fn is_socket(ft: &fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    ft.is_socket()
}

#[cfg(not(unix))]
fn is_socket(_ft: &fs::FileType) -> bool {
    false
}

#[cfg(all(test, unix))]
mod tests {
    use super::super::test_support::{build_tree, write};
    use super::super::{BuildContext, DockerfileSource, IgnoreDialect};
    use super::*;
    use std::collections::BTreeSet;
    use std::time::Duration;

    /// One `.dockerignore` scenario.
    struct Case {
        name: &'static str,
        /// Tree spec (see `build_tree`), including the Dockerfile.
        tree: &'static [&'static str],
        /// `(path, content)` of ignore files to create.
        ignore_files: Vec<(&'static str, &'static str)>,
        dockerfile: &'static str,
        /// Exact expected entries: dirs end in `/`, symlinks in `@`.
        expect: &'static [&'static str],
        /// For cases where Docker and gitignore disagree: `(path, whether
        /// gitignore excludes it)`, checked with the `ignore` crate to
        /// prove the difference is real.
        gitignore_differs: Option<(&'static str, bool)>,
        /// The dialect the ignore file is applied in.
        dialect: IgnoreDialect,
    }

    /// A case with only a root `.dockerignore` (none if `ignore` is empty).
    fn case(
        name: &'static str,
        tree: &'static [&'static str],
        ignore: &'static str,
        expect: &'static [&'static str],
    ) -> Case {
        Case {
            name,
            tree,
            ignore_files: if ignore.is_empty() {
                Vec::new()
            } else {
                vec![(".dockerignore", ignore)]
            },
            dockerfile: "Dockerfile",
            expect,
            gitignore_differs: None,
            dialect: IgnoreDialect::Classic20_10,
        }
    }

    fn render(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e.kind {
                EntryKind::File => e.path.clone(),
                EntryKind::Dir => format!("{}/", e.path),
                EntryKind::Symlink => format!("{}@", e.path),
            })
            .collect()
    }

    /// All paths in the tree on disk (files, dirs, links), relative.
    fn all_paths(root: &Path, rel: &str, out: &mut Vec<(String, bool)>) {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        for item in fs::read_dir(dir).expect("read_dir") {
            let item = item.expect("dir entry");
            let name = item.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let is_dir = item.file_type().expect("file type").is_dir();
            out.push((child.clone(), is_dir));
            if is_dir {
                all_paths(root, &child, out);
            }
        }
    }

    /// What git would do with `patterns` as a `.gitignore` at the root: a
    /// path is excluded if it matches, or if git never looks at it because
    /// a parent directory is excluded.
    fn gitignore_excludes(patterns: &str, path: &str, is_dir: bool) -> bool {
        let base = Path::new("/ctx");
        let mut builder = ignore::gitignore::GitignoreBuilder::new(base);
        for line in patterns.lines() {
            builder.add_line(None, line).expect("gitignore line");
        }
        let gi = builder.build().expect("gitignore");
        let mut prefix = String::new();
        for segment in path.split('/') {
            if !prefix.is_empty() {
                if gi.matched(base.join(&prefix), true).is_ignore() {
                    return true;
                }
                prefix.push('/');
            }
            prefix.push_str(segment);
        }
        gi.matched(base.join(path), is_dir).is_ignore()
    }

    /// `(name, tree, .dockerignore, expected entries in Classic, in Modern
    /// when they differ)`.
    type FamilyCase = (
        &'static str,
        &'static [&'static str],
        &'static str,
        &'static [&'static str],
        Option<&'static [&'static str]>,
    );

    /// Exception patterns against excluded directories, and the other
    /// cases where the dialects differ. Each expectation is what Docker put
    /// into the image (`FROM scratch`, `COPY . /ctx/`), directories
    /// included: Classic, `DOCKER_BUILDKIT=1` docker CLI 20.10; Modern,
    /// buildx v0.38 (the same cases are in tests/dockerignore_oracle.rs).
    fn exception_family() -> Vec<FamilyCase> {
        vec![
            (
                "* then !**/node_modules: only the root one, and not its content",
                &[
                    "Dockerfile",
                    "top.txt",
                    "node_modules/r.js",
                    "node_modules/keep/k",
                    "build/node_modules/m.js",
                    "a/node_modules/n.js",
                ],
                "*\n!**/node_modules",
                &["node_modules/"],
                Some(&[
                    "a/",
                    "a/node_modules/",
                    "a/node_modules/n.js",
                    "build/",
                    "build/node_modules/",
                    "build/node_modules/m.js",
                    "node_modules/",
                    "node_modules/keep/",
                    "node_modules/keep/k",
                    "node_modules/r.js",
                ]),
            ),
            (
                "** then !**/deep: only the root dir, and not its content",
                &["Dockerfile", "deep/h", "x/deep/f", "x/y/deep/g"],
                "**\n!**/deep",
                &["deep/"],
                Some(&[
                    "deep/",
                    "deep/h",
                    "x/",
                    "x/deep/",
                    "x/deep/f",
                    "x/y/",
                    "x/y/deep/",
                    "x/y/deep/g",
                ]),
            ),
            (
                "a then !a/b/c: walks into a and a/b",
                &[
                    "Dockerfile",
                    "a/f",
                    "a/b/f",
                    "a/b/c/f",
                    "a/b/c/d/f",
                    "a/x/keep",
                ],
                "a\n!a/b/c",
                &[
                    ".dockerignore",
                    "Dockerfile",
                    "a/",
                    "a/b/",
                    "a/b/c/",
                    "a/b/c/d/",
                    "a/b/c/d/f",
                    "a/b/c/f",
                ],
                None,
            ),
            (
                "a/* then !a/b/**",
                &["Dockerfile", "a/f", "a/b/f", "a/b/c/d/f", "a/x/keep"],
                "a/*\n!a/b/**",
                &[
                    ".dockerignore",
                    "Dockerfile",
                    "a/",
                    "a/b/",
                    "a/b/c/",
                    "a/b/c/d/",
                    "a/b/c/d/f",
                    "a/b/f",
                ],
                None,
            ),
            (
                "*/x then !*/x/keep: a wildcard dir part is not walked into",
                &["Dockerfile", "a/x/keep", "a/x/other", "a/f", "b/x/keep"],
                "*/x\n!*/x/keep",
                &[".dockerignore", "Dockerfile", "a/", "a/f", "b/"],
                Some(&[
                    ".dockerignore",
                    "Dockerfile",
                    "a/",
                    "a/f",
                    "a/x/",
                    "a/x/keep",
                    "b/",
                    "b/x/",
                    "b/x/keep",
                ]),
            ),
            (
                "a then !a/*/keep: a is walked into, a/x is not",
                &["Dockerfile", "a/x/keep", "a/keep", "b/f"],
                "a\n!a/*/keep",
                &[".dockerignore", "Dockerfile", "a/", "b/", "b/f"],
                Some(&[
                    ".dockerignore",
                    "Dockerfile",
                    "a/",
                    "a/x/",
                    "a/x/keep",
                    "b/",
                    "b/f",
                ]),
            ),
            (
                "* then !a/**/keep: only keep files directly in a",
                &["Dockerfile", "a/keep", "a/x/keep", "a/f"],
                "*\n!a/**/keep",
                &["a/", "a/keep"],
                Some(&["a/", "a/keep", "a/x/", "a/x/keep"]),
            ),
            (
                "exceptions with leading / and ./ and a trailing /",
                &["Dockerfile", "a/b/f", "a/c/f", "a/d/f"],
                "a\n!/a/b\n!./a/c/",
                &[
                    ".dockerignore",
                    "Dockerfile",
                    "a/",
                    "a/b/",
                    "a/b/f",
                    "a/c/",
                    "a/c/f",
                ],
                None,
            ),
            (
                "x then !x/**/deep: only the ancestor as deep as the pattern counts",
                &["Dockerfile", "x/deep/f", "x/f", "x/y/deep/g"],
                "x\n!x/**/deep",
                &[".dockerignore", "Dockerfile", "x/", "x/deep/"],
                Some(&[
                    ".dockerignore",
                    "Dockerfile",
                    "x/",
                    "x/deep/",
                    "x/deep/f",
                    "x/y/",
                    "x/y/deep/",
                    "x/y/deep/g",
                ]),
            ),
            (
                "the prefix is compared on whole components",
                &["Dockerfile", "a/c", "ab/c/f", "ab/d"],
                "a\n!ab/c",
                &[
                    ".dockerignore",
                    "Dockerfile",
                    "ab/",
                    "ab/c/",
                    "ab/c/f",
                    "ab/d",
                ],
                None,
            ),
            (
                "**/node_modules then !**/node_modules/keep",
                &[
                    "Dockerfile",
                    "node_modules/keep/k",
                    "web/node_modules/keep/k",
                    "web/s.js",
                ],
                "**/node_modules\n!**/node_modules/keep",
                &[".dockerignore", "Dockerfile", "web/", "web/s.js"],
                Some(&[
                    ".dockerignore",
                    "Dockerfile",
                    "node_modules/",
                    "node_modules/keep/",
                    "node_modules/keep/k",
                    "web/",
                    "web/node_modules/",
                    "web/node_modules/keep/",
                    "web/node_modules/keep/k",
                    "web/s.js",
                ]),
            ),
            (
                "walked-into dirs are sent even when nothing inside is",
                &["Dockerfile", "a/f", "a/b/f", "a/c/f"],
                "a\n!a/b/missing",
                &[".dockerignore", "Dockerfile", "a/", "a/b/"],
                Some(&[".dockerignore", "Dockerfile"]),
            ),
            (
                "an exception for the dir itself, then the dir again",
                &["Dockerfile", "a/f", "a/b/f"],
                "!a\na",
                &[".dockerignore", "Dockerfile", "a/"],
                Some(&[".dockerignore", "Dockerfile"]),
            ),
            (
                "a, !a/x, a: Modern skips the second a at a, so a/x stays",
                &["Dockerfile", "a/x", "a/y", "a/z/f"],
                "a\n!a/x\na",
                &[".dockerignore", "Dockerfile", "a/"],
                Some(&[".dockerignore", "Dockerfile", "a/", "a/x"]),
            ),
            (
                "**.log: Modern matches a suffix",
                &["Dockerfile", "x.log", "a/b/x.log", ".log", "a/.log", "xlog"],
                "**.log",
                &[
                    ".dockerignore",
                    "Dockerfile",
                    "a/",
                    "a/b/",
                    "a/b/x.log",
                    "x.log",
                    "xlog",
                ],
                Some(&[".dockerignore", "Dockerfile", "a/", "a/b/", "xlog"]),
            ),
            (
                "**foo/bar: Modern matches a suffix",
                &[
                    "Dockerfile",
                    "foo/bar",
                    "xfoo/bar",
                    "a/foo/bar",
                    "a/xfoo/bar/c",
                ],
                "**foo/bar",
                &[
                    ".dockerignore",
                    "Dockerfile",
                    "a/",
                    "a/foo/",
                    "a/xfoo/",
                    "a/xfoo/bar/",
                    "a/xfoo/bar/c",
                    "foo/",
                    "xfoo/",
                    "xfoo/bar",
                ],
                Some(&[
                    ".dockerignore",
                    "Dockerfile",
                    "a/",
                    "a/foo/",
                    "a/xfoo/",
                    "foo/",
                    "xfoo/",
                ]),
            ),
            (
                "a/b then !a: the exception of a parent (Modern: not tried at a)",
                &["Dockerfile", "a/b/f", "a/c", "a/b/c/d"],
                "a/b\n!a",
                &[
                    ".dockerignore",
                    "Dockerfile",
                    "a/",
                    "a/b/",
                    "a/b/c/",
                    "a/b/c/d",
                    "a/b/f",
                    "a/c",
                ],
                Some(&[".dockerignore", "Dockerfile", "a/", "a/c"]),
            ),
            (
                "**/*.txt then !a",
                &["Dockerfile", "a/x.txt", "a/b/y.txt", "b/z.txt"],
                "**/*.txt\n!a",
                &[
                    ".dockerignore",
                    "Dockerfile",
                    "a/",
                    "a/b/",
                    "a/b/y.txt",
                    "a/x.txt",
                    "b/",
                ],
                Some(&[".dockerignore", "Dockerfile", "a/", "a/b/", "b/"]),
            ),
            (
                "a/b/* then !a/*",
                &["Dockerfile", "a/b/f", "a/b/c/d", "a/e"],
                "a/b/*\n!a/*",
                &[
                    ".dockerignore",
                    "Dockerfile",
                    "a/",
                    "a/b/",
                    "a/b/c/",
                    "a/b/c/d",
                    "a/b/f",
                    "a/e",
                ],
                Some(&[".dockerignore", "Dockerfile", "a/", "a/b/", "a/e"]),
            ),
            (
                "*/ then !*/keep: Modern walks everything for a wildcard exception",
                &["Dockerfile", "a/keep", "a/f", "b/keep/x"],
                "*/\n!*/keep",
                &[],
                Some(&["a/", "a/keep", "b/", "b/keep/", "b/keep/x"]),
            ),
            (
                "!a/** then a",
                &["Dockerfile", "a/f", "a/b/g"],
                "!a/**\na",
                &[".dockerignore", "Dockerfile", "a/"],
                Some(&[".dockerignore", "Dockerfile"]),
            ),
            (
                "**/build then !build/keep: Classic keeps build/x (depth-2 ancestor)",
                &["Dockerfile", "build/keep", "build/x", "s/build/keep"],
                "**/build\n!build/keep",
                &[
                    ".dockerignore",
                    "Dockerfile",
                    "build/",
                    "build/keep",
                    "build/x",
                    "s/",
                ],
                Some(&[".dockerignore", "Dockerfile", "build/", "build/keep", "s/"]),
            ),
            (
                "a, !a/b, a/b",
                &["Dockerfile", "a/b/f", "a/c"],
                "a\n!a/b\na/b",
                &[".dockerignore", "Dockerfile", "a/", "a/b/"],
                Some(&[".dockerignore", "Dockerfile"]),
            ),
            (
                "!b then b*",
                &["Dockerfile", "b/f", "bc"],
                "!b\nb*",
                &[".dockerignore", "Dockerfile", "b/"],
                Some(&[".dockerignore", "Dockerfile"]),
            ),
            (
                "a then !*.keep: Modern walks into a, finds nothing",
                &["Dockerfile", "a/x.keep", "x.keep", "a/b/y.keep"],
                "a\n!*.keep",
                &[".dockerignore", "Dockerfile", "x.keep"],
                None,
            ),
            (
                "**/*.js then !lib/*.js",
                &["Dockerfile", "lib/a.js", "lib/sub/b.js", "c.js"],
                "**/*.js\n!lib/*.js",
                &[
                    ".dockerignore",
                    "Dockerfile",
                    "lib/",
                    "lib/a.js",
                    "lib/sub/",
                ],
                None,
            ),
            (
                "a then !a/b/*",
                &["Dockerfile", "a/b/f", "a/b/c/g", "a/x"],
                "a\n!a/b/*",
                &[
                    ".dockerignore",
                    "Dockerfile",
                    "a/",
                    "a/b/",
                    "a/b/c/",
                    "a/b/c/g",
                    "a/b/f",
                ],
                None,
            ),
            (
                "a then !a/b, a/b empty: an included dir is sent empty",
                &["Dockerfile", "a/b/", "a/c"],
                "a\n!a/b",
                &[".dockerignore", "Dockerfile", "a/", "a/b/"],
                None,
            ),
            (
                "a, !a/b, a/b/c, !a/b/c/d",
                &["Dockerfile", "a/b/c/d/f", "a/b/c/e", "a/b/x", "a/y"],
                "a\n!a/b\na/b/c\n!a/b/c/d",
                &[
                    ".dockerignore",
                    "Dockerfile",
                    "a/",
                    "a/b/",
                    "a/b/c/",
                    "a/b/c/d/",
                    "a/b/c/d/f",
                    "a/b/x",
                ],
                None,
            ),
        ]
    }

    fn cases() -> Vec<Case> {
        let mut v = Vec::new();
        let mut add = |name, tree, ignore, expect| v.push(case(name, tree, ignore, expect));
        add(
            "no ignore file includes everything",
            &["Dockerfile", "a/b.txt", "c.txt", "empty/"],
            "",
            &["Dockerfile", "a/", "a/b.txt", "c.txt", "empty/"],
        );
        add(
            "glob is anchored at the root",
            &["Dockerfile", "skip.log", "a/skip.log"],
            "*.log",
            &[".dockerignore", "Dockerfile", "a/", "a/skip.log"],
        );
        add(
            "plain name matches only at the root",
            &["Dockerfile", "foo", "a/foo"],
            "foo",
            &[".dockerignore", "Dockerfile", "a/", "a/foo"],
        );
        add(
            "leading ** matches at any depth, including zero",
            &["Dockerfile", "x.log", "a/x.log", "a/b/x.log", "a/keep.txt"],
            "**/*.log",
            &[".dockerignore", "Dockerfile", "a/", "a/b/", "a/keep.txt"],
        );
        add(
            "trailing ** excludes the contents but not the dir",
            &["Dockerfile", "a/x", "a/b/c", "ab"],
            "a/**",
            &[".dockerignore", "Dockerfile", "a/", "ab"],
        );
        add(
            "middle ** matches zero or more dirs",
            &["Dockerfile", "a/b", "a/x/b", "a/x/y/b", "a/x/c"],
            "a/**/b",
            &[
                ".dockerignore",
                "Dockerfile",
                "a/",
                "a/x/",
                "a/x/c",
                "a/x/y/",
            ],
        );
        add(
            "lone ** excludes everything",
            &["Dockerfile", "a/b", "c"],
            "**",
            &[],
        );
        add(
            "exception re-includes inside an excluded dir",
            &[
                "Dockerfile",
                "node_modules/a.js",
                "node_modules/keep/me.js",
                "node_modules/x/y.js",
            ],
            "node_modules\n!node_modules/keep",
            &[
                ".dockerignore",
                "Dockerfile",
                "node_modules/",
                "node_modules/keep/",
                "node_modules/keep/me.js",
            ],
        );
        add(
            "exception for a deep file walks into (and sends) its parents",
            &["Dockerfile", "a/b/c.txt", "a/b/d.txt", "a/e.txt"],
            "a\n!a/b/c.txt",
            &[".dockerignore", "Dockerfile", "a/", "a/b/", "a/b/c.txt"],
        );
        add(
            "an exception starting with ** does not reach into an excluded dir",
            &[
                "Dockerfile",
                "vendor/x/keep.txt",
                "vendor/x/drop.txt",
                "vendor/keep.txt",
                "keep.txt",
            ],
            "vendor\n!**/keep.txt",
            &[".dockerignore", "Dockerfile", "keep.txt"],
        );
        add(
            "later pattern wins over earlier exception",
            &["Dockerfile", "a.txt", "b.txt"],
            "!a.txt\n*.txt",
            &[".dockerignore", "Dockerfile"],
        );
        add(
            "later exception wins over earlier pattern",
            &["Dockerfile", "a.txt", "b.txt"],
            "*.txt\n!a.txt",
            &[".dockerignore", "Dockerfile", "a.txt"],
        );
        add(
            "exception then re-exclude",
            &[
                "Dockerfile",
                "README.md",
                "docs/a.md",
                "docs/secret.md",
                "docs/sub/b.md",
            ],
            "**/*.md\n!docs/*.md\ndocs/secret.md",
            &[
                ".dockerignore",
                "Dockerfile",
                "docs/",
                "docs/a.md",
                "docs/sub/",
            ],
        );
        add(
            "comments only at column 0",
            &["Dockerfile", "#foo", "#bar", "bar"],
            "# a comment\n#foo\nbar\n  #bar",
            &["#foo", ".dockerignore", "Dockerfile"],
        );
        add(
            "surrounding whitespace and CRLF are trimmed",
            &["Dockerfile", "foo.txt", "bar.txt", "baz.txt"],
            "foo.txt   \r\n\t bar.txt\r\n",
            &[".dockerignore", "Dockerfile", "baz.txt"],
        );
        add(
            "./ and / prefixes are the root",
            &["Dockerfile", "foo", "bar", "a/foo", "a/bar"],
            "./foo\n/bar",
            &[".dockerignore", "Dockerfile", "a/", "a/bar", "a/foo"],
        );
        add(
            ".. and . segments are cleaned",
            &["Dockerfile", "b", "x/y", "x/z", "c"],
            "a/../b\nx/./y\n../c",
            &[".dockerignore", "Dockerfile", "c", "x/", "x/z"],
        );
        add(
            "? matches exactly one non-slash char",
            &["Dockerfile", "a.txt", "ab.txt", "d/.txt"],
            "?.txt\n???.txt",
            &[".dockerignore", "Dockerfile", "ab.txt", "d/", "d/.txt"],
        );
        add(
            "character ranges",
            &["Dockerfile", "a.txt", "c.txt", "d.txt"],
            "[a-c].txt",
            &[".dockerignore", "Dockerfile", "d.txt"],
        );
        add(
            "^ negates a class",
            &["Dockerfile", "a.txt", "b.txt"],
            "[^a].txt",
            &[".dockerignore", "Dockerfile", "a.txt"],
        );
        add(
            "escapes make wildcards literal",
            &["Dockerfile", "*.txt", "a.txt", "[x]", "x"],
            "\\*.txt\n\\[x\\]",
            &[".dockerignore", "Dockerfile", "a.txt", "x"],
        );
        add(
            "excluding a dir keeps similarly named siblings",
            &[
                "Dockerfile",
                "build/out.bin",
                "build.txt",
                "builder/x",
                "src/build/y",
            ],
            "build",
            &[
                ".dockerignore",
                "Dockerfile",
                "build.txt",
                "builder/",
                "builder/x",
                "src/",
                "src/build/",
                "src/build/y",
            ],
        );
        add(
            "empty dirs are entries unless excluded",
            &["Dockerfile", "empty/", "a/empty/", "skip/"],
            "skip",
            &[".dockerignore", "Dockerfile", "a/", "a/empty/", "empty/"],
        );
        add(
            "BOM and bang with spaces",
            &["Dockerfile", "foo", "k.txt", "j.txt"],
            "\u{feff}foo\n*.txt\n!   k.txt",
            &[".dockerignore", "Dockerfile", "k.txt"],
        );
        add(
            "excluded Dockerfile and ignore file are not entries",
            &["Dockerfile", "a"],
            "Dockerfile\n.dockerignore",
            &["a"],
        );
        add(
            "symlinks are entries, never followed",
            &[
                "Dockerfile",
                "real/x",
                "dirlink -> real",
                "out -> /etc",
                "skip -> real/x",
            ],
            "skip",
            &[
                ".dockerignore",
                "Dockerfile",
                "dirlink@",
                "out@",
                "real/",
                "real/x",
            ],
        );
        add(
            "**name is (.*/)?name, not a suffix match (20.10 client)",
            &[
                "Dockerfile",
                "x.log",
                "a/y.log",
                "a/b.log.txt",
                ".log",
                "a/.log",
            ],
            "**.log",
            &[
                ".dockerignore",
                "Dockerfile",
                "a/",
                "a/b.log.txt",
                "a/y.log",
                "x.log",
            ],
        );

        // Exceptions and excluded directories, as measured against the
        // docker CLI 20.10's BuildKit client (see `dockerignore.rs`; the
        // same cases are in tests/dockerignore_oracle.rs).
        for (name, tree, ignore, classic, modern) in exception_family() {
            v.push(case(name, tree, ignore, classic));
            let mut c = case(name, tree, ignore, modern.unwrap_or(classic));
            c.dialect = IgnoreDialect::Modern;
            v.push(c);
        }

        // Cases where gitignore semantics differ from Docker's.
        let mut differs = |name, tree, ignore, expect, gitignore| {
            let mut c = case(name, tree, ignore, expect);
            c.gitignore_differs = Some(gitignore);
            v.push(c);
        };
        differs(
            "gitignore-differs: unanchored glob",
            &["Dockerfile", "x.log", "a/x.log"],
            "*.log",
            &[".dockerignore", "Dockerfile", "a/", "a/x.log"],
            ("a/x.log", true),
        );
        differs(
            "gitignore-differs: re-include inside excluded dir",
            &["Dockerfile", "node_modules/a.js", "node_modules/keep.js"],
            "node_modules\n!node_modules/keep.js",
            &[
                ".dockerignore",
                "Dockerfile",
                "node_modules/",
                "node_modules/keep.js",
            ],
            ("node_modules/keep.js", true),
        );
        differs(
            "gitignore-differs: trailing slash also matches files",
            &["Dockerfile", "build", "out/"],
            "build/",
            &[".dockerignore", "Dockerfile", "out/"],
            ("build", false),
        );
        differs(
            "gitignore-differs: [!...] is not negation",
            &["Dockerfile", "a.txt", "b.txt", "!.txt"],
            "[!a].txt",
            &[".dockerignore", "Dockerfile", "b.txt"],
            ("b.txt", true),
        );

        // Ignore-file selection.
        v.push(Case {
            name: "<Dockerfile>.dockerignore takes precedence",
            tree: &["Dockerfile", "a.txt", "b.txt"],
            ignore_files: vec![
                (".dockerignore", "a.txt"),
                ("Dockerfile.dockerignore", "b.txt"),
            ],
            dockerfile: "Dockerfile",
            expect: &[
                ".dockerignore",
                "Dockerfile",
                "Dockerfile.dockerignore",
                "a.txt",
            ],
            gitignore_differs: None,
            dialect: IgnoreDialect::Classic20_10,
        });
        v.push(Case {
            name: "nested Dockerfile uses its own ignore file",
            tree: &["sub/Dockerfile", "c.txt", "d.txt"],
            ignore_files: vec![
                (".dockerignore", "d.txt"),
                (
                    "sub/Dockerfile.dockerignore",
                    "c.txt\nsub/Dockerfile.dockerignore",
                ),
            ],
            dockerfile: "sub/Dockerfile",
            expect: &[".dockerignore", "d.txt", "sub/", "sub/Dockerfile"],
            gitignore_differs: None,
            dialect: IgnoreDialect::Classic20_10,
        });
        v.push(Case {
            name: "nested Dockerfile falls back to the root ignore file",
            tree: &[
                "sub/Dockerfile",
                "c.txt",
                "d.txt",
                "sub/other.Dockerfile.dockerignore",
            ],
            ignore_files: vec![(".dockerignore", "d.txt")],
            dockerfile: "sub/Dockerfile",
            expect: &[
                ".dockerignore",
                "c.txt",
                "sub/",
                "sub/Dockerfile",
                "sub/other.Dockerfile.dockerignore",
            ],
            gitignore_differs: None,
            dialect: IgnoreDialect::Classic20_10,
        });
        v.push(Case {
            name: "Dockerfile in an excluded dir",
            tree: &["docker/app.Dockerfile", "docker/other", "src/main.rs"],
            ignore_files: vec![(".dockerignore", "docker")],
            dockerfile: "docker/app.Dockerfile",
            expect: &[".dockerignore", "src/", "src/main.rs"],
            gitignore_differs: None,
            dialect: IgnoreDialect::Classic20_10,
        });
        v
    }

    #[test]
    fn dockerignore_table() {
        let cases = cases();
        assert!(cases.len() >= 25, "only {} cases", cases.len());
        for case in &cases {
            let dir = tempfile::tempdir().expect("tempdir");
            let root = dir.path();
            build_tree(root, case.tree);
            for (path, content) in &case.ignore_files {
                write(root, path, content);
            }
            let ctx = BuildContext::open(root, DockerfileSource::Path(case.dockerfile.into()))
                .unwrap_or_else(|e| panic!("{}: open: {e}", case.name))
                .with_dialect(case.dialect);
            let entries = ctx
                .entries()
                .unwrap_or_else(|e| panic!("{}: entries: {e}", case.name));
            assert_eq!(
                render(&entries),
                case.expect,
                "case {:?} ({:?})",
                case.name,
                case.dialect
            );

            // Sorted by byte order, no duplicates, never the root.
            let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
            let mut sorted = paths.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(paths, sorted, "case {:?}", case.name);

            // The walk (with its directory pruning, per-directory state and,
            // in Modern, the dropping of excluded dirs with nothing sent
            // under them) agrees with the plain per-path rule for every path
            // on disk: it is what `includes` says, plus the parents.
            let included: BTreeSet<&str> = paths.iter().copied().collect();
            let mut on_disk = Vec::new();
            all_paths(root, "", &mut on_disk);
            let mut expected: BTreeSet<&str> = BTreeSet::new();
            for (path, is_dir) in &on_disk {
                if ctx.dockerignore().includes(path, *is_dir) {
                    expected.insert(path);
                    expected.extend(path.match_indices('/').map(|(i, _)| &path[..i]));
                }
            }
            assert_eq!(
                included, expected,
                "case {:?} ({:?}): the walk against the per-path rule",
                case.name, case.dialect
            );

            if let Some((path, git_says)) = case.gitignore_differs {
                let text = case.ignore_files[0].1;
                let is_dir = on_disk.iter().any(|(p, d)| p == path && *d);
                assert_eq!(
                    gitignore_excludes(text, path, is_dir),
                    git_says,
                    "case {:?}: gitignore",
                    case.name
                );
                assert_ne!(
                    !ctx.dockerignore().includes(path, is_dir),
                    git_says,
                    "case {:?}: Docker must differ from gitignore",
                    case.name
                );
            }
        }
    }

    #[test]
    fn entry_metadata() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        build_tree(
            root,
            &["Dockerfile", "run.sh", "data", "d/", "l -> ../outside"],
        );
        fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o744)).expect("chmod");
        fs::set_permissions(root.join("data"), fs::Permissions::from_mode(0o611)).expect("chmod");
        let ctx =
            BuildContext::open(root, DockerfileSource::Path("Dockerfile".into())).expect("open");
        let entries = ctx.entries().expect("entries");
        let by = |p: &str| entries.iter().find(|e| e.path == p).expect(p).clone();
        assert!(by("run.sh").executable);
        assert!(!by("data").executable, "group/other exec bits do not count");
        assert_eq!(by("data").size, 4);
        assert_eq!(by("d").kind, EntryKind::Dir);
        assert_eq!(by("l").kind, EntryKind::Symlink);
        assert_eq!(
            by("l").link_target.as_deref(),
            Some(Path::new("../outside"))
        );
        assert!(by("data").mtime > 0);
    }

    /// Runs `f` on another thread and fails (instead of hanging) if it does
    /// not finish: opening a FIFO blocks forever, which is how these tests
    /// detect that an excluded file was opened.
    fn within_timeout<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("timed out: an excluded FIFO was probably opened")
    }

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("run mkfifo");
        assert!(status.success(), "mkfifo {}", path.display());
    }

    /// Whether this process can read files regardless of permissions (e.g.
    /// running as root), in which case chmod 000 cannot make reads fail.
    fn permissions_are_bypassed(dir: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        let probe = dir.join("probe");
        fs::write(&probe, "x").expect("write probe");
        fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).expect("chmod");
        let bypassed = fs::File::open(&probe).is_ok();
        fs::remove_file(&probe).expect("rm probe");
        bypassed
    }

    #[test]
    fn excluded_unreadable_things_are_never_touched() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("ctx");
        build_tree(
            &root,
            &["Dockerfile", "keep.txt", "secret/inner.txt", "private.txt"],
        );
        write(
            &root,
            ".dockerignore",
            "secret\nprivate.txt\npipe\nsecret2\n",
        );
        mkfifo(&root.join("pipe"));
        fs::create_dir(root.join("secret2")).expect("mkdir");
        mkfifo(&root.join("secret2/pipe"));
        fs::set_permissions(root.join("secret"), fs::Permissions::from_mode(0o000)).expect("chmod");
        fs::set_permissions(root.join("private.txt"), fs::Permissions::from_mode(0o000))
            .expect("chmod");
        // As root, chmod 000 does not stop reads, so only the FIFOs (which
        // block forever when opened) prove that nothing excluded was opened;
        // as a normal user the chmod'ed directory and file prove it too.
        if !permissions_are_bypassed(dir.path()) {
            assert!(fs::read_dir(root.join("secret")).is_err());
            assert!(fs::File::open(root.join("private.txt")).is_err());
        }

        let root2 = root.clone();
        let (entries, digest) = within_timeout(move || {
            let ctx = BuildContext::open(&root2, DockerfileSource::Path("Dockerfile".into()))
                .expect("open");
            let entries = ctx.entries().expect("entries");
            let digest = ctx.hash().expect("hash");
            (entries, digest)
        });
        fs::set_permissions(root.join("secret"), fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(
            render(&entries),
            vec![".dockerignore", "Dockerfile", "keep.txt"]
        );
        assert_eq!(digest.files.len(), 3);
    }

    #[test]
    fn included_special_files_are_errors_and_sockets_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        build_tree(&root, &["Dockerfile", "a"]);
        mkfifo(&root.join("pipe"));
        let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).expect("bind");
        let root2 = root.clone();
        let err = within_timeout(move || {
            let ctx = BuildContext::open(&root2, DockerfileSource::Path("Dockerfile".into()))
                .expect("open");
            ctx.entries().expect_err("FIFO must be an error")
        });
        let msg = err.to_string();
        assert!(matches!(err, ContextError::SpecialFile { .. }), "{msg}");
        assert!(
            msg.contains("pipe") && msg.contains("FIFO") && msg.contains(".dockerignore"),
            "{msg}"
        );

        fs::remove_file(root.join("pipe")).expect("rm fifo");
        let ctx =
            BuildContext::open(&root, DockerfileSource::Path("Dockerfile".into())).expect("open");
        let entries = ctx.entries().expect("entries");
        assert_eq!(
            render(&entries),
            vec!["Dockerfile", "a"],
            "socket is skipped"
        );
    }

    #[test]
    fn parallel_walk_matches_sequential_walk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        build_tree(root, &["Dockerfile", "top.log", "link -> d0"]);
        for i in 0..3000 {
            let path = format!(
                "d{}/s{}/t{}/f{i}.{}",
                i % 9,
                i % 5,
                i % 3,
                ["rs", "log", "md"][i % 3]
            );
            write(root, &path, "x");
        }
        build_tree(
            root,
            &[
                "d1/s1/empty/",
                "node_modules/keep/a.js",
                "node_modules/b.js",
            ],
        );
        write(
            root,
            ".dockerignore",
            "*.log\n**/*.md\n!d2/**/*.md\nd5/s2\nnode_modules\n!node_modules/keep\n\
             d6\n!d6/s1/t0/nothing\n",
        );
        for dialect in [IgnoreDialect::Classic20_10, IgnoreDialect::Modern] {
            let ctx = BuildContext::open(root, DockerfileSource::Path("Dockerfile".into()))
                .expect("open")
                .with_dialect(dialect);
            let sequential = walk(root, ctx.dockerignore(), None, 1).expect("walk");
            assert!(
                sequential.len() > SEQUENTIAL_ENTRIES * 2,
                "{}",
                sequential.len()
            );
            assert!(
                sequential
                    .iter()
                    .any(|e| e.path == "node_modules/keep/a.js")
            );
            assert!(sequential.iter().any(|e| e.path.ends_with(".md")));
            assert!(!sequential.iter().any(|e| e.path.starts_with("d5/s2")));
            // `d6` is walked into down to `d6/s1/t0`, where nothing is
            // included: Classic sends those dirs, Modern none of them.
            let d6: Vec<&str> = sequential
                .iter()
                .map(|e| e.path.as_str())
                .filter(|p| p.starts_with("d6"))
                .collect();
            match dialect {
                IgnoreDialect::Classic20_10 => assert_eq!(d6, ["d6", "d6/s1", "d6/s1/t0"]),
                IgnoreDialect::Modern => assert!(d6.is_empty(), "{d6:?}"),
            }
            for threads in [0, 2, 3, 8] {
                let parallel = walk(root, ctx.dockerignore(), None, threads).expect("walk");
                assert_eq!(parallel, sequential, "{dialect:?}, {threads} threads");
            }
        }
    }

    #[test]
    fn parallel_walk_errors_name_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        build_tree(&root, &["Dockerfile"]);
        for i in 0..4000 {
            write(&root, &format!("d{}/e{}/f{i}", i % 10, i % 7), "x");
        }
        mkfifo(&root.join("d7/e3/pipe"));
        let root2 = root.clone();
        let err = within_timeout(move || {
            let ctx = BuildContext::open(&root2, DockerfileSource::Path("Dockerfile".into()))
                .expect("open");
            walk(&root2, ctx.dockerignore(), None, 4).expect_err("FIFO")
        });
        assert!(matches!(err, ContextError::SpecialFile { .. }), "{err}");
        assert!(err.to_string().contains("d7/e3/pipe"), "{err}");
    }

    #[test]
    fn unreadable_directories() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        if permissions_are_bypassed(dir.path()) {
            // Running as root: a chmod 000 directory is still listable, so
            // there is no way to make read_dir fail here. The excluded case
            // is covered with FIFOs in
            // `excluded_unreadable_things_are_never_touched`.
            return;
        }
        let root = dir.path().join("ctx");
        build_tree(&root, &["Dockerfile", "locked/x", "nm/locked/y"]);
        fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o000)).expect("chmod");
        fs::set_permissions(root.join("nm/locked"), fs::Permissions::from_mode(0o000))
            .expect("chmod");
        let ctx =
            BuildContext::open(&root, DockerfileSource::Path("Dockerfile".into())).expect("open");
        let err = ctx.entries().expect_err("included unreadable dir");
        assert!(err.to_string().contains("locked"), "{err}");
        // An excluded directory that an exception could reach into must be
        // listed, so it is an error too (naming it).
        write(&root, ".dockerignore", "locked\nnm\n!nm/locked/y");
        let ctx =
            BuildContext::open(&root, DockerfileSource::Path("Dockerfile".into())).expect("open");
        let err = ctx.entries().expect_err("exception needs the dir");
        assert!(err.to_string().contains("nm/locked"), "{err}");
        for d in ["locked", "nm/locked"] {
            fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }
}
