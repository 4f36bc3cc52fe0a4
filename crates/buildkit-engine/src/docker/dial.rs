//! Our own connections to the daemon, for the two requests bollard cannot make for us: the
//! `/session` upgrade whose other end we serve (see [`super::session`]) and the `/build` that
//! uses that session. A [`Dialer`] opens a raw byte stream to the daemon's address (unix
//! socket, tcp, tcp with TLS client certificates: the same addresses and settings as
//! [`super::connect`]); [`Dialer::send`] makes one HTTP/1.1 request over a fresh connection.
//!
//! Not for: anything bollard does (pings, images, pushes), nor reading the answers.

use crate::settings::Setting;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::plan::DaemonAddress;
use super::{DaemonError, Endpoint, Result, endpoint};

/// A byte stream to the daemon.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

#[derive(Clone)]
enum Target {
    Unix(PathBuf),
    Tcp(String),
    Tls {
        addr: String,
        name: ServerName<'static>,
        connector: TlsConnector,
    },
}

/// Opens connections to one daemon.
#[derive(Clone)]
pub struct Dialer {
    /// The daemon's address as the user wrote it (for messages).
    host: String,
    target: Target,
    /// The API version prefix of every path, e.g. `/v1.41`.
    api: String,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("host", &self.host)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl Dialer {
    /// A dialer for the daemon at `config`, speaking API `version` (e.g. `1.41`, the one
    /// agreed with the daemon when bollard connected).
    pub fn new(config: &DaemonAddress, version: &str) -> Result<Dialer> {
        let (host, endpoint) = endpoint(config)?;
        let unreachable = |reason: String| DaemonError::Unreachable {
            host: host.clone(),
            reason,
            hint: format!(
                "{} (or DOCKER_CERT_PATH) must hold ca.pem, cert.pem and key.pem",
                Setting::DaemonCerts
            ),
        };
        let target = match endpoint {
            Endpoint::Unix(path) => Target::Unix(path),
            Endpoint::Ssh(tunnel) => Target::Unix(tunnel.socket.clone()),
            Endpoint::Tcp { addr, certs: None } => Target::Tcp(addr),
            Endpoint::Tcp {
                addr,
                certs: Some(dir),
            } => {
                let connector = tls_connector(&dir, &[]).map_err(|e| unreachable(e.to_string()))?;
                let name =
                    server_name(&addr).map_err(|e| unreachable(format!("not a host name: {e}")))?;
                Target::Tls {
                    addr,
                    name,
                    connector,
                }
            }
        };
        Ok(Dialer {
            host,
            target,
            api: format!("/v{version}"),
        })
    }

    /// The daemon's address as configured.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `path` under the API version prefix.
    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    /// A new connection to the daemon.
    pub async fn dial(&self) -> io::Result<Box<dyn Io>> {
        Ok(match &self.target {
            Target::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            Target::Tcp(addr) => {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
            Target::Tls {
                addr,
                name,
                connector,
            } => {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                Box::new(connector.connect(name.clone(), s).await?)
            }
        })
    }

    /// Sends `request` (its path already under [`Dialer::path`]) over a new connection and
    /// returns the answer's head; the body streams as it is read. Dropping the answer closes
    /// the connection, which is how the daemon learns that we stopped listening. The
    /// connection allows an upgrade (`/session`).
    pub async fn send(
        &self,
        mut request: hyper::Request<Empty<Bytes>>,
    ) -> io::Result<hyper::Response<Incoming>> {
        let io = self.dial().await?;
        request.headers_mut().insert(
            hyper::header::HOST,
            hyper::header::HeaderValue::from_static("docker"),
        );
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        sender.send_request(request).await.map_err(io::Error::other)
    }
}

/// The name a TLS server at `addr` (`host:port`, `[v6]:port`) must prove it is.
pub(crate) fn server_name(
    addr: &str,
) -> std::result::Result<ServerName<'static>, rustls_pki_types::InvalidDnsNameError> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    ServerName::try_from(host)
}

/// Why no TLS client can be made from a certificates directory; each names the file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsSetupError {
    #[error("{} is missing", .0.display())]
    Missing(PathBuf),
    #[error("{}: {source}", path.display())]
    Pem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{}: {source}", path.display())]
    Rustls {
        path: PathBuf,
        source: tokio_rustls::rustls::Error,
    },
    #[error("{0}")]
    Protocols(tokio_rustls::rustls::Error),
}

/// A TLS client with the certificates in `dir` (as the docker CLI's `--tlsverify`), offering
/// the application protocols `alpn` (none for the Docker API; `h2` for gRPC, which
/// grpc-go servers require).
pub(crate) fn tls_connector(
    dir: &Path,
    alpn: &[&[u8]],
) -> std::result::Result<TlsConnector, TlsSetupError> {
    let read = |name: &str| {
        let p = dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(TlsSetupError::Missing(p))
        }
    };
    let ca = read("ca.pem")?;
    let cert = read("cert.pem")?;
    let key = read("key.pem")?;
    let pem = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsSetupError::Pem { path, source }
    };
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca).map_err(pem(&ca))? {
        roots
            .add(c.map_err(pem(&ca))?)
            .map_err(|source| TlsSetupError::Rustls {
                path: ca.clone(),
                source,
            })?;
    }
    let chain = CertificateDer::pem_file_iter(&cert)
        .map_err(pem(&cert))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pem(&cert))?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(pem(&key))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Protocols)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|source| TlsSetupError::Rustls {
            path: dir.to_path_buf(),
            source,
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsConnector::from(Arc::new(config)))
}
