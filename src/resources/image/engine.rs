//! The adapter between the resource and the engine: the engine's environment for a call
//! ([`env`]: the daemon and builders from the provider configuration, the call's [`Ctx`] as the
//! engine's [`Events`] sink, its cancellation) and the one mapping of the engine's errors to
//! the resource's ([`resource_error`]).

use crate::docker::{self, Env, Events, Level, Pending};
use crate::resource::{Ctx, ResourceError};
use crate::rpc::engine::Severity;

use super::super::ProviderConfig;

/// The one mapping of the engine's errors to the resource's, and so to a gRPC code: whose
/// problem it is decides the code; the message is the error's own.
pub(super) fn resource_error(e: docker::EngineError) -> ResourceError {
    if let docker::EngineError::Cancelled { what, target } = &e {
        return ResourceError::cancelled(format!("the {what} of {target} was stopped"));
    }
    let message = e.to_string();
    match e.kind() {
        docker::Kind::InvalidInput => ResourceError::invalid_input(message),
        docker::Kind::Unavailable => ResourceError::unavailable(message),
        docker::Kind::Cancelled => ResourceError::cancelled(message),
        docker::Kind::Failed => ResourceError::failed(message),
    }
}

/// The engine's environment for a call: the daemon from the provider configuration, its
/// messages into the engine's log (masked there), the call's cancellation.
pub(super) fn env<'a>(ctx: &'a Ctx<ProviderConfig>, events: &'a CtxEvents<'a>) -> Env<'a> {
    Env {
        daemon: ctx.config.daemon_address(),
        builders: ctx.config.builder_specs(),
        events,
        cancel: ctx.cancel.clone(),
    }
}

/// A call's [`Ctx`] as the engine's [`Events`] sink.
pub(super) struct CtxEvents<'a>(pub(super) &'a Ctx<ProviderConfig>);

impl Events for CtxEvents<'_> {
    fn log<'a>(&'a self, level: Level, message: &'a str) -> Pending<'a> {
        let severity = match level {
            Level::Debug => Severity::Debug,
            Level::Info => Severity::Info,
            Level::Warning => Severity::Warning,
            Level::Error => Severity::Error,
        };
        Box::pin(Ctx::log(self.0, severity, message))
    }

    fn progress<'a>(&'a self, line: &'a str) -> Pending<'a> {
        Box::pin(Ctx::progress(self.0, line))
    }

    fn secret(&self, value: &str) {
        self.0.add_secret(value);
    }
}
