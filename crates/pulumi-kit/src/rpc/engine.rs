//! The client side of the Pulumi engine's `Engine` service, used for `Log`: build progress
//! and diagnostics appear in the user's terminal through it.
//!
//! Every line also goes to stderr when `PULUMI_DOCKER_BUILDKIT_DEBUG` is set (the engine
//! shows a provider's stderr only with `--logtostderr`). stdout is never written: it belongs
//! to the engine. Not for: anything but logging.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::generated::pulumirpc::LogRequest;
use crate::generated::pulumirpc::engine_client::EngineClient;

pub use crate::severity::Severity;

/// Pulumi's `LogSeverity` number of `s`.
fn wire(s: Severity) -> i32 {
    match s {
        Severity::Debug => 0,
        Severity::Info => 1,
        Severity::Warning => 2,
        Severity::Error => 3,
    }
}

/// How long one log line may take to reach the engine before it is given up.
const LOG_TIMEOUT: Duration = Duration::from_secs(10);

/// An engine address that is not one.
#[derive(Debug, thiserror::Error)]
#[error("engine address {address:?}: {source}")]
pub struct EngineAddressError {
    pub address: String,
    pub source: tonic::transport::Error,
}

/// A handle to the engine's log. Cheap to clone; without an engine it writes to stderr only.
/// Lines are sent concurrently (each call clones the client; no lock is held across the
/// RPC), so one slow line never queues the progress of other builds behind it.
#[derive(Clone, Default)]
pub struct EngineLog {
    client: Option<EngineClient<Channel>>,
    debug_to_stderr: bool,
}

impl EngineLog {
    /// Connects lazily to the engine at `address` (`host:port`).
    pub fn connect(address: &str) -> Result<Self, EngineAddressError> {
        let uri = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let endpoint = Endpoint::from_shared(uri).map_err(|source| EngineAddressError {
            address: address.to_string(),
            source,
        })?;
        let channel = endpoint.connect_lazy();
        Ok(Self {
            client: Some(
                EngineClient::new(channel)
                    .max_decoding_message_size(usize::MAX)
                    .max_encoding_message_size(usize::MAX),
            ),
            debug_to_stderr: std::env::var_os("PULUMI_DOCKER_BUILDKIT_DEBUG").is_some(),
        })
    }

    /// A log that only writes to stderr (for tests and when no engine was given).
    pub fn stderr_only() -> Self {
        Self {
            client: None,
            debug_to_stderr: true,
        }
    }

    /// Sends one line. Failures to reach the engine (or an engine that takes longer than
    /// [`LOG_TIMEOUT`]) are reported on stderr, never raised: a lost log line must not fail
    /// or stall a build. Callers pass text already masked (see `Ctx::log`).
    pub async fn log(&self, severity: Severity, urn: &str, message: &str, ephemeral: bool) {
        if self.debug_to_stderr || self.client.is_none() {
            eprintln!("[{severity:?}] {urn} {message}");
        }
        let Some(client) = &self.client else { return };
        let req = LogRequest {
            severity: wire(severity),
            message: message.to_string(),
            urn: urn.to_string(),
            stream_id: 0,
            ephemeral,
        };
        let mut client = client.clone();
        match tokio::time::timeout(LOG_TIMEOUT, client.log(req)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => eprintln!(
                "docker-buildkit: could not send a log line to the engine: {}",
                e.message()
            ),
            Err(_) => eprintln!(
                "docker-buildkit: the engine took more than {} s to take a log line; dropped",
                LOG_TIMEOUT.as_secs()
            ),
        }
    }
}
