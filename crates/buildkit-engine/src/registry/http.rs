//! The lowest layer of the registry client, shared by `client.rs` and `auth.rs`: reading an
//! answer's body within a size cap, turning failures into [`RegistryError`]s that name the
//! registry and never a secret ([`ErrorContext`]: whoever knows the registry's name and
//! secrets builds them), the registry's own explanation of a failed status, and whether a
//! host is this machine.
//!
//! Not for: sending requests or deciding a scheme (`client.rs`), or authentication and
//! knowing which secrets exist (`auth.rs`). Imports nothing of its siblings but
//! [`RegistryError`].

use std::net::IpAddr;

use reqwest::StatusCode;
use serde::Deserialize;

use super::RegistryError;

/// The largest token or error answer read.
pub(super) const MAX_SMALL_BODY_BYTES: usize = 1024 * 1024;

/// What errors about one registry need: its name as users know it, whether credentials
/// were given, and the secrets to keep out of text that came from elsewhere.
pub(super) trait ErrorContext {
    /// The registry as users name it (normalized), for messages.
    fn server(&self) -> &str;
    /// Whether credentials were given (they decide what an [`RegistryError::Unauthorized`]
    /// advises).
    fn with_credentials(&self) -> bool;
    /// Removes any secret known here from `text`.
    fn scrub(&self, text: String) -> String;

    fn unauthorized(&self) -> RegistryError {
        RegistryError::Unauthorized {
            server: self.server().to_string(),
            with_credentials: self.with_credentials(),
        }
    }

    fn protocol(&self, status: StatusCode, message: String) -> RegistryError {
        RegistryError::Protocol {
            server: self.server().to_string(),
            status: status.as_u16(),
            message: self.scrub(message),
        }
    }

    fn transport_error(&self, err: reqwest::Error) -> RegistryError {
        let timed_out = err.is_timeout();
        let mut reason = error_chain(&err.without_url());
        if timed_out {
            reason = format!("timed out ({reason})");
        }
        RegistryError::Unreachable {
            server: self.server().to_string(),
            reason: self.scrub(reason),
        }
    }
}

/// The body of `resp`, refused once it passes `limit` bytes (a registry, or whatever
/// answers in its place, must not make the provider hold an unbounded answer).
pub(super) async fn read_body(
    errors: &impl ErrorContext,
    mut resp: reqwest::Response,
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, RegistryError> {
    let status = resp.status();
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(errors.protocol(
            status,
            format!("{what} larger than {limit} bytes was refused"),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| errors.transport_error(e))? {
        if body.len() + chunk.len() > limit {
            return Err(errors.protocol(
                status,
                format!("{what} larger than {limit} bytes was refused"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error for an unexpected status.
pub(super) async fn status_error(
    errors: &impl ErrorContext,
    resp: reqwest::Response,
) -> RegistryError {
    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED {
        return errors.unauthorized();
    }
    let detail = error_detail(errors, resp).await;
    errors.protocol(status, detail)
}

/// The registry's own explanation: its JSON `errors`, else a short text body, else the
/// status's reason phrase.
pub(super) async fn error_detail(errors: &impl ErrorContext, resp: reqwest::Response) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let status = resp.status();
    let body = read_body(errors, resp, MAX_SMALL_BODY_BYTES, "an error answer")
        .await
        .unwrap_or_default();
    let fallback = || {
        status
            .canonical_reason()
            .unwrap_or("unexpected status")
            .to_string()
    };
    if let Ok(parsed) = serde_json::from_slice::<Errors>(&body) {
        let joined = parsed
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (false, true) => e.code.clone(),
                _ => e.message.clone(),
            })
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        return errors.scrub(if joined.is_empty() {
            fallback()
        } else {
            joined
        });
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if text.is_empty() || text.len() > 300 || text.starts_with('<') {
        return fallback();
    }
    errors.scrub(text.to_string())
}

/// An error and its sources, `: `-joined, without repeats.
pub(super) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Whether `server` (`host[:port]`, IPv6 in brackets) is on this machine.
pub(super) fn is_loopback(server: &str) -> bool {
    let host = if let Some(rest) = server.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if server.matches(':').count() == 1 {
        server.split(':').next().unwrap_or(server)
    } else {
        server
    };
    is_loopback_host(host)
}

/// Whether a bare host name or address (IPv6 with or without brackets) is on this machine.
pub(super) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
