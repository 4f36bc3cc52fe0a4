//! Streaming the build context as an uncompressed tar.
//!
//! This is for producing the byte stream sent to the builder: the entries
//! from `BuildContext::entries` in order, then the Dockerfile / ignore file
//! if they were excluded (or the inline Dockerfile). Headers are normalized
//! so that nothing but content, exec bit and mtime reaches the builder: mode
//! 0755 for directories and executable files, 0644 for everything else
//! (symlinks included), uid/gid 0, empty user/group names, the real mtime
//! (0 for the inline Dockerfile), GNU long-name records for long paths and
//! link targets. File contents are
//! copied in small chunks, so memory use does not depend on file sizes. It
//! is not for compression, for reading tars, or for deciding what goes in
//! (that is `walk.rs` and `dockerignore.rs`).

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use tar::{Builder, EntryType, Header};

use super::hash::open_regular;
use super::{BuildFile, ContextError, Entry, EntryKind};

/// Writes `entries`, then every build file not already among them.
pub(crate) fn write_tar<W: Write>(
    root: &Path,
    entries: &[Entry],
    build_files: &[BuildFile<'_>],
    w: W,
) -> Result<(), ContextError> {
    let mut builder = Builder::new(w);
    for entry in entries {
        append_entry(&mut builder, root, entry)?;
    }
    for file in build_files {
        let name = file.name();
        if entries
            .binary_search_by(|e| e.path.as_str().cmp(name))
            .is_ok()
        {
            continue;
        }
        match file {
            BuildFile::Disk(entry) => append_entry(&mut builder, root, entry)?,
            BuildFile::Inline(text) => {
                let mut header = header(EntryType::Regular, 0o644, 0, text.len() as u64);
                builder
                    .append_data(&mut header, name, text.as_bytes())
                    .map_err(|source| write_error(name, source))?;
            }
        }
    }
    builder
        .into_inner()
        .map_err(|source| write_error("end of archive", source))?;
    Ok(())
}

fn write_error(entry: &str, source: io::Error) -> ContextError {
    ContextError::WriteTar {
        entry: entry.to_owned(),
        source,
    }
}

/// A normalized header (the path is set when appending).
fn header(kind: EntryType, mode: u32, mtime: u64, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_size(size);
    header
}

fn append_entry<W: Write>(
    builder: &mut Builder<W>,
    root: &Path,
    entry: &Entry,
) -> Result<(), ContextError> {
    let name = entry.path.as_str();
    match entry.kind {
        EntryKind::Dir => {
            let mut header = header(EntryType::Directory, 0o755, entry.mtime, 0);
            builder
                .append_data(&mut header, format!("{name}/"), io::empty())
                .map_err(|source| write_error(name, source))
        }
        EntryKind::Symlink => {
            let mut header = header(EntryType::Symlink, 0o644, entry.mtime, 0);
            let target = entry.link_target.as_deref().unwrap_or(Path::new(""));
            builder
                .append_link(&mut header, name, target)
                .map_err(|source| write_error(name, source))
        }
        EntryKind::File => {
            let path = root.join(name);
            let file = open_regular(&path, entry)?;
            let mode = if entry.executable { 0o755 } else { 0o644 };
            let mut header = header(EntryType::Regular, mode, entry.mtime, entry.size);
            let mut reader = ExactReader {
                file,
                remaining: entry.size,
                path,
                failure: None,
            };
            match builder.append_data(&mut header, name, &mut reader) {
                Ok(()) => Ok(()),
                Err(source) => Err(reader
                    .failure
                    .take()
                    .unwrap_or_else(|| write_error(name, source))),
            }
        }
    }
}

/// Reads exactly the size announced in the tar header, failing (rather than
/// corrupting the archive) if the file shrank or grew since it was stat'ed.
/// A failure on the file side is kept in `failure` so the caller can report
/// it as a read error naming the file rather than as a write error.
struct ExactReader {
    file: File,
    remaining: u64,
    path: PathBuf,
    failure: Option<ContextError>,
}

impl ExactReader {
    fn fail(&mut self, error: ContextError) -> io::Error {
        let message = error.to_string();
        self.failure = Some(error);
        io::Error::other(message)
    }

    fn changed(&mut self) -> io::Error {
        let path = self.path.clone();
        self.fail(ContextError::ChangedWhileReading { path })
    }
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Done: make sure the file did not grow past the header size.
            let mut probe = [0u8; 1];
            return match self.file.read(&mut probe) {
                Ok(0) => Ok(0),
                Ok(_) => Err(self.changed()),
                Err(e) if e.kind() == ErrorKind::Interrupted => Err(e),
                Err(source) => {
                    let path = self.path.clone();
                    Err(self.fail(ContextError::ReadFile { path, source }))
                }
            };
        }
        let max = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        match self.file.read(&mut buf[..max]) {
            Ok(0) if max > 0 => Err(self.changed()),
            Ok(n) => {
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Err(e),
            Err(source) => {
                let path = self.path.clone();
                Err(self.fail(ContextError::ReadFile { path, source }))
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::super::test_support::{build_tree, write};
    use super::super::{BuildContext, DockerfileSource, INLINE_DOCKERFILE_NAME};
    use super::*;
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    /// What a tar entry looked like when read back.
    #[derive(Debug, PartialEq, Eq)]
    struct ReadBack {
        kind: EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        user: Vec<u8>,
        group: Vec<u8>,
        mtime: u64,
        content: Vec<u8>,
        link: Option<PathBuf>,
    }

    fn read_back(bytes: &[u8]) -> Vec<(String, ReadBack)> {
        let mut archive = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = String::from_utf8(entry.path_bytes().into_owned()).expect("utf-8 name");
            let h = entry.header().clone();
            let link = entry
                .link_name()
                .expect("link name")
                .map(|l| l.into_owned());
            let mut content = Vec::new();
            entry.read_to_end(&mut content).expect("read content");
            out.push((
                name,
                ReadBack {
                    kind: h.entry_type(),
                    mode: h.mode().expect("mode"),
                    uid: h.uid().expect("uid"),
                    gid: h.gid().expect("gid"),
                    user: h.username_bytes().unwrap_or_default().to_vec(),
                    group: h.groupname_bytes().unwrap_or_default().to_vec(),
                    mtime: h.mtime().expect("mtime"),
                    content,
                    link,
                },
            ));
        }
        out
    }

    fn tar_of(ctx: &BuildContext) -> Vec<u8> {
        let mut bytes = Vec::new();
        ctx.write_tar(&mut bytes).expect("write_tar");
        bytes
    }

    #[test]
    fn tar_matches_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let long_dir = "d".repeat(120);
        let long_file = format!("{long_dir}/{}", "f".repeat(150));
        build_tree(
            root,
            &[
                "Dockerfile",
                "src/main.rs",
                "run.sh",
                "empty/",
                "link -> src/main.rs",
            ],
        );
        write(root, &long_file, "long");
        let long_target = format!("{}/{}", "t".repeat(100), "u".repeat(100));
        std::os::unix::fs::symlink(&long_target, root.join("longlink")).expect("symlink");
        fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o700)).expect("chmod");
        fs::set_permissions(root.join("src/main.rs"), fs::Permissions::from_mode(0o600))
            .expect("chmod");

        let ctx =
            BuildContext::open(root, DockerfileSource::Path("Dockerfile".into())).expect("open");
        let entries = ctx.entries().expect("entries");
        let tar = read_back(&tar_of(&ctx));
        assert_eq!(
            tar.len(),
            entries.len(),
            "nothing extra when nothing is excluded"
        );
        for (entry, (name, got)) in entries.iter().zip(&tar) {
            let want_name = match entry.kind {
                EntryKind::Dir => format!("{}/", entry.path),
                _ => entry.path.clone(),
            };
            assert_eq!(name, &want_name);
            let (kind, mode) = match entry.kind {
                EntryKind::Dir => (EntryType::Directory, 0o755),
                EntryKind::Symlink => (EntryType::Symlink, 0o644),
                EntryKind::File if entry.executable => (EntryType::Regular, 0o755),
                EntryKind::File => (EntryType::Regular, 0o644),
            };
            let content = match entry.kind {
                EntryKind::File => fs::read(root.join(&entry.path)).expect("read"),
                _ => Vec::new(),
            };
            let want = ReadBack {
                kind,
                mode,
                uid: 0,
                gid: 0,
                user: Vec::new(),
                group: Vec::new(),
                mtime: entry.mtime,
                content,
                link: entry.link_target.clone(),
            };
            assert_eq!(got, &want, "{name}");
        }
        let names: Vec<&str> = tar.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names.contains(&long_file.as_str()),
            "long name survives: {names:?}"
        );
        let longlink = tar.iter().find(|(n, _)| n == "longlink").expect("longlink");
        assert_eq!(longlink.1.link.as_deref(), Some(Path::new(&long_target)));
    }

    #[test]
    fn excluded_dockerfile_and_ignore_file_are_still_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        build_tree(root, &["docker/app.Dockerfile", "docker/other", "keep"]);
        write(root, "docker/app.Dockerfile.dockerignore", "docker\n");
        let ctx = BuildContext::open(
            root,
            DockerfileSource::Path("./docker/app.Dockerfile".into()),
        )
        .expect("open");
        assert_eq!(ctx.dockerfile_in_tar(), "docker/app.Dockerfile");
        let entries: Vec<String> = ctx
            .entries()
            .expect("entries")
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(entries, ["keep"]);
        let tar = read_back(&tar_of(&ctx));
        let names: Vec<&str> = tar.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "keep",
                "docker/app.Dockerfile",
                "docker/app.Dockerfile.dockerignore"
            ]
        );
        assert_eq!(tar[1].1.content, b"docker/app.Dockerfile");
        assert_eq!(tar[2].1.content, b"docker\n");
    }

    #[test]
    fn inline_dockerfile_is_sent_under_its_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        build_tree(root, &["a"]);
        let ctx = BuildContext::open(root, DockerfileSource::Inline("FROM scratch\n".into()))
            .expect("open");
        let tar = read_back(&tar_of(&ctx));
        let files: BTreeMap<&str, &[u8]> = tar
            .iter()
            .map(|(n, r)| (n.as_str(), r.content.as_slice()))
            .collect();
        assert_eq!(
            files.get(INLINE_DOCKERFILE_NAME),
            Some(&&b"FROM scratch\n"[..])
        );
        assert_eq!(files.get("a"), Some(&&b"a"[..]));
        assert_eq!(files.len(), 2);
        assert_eq!(ctx.dockerfile_in_tar(), INLINE_DOCKERFILE_NAME);
    }

    /// Counts bytes and remembers the largest single write.
    struct Meter<W> {
        inner: W,
        total: u64,
        largest_write: usize,
    }

    impl<W: Write> Write for Meter<W> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = self.inner.write(buf)?;
            self.total += n as u64;
            self.largest_write = self.largest_write.max(n);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }

    #[test]
    fn large_file_streams_in_chunks() {
        const SIZE: u64 = 200 * 1024 * 1024;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        build_tree(root, &["Dockerfile"]);
        // Sparse: no disk space is used, but reading yields 200 MiB of zeros.
        fs::File::create(root.join("big.bin"))
            .and_then(|f| f.set_len(SIZE))
            .expect("create sparse file");
        let ctx =
            BuildContext::open(root, DockerfileSource::Path("Dockerfile".into())).expect("open");
        let mut meter = Meter {
            inner: io::sink(),
            total: 0,
            largest_write: 0,
        };
        ctx.write_tar(&mut meter).expect("write_tar");
        // Two headers, the data, the Dockerfile's one data block and the
        // 1 KiB end-of-archive marker.
        assert_eq!(meter.total, SIZE + 3 * 512 + 1024);
        assert!(
            meter.largest_write <= 1024 * 1024,
            "a {} byte write means a file was buffered whole",
            meter.largest_write
        );
    }

    #[test]
    fn file_changing_size_is_an_error_not_a_corrupt_tar() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        build_tree(root, &["Dockerfile", "grow", "shrink"]);
        let ctx =
            BuildContext::open(root, DockerfileSource::Path("Dockerfile".into())).expect("open");
        let entries = ctx.entries().expect("entries");
        let build_files = ctx.build_files().expect("build files");

        write(root, "grow", "grown much larger");
        let err = write_tar(root, &entries, &build_files, io::sink()).expect_err("grew");
        assert!(
            matches!(err, ContextError::ChangedWhileReading { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("grow"), "{err}");

        write(root, "grow", "grow");
        write(root, "shrink", "s");
        let err = write_tar(root, &entries, &build_files, io::sink()).expect_err("shrank");
        assert!(err.to_string().contains("shrink"), "{err}");

        fs::remove_file(root.join("shrink")).expect("rm");
        let err = write_tar(root, &entries, &build_files, io::sink()).expect_err("vanished");
        assert!(matches!(err, ContextError::ReadFile { .. }), "{err}");
        assert!(err.to_string().contains("shrink"), "{err}");
    }

    #[test]
    fn file_swapped_after_the_walk_is_an_error_not_outside_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        build_tree(root, &["Dockerfile", "data", "other"]);
        let outside = tempfile::tempdir().expect("tempdir");
        write(outside.path(), "secret", "SECR");
        let ctx =
            BuildContext::open(root, DockerfileSource::Path("Dockerfile".into())).expect("open");
        let entries = ctx.entries().expect("entries");
        let build_files = ctx.build_files().expect("build files");
        let changed = |err: ContextError, rel: &str| {
            assert!(
                matches!(err, ContextError::ChangedWhileReading { .. }),
                "{err}"
            );
            assert!(err.to_string().contains(rel), "{err}");
        };

        // A symlink out of the context, to a file of the same size.
        fs::remove_file(root.join("data")).expect("rm");
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("data"))
            .expect("symlink");
        let mut tar = Vec::new();
        let err = write_tar(root, &entries, &build_files, &mut tar).expect_err("symlink");
        changed(err, "data");
        assert!(
            !tar.windows(4).any(|w| w == b"SECR"),
            "outside data reached the tar"
        );

        // Another file (same size) renamed over the one the walk saw.
        fs::remove_file(root.join("data")).expect("rm");
        write(root, "data", "data");
        let entries = ctx.entries().expect("entries");
        write(root, "other.new", "OTHER");
        fs::rename(root.join("other.new"), root.join("other")).expect("rename");
        let err = write_tar(root, &entries, &build_files, io::sink()).expect_err("replaced");
        changed(err, "other");
    }

    #[test]
    fn writer_errors_are_reported_as_write_errors() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(ErrorKind::BrokenPipe, "pipe closed"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        build_tree(dir.path(), &["Dockerfile"]);
        let ctx = BuildContext::open(dir.path(), DockerfileSource::Path("Dockerfile".into()))
            .expect("open");
        let err = ctx.write_tar(Broken).expect_err("broken writer");
        assert!(matches!(err, ContextError::WriteTar { .. }), "{err}");
        assert!(err.to_string().contains("Dockerfile"), "{err}");
    }
}
