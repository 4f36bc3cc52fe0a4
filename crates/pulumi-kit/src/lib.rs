//! The generic half of a Pulumi resource provider, modelled on pulumi-go-provider's `infer`:
//! a resource is an args struct, a state struct and CRUD methods ([`resource::Resource`]);
//! this crate serves it to the Pulumi engine. It knows nothing of Docker or images.
//!
//! The flow, in one direction: gRPC request ([`rpc::server`]) → property codec
//! ([`rpc::codec`]) → generic dispatcher ([`provider`]) → a [`resource::Resource`]
//! implementation → typed state → codec → response. The schema ([`schema`]) is derived from
//! the same Rust structs; [`redact`] masks every secret where output leaves the provider.

/// Pulumi's `pulumirpc` protocol, generated into the design card's `src/generated/` (at the
/// workspace root) by `cargo run -p codegen -- protocol`.
#[path = "../../../src/generated/mod.rs"]
pub mod generated;
pub mod path;
pub mod provider;
pub mod redact;
pub mod resource;
pub mod rpc;
pub mod schema;
pub mod severity;
pub mod validation;
