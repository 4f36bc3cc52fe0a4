//! Docker itself as the oracle for `.dockerignore`: a tricky context is built with the
//! docker CLI 20.10's BuildKit client (`DOCKER_BUILDKIT=1 /usr/bin/docker build`, whose
//! fsutil walk filters what it sends), with buildx (`docker buildx build`, modern fsutil
//! and moby/patternmatcher: what `docker build` runs from Docker 23 on) and with the
//! legacy builder of the newer CLI on PATH (`DOCKER_BUILDKIT=0 docker build`, whose CLI
//! filters the context tar with moby/patternmatcher); each image's `/ctx/` is listed and
//! compared with (a) `BuildContext::entries()` in the matching dialect (the 20.10 client
//! against `IgnoreDialect::Classic20_10`, buildx against `IgnoreDialect::Modern`) and
//! (b) the `/ctx/` of the image the real provider builds with BuildKit from the same
//! directory (on dockerd 20.10: Classic). A family of small cases pins how exception
//! patterns reach (or do not reach) into excluded directories and the other places where
//! the clients are measured to disagree (see `exception_family`).
//!
//! buildx runs with `--output type=local` (no image needed) on the `remote` builder
//! `scripts/services.sh` sets up on its standalone buildkitd, and, for the family, also on
//! buildx's `docker` driver against dockerd 20.10: the filter runs in the client's
//! FileSync, so both must agree. Without the tools (`DBK_DOCKER_CONFIG`,
//! `DBK_BUILDX_BUILDER`, the buildx plugin) the buildx checks skip with one line, unless
//! `DBK_REQUIRE_ENGINE=1`, which makes that a failure.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use common::services::Services;
use common::*;
use docker_buildkit::context::{BuildContext, DockerfileSource, Entry, EntryKind, IgnoreDialect};
use serde_json::json;

const DOCKERFILE: &str = "FROM scratch\nCOPY . /ctx/\n";

/// The root `.dockerignore` of the big case. Every line is there for a reason; the
/// comment after each pattern says which paths of [`TREE`] it decides.
const DOCKERIGNORE: &str = concat!(
    "# comment lines are skipped\n",
    "#commented.txt\n", // a comment, not a pattern: `#commented.txt` stays
    "\n",
    "  #notacomment.txt\n", // leading blanks: a pattern, excludes `#notacomment.txt`
    "*.log\n", // root only: `debug.log`, `trace.log` (a symlink); not `logs/nested.log`
    "!important.log\n", // re-includes the root `important.log`
    "node_modules\n", // anchored at the root; `web/node_modules/` stays
    "!node_modules/keep\n", // re-includes a whole dir inside the excluded one …
    "node_modules/keep/drop.js\n", // … and excludes one file of it again
    "!node_modules/deep/er/keep.js\n", // re-includes a single file deep inside
    "**/*.tmp\n", // any depth, files and dirs (`tmpdir.tmp/` with its content)
    "**/cache/**\n", // the content of any `cache` dir (not `src/cached.rs`)
    "**/.DS_Store\n", // dotfiles at any depth
    "docs/?.md\n", // `docs/a.md`, `docs/b.md`; not `docs/ab.md`
    "data/file[a-c].txt\n", // `filea`, `filec`; not `filed` nor `fileA`
    "build/\n", // trailing slash: the root `build` dir; not `sub/build`
    "!build/important.txt\n", // … except this one file
    "/secret.txt\n", // leading slash: root only; `sub/secret.txt` stays
    "./private\n", // leading `./`: root only; `sub/private/` stays
    "spaced.txt   \t\n", // trailing blanks are trimmed
    "emptyskip\n", // an empty directory
    ".env\n",  // a dotfile; `.env.example` stays
    "temp*\n", // negation followed by a re-exclusion:
    "!temp-keep*\n", //   `temp-keep1` stays,
    "temp-keep-not*\n", //   `temp-keep-not1` goes again
);

/// The context: `path` is a file (its content is its path), `dir/` an empty directory,
/// `link -> target` a symlink.
const TREE: &[&str] = &[
    ".gitignore",
    ".env",
    ".env.example",
    ".hidden/config",
    ".DS_Store",
    "src/.DS_Store",
    "#commented.txt",
    "#notacomment.txt",
    "app.txt",
    "debug.log",
    "important.log",
    "trace.log -> app.txt",
    "logs/nested.log",
    "logs/deeper/old.log",
    "x.tmp",
    "tmpdir.tmp/inside.txt",
    "src/main.rs",
    "src/cached.rs",
    "src/gen/out.tmp",
    "src/cache/blob",
    "src/cache/deeper/blob2",
    "cache/top.bin",
    "node_modules/pkg/index.js",
    "node_modules/.bin/tool",
    "node_modules/keep/me.js",
    "node_modules/keep/drop.js",
    "node_modules/keep/sub/deep.js",
    "node_modules/deep/er/keep.js",
    "node_modules/deep/er/other.js",
    "web/node_modules/lib.js",
    "docs/a.md",
    "docs/b.md",
    "docs/ab.md",
    "data/filea.txt",
    "data/filec.txt",
    "data/filed.txt",
    "data/fileA.txt",
    "build/out.bin",
    "build/sub/x.o",
    "build/important.txt",
    "sub/build/keep.txt",
    "secret.txt",
    "sub/secret.txt",
    "private/key",
    "sub/private/key",
    "spaced.txt",
    "emptykeep/",
    "emptyskip/",
    "dir with space/file name.txt",
    "dir with space/skip me.tmp",
    "links/to-src -> ../src",
    "links/dangling -> ../nowhere",
    "links/file -> ../app.txt",
    "temp1",
    "temp-keep1",
    "temp-keep-not1",
    "ünïcödé.txt",
];

/// Writes `tree` (see [`TREE`] for the notation) under `root`.
fn build_tree(root: &Path, tree: &[&str]) {
    for item in tree {
        if let Some((link, target)) = item.split_once(" -> ") {
            let path = root.join(link);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, &path).unwrap();
        } else if let Some(dir) = item.strip_suffix('/') {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        } else {
            let path = root.join(item);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, item).unwrap();
        }
    }
}

/// What a context looks like once copied: non-directories (files as `path`, symlinks as
/// `path -> target`) and directories, by path relative to the context root.
#[derive(Debug, Default, PartialEq)]
struct Listing {
    files: BTreeSet<String>,
    dirs: BTreeSet<String>,
}

impl Listing {
    fn from_entries(entries: &[Entry]) -> Listing {
        let mut l = Listing::default();
        for e in entries {
            match e.kind {
                EntryKind::File => {
                    l.files.insert(e.path.clone());
                }
                EntryKind::Symlink => {
                    let target = e.link_target.as_ref().expect("symlink target");
                    l.files
                        .insert(format!("{} -> {}", e.path, target.to_str().unwrap()));
                }
                EntryKind::Dir => {
                    l.dirs.insert(e.path.clone());
                }
            }
        }
        l
    }

    /// Reads the `ctx/` part of a `docker export` tar.
    fn from_export(tar_path: &Path) -> Listing {
        let mut l = Listing::default();
        let mut archive = tar::Archive::new(std::fs::File::open(tar_path).unwrap());
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().to_str().unwrap().to_string();
            let path = path.trim_start_matches("./").trim_end_matches('/');
            let Some(rel) = path.strip_prefix("ctx/") else {
                continue;
            };
            let header = entry.header();
            match header.entry_type() {
                tar::EntryType::Directory => {
                    l.dirs.insert(rel.to_string());
                }
                tar::EntryType::Symlink => {
                    let target = header.link_name().unwrap().unwrap();
                    l.files
                        .insert(format!("{rel} -> {}", target.to_str().unwrap()));
                }
                tar::EntryType::Regular | tar::EntryType::Link => {
                    l.files.insert(rel.to_string());
                }
                other => panic!("unexpected {other:?} at {rel} in the export"),
            }
        }
        l
    }
}

impl Listing {
    /// Reads the `ctx/` part of a `--output type=local` directory.
    fn from_local_export(dest: &Path) -> Listing {
        fn walk(base: &Path, dir: &Path, l: &mut Listing) {
            for item in std::fs::read_dir(dir).unwrap() {
                let path = item.unwrap().path();
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                let md = std::fs::symlink_metadata(&path).unwrap();
                if md.file_type().is_symlink() {
                    let target = std::fs::read_link(&path).unwrap();
                    l.files
                        .insert(format!("{rel} -> {}", target.to_str().unwrap()));
                } else if md.is_dir() {
                    l.dirs.insert(rel);
                    walk(base, &path, l);
                } else {
                    l.files.insert(rel);
                }
            }
        }
        let mut l = Listing::default();
        let base = dest.join("ctx");
        if base.is_dir() {
            walk(&base, &base, &mut l);
        }
        l
    }

    /// Every path, directories with a trailing `/`, for messages.
    fn paths(&self) -> BTreeSet<String> {
        self.files
            .iter()
            .cloned()
            .chain(self.dirs.iter().map(|d| format!("{d}/")))
            .collect()
    }
}

/// The buildx plugin and the `remote` builder `scripts/services.sh up` makes.
struct Buildx {
    /// A `DOCKER_CONFIG` whose `cli-plugins/` has `docker-buildx`.
    config: String,
    /// The remote builder (a standalone buildkitd).
    builder: String,
}

/// Which buildx builder to build with.
#[derive(Debug, Clone, Copy)]
enum BuildxOn {
    /// The remote builder: a standalone buildkitd v0.34.
    Buildkitd,
    /// buildx's `docker` driver on `DOCKER_HOST` (dockerd 20.10, its BuildKit 0.8).
    Dockerd,
}

impl Buildx {
    /// The tools, or `None` after one line saying what is missing (a failure instead
    /// with `DBK_REQUIRE_ENGINE=1`).
    fn find(test: &str) -> Option<Buildx> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let missing = match (var("DBK_DOCKER_CONFIG"), var("DBK_BUILDX_BUILDER")) {
            (Some(config), Some(builder)) => {
                let plugin = Path::new(&config).join("cli-plugins/docker-buildx");
                if plugin.is_file() {
                    return Some(Buildx { config, builder });
                }
                format!("{} is missing", plugin.display())
            }
            _ => "DBK_DOCKER_CONFIG or DBK_BUILDX_BUILDER is not set".to_string(),
        };
        let reason = format!(
            "{test}: the buildx checks skipped: {missing} (`bash scripts/services.sh up` builds \
             the tools; source its env file)"
        );
        if std::env::var("DBK_REQUIRE_ENGINE").as_deref() == Ok("1") {
            panic!("{reason}; DBK_REQUIRE_ENGINE=1 requires them");
        }
        eprintln!("{reason}");
        None
    }

    /// `docker buildx build --output type=local -f <dockerfile> <dir>` on `on`; the
    /// `/ctx/` it wrote.
    fn build(&self, s: &Services, dir: &Path, dockerfile: &str, on: BuildxOn) -> Listing {
        let builder = match on {
            BuildxOn::Buildkitd => self.builder.as_str(),
            BuildxOn::Dockerd => "default",
        };
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("out");
        let result = Command::new(CLASSIC_CLI)
            .args(["buildx", "build", "-q", "--no-cache", "--builder", builder])
            .arg("--output")
            .arg(format!("type=local,dest={}", dest.display()))
            .arg("-f")
            .arg(dir.join(dockerfile))
            .arg(dir)
            .env("DOCKER_CONFIG", &self.config)
            .env("DOCKER_HOST", &s.docker_host)
            .env_remove("DOCKER_BUILDKIT")
            .output()
            .unwrap_or_else(|e| panic!("run docker buildx build: {e}"));
        check(&result, &format!("docker buildx build --builder {builder}"));
        Listing::from_local_export(&dest)
    }
}

/// "only in the 20.10 client / only in buildx" for two listings (a line each).
fn disagreement(classic: &Listing, modern: &Listing) -> String {
    let (c, m) = (classic.paths(), modern.paths());
    format!(
        "only the 20.10 client: {:?}; only buildx: {:?}",
        c.difference(&m).collect::<Vec<_>>(),
        m.difference(&c).collect::<Vec<_>>()
    )
}

/// "missing / extra" lines for two sets, empty when they are equal.
fn set_diff(what: &str, expected: &BTreeSet<String>, got: &BTreeSet<String>) -> String {
    let mut out = String::new();
    for p in expected.difference(got) {
        out.push_str(&format!("  {what} missing: {p:?}\n"));
    }
    for p in got.difference(expected) {
        out.push_str(&format!("  {what} extra:   {p:?}\n"));
    }
    out
}

/// Every ancestor directory of `path` (`a/b/c` → `a`, `a/b`).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// Removes the containers and images a test made, even when it fails.
struct Cleanup<'a> {
    s: &'a Services,
    containers: Vec<String>,
    images: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = self.s.docker(&["rm", "-f", c]);
        }
        for i in &self.images {
            let _ = self.s.docker(&["rmi", "-f", i]);
        }
    }
}

fn check(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn unique(what: &str) -> String {
    format!("dbk-oracle-{what}-{}", uuid::Uuid::new_v4().simple())
}

/// Builds `dir` with the legacy builder (`-f dockerfile`) and returns the image's `/ctx/`.
fn legacy_build(s: &Services, c: &mut Cleanup, dir: &Path, dockerfile: &str) -> Listing {
    cli_build(s, c, dir, dockerfile, "docker", "0")
}

/// The docker CLI 20.10 with BuildKit: the classic CLI Debian's `docker.io` installs (the
/// `docker` on PATH is a newer CLI without buildx, see FACTS.md).
const CLASSIC_CLI: &str = "/usr/bin/docker";

/// Builds `dir` with the classic CLI's BuildKit client (`-f dockerfile`) and returns the
/// image's `/ctx/`.
fn buildkit_client_build(s: &Services, c: &mut Cleanup, dir: &Path, dockerfile: &str) -> Listing {
    cli_build(s, c, dir, dockerfile, CLASSIC_CLI, "1")
}

/// `DOCKER_BUILDKIT=<buildkit> <cli> build -f <dockerfile> <dir>`; the image's `/ctx/`.
fn cli_build(
    s: &Services,
    c: &mut Cleanup,
    dir: &Path,
    dockerfile: &str,
    cli: &str,
    buildkit: &str,
) -> Listing {
    let tag = unique(if buildkit == "1" {
        "buildkit"
    } else {
        "legacy"
    });
    c.images.push(tag.clone());
    // --no-cache: the legacy builder would otherwise reuse the image of an identical build
    // from a test running alongside, whose cleanup may remove it mid-build ("unable to find
    // image").
    let out = Command::new(cli)
        .args(["build", "-q", "--no-cache", "-t", &tag, "-f"])
        .arg(dir.join(dockerfile))
        .arg(dir)
        .env("DOCKER_HOST", &s.docker_host)
        .env("DOCKER_BUILDKIT", buildkit)
        .output()
        .unwrap_or_else(|e| panic!("run {cli} build: {e}"));
    check(&out, &format!("DOCKER_BUILDKIT={buildkit} {cli} build"));
    export_ctx(s, c, &tag)
}

/// `docker create` + `docker export` of `image`; the listing of its `/ctx/`.
fn export_ctx(s: &Services, c: &mut Cleanup, image: &str) -> Listing {
    // The container never starts, so its command need not exist.
    let id = check(&s.docker(&["create", image, "x"]), "docker create");
    c.containers.push(id.clone());
    let tmp = tempfile::tempdir().unwrap();
    let tar_path = tmp.path().join("export.tar");
    check(
        &s.docker(&["export", &id, "-o", tar_path.to_str().unwrap()]),
        "docker export",
    );
    Listing::from_export(&tar_path)
}

/// Builds `dir` (the Pulumi program directory; the context is its default `.`) with the
/// real provider, `push: false`, plus `extra` inputs; returns the local image's `/ctx/`.
///
/// The provider sends the context through its own build session, exactly the file set its
/// walk yields (it ignores the exclude patterns the daemon passes back), so this shows
/// exactly what the provider's `.dockerignore` rule let in.
async fn provider_build(
    s: &Services,
    c: &mut Cleanup<'_>,
    dir: &Path,
    extra: serde_json::Value,
) -> Listing {
    let name = unique("provider");
    c.images.push(format!("{name}:latest"));
    let mut inputs = json!({"name": name, "push": false});
    inputs
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let mut h = Harness::start(&[]).await;
    h.configure(dir, s.config()).await;
    let checked = h.check_ok("oracle", &json!({}), &inputs).await;
    let created = h.create("oracle", &checked, false).await;
    let logs = h.log_text();
    created.unwrap_or_else(|e| panic!("provider build failed: {e}\n{logs}"));
    let _ = h.stop().await;
    let listing = export_ctx(s, c, &format!("{name}:latest"));
    assert!(
        !listing.files.is_empty(),
        "the image the provider built has no ctx/ files"
    );
    listing
}

fn entries_listing(root: &Path, dockerfile: &str, dialect: IgnoreDialect) -> Listing {
    let ctx = BuildContext::open(root, DockerfileSource::Path(dockerfile.into()))
        .unwrap()
        .with_dialect(dialect);
    Listing::from_entries(&ctx.entries().unwrap())
}

/// Our entries against Docker's copy: the same non-directories exactly; every directory
/// Docker made is one of our entries or a parent of one (Docker creates the parents of
/// re-included files even when the directory itself is excluded); every directory entry
/// of ours is one Docker made. Returns the problems, empty when there are none.
fn compare_entries(oracle: &Listing, ours: &Listing) -> String {
    let mut problems = set_diff("file/symlink", &oracle.files, &ours.files);
    let parents: BTreeSet<&str> = ours
        .files
        .iter()
        .map(|f| f.split(" -> ").next().unwrap())
        .chain(ours.dirs.iter().map(String::as_str))
        .flat_map(ancestors)
        .collect();
    for d in &oracle.dirs {
        if !ours.dirs.contains(d) && !parents.contains(d.as_str()) {
            problems.push_str(&format!(
                "  dir missing: {d:?} (neither an entry nor a parent of one)\n"
            ));
        }
    }
    for d in ours.dirs.difference(&oracle.dirs) {
        problems.push_str(&format!("  dir extra:   {d:?} (Docker did not copy it)\n"));
    }
    problems
}

/// Files and directories, both exactly ("missing" = in `oracle` only).
fn compare_exactly(oracle: &Listing, ours: &Listing) -> String {
    let mut problems = set_diff("file/symlink", &oracle.files, &ours.files);
    problems.push_str(&set_diff("dir", &oracle.dirs, &ours.dirs));
    problems
}

/// How the legacy builder of the newer CLI on PATH does on an [`exception_family`] case.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Legacy {
    /// Same files, and the directories [`compare_entries`] expects.
    Agrees,
    /// Keeps files the 20.10 client does not: it tries every ancestor of a path against
    /// a pattern, not only the one as deep as the pattern (moby/patternmatcher's
    /// `MatchesOrParentMatches` against docker 20.10's `Matches`).
    KeepsMore,
    /// Same files, but it does not record a directory it walks into that ends up empty
    /// (the BuildKit client sends it, so it is one of our entries).
    DropsEmptyWalkedDirs,
    /// Keeps fewer files than the 20.10 client: every ancestor is tried, or `**foo` is a
    /// suffix match (patternmatcher).
    KeepsFewer,
}

/// How buildx's copy compares with the 20.10 client's on an [`exception_family`] case.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Buildx20_10 {
    /// The same files and directories.
    Same,
    /// Different (the case's name says how); our Modern dialect follows buildx.
    Differs,
}

/// One [`exception_family`] case: `(name, tree, .dockerignore, how the legacy builder
/// does, how buildx compares with the 20.10 client)`.
type FamilyCase = (
    &'static str,
    &'static [&'static str],
    &'static str,
    Legacy,
    Buildx20_10,
);

/// Exception patterns against excluded directories, and the other cases where the
/// clients disagree. The 20.10 client walks into an excluded directory only when the
/// text of an exception pattern, plus `/`, begins with the directory's path plus `/`,
/// and tries a pattern on one ancestor only; buildx tries every ancestor (lazily: see
/// `src/context/dockerignore.rs`), walks into every excluded directory once an exception
/// has a wildcard, and sends an excluded directory only as the parent of something it
/// sends. The same cases, with the expectations measured here, are in
/// `src/context/walk.rs`.
fn exception_family() -> Vec<FamilyCase> {
    use Buildx20_10::{Differs, Same};
    vec![
        (
            "issue: * then !**/node_modules (buildx keeps every node_modules, all of it)",
            &[
                "Dockerfile",
                "top.txt",
                "node_modules/r.js",
                "node_modules/keep/k",
                "build/node_modules/m.js",
                "a/node_modules/n.js",
            ],
            "*\n!**/node_modules",
            Legacy::KeepsMore,
            Differs,
        ),
        (
            "issue: ** then !**/deep (buildx keeps every deep, all of it)",
            &["Dockerfile", "deep/h", "x/deep/f", "x/y/deep/g"],
            "**\n!**/deep",
            Legacy::KeepsMore,
            Differs,
        ),
        (
            "nested exception: a then !a/b/c",
            &[
                "Dockerfile",
                "a/f",
                "a/b/f",
                "a/b/c/f",
                "a/b/c/d/f",
                "a/x/keep",
            ],
            "a\n!a/b/c",
            Legacy::Agrees,
            Same,
        ),
        (
            "a/* then !a/b/**",
            &["Dockerfile", "a/f", "a/b/f", "a/b/c/d/f", "a/x/keep"],
            "a/*\n!a/b/**",
            Legacy::Agrees,
            Same,
        ),
        (
            "*/x then !*/x/keep (buildx walks in: the exception has a wildcard)",
            &["Dockerfile", "a/x/keep", "a/x/other", "a/f", "b/x/keep"],
            "*/x\n!*/x/keep",
            Legacy::Agrees,
            Differs,
        ),
        (
            "wildcard inside the exception's dir part: a then !a/*/keep (buildx keeps a/x/keep)",
            &["Dockerfile", "a/x/keep", "a/keep", "b/f"],
            "a\n!a/*/keep",
            Legacy::DropsEmptyWalkedDirs,
            Differs,
        ),
        (
            "* then !a/**/keep (buildx keeps a/x/keep)",
            &["Dockerfile", "a/keep", "a/x/keep", "a/f"],
            "*\n!a/**/keep",
            Legacy::Agrees,
            Differs,
        ),
        (
            "exceptions with leading / and ./ and a trailing /",
            &["Dockerfile", "a/b/f", "a/c/f", "a/d/f"],
            "a\n!/a/b\n!./a/c/",
            Legacy::Agrees,
            Same,
        ),
        (
            "x then !x/**/deep (buildx keeps what is under every deep)",
            &["Dockerfile", "x/deep/f", "x/f", "x/y/deep/g"],
            "x\n!x/**/deep",
            Legacy::KeepsMore,
            Differs,
        ),
        (
            "the prefix is compared on whole components: a then !ab/c",
            &["Dockerfile", "a/c", "ab/c/f", "ab/d"],
            "a\n!ab/c",
            Legacy::Agrees,
            Same,
        ),
        (
            "**/node_modules then !**/node_modules/keep (buildx keeps every keep)",
            &[
                "Dockerfile",
                "node_modules/keep/k",
                "web/node_modules/keep/k",
                "web/s.js",
            ],
            "**/node_modules\n!**/node_modules/keep",
            Legacy::Agrees,
            Differs,
        ),
        (
            "an exception naming nothing: a then !a/b/missing (buildx sends no empty a/, a/b/)",
            &["Dockerfile", "a/f", "a/b/f", "a/c/f"],
            "a\n!a/b/missing",
            Legacy::DropsEmptyWalkedDirs,
            Differs,
        ),
        (
            "an exception for the dir itself, then the dir again (buildx sends no empty a/)",
            &["Dockerfile", "a/f", "a/b/f"],
            "!a\na",
            Legacy::DropsEmptyWalkedDirs,
            Differs,
        ),
        (
            "a, !a/x, a (buildx keeps a/x: the second a is not tried at a)",
            &["Dockerfile", "a/x", "a/y", "a/z/f"],
            "a\n!a/x\na",
            Legacy::KeepsMore,
            Differs,
        ),
        (
            "**.log (buildx: any path ending in .log)",
            &["Dockerfile", "x.log", "a/b/x.log", ".log", "a/.log", "xlog"],
            "**.log",
            Legacy::KeepsFewer,
            Differs,
        ),
        (
            "**foo/bar (buildx: any path ending in foo/bar)",
            &[
                "Dockerfile",
                "foo/bar",
                "xfoo/bar",
                "a/foo/bar",
                "a/xfoo/bar/c",
            ],
            "**foo/bar",
            Legacy::KeepsFewer,
            Differs,
        ),
        (
            "the exception of a parent: a/b then !a (buildx drops a/b: !a is not tried at a)",
            &["Dockerfile", "a/b/f", "a/c", "a/b/c/d"],
            "a/b\n!a",
            Legacy::KeepsFewer,
            Differs,
        ),
        (
            "**/*.txt then !a (buildx drops the .txt files under a)",
            &["Dockerfile", "a/x.txt", "a/b/y.txt", "b/z.txt"],
            "**/*.txt\n!a",
            Legacy::KeepsFewer,
            Differs,
        ),
        (
            "a/b/* then !a/* (buildx drops what is in a/b)",
            &["Dockerfile", "a/b/f", "a/b/c/d", "a/e"],
            "a/b/*\n!a/*",
            Legacy::KeepsFewer,
            Differs,
        ),
        (
            "*/ then !*/keep (buildx walks into every dir)",
            &["Dockerfile", "a/keep", "a/f", "b/keep/x"],
            "*/\n!*/keep",
            Legacy::Agrees,
            Differs,
        ),
        (
            "!a/** then a (buildx sends no empty a/)",
            &["Dockerfile", "a/f", "a/b/g"],
            "!a/**\na",
            Legacy::DropsEmptyWalkedDirs,
            Differs,
        ),
        (
            "**/build then !build/keep (the 20.10 client keeps build/x)",
            &["Dockerfile", "build/keep", "build/x", "s/build/keep"],
            "**/build\n!build/keep",
            Legacy::KeepsFewer,
            Differs,
        ),
        (
            "a, !a/b, a/b (buildx sends no empty a/, a/b/)",
            &["Dockerfile", "a/b/f", "a/c"],
            "a\n!a/b\na/b",
            Legacy::DropsEmptyWalkedDirs,
            Differs,
        ),
        (
            "!b then b* (buildx sends no empty b/)",
            &["Dockerfile", "b/f", "bc"],
            "!b\nb*",
            Legacy::DropsEmptyWalkedDirs,
            Differs,
        ),
        (
            "a then !*.keep (buildx walks into a, finds nothing)",
            &["Dockerfile", "a/x.keep", "x.keep", "a/b/y.keep"],
            "a\n!*.keep",
            Legacy::Agrees,
            Same,
        ),
        (
            "**/*.js then !lib/*.js",
            &["Dockerfile", "lib/a.js", "lib/sub/b.js", "c.js"],
            "**/*.js\n!lib/*.js",
            Legacy::Agrees,
            Same,
        ),
        (
            "a then !a/b/*",
            &["Dockerfile", "a/b/f", "a/b/c/g", "a/x"],
            "a\n!a/b/*",
            Legacy::Agrees,
            Same,
        ),
        (
            "a then !a/b with a/b empty: an included dir is sent empty",
            &["Dockerfile", "a/b/", "a/c"],
            "a\n!a/b",
            Legacy::Agrees,
            Same,
        ),
        (
            "a, !a/b, a/b/c, !a/b/c/d",
            &["Dockerfile", "a/b/c/d/f", "a/b/c/e", "a/b/x", "a/y"],
            "a\n!a/b\na/b/c\n!a/b/c/d",
            Legacy::Agrees,
            Same,
        ),
    ]
}

/// Each [`exception_family`] case: `entries()` in Classic equals what the 20.10 BuildKit
/// client put into the image, files and directories, and in Modern what buildx put there
/// (on buildkitd, and the same on dockerd 20.10 through buildx's docker driver); buildx
/// and the 20.10 client agree or not as the case says, and the legacy builder agrees or
/// differs in the one way the case says (so that a change in any of them is noticed).
/// Every disagreement between buildx and the 20.10 client is printed.
#[tokio::test]
async fn exceptions_reach_into_excluded_dirs_as_in_docker() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let buildx = Buildx::find("exceptions_reach_into_excluded_dirs_as_in_docker");
    let mut c = Cleanup {
        s: &s,
        containers: Vec::new(),
        images: Vec::new(),
    };
    let mut failures = String::new();
    for (name, tree, ignore, legacy_does, buildx_does) in exception_family() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_tree(
            root,
            &[("Dockerfile", DOCKERFILE), (".dockerignore", ignore)],
        );
        let rest: Vec<&str> = tree
            .iter()
            .copied()
            .filter(|p| *p != "Dockerfile")
            .collect();
        build_tree(root, &rest);
        let ours = entries_listing(root, "Dockerfile", IgnoreDialect::Classic20_10);
        let client = buildkit_client_build(&s, &mut c, root, "Dockerfile");
        let problems = compare_exactly(&client, &ours);
        if !problems.is_empty() {
            failures.push_str(&format!(
                "{name} ({ignore:?}): Classic entries() against `DOCKER_BUILDKIT=1 \
                 {CLASSIC_CLI} build`:\n{problems}"
            ));
        }

        if let Some(bx) = &buildx {
            let modern = bx.build(&s, root, "Dockerfile", BuildxOn::Buildkitd);
            let ours_modern = entries_listing(root, "Dockerfile", IgnoreDialect::Modern);
            let problems = compare_exactly(&modern, &ours_modern);
            if !problems.is_empty() {
                failures.push_str(&format!(
                    "{name} ({ignore:?}): Modern entries() against `docker buildx build` \
                     (buildkitd):\n{problems}"
                ));
            }
            let on_dockerd = bx.build(&s, root, "Dockerfile", BuildxOn::Dockerd);
            if on_dockerd != modern {
                failures.push_str(&format!(
                    "{name} ({ignore:?}): buildx on dockerd 20.10 (docker driver) and on \
                     buildkitd differ:\n{}",
                    compare_exactly(&modern, &on_dockerd)
                ));
            }
            let seen = if modern == client {
                Buildx20_10::Same
            } else {
                eprintln!(
                    "buildx differs from the 20.10 client: {name} ({ignore:?}): {}",
                    disagreement(&client, &modern)
                );
                Buildx20_10::Differs
            };
            if seen != buildx_does {
                failures.push_str(&format!(
                    "{name} ({ignore:?}): buildx against the 20.10 client was expected to be \
                     {buildx_does:?}, it is {seen:?}: {}\n",
                    disagreement(&client, &modern)
                ));
            }
        }

        let legacy = legacy_build(&s, &mut c, root, "Dockerfile");
        let files = set_diff("file/symlink", &legacy.files, &ours.files);
        let dirs = compare_entries(&legacy, &ours);
        let seen = if dirs.is_empty() {
            Legacy::Agrees
        } else if files.is_empty() {
            Legacy::DropsEmptyWalkedDirs
        } else if legacy.files.is_superset(&ours.files) {
            Legacy::KeepsMore
        } else if legacy.files.is_subset(&ours.files) {
            Legacy::KeepsFewer
        } else {
            failures.push_str(&format!(
                "{name} ({ignore:?}): the legacy builder differs unexpectedly:\n{dirs}"
            ));
            continue;
        };
        if seen != legacy_does {
            failures.push_str(&format!(
                "{name} ({ignore:?}): the legacy builder was expected to be {legacy_does:?}, \
                 it is {seen:?}:\n{dirs}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "(missing = Docker has it, we do not; extra = we have it, Docker does not)\n{failures}"
    );
}

/// The big case: the legacy builder and the 20.10 client against Classic entries, buildx
/// against Modern entries, and the image the provider builds on dockerd 20.10.
#[tokio::test]
async fn dockerignore_matches_docker_legacy_builder_and_buildkit() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let buildx = Buildx::find("dockerignore_matches_docker_legacy_builder_and_buildkit");
    let mut c = Cleanup {
        s: &s,
        containers: Vec::new(),
        images: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_tree(
        root,
        &[("Dockerfile", DOCKERFILE), (".dockerignore", DOCKERIGNORE)],
    );
    build_tree(root, TREE);

    let oracle = legacy_build(&s, &mut c, root, "Dockerfile");
    // Sanity of the oracle itself (FACTS.md) and of the tree: the build files are in,
    // unanchored `*.log` only matches at the root, re-includes work.
    assert!(
        !oracle.files.is_empty(),
        "the legacy build has no ctx/ files"
    );
    for p in [
        "Dockerfile",
        ".dockerignore",
        "logs/nested.log",
        "node_modules/keep/me.js",
    ] {
        assert!(oracle.files.contains(p), "oracle lacks {p}: {oracle:#?}");
    }
    for p in ["debug.log", "node_modules/pkg/index.js"] {
        assert!(!oracle.files.contains(p), "oracle has {p}: {oracle:#?}");
    }
    let legend = format!(
        "(missing = Docker copied it, we do not; extra = we have it, Docker does not)\n\
         .dockerignore:\n{DOCKERIGNORE}\noracle: {oracle:#?}\n"
    );

    // (a) The context module's entries, against both builders. The BuildKit client sends
    // every directory it walks, so its directories are compared exactly.
    let ours = entries_listing(root, "Dockerfile", IgnoreDialect::Classic20_10);
    let problems = compare_entries(&oracle, &ours);
    assert!(
        problems.is_empty(),
        "BuildContext::entries() disagrees with `DOCKER_BUILDKIT=0 docker build`:\n{problems}{legend}"
    );
    let client = buildkit_client_build(&s, &mut c, root, "Dockerfile");
    let problems = compare_exactly(&client, &ours);
    assert!(
        problems.is_empty(),
        "BuildContext::entries() disagrees with `DOCKER_BUILDKIT=1 {CLASSIC_CLI} build`:\n\
         {problems}{legend}client: {client:#?}"
    );
    if let Some(bx) = &buildx {
        let modern = bx.build(&s, root, "Dockerfile", BuildxOn::Buildkitd);
        let ours_modern = entries_listing(root, "Dockerfile", IgnoreDialect::Modern);
        let problems = compare_exactly(&modern, &ours_modern);
        assert!(
            problems.is_empty(),
            "Modern BuildContext::entries() disagrees with `docker buildx build`:\n\
             {problems}{legend}buildx: {modern:#?}"
        );
        if modern != client {
            eprintln!(
                "the big case: buildx differs from the 20.10 client: {}",
                disagreement(&client, &modern)
            );
        }
    }

    // (b) The real provider, BuildKit, the same directory.
    let built = provider_build(&s, &mut c, root, json!({})).await;
    // BuildKit creates the same directories too (the parents of re-included files
    // and the kept empty ones), so they are compared exactly here.
    let mut problems = set_diff("file/symlink", &oracle.files, &built.files);
    problems.push_str(&set_diff("dir", &oracle.dirs, &built.dirs));
    assert!(
        problems.is_empty(),
        "the image the provider built (BuildKit) disagrees with `DOCKER_BUILDKIT=0 docker \
         build`:\n{problems}{legend}built: {built:#?}"
    );
}

/// A Dockerfile in a subdirectory with its own `sub/Dockerfile.dockerignore`.
///
/// Expectations from the Docker docs ("Dockerfile-specific ignore files"): the file named
/// `<Dockerfile path>.dockerignore`, next to the Dockerfile, is used instead of the
/// root `.dockerignore` (not merged with it), and its patterns are still relative to the
/// context root. So `a.txt` (excluded only by the root file) stays, `b.txt` and the root
/// `c.md` (excluded by the Dockerfile's file) go, and `sub/d.md` stays (`*.md` is
/// anchored at the root like every pattern).
///
/// Checked: `entries()` in both dialects, the `/ctx/` of the 20.10 client's and of buildx's
/// copy (both read `sub/Dockerfile.dockerignore`: measured), and the `/ctx/` of the image
/// the provider builds with `dockerfile: sub/Dockerfile` (the file set the provider's
/// session sent). The legacy builder is asked too, but used as an oracle only if it
/// agrees: measured here (CLI 28.2, daemon 20.10), it reads only the root `.dockerignore`
/// and shows exactly the root file's semantics (`a.txt` out, `b.txt` and `c.md` in). The
/// test accepts either of the two from it, so that a change is noticed, and says which it
/// saw.
#[tokio::test]
async fn dockerfile_specific_ignore_file_takes_precedence() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let buildx = Buildx::find("dockerfile_specific_ignore_file_takes_precedence");
    let mut c = Cleanup {
        s: &s,
        containers: Vec::new(),
        images: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_tree(
        root,
        &[
            (".dockerignore", "a.txt\n"),
            ("sub/Dockerfile", DOCKERFILE),
            ("sub/Dockerfile.dockerignore", "b.txt\n*.md\n"),
            ("a.txt", "a"),
            ("b.txt", "b"),
            ("c.md", "c"),
            ("sub/d.md", "d"),
            ("sub/e.txt", "e"),
        ],
    );
    let set = |v: &[&str]| v.iter().map(|p| p.to_string()).collect::<BTreeSet<_>>();
    let expected = set(&[
        ".dockerignore",
        "a.txt",
        "sub/Dockerfile",
        "sub/Dockerfile.dockerignore",
        "sub/d.md",
        "sub/e.txt",
    ]);
    let root_file_semantics = set(&[
        ".dockerignore",
        "b.txt",
        "c.md",
        "sub/Dockerfile",
        "sub/Dockerfile.dockerignore",
        "sub/d.md",
        "sub/e.txt",
    ]);

    for dialect in [IgnoreDialect::Classic20_10, IgnoreDialect::Modern] {
        let ctx = BuildContext::open(root, DockerfileSource::Path("sub/Dockerfile".into()))
            .unwrap()
            .with_dialect(dialect);
        assert_eq!(ctx.ignore_file(), Some("sub/Dockerfile.dockerignore"));
        let ours = Listing::from_entries(&ctx.entries().unwrap());
        let problems = set_diff("file", &expected, &ours.files);
        assert!(
            problems.is_empty(),
            "{dialect:?} entries() with sub/Dockerfile.dockerignore:\n{problems}"
        );
        assert_eq!(ours.dirs, set(&["sub"]));
    }
    // Both BuildKit clients read sub/Dockerfile.dockerignore (measured).
    let client = buildkit_client_build(&s, &mut c, root, "sub/Dockerfile");
    let problems = set_diff("file", &expected, &client.files);
    assert!(
        problems.is_empty(),
        "`DOCKER_BUILDKIT=1 {CLASSIC_CLI} build -f sub/Dockerfile`:\n{problems}"
    );
    if let Some(bx) = &buildx {
        let modern = bx.build(&s, root, "sub/Dockerfile", BuildxOn::Buildkitd);
        let problems = set_diff("file", &expected, &modern.files);
        assert!(
            problems.is_empty(),
            "`docker buildx build -f sub/Dockerfile`:\n{problems}"
        );
        assert_eq!(modern.dirs, set(&["sub"]));
    }

    let built = provider_build(&s, &mut c, root, json!({"dockerfile": "sub/Dockerfile"})).await;
    let problems = set_diff("file", &expected, &built.files);
    assert!(
        problems.is_empty(),
        "the image the provider built with sub/Dockerfile:\n{problems}"
    );

    let oracle = legacy_build(&s, &mut c, root, "sub/Dockerfile");
    if oracle.files == expected {
        eprintln!("the legacy builder honours sub/Dockerfile.dockerignore and agrees");
    } else {
        assert_eq!(
            oracle.files, root_file_semantics,
            "the legacy builder shows neither the Dockerfile-specific nor the root ignore \
             file's semantics"
        );
        eprintln!(
            "the legacy builder ignores sub/Dockerfile.dockerignore (uses the root \
             .dockerignore): not used as an oracle here"
        );
    }
}

/// A `.dockerignore` that excludes the Dockerfile and itself (and, in the second case, the
/// directory the Dockerfile is in). Docker still builds with both, and `COPY .` copies
/// neither: the legacy builder and the 20.10 BuildKit client are asked, must agree with
/// each other, and the image the provider builds must have exactly their `/ctx/`. (The
/// provider's build session serves the Dockerfile as a source of its own and the context
/// exactly as the walk yields it, so nothing it excluded can reach `COPY .`.)
#[tokio::test]
async fn excluded_dockerfile_and_dockerignore_stay_out_of_copy_as_in_docker() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let buildx = Buildx::find("excluded_dockerfile_and_dockerignore_stay_out_of_copy_as_in_docker");
    let mut c = Cleanup {
        s: &s,
        containers: Vec::new(),
        images: Vec::new(),
    };
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "Dockerfile",
            "Dockerfile\n.dockerignore\n*.md\n",
            &[".dockerignore", "Dockerfile"],
        ),
        (
            "build/Dockerfile",
            "build\n**/.dockerignore\n",
            &[".dockerignore", "build/Dockerfile"],
        ),
    ];
    for (dockerfile, ignore, left_out) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_tree(
            root,
            &[
                (dockerfile, DOCKERFILE),
                (".dockerignore", ignore),
                ("a.txt", "a"),
                ("b.md", "b"),
                ("sub/c.txt", "c"),
                ("sub/.dockerignore", "not the ignore file"),
            ],
        );
        let legacy = legacy_build(&s, &mut c, root, dockerfile);
        let client = buildkit_client_build(&s, &mut c, root, dockerfile);
        for p in *left_out {
            assert!(
                !client.files.contains(*p) && !legacy.files.contains(*p),
                "case {dockerfile}: Docker copied {p}: legacy {legacy:#?} client {client:#?}"
            );
        }
        assert!(
            client.files.contains("a.txt"),
            "case {dockerfile}: {client:#?}"
        );
        // Files only: the legacy CLI puts an excluded Dockerfile's directory into its tar
        // (to carry the Dockerfile), and the daemon, removing the file, leaves it empty.
        let problems = set_diff("file/symlink", &client.files, &legacy.files);
        assert!(
            problems.is_empty(),
            "case {dockerfile}: the two Docker builders disagree, no oracle:\n{problems}"
        );
        if let Some(bx) = &buildx {
            // buildx builds with both as well, and copies exactly what Modern entries()
            // holds (the same files as the 20.10 client here).
            let modern = bx.build(&s, root, dockerfile, BuildxOn::Buildkitd);
            let ours = entries_listing(root, dockerfile, IgnoreDialect::Modern);
            let problems = compare_exactly(&modern, &ours);
            assert!(
                problems.is_empty(),
                "case {dockerfile}: Modern entries() against `docker buildx build`:\n{problems}"
            );
            let problems = set_diff("file/symlink", &client.files, &modern.files);
            assert!(
                problems.is_empty(),
                "case {dockerfile}: buildx and the 20.10 client disagree:\n{problems}"
            );
        }
        let built = provider_build(&s, &mut c, root, json!({"dockerfile": dockerfile})).await;
        let problems = compare_exactly(&client, &built);
        assert!(
            problems.is_empty(),
            "case {dockerfile} (.dockerignore {ignore:?}): the image the provider built \
             disagrees with `DOCKER_BUILDKIT=1 {CLASSIC_CLI} build` \
             (missing = Docker copied it, we do not):\n{problems}built: {built:#?}"
        );
    }
}
