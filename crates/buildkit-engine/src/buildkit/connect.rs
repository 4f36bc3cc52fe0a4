//! Reaching a buildkitd: `unix:///path/to/buildkitd.sock`, or `tcp://host:port` with mutual
//! TLS from a directory holding `ca.pem`, `cert.pem` and `key.pem` (as buildx's `remote`
//! driver takes them), and asking it which BuildKit it is.

use std::path::PathBuf;
use std::time::Duration;

use bollard_buildkit_proto::moby::buildkit::v1::InfoRequest;
use bollard_buildkit_proto::moby::buildkit::v1::control_client::ControlClient;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use super::BuildkitError;
use crate::docker::dial::{server_name, tls_connector};

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
        // The URI only names the peer for HTTP/2; the connector below decides where to go.
        let endpoint = Endpoint::from_static("http://buildkitd")
            .connect_timeout(ANSWER_TIMEOUT)
            .keep_alive_while_idle(true)
            .http2_keep_alive_interval(Duration::from_secs(30));
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
        let answer = async {
            let channel = channel.await.map_err(|e| unreachable(describe(&e)))?;
            let mut client = ControlClient::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20);
            let info = client
                .info(InfoRequest {})
                .await
                .map_err(|status| {
                    unreachable(format!(
                        "it does not answer BuildKit's Control API ({}: {}); is it a buildkitd?",
                        status.code(),
                        status.message()
                    ))
                })?
                .into_inner();
            let version = info
                .buildkit_version
                .map(|v| format!("{} {}", v.package, v.version))
                .unwrap_or_else(|| "BuildKit (version unknown)".to_string());
            Ok(Buildkitd {
                client,
                host: host.clone(),
                version,
            })
        };
        tokio::time::timeout(ANSWER_TIMEOUT, answer)
            .await
            .map_err(|_| unreachable(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs())))?
    }
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
