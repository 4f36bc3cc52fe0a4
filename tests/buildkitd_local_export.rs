//! BuildKit's `local` exporter (`--output type=local,dest=DIR`) through our own BuildKit
//! client, against a real buildkitd (`DBK_BUILDKIT_HOST`; skipped when unset): the image's
//! files arrive over our session's FileSend as fsutil packets and are merged into the
//! directory (contents, the exec bit, a symlink, what was there before kept); a solve that
//! fails, or a destination that cannot take it, leaves the directory as it was (our reason
//! reaching BuildKit as an fsutil ERR); two platforms (two streams for the one exporter, at
//! once) land in a directory each; and a `local` and a `docker` tarball exporter in one solve
//! share the one FileSend method, each stream read as its target says.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Mutex;

use docker_buildkit::buildkit::{BuildkitAddress, BuildkitError, Buildkitd, Solve, SolveOutcome};
use docker_buildkit::context::{BuildContext, DockerfileSource};
use docker_buildkit::docker::plan::{Events, Level, Pending};
use docker_buildkit::docker::session::filesend::FileTarget;
use docker_buildkit::docker::session::{SessionSpec, filesync::FileSource, ssh::Agents};
use tokio_util::sync::CancellationToken;

/// The buildkitd's address, or `None` after a skip line (a failure where the services are
/// required).
fn buildkitd() -> Option<String> {
    match std::env::var("DBK_BUILDKIT_HOST") {
        Ok(h) if !h.is_empty() => Some(h),
        _ if common::services::services_required() => {
            panic!("DBK_BUILDKIT_HOST is not set: run scripts/services.sh up")
        }
        _ => {
            common::services::skip("a buildkitd at DBK_BUILDKIT_HOST");
            None
        }
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Events for Recorder {
    fn log<'a>(&'a self, _level: Level, message: &'a str) -> Pending<'a> {
        self.0.lock().unwrap().push(message.to_string());
        Box::pin(async {})
    }
    fn progress<'a>(&'a self, line: &'a str) -> Pending<'a> {
        self.0.lock().unwrap().push(line.to_string());
        Box::pin(async {})
    }
    fn secret(&self, _value: &str) {}
}

/// A context of a few files: one executable, one in a subdirectory beside a symlink to it.
fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(p.join("hello.txt"), "hello from the image\n").unwrap();
    std::fs::write(p.join("run.sh"), "#!/bin/sh\necho run\n").unwrap();
    std::fs::set_permissions(p.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(p.join("sub")).unwrap();
    std::fs::write(p.join("sub/nested.txt"), "nested\n").unwrap();
    std::os::unix::fs::symlink("nested.txt", p.join("sub/link")).unwrap();
    dir
}

const DOCKERFILE: &str =
    "FROM scratch\nCOPY hello.txt /hello.txt\nCOPY run.sh /bin/run.sh\nCOPY sub/ /sub/\n";

/// The bytes of file data the image holds (`hello.txt`, `run.sh`, `sub/nested.txt`).
const DATA_BYTES: u64 = 21 + 19 + 7;

async fn solve(
    host: &str,
    dir: &Path,
    exporters: Vec<(String, BTreeMap<String, String>)>,
    file_targets: BTreeMap<u32, FileTarget>,
) -> (Result<SolveOutcome, BuildkitError>, Vec<String>) {
    solve_for(host, dir, None, exporters, file_targets).await
}

/// [`solve`], for `platforms` (comma-separated) when given.
async fn solve_for(
    host: &str,
    dir: &Path,
    platforms: Option<&str>,
    exporters: Vec<(String, BTreeMap<String, String>)>,
    file_targets: BTreeMap<u32, FileTarget>,
) -> (Result<SolveOutcome, BuildkitError>, Vec<String>) {
    let mut frontend_attrs = BTreeMap::from([("filename".to_string(), "Dockerfile".to_string())]);
    if let Some(p) = platforms {
        frontend_attrs.insert("platform".to_string(), p.to_string());
    }
    let ctx =
        BuildContext::open(dir, DockerfileSource::Path("Dockerfile".into())).expect("context");
    let kit = Buildkitd::connect(&BuildkitAddress {
        host: host.to_string(),
        cert_path: None,
    })
    .await
    .expect("connect");
    let events = Recorder::default();
    let outcome = kit
        .solve(
            Solve {
                session: SessionSpec {
                    context_dir: dir.to_path_buf(),
                    context: FileSource::context(&ctx).unwrap(),
                    dockerfile: FileSource::dockerfile(&ctx).unwrap(),
                    named: BTreeMap::new(),
                    file_targets,
                    credentials: BTreeMap::new(),
                    secrets: BTreeMap::new(),
                    agents: Agents::default(),
                    content_stores: BTreeMap::new(),
                },
                frontend_attrs,
                exporters,
                cache_exports: vec![],
                cache_imports: vec![],
            },
            &events,
            &CancellationToken::new(),
        )
        .await;
    let log = events.0.into_inner().unwrap();
    (outcome, log)
}

/// The `local` exporter, as buildx sends `--output type=local,dest=…`: no attributes.
fn local() -> (String, BTreeMap<String, String>) {
    ("local".to_string(), BTreeMap::new())
}

/// What is beside `dest` other than `dest` (a staging directory left behind, say).
fn beside(dest: &Path) -> Vec<String> {
    let name = dest.file_name().unwrap();
    std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != name)
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn the_local_exporter_merges_the_image_files_into_the_directory() {
    let Some(host) = buildkitd() else { return };
    let ctx = context(DOCKERFILE);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("dist");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("keep.me"), "not the export's").unwrap();
    std::fs::write(dest.join("hello.txt"), "an older export").unwrap();

    let (outcome, log) = solve(
        &host,
        ctx.path(),
        vec![local()],
        BTreeMap::from([(0, FileTarget::Dir(dest.clone()))]),
    )
    .await;
    let outcome = outcome.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));

    assert_eq!(
        std::fs::read_to_string(dest.join("hello.txt")).unwrap(),
        "hello from the image\n",
        "a sent file replaces the one there"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("bin/run.sh")).unwrap(),
        "#!/bin/sh\necho run\n"
    );
    let mode = std::fs::metadata(dest.join("bin/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "run.sh is executable: {mode:o}");
    assert_eq!(
        std::fs::metadata(dest.join("hello.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o111,
        0,
        "hello.txt is not"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("sub/nested.txt")).unwrap(),
        "nested\n"
    );
    let link = std::fs::symlink_metadata(dest.join("sub/link")).unwrap();
    assert!(link.is_symlink(), "sub/link stays a symlink");
    assert_eq!(
        std::fs::read_link(dest.join("sub/link")).unwrap(),
        Path::new("nested.txt")
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("keep.me")).unwrap(),
        "not the export's",
        "what the export did not send is kept"
    );
    assert_eq!(names(&dest), ["bin", "hello.txt", "keep.me", "sub"]);
    assert_eq!(outcome.exported.get(&0), Some(&DATA_BYTES));
    assert!(beside(&dest).is_empty(), "{:?}", beside(&dest));
}

#[tokio::test]
async fn a_failed_solve_leaves_the_directory_as_it_was() {
    let Some(host) = buildkitd() else { return };
    let ctx = context("FROM scratch\nCOPY hello.txt /hello.txt\nCOPY missing.txt /missing.txt\n");
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("dist");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("keep.me"), "untouched").unwrap();

    let (outcome, _) = solve(
        &host,
        ctx.path(),
        vec![local()],
        BTreeMap::from([(0, FileTarget::Dir(dest.clone()))]),
    )
    .await;
    let err = outcome.expect_err("a COPY of a missing file fails the solve");
    assert!(err.to_string().contains("missing.txt"), "{err}");
    assert_eq!(names(&dest), ["keep.me"]);
    assert_eq!(
        std::fs::read_to_string(dest.join("keep.me")).unwrap(),
        "untouched"
    );
    assert!(beside(&dest).is_empty(), "{:?}", beside(&dest));
}

#[tokio::test]
async fn a_directory_and_a_tarball_share_the_one_filesend_method() {
    let Some(host) = buildkitd() else { return };
    let ctx = context(DOCKERFILE);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("new/dist");
    let tarball = out.path().join("image.tar");

    let (outcome, log) = solve(
        &host,
        ctx.path(),
        vec![
            (
                "docker".to_string(),
                BTreeMap::from([("name".to_string(), "local-export:test".to_string())]),
            ),
            local(),
        ],
        BTreeMap::from([
            (0, FileTarget::Path(tarball.clone())),
            (1, FileTarget::Dir(dest.clone())),
        ]),
    )
    .await;
    let outcome = outcome.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));

    // The directory did not exist: it is made, with the image's files only.
    assert_eq!(names(&dest), ["bin", "hello.txt", "sub"]);
    assert_eq!(
        std::fs::read_to_string(dest.join("sub/nested.txt")).unwrap(),
        "nested\n"
    );
    assert_eq!(outcome.exported.get(&1), Some(&DATA_BYTES));
    // The tarball is `docker save`'s: whole, and counted.
    let size = std::fs::metadata(&tarball).unwrap().len();
    assert_eq!(outcome.exported.get(&0), Some(&size));
    let mut archive = tar::Archive::new(std::fs::File::open(&tarball).unwrap());
    let entries: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(entries.iter().any(|e| e == "manifest.json"), "{entries:?}");
    assert!(beside(&dest).is_empty(), "{:?}", beside(&dest));
}

#[tokio::test]
async fn two_platforms_arrive_in_a_directory_each() {
    let Some(host) = buildkitd() else { return };
    let ctx = context(DOCKERFILE);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("dist");

    let (outcome, log) = solve_for(
        &host,
        ctx.path(),
        Some("linux/amd64,linux/arm64"),
        vec![local()],
        BTreeMap::from([(0, FileTarget::Dir(dest.clone()))]),
    )
    .await;
    let outcome = outcome.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));

    // BuildKit's platform split: one stream per platform, each under its own directory.
    assert_eq!(names(&dest), ["linux_amd64", "linux_arm64"]);
    for p in ["linux_amd64", "linux_arm64"] {
        assert_eq!(
            std::fs::read_to_string(dest.join(p).join("sub/nested.txt")).unwrap(),
            "nested\n"
        );
        assert!(
            std::fs::symlink_metadata(dest.join(p).join("sub/link"))
                .unwrap()
                .is_symlink()
        );
    }
    assert_eq!(
        outcome.exported.get(&0),
        Some(&(2 * DATA_BYTES)),
        "the bytes of both streams"
    );
    assert!(beside(&dest).is_empty(), "{:?}", beside(&dest));
}

#[tokio::test]
async fn a_destination_that_is_a_file_fails_the_export_with_our_reason() {
    let Some(host) = buildkitd() else { return };
    let ctx = context(DOCKERFILE);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("dist");
    std::fs::write(&dest, "a file, not a directory").unwrap();

    let (outcome, _) = solve(
        &host,
        ctx.path(),
        vec![local()],
        BTreeMap::from([(0, FileTarget::Dir(dest.clone()))]),
    )
    .await;
    // Our ERR packet reaches BuildKit's fsutil sender, which fails the export with it.
    let err = outcome.expect_err("the export cannot be merged into a file");
    assert!(err.to_string().contains("is not a directory"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "a file, not a directory"
    );
    assert!(beside(&dest).is_empty(), "{:?}", beside(&dest));
}
