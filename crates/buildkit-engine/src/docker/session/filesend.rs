//! FileSend, our end: where a buildkitd's `docker` and `oci` exporters write their tarball.
//! The daemon opens `FileSend.DiffCopy` once per exporter that writes a file, naming the
//! exporter by its index in the solve's list (BuildKit's `buildkit-attachable-exporter-id`
//! header), and streams the tarball as `BytesMessage`s; it closes its side and waits for
//! ours to end, so we end the response only once every byte is written.
//!
//! A file target is written beside its path and renamed into place when the stream ends
//! well: a failed export leaves the previous tarball as it was. A channel target hands the
//! bytes on (e.g. to a Docker daemon's `/images/load`).
//!
//! Not for: what to export (`kit.rs`), the context (`filesync.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bollard_buildkit_proto::moby::filesync::v1::BytesMessage;
use bollard_buildkit_proto::moby::filesync::v1::file_send_server::FileSend;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// BuildKit's header naming the exporter a FileSend stream is for.
pub const EXPORTER_ID_HEADER: &str = "buildkit-attachable-exporter-id";

/// Where one exporter's file goes.
#[derive(Debug)]
pub enum FileTarget {
    /// A file, replaced only when the whole tarball arrived.
    Path(PathBuf),
    /// A channel: the bytes as they come; an error ends it early.
    Channel(mpsc::Sender<std::io::Result<Bytes>>),
}

/// The FileSend service of one session: its targets by exporter id, and the bytes each one
/// was sent.
#[derive(Debug, Default)]
pub struct FileSendService {
    pub targets: Mutex<BTreeMap<u32, FileTarget>>,
    pub written: Arc<Mutex<BTreeMap<u32, u64>>>,
}

type BytesResult = Result<BytesMessage, Status>;

fn exporter_id(request: &Request<Streaming<BytesMessage>>) -> Result<u32, Status> {
    match request.metadata().get(EXPORTER_ID_HEADER) {
        None => Ok(0),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Status::invalid_argument("the exporter id is not a number")),
    }
}

#[tonic::async_trait]
impl FileSend for FileSendService {
    type DiffCopyStream = ReceiverStream<BytesResult>;

    async fn diff_copy(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> Result<Response<Self::DiffCopyStream>, Status> {
        let id = exporter_id(&request)?;
        let target = self
            .targets
            .lock()
            .map_err(|_| Status::internal("the export targets are poisoned"))?
            .remove(&id)
            .ok_or_else(|| Status::not_found(format!("no export target for exporter {id}")))?;
        let mut incoming = request.into_inner();
        let written = self.written.clone();
        // The response ends (the sender is dropped) once every byte is written.
        let (done, rx) = mpsc::channel::<BytesResult>(1);
        tokio::spawn(async move {
            let result = receive(&mut incoming, target).await;
            match result {
                Ok(n) => {
                    if let Ok(mut w) = written.lock() {
                        w.insert(id, n);
                    }
                }
                Err(e) => {
                    let _ = done.send(Err(e)).await;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Writes the stream into `target`; the bytes written.
async fn receive(
    incoming: &mut Streaming<BytesMessage>,
    target: FileTarget,
) -> Result<u64, Status> {
    let mut n = 0u64;
    match target {
        FileTarget::Path(path) => {
            let partial = partial_path(&path);
            let failed = |what: &str, e: std::io::Error| {
                Status::internal(format!("{what} {}: {e}", partial.display()))
            };
            let mut file = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| failed("cannot create", e))?;
            let outcome = async {
                while let Some(m) = incoming.message().await? {
                    file.write_all(&m.data)
                        .await
                        .map_err(|e| failed("cannot write", e))?;
                    n += m.data.len() as u64;
                }
                file.flush().await.map_err(|e| failed("cannot write", e))?;
                file.sync_all()
                    .await
                    .map_err(|e| failed("cannot write", e))?;
                Ok::<_, Status>(())
            }
            .await;
            drop(file);
            if let Err(e) = outcome {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
            tokio::fs::rename(&partial, &path).await.map_err(|e| {
                Status::internal(format!(
                    "cannot move the tarball to {}: {e}",
                    path.display()
                ))
            })?;
        }
        FileTarget::Channel(tx) => loop {
            match incoming.message().await {
                Ok(Some(m)) => {
                    n += m.data.len() as u64;
                    if tx.send(Ok(Bytes::from(m.data))).await.is_err() {
                        return Err(Status::aborted("the receiver of the export went away"));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx
                        .send(Err(std::io::Error::other(e.message().to_string())))
                        .await;
                    return Err(e);
                }
            }
        },
    }
    Ok(n)
}

/// The file a tarball is written to before it is complete: beside `path`, hidden.
pub fn partial_path(path: &std::path::Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".to_string());
    path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_tarball_sits_hidden_beside_its_path() {
        let p = partial_path(std::path::Path::new("/out/app.tar"));
        assert_eq!(p.parent(), Some(std::path::Path::new("/out")));
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".app.tar.partial-"), "{name}");
    }
}
