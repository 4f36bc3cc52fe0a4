//! The wire: Pulumi's gRPC protocol ([`server`]), the engine's log ([`engine`]), the
//! property-value codec ([`codec`]) and the cut of values nested too deeply for it out of
//! request bytes ([`nesting`]).

pub mod codec;
pub mod engine;
pub mod nesting;
pub mod server;
