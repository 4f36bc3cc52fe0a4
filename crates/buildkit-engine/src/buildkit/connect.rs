//! Reaching a buildkitd: `unix:///path/to/buildkitd.sock`, or `tcp://host:port` with mutual
//! TLS from a directory holding `ca.pem`, `cert.pem` and `key.pem` (as buildx's `remote`
//! driver takes them), and asking it which BuildKit it is. A Docker Engine's own BuildKit
//! is reached the same way through its `/grpc` endpoint (buildx's `docker` driver does so):
//! each connection a `POST /grpc` upgraded to h2c ([`Buildkitd::connect_docker`]).

use std::path::PathBuf;
use std::time::Duration;

use bollard_buildkit_proto::moby::buildkit::v1::InfoRequest;
use bollard_buildkit_proto::moby::buildkit::v1::control_client::ControlClient;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use super::BuildkitError;
use crate::docker::dial::{Dialer, server_name, tls_connector};

/// A connection being made, whichever the connector.
type Connecting = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Channel, tonic::transport::Error>> + Send>,
>;

/// How long a buildkitd may take to accept the connection and say which it is.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a buildkitd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildkitAddress {
    /// `unix:///path` or `tcp://host:port`.
    pub host: String,
    /// For `tcp://`: the directory with `ca.pem`, `cert.pem` and `key.pem` (mutual TLS).
    pub cert_path: Option<PathBuf>,
}

/// A connected buildkitd.
#[derive(Debug, Clone)]
pub struct Buildkitd {
    pub(super) client: ControlClient<Channel>,
    /// The address, as configured (for messages).
    pub host: String,
    /// What it said it is, e.g. `github.com/moby/buildkit v0.34.2`.
    pub version: String,
    /// For a Docker Engine's BuildKit: the dialer whose `/session` upgrade carries the build
    /// session (as buildx's docker driver opens it), instead of `Control.Session`.
    pub(super) docker: Option<Box<Dialer>>,
}

impl Buildkitd {
    /// Connects to `address` and asks the daemon which BuildKit it is: one that is down,
    /// or that does not speak the Control API, is an error naming it.
    pub async fn connect(address: &BuildkitAddress) -> Result<Buildkitd, BuildkitError> {
        let host = address.host.clone();
        let bad = |reason: &str| BuildkitError::BadAddress {
            host: host.clone(),
            reason: reason.to_string(),
        };
        let unreachable = |reason: String| BuildkitError::Unreachable {
            host: host.clone(),
            reason,
        };
        let endpoint = endpoint("http://buildkitd");
        let channel = if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(bad(
                    "it names no socket path: write unix:///run/buildkit/buildkitd.sock",
                ));
            }
            let path = PathBuf::from(path);
            let connector = tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            });
            let endpoint = endpoint.clone();
            let connecting: Connecting =
                Box::pin(async move { endpoint.connect_with_connector(connector).await });
            connecting
        } else if let Some(addr) = host.strip_prefix("tcp://") {
            let addr = addr.trim_end_matches('/').to_string();
            if addr.is_empty() {
                return Err(bad("it names no address: write tcp://host:port"));
            }
            let Some(dir) = &address.cert_path else {
                return Err(bad(
                    "a tcp:// BuildKit daemon needs the directory of its client certificates (ca.pem, cert.pem, key.pem): buildkitd serves tcp only with mutual TLS here",
                ));
            };
            let tls = tls_connector(dir, &[b"h2"]).map_err(|e| unreachable(e.to_string()))?;
            let name = server_name(&addr).map_err(|e| bad(&format!("not a host name: {e}")))?;
            let connector = tower::service_fn(move |_: Uri| {
                let (addr, name, tls) = (addr.clone(), name.clone(), tls.clone());
                async move {
                    let tcp = tokio::net::TcpStream::connect(&addr).await?;
                    let stream = tls.connect(name, tcp).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            });
            let endpoint = endpoint.clone();
            let connecting: Connecting =
                Box::pin(async move { endpoint.connect_with_connector(connector).await });
            connecting
        } else {
            return Err(bad("use unix:///path/to/buildkitd.sock or tcp://host:port"));
        };
        answer(channel, host, None).await
    }

    /// Connects to the BuildKit inside the Docker Engine that `dialer` reaches, through the
    /// Engine's `/grpc` endpoint; an Engine without one is an error naming it.
    pub async fn connect_docker(dialer: Dialer) -> Result<Buildkitd, BuildkitError> {
        let host = dialer.host().to_string();
        let endpoint = endpoint("http://docker");
        let d = dialer.clone();
        let connector = tower::service_fn(move |_: Uri| {
            let d = d.clone();
            async move { upgrade_grpc(&d).await }
        });
        let channel: Connecting =
            Box::pin(async move { endpoint.connect_with_connector(connector).await });
        answer(channel, host, Some(Box::new(dialer))).await
    }
}

/// One connection to a Docker Engine's BuildKit: `POST /grpc` upgraded to h2c.
async fn upgrade_grpc(dialer: &Dialer) -> std::io::Result<hyper::upgrade::Upgraded> {
    let request = hyper::Request::post(dialer.path("/grpc"))
        .header("Connection", "Upgrade")
        .header("Upgrade", "h2c")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(std::io::Error::other)?;
    let response = dialer.send(request).await?;
    if response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        return Err(std::io::Error::other(format!(
            "the Docker Engine answered {} to POST /grpc: it serves no BuildKit Control API",
            response.status()
        )));
    }
    hyper::upgrade::on(response)
        .await
        .map_err(std::io::Error::other)
}

/// The endpoint of a connection whose connector decides where it goes: `uri` only names the
/// peer for HTTP/2.
fn endpoint(uri: &'static str) -> Endpoint {
    Endpoint::from_static(uri)
        .connect_timeout(ANSWER_TIMEOUT)
        .keep_alive_while_idle(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
}

/// Asks the daemon behind `channel` which BuildKit it is, within [`ANSWER_TIMEOUT`].
async fn answer(
    channel: Connecting,
    host: String,
    docker: Option<Box<Dialer>>,
) -> Result<Buildkitd, BuildkitError> {
    let unreachable = |reason: String| BuildkitError::Unreachable {
        host: host.clone(),
        reason,
    };
    let asked = async {
        let channel = channel.await.map_err(|e| unreachable(describe(&e)))?;
        let mut client = ControlClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let version = match client.info(InfoRequest {}).await {
            Ok(info) => info
                .into_inner()
                .buildkit_version
                .map(|v| format!("{} {}", v.package, v.version))
                .unwrap_or_else(|| "BuildKit (version unknown)".to_string()),
            // A Docker Engine's BuildKit older than `Info` (20.10 has v0.8): its Control API
            // answered, which is what was asked.
            Err(status) if docker.is_some() && status.code() == tonic::Code::Unimplemented => {
                "the Docker Engine's own BuildKit".to_string()
            }
            Err(status) => {
                return Err(unreachable(format!(
                    "it does not answer BuildKit's Control API ({}: {}); is it a buildkitd?",
                    status.code(),
                    status.message()
                )));
            }
        };
        Ok((client, version))
    };
    let (client, version) = tokio::time::timeout(ANSWER_TIMEOUT, asked)
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs())))??;
    Ok(Buildkitd {
        client,
        host,
        version,
        docker,
    })
}

/// A transport error with its causes (tonic's own message is only "transport error").
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
