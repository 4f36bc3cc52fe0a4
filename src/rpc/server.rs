//! The gRPC face of the provider: Pulumi's `ResourceProvider` service on tonic, and the
//! start-up the engine expects (bind 127.0.0.1:0, print the port as the first stdout line,
//! serve until the engine goes away).
//!
//! Each RPC here only translates: request fields in, [`Provider`] call, response fields out.
//! Property maps are handed to the dispatcher untouched. RPCs this provider does not serve
//! answer `UNIMPLEMENTED` (tonic's default stubs). Not for: typed values or resource logic.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use prost_types::Struct;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use crate::generated::pulumirpc::resource_provider_server::{
    ResourceProvider, ResourceProviderServer,
};
use crate::generated::pulumirpc::{
    CheckRequest, CheckResponse, ConfigureRequest, ConfigureResponse, CreateRequest,
    CreateResponse, DeleteRequest, DiffRequest, DiffResponse, GetSchemaRequest, GetSchemaResponse,
    PluginInfo, PropertyDiff, ProviderHandshakeRequest, ProviderHandshakeResponse, ReadRequest,
    ReadResponse, UpdateRequest, UpdateResponse, diff_response::DiffChanges,
};
use crate::provider::{DispatchError, Provider, diff_keys, diff_kind_wire, urn_type};
use crate::resource::{CheckFailure, ResourceError};
use crate::rpc::engine::EngineLog;

/// The largest message accepted or sent (schemas and states can pass tonic's 4 MiB default).
pub const MAX_MESSAGE_BYTES: usize = 512 * 1024 * 1024;

/// The provider behind tonic, with the schema rendered once.
pub struct Service<C> {
    provider: Arc<Provider<C>>,
    schema: String,
}

impl<C> Service<C> {
    pub fn new(provider: Arc<Provider<C>>, schema: String) -> Self {
        Self { provider, schema }
    }
}

fn status(e: DispatchError) -> Status {
    match e {
        DispatchError::UnknownType(..) | DispatchError::BadProperties(_) => {
            Status::invalid_argument(e.to_string())
        }
        DispatchError::Resource(r) => match r {
            ResourceError::InvalidInput(m) => Status::invalid_argument(m),
            ResourceError::Unavailable(m) => Status::unavailable(m),
            ResourceError::Cancelled(_) => Status::cancelled(r.to_string()),
            ResourceError::Failed(m) => Status::unknown(m),
        },
    }
}

fn failures(f: Vec<CheckFailure>) -> Vec<crate::generated::pulumirpc::CheckFailure> {
    f.into_iter()
        .map(|f| crate::generated::pulumirpc::CheckFailure {
            property: f.property,
            reason: f.reason,
        })
        .collect()
}

fn or_empty(s: Option<Struct>) -> Struct {
    s.unwrap_or_default()
}

#[tonic::async_trait]
impl<C> ResourceProvider for Service<C>
where
    C: DeserializeOwned + Serialize + JsonSchema + Default + PartialEq + Send + Sync + 'static,
{
    async fn handshake(
        &self,
        request: Request<ProviderHandshakeRequest>,
    ) -> Result<Response<ProviderHandshakeResponse>, Status> {
        let req = request.into_inner();
        if !req.engine_address.is_empty() {
            let log = EngineLog::connect(&req.engine_address).map_err(Status::invalid_argument)?;
            self.provider.set_engine_log(log);
        }
        self.provider.set_program_dir(
            req.program_directory
                .or(req.root_directory)
                .map(PathBuf::from),
        );
        Ok(Response::new(ProviderHandshakeResponse {
            accept_secrets: true,
            accept_resources: true,
            accept_outputs: false,
            supports_autonaming_configuration: false,
            ..Default::default()
        }))
    }

    async fn get_schema(
        &self,
        request: Request<GetSchemaRequest>,
    ) -> Result<Response<GetSchemaResponse>, Status> {
        let req = request.into_inner();
        if !req.subpackage_name.is_empty() {
            return Err(Status::invalid_argument(format!(
                "{} has no sub-package {:?}",
                self.provider.name, req.subpackage_name
            )));
        }
        Ok(Response::new(GetSchemaResponse {
            schema: self.schema.clone(),
        }))
    }

    async fn check_config(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let req = request.into_inner();
        let news = or_empty(req.news);
        let mut decoded = crate::rpc::codec::decode(&news);
        // The engine adds `version`; unknown config values are checked once known.
        decoded.value.remove("version");
        for u in &decoded.unknowns {
            if let Some(k) = u.top() {
                decoded.value.remove(k);
            }
        }
        let failures = match crate::provider::typed_from::<C>(&decoded.value) {
            Ok(_) => Vec::new(),
            Err(f) => failures(vec![f]),
        };
        Ok(Response::new(CheckResponse {
            inputs: Some(news),
            failures,
        }))
    }

    async fn diff_config(
        &self,
        request: Request<DiffRequest>,
    ) -> Result<Response<DiffResponse>, Status> {
        let req = request.into_inner();
        let parse = |s: Option<Struct>| {
            let mut d = crate::rpc::codec::decode(&or_empty(s));
            d.value.remove("version");
            d.value
        };
        let (olds, news) = (parse(req.olds), parse(req.news));
        let mut diffs: Vec<String> = olds
            .keys()
            .chain(news.keys())
            .filter(|k| olds.get(*k) != news.get(*k))
            .cloned()
            .collect();
        diffs.sort();
        diffs.dedup();
        Ok(Response::new(DiffResponse {
            changes: if diffs.is_empty() {
                DiffChanges::DiffNone as i32
            } else {
                DiffChanges::DiffSome as i32
            },
            diffs,
            ..Default::default()
        }))
    }

    async fn configure(
        &self,
        request: Request<ConfigureRequest>,
    ) -> Result<Response<ConfigureResponse>, Status> {
        let req = request.into_inner();
        let variables: BTreeMap<String, String> = req.variables.into_iter().collect();
        let mut args = req.args.unwrap_or_default();
        args.fields.remove("version");
        let config = self
            .provider
            .parse_config(Some(&args), &variables)
            .map_err(|f| {
                Status::invalid_argument(format!(
                    "invalid provider configuration: {}: {}",
                    f.property, f.reason
                ))
            })?;
        self.provider.set_config(config);
        Ok(Response::new(ConfigureResponse {
            accept_secrets: true,
            supports_preview: true,
            accept_resources: true,
            accept_outputs: false,
            supports_autonaming_configuration: false,
        }))
    }

    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let req = request.into_inner();
        let resource = self.provider.resource(urn_type(&req.urn)).map_err(status)?;
        let ctx = self.provider.ctx(&req.urn);
        let news = or_empty(req.news);
        let out = resource
            .check(&ctx, &news, req.olds.as_ref())
            .await
            .map_err(status)?;
        Ok(Response::new(CheckResponse {
            inputs: Some(out.inputs),
            failures: failures(out.failures),
        }))
    }

    async fn diff(&self, request: Request<DiffRequest>) -> Result<Response<DiffResponse>, Status> {
        let req = request.into_inner();
        let resource = self.provider.resource(urn_type(&req.urn)).map_err(status)?;
        let ctx = self.provider.ctx(&req.urn);
        let mut diff = resource
            .diff(&ctx, &req.id, &or_empty(req.olds), &or_empty(req.news))
            .await
            .map_err(status)?;
        diff.changes.retain(|c| {
            !req.ignore_changes.iter().any(|i| {
                c.path == *i
                    || c.path.starts_with(&format!("{i}."))
                    || c.path.starts_with(&format!("{i}["))
            })
        });
        self.provider.log_note(&ctx, &diff).await;
        let replaces: Vec<String> = diff
            .changes
            .iter()
            .filter(|c| c.replace)
            .map(|c| c.path.clone())
            .collect();
        let detailed_diff = diff
            .changes
            .iter()
            .map(|c| {
                (
                    c.path.clone(),
                    PropertyDiff {
                        kind: diff_kind_wire(c.kind, c.replace),
                        input_diff: true,
                    },
                )
            })
            .collect();
        Ok(Response::new(DiffResponse {
            replaces,
            stables: Vec::new(),
            delete_before_replace: diff.delete_before_replace,
            changes: if diff.has_changes() {
                DiffChanges::DiffSome as i32
            } else {
                DiffChanges::DiffNone as i32
            },
            diffs: diff_keys(&diff),
            detailed_diff,
            has_detailed_diff: true,
        }))
    }

    async fn create(
        &self,
        request: Request<CreateRequest>,
    ) -> Result<Response<CreateResponse>, Status> {
        let req = request.into_inner();
        let resource = self.provider.resource(urn_type(&req.urn)).map_err(status)?;
        let ctx = self.provider.ctx(&req.urn);
        let (id, properties) = resource
            .create(&ctx, &or_empty(req.properties), req.preview)
            .await
            .map_err(status)?;
        Ok(Response::new(CreateResponse {
            id,
            properties: Some(properties),
            refresh_before_update: false,
        }))
    }

    async fn read(&self, request: Request<ReadRequest>) -> Result<Response<ReadResponse>, Status> {
        let req = request.into_inner();
        let resource = self.provider.resource(urn_type(&req.urn)).map_err(status)?;
        let ctx = self.provider.ctx(&req.urn);
        let out = resource
            .read(
                &ctx,
                &req.id,
                &or_empty(req.properties),
                &or_empty(req.inputs),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(match out {
            Some(r) => ReadResponse {
                id: r.id,
                properties: Some(r.state),
                inputs: Some(r.inputs),
                refresh_before_update: false,
            },
            // An empty id tells the engine the resource is gone.
            None => ReadResponse::default(),
        }))
    }

    async fn update(
        &self,
        request: Request<UpdateRequest>,
    ) -> Result<Response<UpdateResponse>, Status> {
        let req = request.into_inner();
        let resource = self.provider.resource(urn_type(&req.urn)).map_err(status)?;
        let ctx = self.provider.ctx(&req.urn);
        let properties = resource
            .update(
                &ctx,
                &req.id,
                &or_empty(req.olds),
                &or_empty(req.news),
                req.preview,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(UpdateResponse {
            properties: Some(properties),
            refresh_before_update: false,
        }))
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Result<Response<()>, Status> {
        let req = request.into_inner();
        let resource = self.provider.resource(urn_type(&req.urn)).map_err(status)?;
        let ctx = self.provider.ctx(&req.urn);
        resource
            .delete(&ctx, &req.id, &or_empty(req.properties))
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn cancel(&self, _request: Request<()>) -> Result<Response<()>, Status> {
        self.provider.cancel();
        Ok(Response::new(()))
    }

    async fn get_plugin_info(&self, _request: Request<()>) -> Result<Response<PluginInfo>, Status> {
        Ok(Response::new(PluginInfo {
            version: self.provider.version.to_string(),
        }))
    }
}

/// The engine address: the first positional argument, after any flags (`--logtostderr`,
/// `-v=9`, `--tracing ADDR`, `--root DIR` …).
pub fn engine_address(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(flag) = a.strip_prefix('-') {
            let flag = flag.trim_start_matches('-');
            // Flags that take their value as the next argument.
            if !flag.contains('=') && matches!(flag, "tracing" | "root" | "engine_address") {
                it.next();
            }
            continue;
        }
        return Some(a.clone());
    }
    None
}

/// Serves `provider` the way the engine expects, until the engine goes away or a signal
/// arrives. Prints the port on stdout, then never writes to stdout again.
pub async fn serve<C>(provider: Provider<C>, schema: String, args: &[String]) -> Result<(), String>
where
    C: DeserializeOwned + Serialize + JsonSchema + Default + PartialEq + Send + Sync + 'static,
{
    let provider = Arc::new(provider);
    let engine = engine_address(args);
    if let Some(addr) = &engine {
        provider.set_engine_log(EngineLog::connect(addr)?);
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{port}").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    let service = ResourceProviderServer::new(Service::new(provider.clone(), schema))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
            let _ = stop_rx.await;
        });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.map_err(|e| format!("gRPC server failed: {e}")),
        () = wait_for_shutdown(engine) => {}
    }
    // Stop in-flight builds, then give open calls a moment to finish; an idle client
    // connection must not keep the process alive.
    provider.cancel();
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), server).await;
    Ok(())
}

/// Resolves on SIGINT/SIGTERM, or when the engine's address stops accepting connections
/// (the engine exited without stopping us).
async fn wait_for_shutdown(engine: Option<String>) {
    let engine_gone = async move {
        let Some(addr) = engine else {
            return std::future::pending::<()>().await;
        };
        let addr = addr.trim_start_matches("http://").to_string();
        let mut failures = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            match tokio::net::TcpStream::connect(&addr).await {
                Ok(_) => failures = 0,
                Err(_) => failures += 1,
            }
            if failures >= 3 {
                eprintln!("docker-buildkit: the engine at {addr} is gone; shutting down");
                return;
            }
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = engine_gone => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::engine_address;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn engine_address_skips_flags() {
        assert_eq!(
            engine_address(&s(&["127.0.0.1:1234"])).as_deref(),
            Some("127.0.0.1:1234")
        );
        assert_eq!(
            engine_address(&s(&[
                "--logtostderr",
                "-v=9",
                "--tracing",
                "t:1",
                "127.0.0.1:5"
            ]))
            .as_deref(),
            Some("127.0.0.1:5")
        );
        assert_eq!(engine_address(&s(&["--logflow"])), None);
    }
}
