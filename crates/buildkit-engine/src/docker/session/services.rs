//! The small services of a build session: Health (the daemon checks the session is alive),
//! Auth (registry credentials for pulls and cache imports), Secrets (`RUN --mount=type=secret`)
//! and SSH (`RUN --mount=type=ssh`: the agent's bytes relayed both ways).
//!
//! Not for: FileSync (`filesync.rs`), starting agents or reading key files (`ssh.rs`).

use crate::settings::Setting;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bollard_buildkit_proto::health::health_server::Health;
use bollard_buildkit_proto::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
    health_check_response::ServingStatus,
};
use bollard_buildkit_proto::moby::buildkit::secrets::v1::secrets_server::Secrets;
use bollard_buildkit_proto::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use bollard_buildkit_proto::moby::filesync::v1::auth_server::Auth;
use bollard_buildkit_proto::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use bollard_buildkit_proto::moby::sshforward::v1::ssh_server::Ssh;
use bollard_buildkit_proto::moby::sshforward::v1::{
    BytesMessage, CheckAgentRequest, CheckAgentResponse,
};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::credentials::{Credentials, normalize_server};

pub struct HealthService;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("List is not served"))
    }

    type WatchStream = ReceiverStream<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("Watch is not served"))
    }
}

/// Registry credentials by host (as [`normalize_server`] writes it).
pub struct AuthService {
    pub credentials: Arc<BTreeMap<String, Credentials>>,
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let host = normalize_server(&request.get_ref().host);
        let response = match self.credentials.get(&host) {
            // As the docker CLI: an identity token goes as the secret with no user name.
            Some(c) => match &c.identity_token {
                Some(token) => CredentialsResponse {
                    username: String::new(),
                    secret: token.clone(),
                },
                None => CredentialsResponse {
                    username: c.username.clone(),
                    secret: c.password.clone(),
                },
            },
            // No credentials: anonymous access.
            None => CredentialsResponse::default(),
        };
        Ok(Response::new(response))
    }

    async fn fetch_token(
        &self,
        _request: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("FetchToken is not served"))
    }

    async fn get_token_authority(
        &self,
        _request: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("GetTokenAuthority is not served"))
    }

    async fn verify_token_authority(
        &self,
        _request: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("VerifyTokenAuthority is not served"))
    }
}

/// Build secrets by id.
pub struct SecretsService {
    pub secrets: Arc<BTreeMap<String, String>>,
}

#[tonic::async_trait]
impl Secrets for SecretsService {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = &request.get_ref().id;
        match self.secrets.get(id) {
            Some(value) => Ok(Response::new(GetSecretResponse {
                data: value.as_bytes().to_vec(),
            })),
            // BuildKit turns NotFound into "secret X not found" (or skips an optional mount).
            None => Err(Status::not_found(format!(
                "secret {id} not found: add it to {}",
                Setting::BuildSecrets
            ))),
        }
    }
}

/// SSH agent sockets by id.
pub struct SshService {
    pub agents: Arc<BTreeMap<String, PathBuf>>,
}

/// The metadata key that names the ssh id of a `ForwardAgent` call (BuildKit's `KeySSHID`).
const SSH_ID_KEY: &str = "buildkit.ssh.id";
const SSH_DEFAULT_ID: &str = "default";

#[tonic::async_trait]
impl Ssh for SshService {
    async fn check_agent(
        &self,
        request: Request<CheckAgentRequest>,
    ) -> Result<Response<CheckAgentResponse>, Status> {
        let id = request.get_ref().id.as_str();
        let id = if id.is_empty() { SSH_DEFAULT_ID } else { id };
        if self.agents.contains_key(id) {
            Ok(Response::new(CheckAgentResponse {}))
        } else {
            Err(Status::not_found(format!(
                "no ssh agent {id:?}: add it to {}",
                Setting::SshAgents
            )))
        }
    }

    type ForwardAgentStream = ReceiverStream<Result<BytesMessage, Status>>;

    async fn forward_agent(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> Result<Response<Self::ForwardAgentStream>, Status> {
        let id = request
            .metadata()
            .get(SSH_ID_KEY)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .unwrap_or(SSH_DEFAULT_ID)
            .to_string();
        let Some(socket) = self.agents.get(&id) else {
            return Err(Status::not_found(format!("no ssh agent {id:?}")));
        };
        let agent = connect_agent(socket).await.map_err(|e| {
            Status::unavailable(format!("ssh agent {id:?} at {}: {e}", socket.display()))
        })?;
        let (mut read, mut write) = tokio::io::split(agent);
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        // Daemon → agent.
        tokio::spawn(async move {
            while let Some(Ok(m)) = incoming.next().await {
                if write.write_all(&m.data).await.is_err() {
                    break;
                }
            }
            let _ = write.shutdown().await;
        });
        // Agent → daemon.
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let m = BytesMessage {
                            data: buf[..n].to_vec(),
                        };
                        if tx.send(Ok(m)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[cfg(unix)]
async fn connect_agent(socket: &std::path::Path) -> std::io::Result<tokio::net::UnixStream> {
    tokio::net::UnixStream::connect(socket).await
}

#[cfg(not(unix))]
async fn connect_agent(_socket: &std::path::Path) -> std::io::Result<tokio::io::DuplexStream> {
    Err(std::io::Error::other(
        "ssh agents are only forwarded on unix",
    ))
}
