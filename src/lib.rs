//! docker-buildkit: a Pulumi resource provider whose one resource, `Image`, builds a Docker
//! image with BuildKit through the Docker Engine API and pushes it to a registry.
//!
//! The flow, in one direction: gRPC request ([`rpc::server`]) → property codec
//! ([`rpc::codec`]) → generic dispatcher ([`provider`]) → a [`resource::Resource`]
//! implementation ([`resources`]) → typed state → codec → response. The schema
//! ([`schema`]) is derived from the same Rust structs.

pub mod cache;
pub mod context;
pub mod docker;
pub mod generated;
pub mod provider;
pub mod redact;
pub mod reference;
pub mod registry;
pub mod resource;
pub mod resources;
pub mod rpc;
pub mod schema;
pub mod validation;
