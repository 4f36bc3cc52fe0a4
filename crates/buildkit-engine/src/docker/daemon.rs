//! Reaching a Docker daemon: where it is (the address, then `DOCKER_HOST`, then the default
//! socket), where that leads ([`Endpoint`]: unix, ssh tunnel, tcp with or without TLS), and a
//! connection that has agreed on an API version and answered a ping.

use crate::settings::{Setting, capitalized};
use std::path::PathBuf;

use bollard::Docker;

use super::error::DaemonError;
use super::{DaemonAddress, Result, tunnel};

/// The schemes of a Docker host that [`connect`] can reach.
pub const HOST_SCHEMES: &[&str] = &["unix://", "tcp://", "http://", "https://", "ssh://"];

/// The default daemon socket.
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// How long the daemon may take to answer the version negotiation and the ping.
const DAEMON_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the daemon is: provider config, then `DOCKER_HOST`, then the default socket.
pub fn daemon_host(config: &DaemonAddress) -> String {
    config
        .host
        .clone()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| DEFAULT_SOCKET.to_string())
}

fn cert_path(config: &DaemonAddress) -> Option<PathBuf> {
    if let Some(p) = config.cert_path.as_ref().filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    // As the Docker CLI: any non-empty DOCKER_TLS_VERIFY turns verification on, and an
    // empty DOCKER_CERT_PATH means the default ~/.docker.
    let verify = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
    if !verify {
        return None;
    }
    std::env::var_os("DOCKER_CERT_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
}

/// Where a daemon address leads: read once, for bollard ([`connect`]) and for our own
/// connections ([`super::dial::Dialer`]).
pub(crate) enum Endpoint {
    Unix(PathBuf),
    /// An `ssh://` host, through its local socket.
    Ssh(std::sync::Arc<tunnel::Tunnel>),
    /// `host:port`, with the TLS certificates directory when there is one.
    Tcp {
        addr: String,
        certs: Option<PathBuf>,
    },
}

/// The daemon's address (as [`daemon_host`] finds it) and where it leads; an address that
/// cannot work is an input error.
pub(crate) fn endpoint(config: &DaemonAddress) -> Result<(String, Endpoint)> {
    let host = daemon_host(config);
    if let Some(path) = host.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        return Ok((host, Endpoint::Unix(path)));
    }
    if host.starts_with("ssh://") {
        let t = tunnel::tunnel(&host).map_err(|e| DaemonError::InvalidHost {
            host: host.clone(),
            reason: e.to_string(),
        })?;
        return Ok((host, Endpoint::Ssh(t)));
    }
    let Some(addr) = HOST_SCHEMES
        .iter()
        .filter(|scheme| !matches!(**scheme, "unix://" | "ssh://"))
        .find_map(|scheme| host.strip_prefix(scheme))
    else {
        return Err(DaemonError::Unsupported { host }.into());
    };
    let addr = addr.trim_end_matches('/').to_string();
    let certs = cert_path(config);
    if certs.is_none() && host.starts_with("https://") {
        return Err(DaemonError::TlsWithoutCerts { host }.into());
    }
    Ok((host, Endpoint::Tcp { addr, certs }))
}

/// Connects to the daemon and checks that it answers, agreeing on an API version both
/// sides speak.
pub async fn connect(config: &DaemonAddress) -> Result<Docker> {
    let (host, endpoint) = endpoint(config)?;
    let hint = match &endpoint {
        Endpoint::Unix(_) => {
            format!(
                "Is dockerd running? Set DOCKER_HOST or {} to point at it",
                Setting::DaemonHost
            )
        }
        Endpoint::Ssh(_) => {
            format!(
                "{} runs `ssh <host> docker system dial-stdio` with your ssh configuration and agent, never prompting",
                capitalized(Setting::Runner.name())
            )
        }
        Endpoint::Tcp { certs: Some(_), .. } => {
            format!(
                "Is dockerd listening there with TLS, and do ca.pem, cert.pem and key.pem ({}, or DOCKER_CERT_PATH) belong to it?",
                Setting::DaemonCerts
            )
        }
        Endpoint::Tcp { certs: None, .. } => {
            format!(
                "Is dockerd listening there? A daemon with TLS needs {} (or DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH)",
                Setting::DaemonCerts
            )
        }
    };
    let unreachable = |reason: String| DaemonError::Unreachable {
        host: host.clone(),
        reason,
        hint: hint.clone(),
    };
    const TIMEOUT_SECS: u64 = 3600;
    let version = bollard::API_DEFAULT_VERSION;
    let docker = match &endpoint {
        Endpoint::Unix(path) => {
            Docker::connect_with_unix(&path.display().to_string(), TIMEOUT_SECS, version)
        }
        Endpoint::Ssh(t) => {
            Docker::connect_with_unix(&t.socket.display().to_string(), TIMEOUT_SECS, version)
        }
        // bollard strips only some schemes: hand it `tcp://host:port` always.
        Endpoint::Tcp {
            addr,
            certs: Some(dir),
        } => Docker::connect_with_ssl(
            &format!("tcp://{addr}"),
            &dir.join("key.pem"),
            &dir.join("cert.pem"),
            &dir.join("ca.pem"),
            TIMEOUT_SECS,
            version,
        ),
        Endpoint::Tcp { addr, certs: None } => {
            Docker::connect_with_http(&format!("tcp://{addr}"), TIMEOUT_SECS, version)
        }
    }
    .map_err(|e| unreachable(e.to_string()))?;
    match &endpoint {
        // Over ssh a handshake alone can take seconds; a failure says what ssh said.
        Endpoint::Ssh(t) => answered(docker, 3 * DAEMON_ANSWER_TIMEOUT)
            .await
            .map_err(|e| unreachable(t.explain(&e.to_string())).into()),
        _ => answered(docker, DAEMON_ANSWER_TIMEOUT)
            .await
            .map_err(|e| unreachable(e.to_string()).into()),
    }
}

/// Why a daemon that accepted the connection is not usable.
#[derive(Debug, thiserror::Error)]
enum NoAnswer {
    #[error(transparent)]
    Refused(#[from] bollard::errors::Error),
    #[error("no answer to a ping within {} s", .0.as_secs())]
    Silent(std::time::Duration),
}

/// `docker` once it has agreed on an API version and answered a ping within `limit`: a
/// daemon that accepts the connection but never answers must not hang the build.
async fn answered(
    docker: Docker,
    limit: std::time::Duration,
) -> std::result::Result<Docker, NoAnswer> {
    let answer = async {
        let docker = docker.negotiate_version().await?;
        docker.ping().await?;
        Ok::<_, bollard::errors::Error>(docker)
    };
    match tokio::time::timeout(limit, answer).await {
        Ok(answered) => Ok(answered?),
        Err(_) => Err(NoAnswer::Silent(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: &str) -> DaemonAddress {
        DaemonAddress {
            host: Some(host.to_string()),
            cert_path: None,
            ..DaemonAddress::default()
        }
    }

    #[tokio::test]
    async fn hosts_that_cannot_work_are_refused_with_the_fix() {
        let e = connect(&config("ftp://x")).await.err().unwrap();
        assert!(e.to_string().contains("not supported"), "{e}");
        let e = connect(&config("https://127.0.0.1:1")).await.err().unwrap();
        assert!(e.to_string().contains(Setting::DaemonCerts.name()), "{e}");
        // http:// is plain tcp:// (bollard would otherwise mangle it): nothing listens on
        // port 1, so the error is about reaching it.
        let e = connect(&config("http://127.0.0.1:1")).await.err().unwrap();
        assert!(
            e.to_string()
                .starts_with("cannot reach the Docker daemon at http://127.0.0.1:1"),
            "{e}"
        );
        assert!(
            e.to_string().contains(Setting::DaemonCerts.name()),
            "the hint names the TLS settings: {e}"
        );
    }
}
