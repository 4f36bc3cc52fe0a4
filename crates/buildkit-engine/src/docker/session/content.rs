//! containerd's content service (`containerd.services.content.v1.Content`) over the build
//! session, our end: where a buildkitd's `local` cache exporter writes, and its importer
//! reads, the blobs of a cache kept in a directory on this machine, an OCI image layout
//! ([`OciLayout`]: `blobs/sha256/<hex>`, `oci-layout`, `index.json`). As BuildKit's own
//! client does, a session serves one store per directory under the id `local:<dir>`
//! ([`store_id`]); the daemon names the store of every call in the
//! `buildkit-attachable-store-id` header ([`STORE_ID_HEADER`]).
//!
//! The daemon's side is containerd's proxy store: `Info` (is a blob there? `NotFound` says
//! no, and the daemon relies on that code), `Read` (a range of a blob), `Write` (a stream of
//! `STAT`, `WRITE` and `COMMIT` actions), `Status` and `Abort` of a write; `List`, `Update`,
//! `Delete` and `ListStatuses` are served for completeness. A write goes to a file of its own
//! under the store's `ingest/`, is checked at commit against the digest and size it was
//! announced with, and only then renamed to its blob: a blob is never seen half written.
//! A digest is `sha256:` and 64 lowercase hex digits or it is refused, so no name a daemon
//! sends leaves the store's directory. The messages are written by hand from containerd's
//! `content.proto` (its field numbers); the service is tonic's generic server.
//!
//! Not for: which caches a build exports or imports, or when `index.json` is updated
//! (`kit.rs`, with [`OciLayout::put_index`] and [`OciLayout::tagged`]); containerd's own
//! socket; labels (this store keeps none).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{Body, BoxFuture, StdError, http};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

/// The gRPC service's name.
pub const SERVICE_NAME: &str = "containerd.services.content.v1.Content";

/// The header in which the daemon names the store a call is for (BuildKit's
/// `session/content.GRPCHeaderID`).
pub const STORE_ID_HEADER: &str = "buildkit-attachable-store-id";

/// Every method of the service, as the session announces them.
pub const METHODS: &[&str] = &[
    "/containerd.services.content.v1.Content/Info",
    "/containerd.services.content.v1.Content/Update",
    "/containerd.services.content.v1.Content/List",
    "/containerd.services.content.v1.Content/Delete",
    "/containerd.services.content.v1.Content/Read",
    "/containerd.services.content.v1.Content/Status",
    "/containerd.services.content.v1.Content/ListStatuses",
    "/containerd.services.content.v1.Content/Write",
    "/containerd.services.content.v1.Content/Abort",
];

/// The largest message we decode: containerd's proxy writer sends up to 8 MiB of data in
/// one `WRITE` (half gRPC-Go's default 16 MiB send limit).
const MAX_MESSAGE: usize = 32 << 20;

/// Bytes of blob in one `Read` response.
const READ_CHUNK: usize = 1 << 20;

/// The annotation naming a manifest's tag in `index.json` (OCI's `ref.name`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// containerd's annotation naming an image in `index.json`, looked at first for a tag (as
/// BuildKit's `ociindex` does).
pub const IMAGE_NAME: &str = "io.containerd.image.name";

/// The id under which a session serves the cache directory `dir` (what the daemon's `local`
/// cache exporter and importer make of their `dest` and `src` attributes).
pub fn store_id(dir: &Path) -> String {
    format!("local:{}", dir.display())
}

// The messages of containerd's content.proto (package containerd.services.content.v1).

/// A blob's description.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub digest: String,
    #[prost(int64, tag = "2")]
    pub size: i64,
    #[prost(message, optional, tag = "3")]
    pub created_at: Option<prost_types::Timestamp>,
    #[prost(message, optional, tag = "4")]
    pub updated_at: Option<prost_types::Timestamp>,
    #[prost(map = "string, string", tag = "5")]
    pub labels: HashMap<String, String>,
}

/// `Info`: which blob.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InfoRequest {
    #[prost(string, tag = "1")]
    pub digest: String,
}

/// `Info`'s answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InfoResponse {
    #[prost(message, optional, tag = "1")]
    pub info: Option<Info>,
}

/// `Update`: new labels for a blob (`update_mask` is a `google.protobuf.FieldMask`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateRequest {
    #[prost(message, optional, tag = "1")]
    pub info: Option<Info>,
    #[prost(message, optional, tag = "2")]
    pub update_mask: Option<prost_types::FieldMask>,
}

/// `Update`'s answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateResponse {
    #[prost(message, optional, tag = "1")]
    pub info: Option<Info>,
}

/// `List`: which blobs (containerd's filter syntax; we take none).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListContentRequest {
    #[prost(string, repeated, tag = "1")]
    pub filters: Vec<String>,
}

/// One block of `List`'s stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListContentResponse {
    #[prost(message, repeated, tag = "1")]
    pub info: Vec<Info>,
}

/// `Delete`: which blob.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteContentRequest {
    #[prost(string, tag = "1")]
    pub digest: String,
}

/// `Read`: a range of a blob (`size` 0: to its end).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadContentRequest {
    #[prost(string, tag = "1")]
    pub digest: String,
    #[prost(int64, tag = "2")]
    pub offset: i64,
    #[prost(int64, tag = "3")]
    pub size: i64,
}

/// One chunk of `Read`'s stream, and where in the blob it starts.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadContentResponse {
    #[prost(int64, tag = "1")]
    pub offset: i64,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// A write in progress.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteStatus {
    #[prost(message, optional, tag = "1")]
    pub started_at: Option<prost_types::Timestamp>,
    #[prost(message, optional, tag = "2")]
    pub updated_at: Option<prost_types::Timestamp>,
    #[prost(string, tag = "3")]
    pub r#ref: String,
    #[prost(int64, tag = "4")]
    pub offset: i64,
    #[prost(int64, tag = "5")]
    pub total: i64,
    #[prost(string, tag = "6")]
    pub expected: String,
}

/// `Status`: which write.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {
    #[prost(string, tag = "1")]
    pub r#ref: String,
}

/// `Status`'s answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<WriteStatus>,
}

/// `ListStatuses`: which writes (we take no filters).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListStatusesRequest {
    #[prost(string, repeated, tag = "1")]
    pub filters: Vec<String>,
}

/// `ListStatuses`' answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListStatusesResponse {
    #[prost(message, repeated, tag = "1")]
    pub statuses: Vec<WriteStatus>,
}

/// What one message of a `Write` stream asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum WriteAction {
    /// Say where the write is.
    Stat = 0,
    /// Append the message's data.
    Write = 1,
    /// Append the data, check the whole, make it a blob.
    Commit = 2,
}

/// One message of a `Write` stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteContentRequest {
    #[prost(enumeration = "WriteAction", tag = "1")]
    pub action: i32,
    #[prost(string, tag = "2")]
    pub r#ref: String,
    #[prost(int64, tag = "3")]
    pub total: i64,
    #[prost(string, tag = "4")]
    pub expected: String,
    #[prost(int64, tag = "5")]
    pub offset: i64,
    #[prost(bytes = "vec", tag = "6")]
    pub data: Vec<u8>,
    #[prost(map = "string, string", tag = "7")]
    pub labels: HashMap<String, String>,
}

/// The answer to one message of a `Write` stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteContentResponse {
    #[prost(enumeration = "WriteAction", tag = "1")]
    pub action: i32,
    #[prost(message, optional, tag = "2")]
    pub started_at: Option<prost_types::Timestamp>,
    #[prost(message, optional, tag = "3")]
    pub updated_at: Option<prost_types::Timestamp>,
    #[prost(int64, tag = "4")]
    pub offset: i64,
    #[prost(int64, tag = "5")]
    pub total: i64,
    #[prost(string, tag = "6")]
    pub digest: String,
}

/// `Abort`: which write.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AbortRequest {
    #[prost(string, tag = "1")]
    pub r#ref: String,
}

/// What went wrong with a content store (each one is the gRPC code containerd's store
/// answers for it).
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("{digest:?} is not a sha256 digest (sha256: and 64 lowercase hex digits)")]
    BadDigest { digest: String },
    #[error("content digest {digest}: not found")]
    NotFound { digest: String },
    #[error("content {digest}: already exists")]
    AlreadyExists { digest: String },
    #[error("unexpected commit size {actual}, expected {expected}")]
    SizeMismatch { expected: i64, actual: i64 },
    #[error("unexpected commit digest {actual}, expected {expected}")]
    DigestMismatch { expected: String, actual: String },
    #[error("{reason}")]
    OutOfRange { reason: String },
    #[error("ref {reference} locked: another write of it is under way")]
    Locked { reference: String },
    #[error("no write of ref {reference} is under way")]
    NoSuchWrite { reference: String },
    #[error("the write of ref {reference} was aborted")]
    Aborted { reference: String },
    #[error("{what}")]
    Invalid { what: String },
    #[error("{what} is not supported by this store")]
    Unsupported { what: String },
    #[error("the call names no content store (no {STORE_ID_HEADER} header)")]
    NoStoreId,
    #[error("unknown content store {id}")]
    UnknownStore { id: String },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not an OCI image index: {reason}", path.display())]
    BadIndex { path: PathBuf, reason: String },
}

/// The descriptors of an `index.json`'s `manifests`.
fn index_manifests(index: &serde_json::Value) -> Vec<serde_json::Value> {
    index
        .get("manifests")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default()
}

/// The descriptor of `manifests` tagged `tag`: containerd's image name first, then OCI's
/// `ref.name`, as BuildKit's client looks.
fn tagged_in(manifests: &[serde_json::Value], tag: &str) -> Option<serde_json::Value> {
    let annotated = |key: &str| {
        manifests
            .iter()
            .find(|m| m["annotations"][key].as_str() == Some(tag))
            .cloned()
    };
    annotated(IMAGE_NAME).or_else(|| annotated(REF_NAME))
}

/// Why an OCI layout does not give the image a named context asks for.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{} is not an OCI image layout: it has no index.json", dir.display())]
    NoIndex { dir: PathBuf },
    #[error("the OCI layout {} has no image tagged {tag:?} (its tags: {})", dir.display(), if tags.is_empty() { "none".to_string() } else { tags.join(", ") })]
    NoTag {
        dir: PathBuf,
        tag: String,
        tags: Vec<String>,
    },
    #[error("the OCI layout {} does not hold {digest}", dir.display())]
    MissingBlob { dir: PathBuf, digest: String },
    #[error(transparent)]
    Content(#[from] ContentError),
}

impl ContentError {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ContentError {
        let path = path.to_path_buf();
        move |source| ContentError::Io { what, path, source }
    }

    /// The gRPC code containerd's store answers for this.
    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            ContentError::BadDigest { .. }
            | ContentError::Invalid { .. }
            | ContentError::NoStoreId
            | ContentError::BadIndex { .. } => Code::InvalidArgument,
            ContentError::NotFound { .. }
            | ContentError::NoSuchWrite { .. }
            | ContentError::UnknownStore { .. } => Code::NotFound,
            ContentError::AlreadyExists { .. } => Code::AlreadyExists,
            ContentError::SizeMismatch { .. }
            | ContentError::DigestMismatch { .. }
            | ContentError::Unsupported { .. } => Code::FailedPrecondition,
            ContentError::OutOfRange { .. } => Code::OutOfRange,
            ContentError::Locked { .. } => Code::Unavailable,
            ContentError::Aborted { .. } => Code::Aborted,
            ContentError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Code::NotFound
            }
            ContentError::Io { .. } => Code::Internal,
        }
    }
}

impl From<ContentError> for Status {
    fn from(e: ContentError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

/// The hex of a `sha256:<64 lowercase hex>` digest; anything else is refused.
pub fn digest_hex(digest: &str) -> Result<&str, ContentError> {
    digest
        .strip_prefix("sha256:")
        .filter(|_| crate::docker::plan::is_sha256_digest(digest))
        .ok_or_else(|| ContentError::BadDigest {
            digest: digest.to_string(),
        })
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

/// An OCI image layout directory: its blobs and its `index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciLayout {
    root: PathBuf,
}

impl OciLayout {
    /// The layout at `root` (nothing is created until something is written).
    pub fn new(root: impl Into<PathBuf>) -> OciLayout {
        OciLayout { root: root.into() }
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` is (whether or not it is there).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ContentError> {
        Ok(self
            .root
            .join("blobs")
            .join("sha256")
            .join(digest_hex(digest)?))
    }

    /// Where writes in progress are kept.
    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// The path of `index.json`.
    pub fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// The blob `digest`'s size and times; [`ContentError::NotFound`] when it is not there.
    pub async fn info(&self, digest: &str) -> Result<Info, ContentError> {
        let path = self.blob_path(digest)?;
        let meta = match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                return Err(ContentError::NotFound {
                    digest: digest.to_string(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ContentError::NotFound {
                    digest: digest.to_string(),
                });
            }
            Err(e) => return Err(ContentError::io("cannot read", &path)(e)),
        };
        let updated = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let created = meta.created().unwrap_or(updated);
        Ok(Info {
            digest: digest.to_string(),
            size: i64::try_from(meta.len()).unwrap_or(i64::MAX),
            created_at: Some(timestamp(created)),
            updated_at: Some(timestamp(updated)),
            labels: HashMap::new(),
        })
    }

    /// Every blob of the layout (names that are not a sha256 digest's hex are passed over).
    pub async fn list(&self) -> Result<Vec<Info>, ContentError> {
        let dir = self.root.join("blobs").join("sha256");
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ContentError::io("cannot list", &dir)(e)),
        };
        let mut out = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(ContentError::io("cannot list", &dir))?
        {
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if digest_hex(&digest).is_err() {
                continue;
            }
            match self.info(&digest).await {
                Ok(info) => out.push(info),
                Err(ContentError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// The layout's `index.json`, `None` when there is none.
    pub fn read_index(&self) -> Result<Option<serde_json::Value>, ContentError> {
        let path = self.index_path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ContentError::io("cannot read", &path)(e)),
        };
        let index: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| ContentError::BadIndex {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if !index.is_object() {
            return Err(ContentError::BadIndex {
                path,
                reason: "it is not a JSON object".to_string(),
            });
        }
        Ok(Some(index))
    }

    /// The descriptor `index.json` has under `tag` (containerd's image name first, then
    /// OCI's `ref.name`, as BuildKit's client looks), `None` when it has none or there is no
    /// `index.json`.
    pub fn tagged(&self, tag: &str) -> Result<Option<serde_json::Value>, ContentError> {
        Ok(self
            .read_index()?
            .and_then(|index| tagged_in(&index_manifests(&index), tag)))
    }

    /// The digest of the image `tag` names in the layout (an `oci-layout://` named context,
    /// as buildx resolves one): `digest` when given (it must be a blob here); else the
    /// manifest `index.json` tags `tag`, else its only manifest when it has one.
    pub fn resolve_image(&self, tag: &str, digest: Option<&str>) -> Result<String, LayoutError> {
        let dir = self.root.clone();
        let Some(index) = self.read_index()? else {
            return Err(LayoutError::NoIndex { dir });
        };
        let found = match digest {
            Some(d) => d.to_string(),
            None => {
                let manifests = index_manifests(&index);
                let only = (manifests.len() == 1).then(|| manifests[0].clone());
                let Some(desc) = tagged_in(&manifests, tag).or(only) else {
                    let mut tags: Vec<String> = manifests
                        .iter()
                        .filter_map(|m| {
                            m["annotations"][REF_NAME]
                                .as_str()
                                .or(m["annotations"][IMAGE_NAME].as_str())
                                .map(str::to_string)
                        })
                        .collect();
                    tags.dedup();
                    return Err(LayoutError::NoTag {
                        dir,
                        tag: tag.to_string(),
                        tags,
                    });
                };
                match desc.get("digest").and_then(|d| d.as_str()) {
                    Some(d) => d.to_string(),
                    None => {
                        return Err(ContentError::BadIndex {
                            path: self.index_path(),
                            reason: format!("the manifest of tag {tag} has no digest"),
                        }
                        .into());
                    }
                }
            }
        };
        if self.blob_path(&found)?.is_file() {
            Ok(found)
        } else {
            Err(LayoutError::MissingBlob { dir, digest: found })
        }
    }

    /// Puts `descriptor` in `index.json` under `tag` (OCI's `ref.name`), in place of any
    /// manifest with that tag, and writes `oci-layout`: BuildKit's client's update after a
    /// cache export. Blocking: `index.json` is locked while it is rewritten (an `flock` on
    /// `index.json.lock`, as BuildKit takes it), and replaced whole.
    pub fn put_index(&self, descriptor: &serde_json::Value, tag: &str) -> Result<(), ContentError> {
        std::fs::create_dir_all(&self.root)
            .map_err(ContentError::io("cannot create", &self.root))?;
        let _lock = IndexLock::take(&self.root.join("index.json.lock"))?;
        let layout = self.root.join("oci-layout");
        write_replacing(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let mut index = self.read_index()?.unwrap_or_else(|| serde_json::json!({}));
        let Some(object) = index.as_object_mut() else {
            return Err(ContentError::BadIndex {
                path: self.index_path(),
                reason: "it is not a JSON object".to_string(),
            });
        };
        if object
            .get("schemaVersion")
            .and_then(|v| v.as_i64())
            .unwrap_or(0)
            == 0
        {
            object.insert("schemaVersion".into(), 2.into());
        }
        if object
            .get("mediaType")
            .and_then(|v| v.as_str())
            .is_none_or(str::is_empty)
        {
            object.insert(
                "mediaType".into(),
                "application/vnd.oci.image.index.v1+json".into(),
            );
        }
        let mut manifests: Vec<serde_json::Value> = object
            .get("manifests")
            .and_then(|m| m.as_array())
            .cloned()
            .unwrap_or_default();
        // A tag replaces the manifest of that tag (and no image name).
        manifests.retain(|m| {
            let a = &m["annotations"];
            a[REF_NAME].as_str() != Some(tag)
                || a[IMAGE_NAME].as_str().is_some_and(|n| !n.is_empty())
        });
        let mut descriptor = descriptor.clone();
        let Some(d) = descriptor.as_object_mut() else {
            return Err(ContentError::Invalid {
                what: "a descriptor is a JSON object".to_string(),
            });
        };
        let annotations = d
            .entry("annotations")
            .or_insert_with(|| serde_json::json!({}));
        if !annotations.is_object() {
            *annotations = serde_json::json!({});
        }
        if let Some(a) = annotations.as_object_mut() {
            a.insert(REF_NAME.into(), tag.into());
        }
        manifests.push(descriptor);
        object.insert("manifests".into(), manifests.into());
        let text = serde_json::to_vec(&index).map_err(|e| ContentError::BadIndex {
            path: self.index_path(),
            reason: e.to_string(),
        })?;
        write_replacing(&self.index_path(), &text)
    }

    /// Removes the layout's `ingest/` when no write is left in it.
    pub fn tidy(&self) {
        let _ = std::fs::remove_dir(self.ingest_dir());
    }
}

/// Writes `path` whole: beside it, then renamed over it.
fn write_replacing(path: &Path, data: &[u8]) -> Result<(), ContentError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}.partial-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&partial, data).map_err(ContentError::io("cannot write", &partial))?;
    std::fs::rename(&partial, path).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        ContentError::io("cannot replace", path)(e)
    })
}

/// An exclusive lock on `index.json.lock`, removed when released.
struct IndexLock {
    path: PathBuf,
    #[cfg(unix)]
    _file: std::fs::File,
}

impl IndexLock {
    #[cfg(unix)]
    fn take(path: &Path) -> Result<IndexLock, ContentError> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        loop {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .map_err(ContentError::io("cannot open", path))?;
            // SAFETY: flock on a descriptor we own, for as long as we hold the file.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(ContentError::io("cannot lock", path)(
                    std::io::Error::last_os_error(),
                ));
            }
            // Its last holder may have removed the file we waited on: lock the one there now.
            let held = file
                .metadata()
                .map_err(ContentError::io("cannot lock", path))?;
            match std::fs::metadata(path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(IndexLock {
                        path: path.to_path_buf(),
                        _file: file,
                    });
                }
                _ => continue,
            }
        }
    }

    #[cfg(not(unix))]
    fn take(path: &Path) -> Result<IndexLock, ContentError> {
        Ok(IndexLock {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for IndexLock {
    fn drop(&mut self) {
        // Removed while still held (the file is closed, and the lock released, after this).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where one write in progress is, for `Status` and `Abort` from other calls.
#[derive(Debug, Clone)]
struct Progress {
    started: SystemTime,
    updated: SystemTime,
    offset: i64,
    total: i64,
    expected: String,
    aborted: bool,
}

/// One store of the session: its layout, and the writes under way in it by ref.
#[derive(Debug)]
struct Store {
    layout: OciLayout,
    writes: Mutex<BTreeMap<String, Arc<Mutex<Progress>>>>,
}

impl Store {
    fn writes(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Mutex<Progress>>>> {
        self.writes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn progress_of(p: &Mutex<Progress>) -> Progress {
    p.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn write_status(reference: &str, p: &Progress) -> WriteStatus {
    WriteStatus {
        started_at: Some(timestamp(p.started)),
        updated_at: Some(timestamp(p.updated)),
        r#ref: reference.to_string(),
        offset: p.offset,
        total: p.total,
        expected: p.expected.clone(),
    }
}

/// A write of one ref: a file of its own under `ingest/` until it is committed; removed,
/// with its ref's lock, when it ends any other way.
struct Ingest {
    store: Arc<Store>,
    reference: String,
    path: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    offset: i64,
    progress: Arc<Mutex<Progress>>,
}

impl Ingest {
    async fn begin(
        store: Arc<Store>,
        reference: &str,
        total: i64,
        expected: &str,
    ) -> Result<Ingest, ContentError> {
        let now = SystemTime::now();
        let progress = Arc::new(Mutex::new(Progress {
            started: now,
            updated: now,
            offset: 0,
            total,
            expected: expected.to_string(),
            aborted: false,
        }));
        {
            let mut writes = store.writes();
            if writes.contains_key(reference) {
                return Err(ContentError::Locked {
                    reference: reference.to_string(),
                });
            }
            writes.insert(reference.to_string(), progress.clone());
        }
        // From here, dropping the ingest releases the ref.
        let dir = store.layout.ingest_dir();
        let path = dir.join(format!("{}.partial", uuid::Uuid::new_v4().simple()));
        let mut ingest = Ingest {
            store,
            reference: reference.to_string(),
            path,
            file: None,
            hasher: Sha256::new(),
            offset: 0,
            progress,
        };
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(ContentError::io("cannot create", &dir))?;
        let file = tokio::fs::File::create(&ingest.path)
            .await
            .map_err(ContentError::io("cannot create", &ingest.path))?;
        ingest.file = Some(file);
        Ok(ingest)
    }

    fn digest(&self) -> String {
        format!("sha256:{:x}", self.hasher.clone().finalize())
    }

    fn progress(&self) -> Progress {
        progress_of(&self.progress)
    }

    fn file(&mut self) -> Result<&mut tokio::fs::File, ContentError> {
        self.file.as_mut().ok_or_else(|| ContentError::Invalid {
            what: "the write is closed".to_string(),
        })
    }

    fn update(&self, change: impl FnOnce(&mut Progress)) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut p);
        p.offset = self.offset;
        p.updated = SystemTime::now();
    }

    /// Starts over from the first byte.
    async fn truncate(&mut self) -> Result<(), ContentError> {
        let path = self.path.clone();
        let file = self.file()?;
        file.set_len(0)
            .await
            .map_err(ContentError::io("cannot truncate", &path))?;
        file.seek(SeekFrom::Start(0))
            .await
            .map_err(ContentError::io("cannot truncate", &path))?;
        self.hasher = Sha256::new();
        self.offset = 0;
        self.update(|_| {});
        Ok(())
    }

    async fn append(&mut self, data: &[u8]) -> Result<(), ContentError> {
        let path = self.path.clone();
        self.file()?
            .write_all(data)
            .await
            .map_err(ContentError::io("cannot write", &path))?;
        self.hasher.update(data);
        self.offset += data.len() as i64;
        self.update(|_| {});
        Ok(())
    }

    /// Checks the write against `total` (when positive) and `expected` (when set) and
    /// renames it to its blob; its digest.
    async fn commit(&mut self, total: i64, expected: &str) -> Result<String, ContentError> {
        let path = self.path.clone();
        let mut file = self.file.take().ok_or_else(|| ContentError::Invalid {
            what: "the write is closed".to_string(),
        })?;
        file.flush()
            .await
            .map_err(ContentError::io("cannot write", &path))?;
        file.sync_all()
            .await
            .map_err(ContentError::io("cannot write", &path))?;
        drop(file);
        if total > 0 && total != self.offset {
            return Err(ContentError::SizeMismatch {
                expected: total,
                actual: self.offset,
            });
        }
        let actual = self.digest();
        if !expected.is_empty() && expected != actual {
            return Err(ContentError::DigestMismatch {
                expected: expected.to_string(),
                actual,
            });
        }
        let target = self.store.layout.blob_path(&actual)?;
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(ContentError::io("cannot create", dir))?;
        }
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            return Err(ContentError::AlreadyExists { digest: actual });
        }
        tokio::fs::rename(&self.path, &target)
            .await
            .map_err(ContentError::io("cannot move the blob to", &target))?;
        Ok(actual)
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.file = None;
        // After a commit the file is the blob: this finds nothing.
        let _ = std::fs::remove_file(&self.path);
        self.store.writes().remove(&self.reference);
    }
}

/// The content service of one session: its stores by id.
#[derive(Debug, Default)]
pub struct ContentService {
    stores: BTreeMap<String, Arc<Store>>,
}

type Answer<T> = Result<Response<T>, Status>;
type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl ContentService {
    /// The service of `stores` (directories by store id, see [`store_id`]).
    pub fn new(stores: &BTreeMap<String, PathBuf>) -> ContentService {
        ContentService {
            stores: stores
                .iter()
                .map(|(id, dir)| {
                    (
                        id.clone(),
                        Arc::new(Store {
                            layout: OciLayout::new(dir),
                            writes: Mutex::default(),
                        }),
                    )
                })
                .collect(),
        }
    }

    /// The store a call's metadata names.
    fn store(&self, metadata: &MetadataMap) -> Result<Arc<Store>, ContentError> {
        let id = metadata
            .get(STORE_ID_HEADER)
            .ok_or(ContentError::NoStoreId)?
            .to_str()
            .map_err(|_| ContentError::NoStoreId)?;
        self.stores
            .get(id)
            .cloned()
            .ok_or_else(|| ContentError::UnknownStore { id: id.to_string() })
    }

    async fn info(&self, request: Request<InfoRequest>) -> Answer<InfoResponse> {
        let store = self.store(request.metadata())?;
        let info = store.layout.info(&request.get_ref().digest).await?;
        Ok(Response::new(InfoResponse { info: Some(info) }))
    }

    async fn update(&self, request: Request<UpdateRequest>) -> Answer<UpdateResponse> {
        let store = self.store(request.metadata())?;
        let wanted = request.into_inner();
        let given = wanted.info.unwrap_or_default();
        let info = store.layout.info(&given.digest).await?;
        let paths = wanted.update_mask.map(|m| m.paths).unwrap_or_default();
        if !given.labels.is_empty() || paths.iter().any(|p| p.starts_with("labels")) {
            return Err(ContentError::Unsupported {
                what: "setting labels".to_string(),
            }
            .into());
        }
        Ok(Response::new(UpdateResponse { info: Some(info) }))
    }

    async fn list(
        &self,
        request: Request<ListContentRequest>,
    ) -> Answer<Streamed<ListContentResponse>> {
        let store = self.store(request.metadata())?;
        if !request.get_ref().filters.is_empty() {
            return Err(ContentError::Unsupported {
                what: "filtering a list".to_string(),
            }
            .into());
        }
        let all = store.layout.list().await?;
        let blocks: Vec<Result<ListContentResponse, Status>> = all
            .chunks(100)
            .map(|c| Ok(ListContentResponse { info: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(blocks))))
    }

    async fn delete(&self, request: Request<DeleteContentRequest>) -> Answer<()> {
        let store = self.store(request.metadata())?;
        let digest = &request.get_ref().digest;
        let path = store.layout.blob_path(digest)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(Response::new(())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ContentError::NotFound {
                digest: digest.clone(),
            }
            .into()),
            Err(e) => Err(ContentError::io("cannot remove", &path)(e).into()),
        }
    }

    async fn read(
        &self,
        request: Request<ReadContentRequest>,
    ) -> Answer<Streamed<ReadContentResponse>> {
        let store = self.store(request.metadata())?;
        let wanted = request.into_inner();
        let info = store.layout.info(&wanted.digest).await?;
        let offset = wanted.offset.max(0);
        if offset > info.size {
            return Err(ContentError::OutOfRange {
                reason: format!("read past object length {} bytes", info.size),
            }
            .into());
        }
        let size = if wanted.size <= 0 || offset.saturating_add(wanted.size) > info.size {
            info.size - offset
        } else {
            wanted.size
        };
        let path = store.layout.blob_path(&wanted.digest)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(ContentError::io("cannot open", &path))?;
        file.seek(SeekFrom::Start(offset as u64))
            .await
            .map_err(ContentError::io("cannot read", &path))?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut at = offset;
            let mut left = size;
            while left > 0 {
                let n = (left as u64).min(READ_CHUNK as u64) as usize;
                let mut data = vec![0u8; n];
                if let Err(e) = file.read_exact(&mut data).await {
                    let _ = tx
                        .send(Err(ContentError::io("cannot read", &path)(e).into()))
                        .await;
                    return;
                }
                if tx
                    .send(Ok(ReadContentResponse { offset: at, data }))
                    .await
                    .is_err()
                {
                    return;
                }
                at += n as i64;
                left -= n as i64;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn status(&self, request: Request<StatusRequest>) -> Answer<StatusResponse> {
        let store = self.store(request.metadata())?;
        let reference = &request.get_ref().r#ref;
        let Some(p) = store.writes().get(reference).cloned() else {
            return Err(ContentError::NoSuchWrite {
                reference: reference.clone(),
            }
            .into());
        };
        Ok(Response::new(StatusResponse {
            status: Some(write_status(reference, &progress_of(&p))),
        }))
    }

    async fn list_statuses(
        &self,
        request: Request<ListStatusesRequest>,
    ) -> Answer<ListStatusesResponse> {
        let store = self.store(request.metadata())?;
        if !request.get_ref().filters.is_empty() {
            return Err(ContentError::Unsupported {
                what: "filtering a list".to_string(),
            }
            .into());
        }
        let statuses = store
            .writes()
            .iter()
            .map(|(r, p)| write_status(r, &progress_of(p)))
            .collect();
        Ok(Response::new(ListStatusesResponse { statuses }))
    }

    async fn abort(&self, request: Request<AbortRequest>) -> Answer<()> {
        let store = self.store(request.metadata())?;
        let reference = &request.get_ref().r#ref;
        let Some(p) = store.writes().get(reference).cloned() else {
            return Err(ContentError::NoSuchWrite {
                reference: reference.clone(),
            }
            .into());
        };
        // The write's own stream stops at its next message, and removes its file.
        p.lock().unwrap_or_else(|e| e.into_inner()).aborted = true;
        Ok(Response::new(()))
    }

    async fn write(
        &self,
        request: Request<Streaming<WriteContentRequest>>,
    ) -> Answer<Streamed<WriteContentResponse>> {
        let store = self.store(request.metadata())?;
        let incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            if let Err(e) = write_stream(store, incoming, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// One `Write` stream, as containerd's content server runs it: the first message names
/// the ref (and maybe the size and digest to expect); each message is answered; `COMMIT`
/// ends it.
async fn write_stream(
    store: Arc<Store>,
    mut incoming: Streaming<WriteContentRequest>,
    tx: &mpsc::Sender<Result<WriteContentResponse, Status>>,
) -> Result<(), Status> {
    let Some(mut request) = incoming.message().await? else {
        return Ok(());
    };
    if request.r#ref.is_empty() {
        return Err(ContentError::Invalid {
            what: "first message must have a reference".to_string(),
        }
        .into());
    }
    let mut total = request.total;
    let mut expected = String::new();
    let mut ingest: Option<Ingest> = None;
    loop {
        let action = WriteAction::try_from(request.action).map_err(|_| ContentError::Invalid {
            what: format!("unknown write action {}", request.action),
        })?;
        if !request.expected.is_empty() {
            digest_hex(&request.expected)?;
            expected = request.expected.clone();
            // A blob that is there already needs no write (the writer takes that as done).
            if store.layout.info(&expected).await.is_ok() {
                return Err(ContentError::AlreadyExists { digest: expected }.into());
            }
        }
        if request.total > 0 {
            total = request.total;
        }
        let ingest = match &mut ingest {
            Some(i) => i,
            None => {
                ingest.insert(Ingest::begin(store.clone(), &request.r#ref, total, &expected).await?)
            }
        };
        if ingest.progress().aborted {
            return Err(ContentError::Aborted {
                reference: ingest.reference.clone(),
            }
            .into());
        }
        ingest.update(|p| {
            p.total = total;
            p.expected = expected.clone();
        });
        let mut answer = WriteContentResponse {
            action: action as i32,
            ..WriteContentResponse::default()
        };
        match action {
            WriteAction::Stat => {}
            WriteAction::Write | WriteAction::Commit => {
                if request.offset > 0 && request.offset != ingest.offset {
                    return Err(ContentError::OutOfRange {
                        reason: format!(
                            "write @{} must occur at current offset {}",
                            request.offset, ingest.offset
                        ),
                    }
                    .into());
                }
                if request.offset == 0 && ingest.offset > 0 {
                    ingest.truncate().await?;
                }
                if !request.data.is_empty() {
                    ingest.append(&request.data).await?;
                }
            }
        }
        answer.offset = ingest.offset;
        answer.digest = ingest.digest();
        if action != WriteAction::Write {
            let p = ingest.progress();
            answer.started_at = Some(timestamp(p.started));
            answer.updated_at = Some(timestamp(p.updated));
            answer.total = total;
        }
        if action == WriteAction::Commit {
            answer.digest = ingest.commit(total, &expected).await?;
        }
        if tx.send(Ok(answer)).await.is_err() || action == WriteAction::Commit {
            return Ok(());
        }
        match incoming.message().await {
            Ok(Some(next)) => request = next,
            Ok(None) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The content service as a tonic service (for [`tonic::service::Routes`]).
#[derive(Debug, Clone)]
pub struct ContentServer {
    inner: Arc<ContentService>,
}

impl ContentServer {
    /// Serves `service`.
    pub fn new(service: ContentService) -> ContentServer {
        ContentServer {
            inner: Arc::new(service),
        }
    }
}

impl tonic::server::NamedService for ContentServer {
    const NAME: &'static str = SERVICE_NAME;
}

/// tonic's server side of one call, with prost messages and room for 8 MiB writes.
fn grpc<Out, In>() -> tonic::server::Grpc<tonic_prost::ProstCodec<Out, In>>
where
    Out: prost::Message + Send + 'static,
    In: prost::Message + Default + Send + 'static,
{
    tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// A service of one method: `call` on the shared service.
macro_rules! method {
    ($inner:expr, $method:ident, $request:ty) => {{
        let inner = $inner.clone();
        tower::service_fn(move |r: $request| {
            let inner = inner.clone();
            async move { inner.$method(r).await }
        })
    }};
}

impl<B> tower::Service<http::Request<B>> for ContentServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let path = req.uri().path().to_string();
            let method = path
                .strip_prefix('/')
                .and_then(|p| p.strip_prefix(SERVICE_NAME))
                .and_then(|m| m.strip_prefix('/'))
                .unwrap_or_default();
            Ok(match method {
                "Info" => {
                    grpc::<InfoResponse, InfoRequest>()
                        .unary(method!(inner, info, Request<InfoRequest>), req)
                        .await
                }
                "Update" => {
                    grpc::<UpdateResponse, UpdateRequest>()
                        .unary(method!(inner, update, Request<UpdateRequest>), req)
                        .await
                }
                "List" => {
                    grpc::<ListContentResponse, ListContentRequest>()
                        .server_streaming(method!(inner, list, Request<ListContentRequest>), req)
                        .await
                }
                "Delete" => {
                    grpc::<(), DeleteContentRequest>()
                        .unary(method!(inner, delete, Request<DeleteContentRequest>), req)
                        .await
                }
                "Read" => {
                    grpc::<ReadContentResponse, ReadContentRequest>()
                        .server_streaming(method!(inner, read, Request<ReadContentRequest>), req)
                        .await
                }
                "Status" => {
                    grpc::<StatusResponse, StatusRequest>()
                        .unary(method!(inner, status, Request<StatusRequest>), req)
                        .await
                }
                "ListStatuses" => {
                    grpc::<ListStatusesResponse, ListStatusesRequest>()
                        .unary(
                            method!(inner, list_statuses, Request<ListStatusesRequest>),
                            req,
                        )
                        .await
                }
                "Write" => {
                    grpc::<WriteContentResponse, WriteContentRequest>()
                        .streaming(
                            method!(inner, write, Request<Streaming<WriteContentRequest>>),
                            req,
                        )
                        .await
                }
                "Abort" => {
                    grpc::<(), AbortRequest>()
                        .unary(method!(inner, abort, Request<AbortRequest>), req)
                        .await
                }
                _ => Status::unimplemented(format!("{SERVICE_NAME} has no method {method:?}"))
                    .into_http(),
            })
        })
    }
}
