//! FileSend, our end: where a buildkitd's exporters write what they send the client. The
//! daemon opens `FileSend.DiffCopy` once per exporter that writes to the client (once per
//! platform, for a `local` export of several), naming the exporter by its index in the
//! solve's list (BuildKit's `buildkit-attachable-exporter-id` header). What the stream
//! carries depends on the exporter, so the target of that index decides how its messages are
//! read: the `docker` and `oci` exporters stream a tarball as `BytesMessage`s, the `local`
//! exporter streams a directory tree as fsutil packets ([`super::localdir`]). That is why
//! the service is written by hand here, on raw message bytes: the generated `FileSendServer`
//! knows only `BytesMessage`.
//!
//! A tarball's sender closes its side and waits for ours to end, so we end the response only
//! once every byte is written. A file target is written beside its path and renamed into
//! place when the stream ends well: a failed export leaves the previous tarball as it was. A
//! channel target hands the bytes on (e.g. to a Docker daemon's `/images/load`).
//!
//! Not for: what to export (`kit.rs`), the context (`filesync.rs`), the fsutil receiver
//! (`localdir.rs`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bollard_buildkit_proto::fsutil::types::Packet;
use bollard_buildkit_proto::moby::filesync::v1::BytesMessage;
use bytes::{Buf, BufMut, Bytes};
use futures_util::StreamExt;
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, BoxStream, StdError, http};
use tonic::server::{Grpc, NamedService, StreamingService};
use tonic::{Request, Response, Status, Streaming};

use super::localdir::{self, Outgoing};

/// BuildKit's header naming the exporter a FileSend stream is for.
pub const EXPORTER_ID_HEADER: &str = "buildkit-attachable-exporter-id";

/// The gRPC service we serve.
pub const SERVICE_NAME: &str = "moby.filesync.v1.FileSend";

/// Its one method.
pub const DIFF_COPY: &str = "/moby.filesync.v1.FileSend/DiffCopy";

/// Where one exporter's output goes.
#[derive(Debug)]
pub enum FileTarget {
    /// A file, replaced only when the whole tarball arrived.
    Path(PathBuf),
    /// A channel: the bytes as they come; an error ends it early.
    Channel(mpsc::Sender<std::io::Result<Bytes>>),
    /// A directory, into which the `local` exporter's tree is merged once it all arrived
    /// ([`super::localdir`]). It takes every stream of its exporter (one per platform).
    Dir(PathBuf),
}

/// The FileSend service of one session: its targets by exporter id, and the bytes each one
/// was sent (a directory's: the file data written, summed over its streams).
#[derive(Debug, Default)]
pub struct FileSendService {
    pub targets: Mutex<BTreeMap<u32, FileTarget>>,
    pub written: Arc<Mutex<BTreeMap<u32, u64>>>,
}

/// [`FileSendService`] as the tonic service the session routes `FileSend` to.
#[derive(Debug, Clone)]
pub struct FileSendServer {
    service: Arc<FileSendService>,
}

impl FileSendServer {
    /// Serves `service`.
    pub fn new(service: FileSendService) -> Self {
        Self {
            service: Arc::new(service),
        }
    }
}

impl NamedService for FileSendServer {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> tower::Service<http::Request<B>> for FileSendServer
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

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != DIFF_COPY {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let method = DiffCopy(self.service.clone());
        Box::pin(async move { Ok(Grpc::new(RawCodec).streaming(method, request).await) })
    }
}

/// A gRPC message as its bytes: the target decides what they are.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

/// One `DiffCopy` call.
struct DiffCopy(Arc<FileSendService>);

impl StreamingService<Bytes> for DiffCopy {
    type Response = Bytes;
    type ResponseStream = BoxStream<Bytes>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<Bytes>>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.diff_copy(request) })
    }
}

fn exporter_id<T>(request: &Request<T>) -> Result<u32, Status> {
    match request.metadata().get(EXPORTER_ID_HEADER) {
        None => Ok(0),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Status::invalid_argument("the exporter id is not a number")),
    }
}

impl FileSendService {
    /// The target of exporter `id`: a file or channel takes one stream (it is removed); a
    /// directory takes every stream of its exporter.
    fn target(&self, id: u32) -> Result<FileTarget, Status> {
        let mut targets = self
            .targets
            .lock()
            .map_err(|_| Status::internal("the export targets are poisoned"))?;
        if let Some(FileTarget::Dir(dir)) = targets.get(&id) {
            return Ok(FileTarget::Dir(dir.clone()));
        }
        targets
            .remove(&id)
            .ok_or_else(|| Status::not_found(format!("no export target for exporter {id}")))
    }

    fn diff_copy(
        &self,
        request: Request<Streaming<Bytes>>,
    ) -> Result<Response<BoxStream<Bytes>>, Status> {
        let id = exporter_id(&request)?;
        let target = self.target(id)?;
        let incoming = request.into_inner();
        let written = self.written.clone();
        let record = move |n: u64| {
            if let Ok(mut w) = written.lock() {
                *w.entry(id).or_insert(0) += n;
            }
        };
        if let FileTarget::Dir(dir) = target {
            return Ok(Response::new(receive_dir(dir, incoming, record)));
        }
        // The response ends (the sender is dropped) once every byte is written.
        let (done, rx) = mpsc::channel::<Result<Bytes, Status>>(1);
        tokio::spawn(async move {
            let mut incoming = incoming;
            match receive(&mut incoming, target).await {
                Ok(n) => record(n),
                Err(e) => {
                    let _ = done.send(Err(e)).await;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A `local` export into `dir`: the stream's messages are fsutil packets; ours are too. The
/// bytes are recorded before our FIN tells BuildKit the export is done.
fn receive_dir(
    dir: PathBuf,
    incoming: Streaming<Bytes>,
    record: impl FnOnce(u64) + Send + 'static,
) -> BoxStream<Bytes> {
    let (tx, rx) = mpsc::unbounded_channel::<Result<Bytes, Status>>();
    let out = tx.clone();
    let send: Arc<Outgoing> = Arc::new(move |p: Packet| {
        let _ = out.send(Ok(Bytes::from(p.encode_to_vec())));
    });
    let packets = incoming.map(|m| {
        m.map_err(|s| localdir::ReceiveError::Stream(s.message().to_string()))
            .and_then(|b| Packet::decode(b).map_err(localdir::ReceiveError::Decode))
    });
    tokio::spawn(async move {
        if let Err(e) = localdir::receive(dir, packets, send, record).await {
            let _ = tx.send(Err(e.status()));
        }
    });
    Box::pin(UnboundedReceiverStream::new(rx))
}

/// The data of a tarball stream's next message.
async fn next_data(incoming: &mut Streaming<Bytes>) -> Result<Option<Vec<u8>>, Status> {
    match incoming.message().await? {
        None => Ok(None),
        Some(b) => BytesMessage::decode(b)
            .map(|m| Some(m.data))
            .map_err(|e| Status::invalid_argument(format!("not a BytesMessage: {e}"))),
    }
}

/// Writes the stream into `target`; the bytes written.
async fn receive(incoming: &mut Streaming<Bytes>, target: FileTarget) -> Result<u64, Status> {
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
                while let Some(data) = next_data(incoming).await? {
                    file.write_all(&data)
                        .await
                        .map_err(|e| failed("cannot write", e))?;
                    n += data.len() as u64;
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
            match next_data(incoming).await {
                Ok(Some(data)) => {
                    n += data.len() as u64;
                    if tx.send(Ok(Bytes::from(data))).await.is_err() {
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
        FileTarget::Dir(_) => {
            return Err(Status::internal("a directory target is not a tarball"));
        }
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
