//! The wire: Pulumi's gRPC protocol ([`server`]), the engine's log ([`engine`]) and the
//! property-value codec ([`codec`]).

pub mod codec;
pub mod engine;
pub mod server;
