//! How serious a log line is: a leaf, so that resources say it without importing the wire.

/// Severity of a log line (Pulumi's `LogSeverity`; the wire's numbers are in
/// [`crate::rpc::engine`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Debug,
    Info,
    Warning,
    Error,
}
