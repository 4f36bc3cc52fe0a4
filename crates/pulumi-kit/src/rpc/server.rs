//! The gRPC face of the provider: Pulumi's `ResourceProvider` service on tonic, and the
//! start-up the engine expects (bind 127.0.0.1:0, print the port as the first stdout line,
//! serve until the engine goes away).
//!
//! Each RPC here only translates: request fields in, [`Provider`] call, response fields out.
//! Property maps are handed to the dispatcher untouched. RPCs this provider does not serve
//! answer `UNIMPLEMENTED` (tonic's default stubs); a request the protobuf decoder rejects
//! answers `INVALID_ARGUMENT` in one sentence ([`ShortDecodeErrors`]). The RPCs that carry
//! property values decode with [`CutCodec`] ([`Routes`]), so that a value nested too deeply
//! for prost is a check failure of its property, not an undecodable request. Not for: typed
//! values or resource logic.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use prost_types::Struct;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::{
    Body, BoxFuture, Context, Future, Pin, Poll, Service as HttpService, StdError, http,
};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use crate::generated::pulumirpc::resource_provider_server::{
    ResourceProvider, ResourceProviderServer, SERVICE_NAME,
};
use crate::generated::pulumirpc::{
    CallRequest, CheckRequest, CheckResponse, ConfigureRequest, ConfigureResponse,
    ConstructRequest, CreateRequest, CreateResponse, DeleteRequest, DiffRequest, DiffResponse,
    GetSchemaRequest, GetSchemaResponse, InvokeRequest, PluginInfo, PropertyDiff,
    ProviderHandshakeRequest, ProviderHandshakeResponse, ReadRequest, ReadResponse, UpdateRequest,
    UpdateResponse, diff_response::DiffChanges,
};
use crate::provider::{
    DispatchError, Provider, ValidateConfig, diff_keys, diff_kind_wire, urn_type,
};
use crate::resource::{CheckFailure, ErrorKind};
use crate::rpc::engine::{EngineAddressError, EngineLog};
use crate::rpc::nesting::{CutCodec, PropertyMaps};

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
        DispatchError::Resource(r) => match r.kind {
            ErrorKind::InvalidInput => Status::invalid_argument(r.message),
            ErrorKind::Unavailable => Status::unavailable(r.message),
            ErrorKind::Cancelled => Status::cancelled(r.to_string()),
            ErrorKind::Failed => Status::unknown(r.message),
        },
    }
}

fn failures(f: Vec<CheckFailure>) -> Vec<crate::generated::pulumirpc::CheckFailure> {
    f.into_iter()
        .map(|f| crate::generated::pulumirpc::CheckFailure {
            property: f.property.to_string(),
            reason: f.reason,
        })
        .collect()
}

/// Runs `op` within the engine's `timeout` for the call (seconds, from the resource's
/// `customTimeouts`; 0 means none). At the deadline `op` is dropped, which closes its
/// streams to the Docker daemon and so stops the build or push there, and the call fails
/// with DEADLINE_EXCEEDED.
async fn within<T>(
    what: &str,
    urn: &str,
    timeout: f64,
    op: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    if !(timeout.is_finite() && timeout > 0.0) {
        return op.await;
    }
    let limit = std::time::Duration::from_secs_f64(timeout.min(1e9));
    match tokio::time::timeout(limit, op).await {
        Ok(result) => result,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "{what} {} timed out after {timeout} s (its customTimeouts): the build and push were stopped",
            crate::provider::urn_name(urn)
        ))),
    }
}

/// What a provider's configuration type must be to be served.
pub trait ProviderConfigType:
    DeserializeOwned
    + Serialize
    + JsonSchema
    + Default
    + PartialEq
    + ValidateConfig
    + Send
    + Sync
    + 'static
{
}

impl<C> ProviderConfigType for C where
    C: DeserializeOwned
        + Serialize
        + JsonSchema
        + Default
        + PartialEq
        + ValidateConfig
        + Send
        + Sync
        + 'static
{
}

fn or_empty(s: Option<Struct>) -> Struct {
    s.unwrap_or_default()
}

/// The directory relative paths in inputs are read from: the program's. The Pulumi engine
/// starts a provider in the program's directory (its cwd) and sends, as Handshake's
/// `program_directory`/`root_directory`, the directory of the provider's own binary — the
/// plugin directory, which holds none of the user's files. So a directory that is where our
/// executable lives means "use the cwd"; any other (an engine or harness that attaches to us
/// and names the program's directory) is taken as given.
fn program_dir(sent: Option<String>) -> Option<PathBuf> {
    let sent = PathBuf::from(sent.filter(|d| !d.is_empty())?);
    let Some(exe) = std::env::current_exe()
        .ok()
        .and_then(|e| e.canonicalize().ok())
    else {
        return Some(sent);
    };
    // The directory holds our binary (under its own name or the plugin's, possibly as a
    // link to it), or is the one it is in.
    let names = [
        exe.file_name().map(PathBuf::from),
        Some(PathBuf::from("pulumi-resource-docker-buildkit")),
    ];
    let holds_us = names
        .into_iter()
        .flatten()
        .any(|name| sent.join(name).canonicalize().is_ok_and(|p| p == exe));
    if holds_us || exe.parent() == sent.canonicalize().ok().as_deref() {
        return None;
    }
    Some(sent)
}

#[tonic::async_trait]
impl<C> ResourceProvider for Service<C>
where
    C: ProviderConfigType,
{
    async fn handshake(
        &self,
        request: Request<ProviderHandshakeRequest>,
    ) -> Result<Response<ProviderHandshakeResponse>, Status> {
        let req = request.into_inner();
        if !req.engine_address.is_empty() {
            let log = EngineLog::connect(&req.engine_address)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            self.provider.set_engine_log(log);
        }
        self.provider
            .set_program_dir(program_dir(req.program_directory.or(req.root_directory)));
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
        let failures = match self.provider.config_from(&decoded) {
            Ok(config) => failures(config.validate()),
            Err(f) => failures(f),
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
            .and_then(|c| match c.validate() {
                f if f.is_empty() => Ok(c),
                f => Err(f),
            })
            .map_err(|f| {
                Status::invalid_argument(format!(
                    "invalid provider configuration: {}",
                    f.iter()
                        .map(|f| format!("{}: {}", f.property, f.reason))
                        .collect::<Vec<_>>()
                        .join("; ")
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
        let properties = or_empty(req.properties);
        let (id, properties) = within("creating", &req.urn, req.timeout, async {
            resource
                .create(&ctx, &properties, req.preview)
                .await
                .map_err(status)
        })
        .await?;
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
        let (properties, inputs) = (or_empty(req.properties), or_empty(req.inputs));
        let out = within("refreshing", &req.urn, req.timeout, async {
            resource
                .read(&ctx, &req.id, &properties, &inputs)
                .await
                .map_err(status)
        })
        .await?;
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
        let (olds, news) = (or_empty(req.olds), or_empty(req.news));
        let properties = within("updating", &req.urn, req.timeout, async {
            resource
                .update(&ctx, &req.id, &olds, &news, req.preview)
                .await
                .map_err(status)
        })
        .await?;
        Ok(Response::new(UpdateResponse {
            properties: Some(properties),
            refresh_before_update: false,
        }))
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Result<Response<()>, Status> {
        let req = request.into_inner();
        let resource = self.provider.resource(urn_type(&req.urn)).map_err(status)?;
        let ctx = self.provider.ctx(&req.urn);
        let properties = or_empty(req.properties);
        within("deleting", &req.urn, req.timeout, async {
            resource
                .delete(&ctx, &req.id, &properties)
                .await
                .map_err(status)
        })
        .await?;
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

/// The gRPC service `S`, except that a request the protobuf decoder rejects is answered
/// INVALID_ARGUMENT with one short sentence, instead of tonic's INTERNAL carrying the
/// decoder's whole field stack. (A property value nested deeper than prost decodes is no
/// longer one of them in the RPCs [`Routes`] serves: it becomes a check failure there.)
#[derive(Clone)]
pub struct ShortDecodeErrors<S>(pub S);

impl<S: NamedService> NamedService for ShortDecodeErrors<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> HttpService<http::Request<ReqBody>> for ShortDecodeErrors<S>
where
    S: HttpService<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let response = self.0.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            if let Some(short) = short_decode_error(response.headers()) {
                let headers = response.headers_mut();
                headers.remove("grpc-message");
                headers.remove("grpc-status-details-bin");
                if short.add_header(headers).is_ok() {
                    response.extensions_mut().insert(short);
                }
            }
            Ok(response)
        })
    }
}

/// tonic's message for a request its protobuf decoder rejected (tonic-prost's
/// `from_decode_error` passes prost's `DecodeError` text on, which starts so).
const DECODE_FAILED: &str = "failed to decode Protobuf message";

/// The short status to answer instead, when `headers` carry a decode failure.
fn short_decode_error(headers: &http::HeaderMap) -> Option<Status> {
    // Only tonic's own INTERNAL: `from_header_map` is not asked to parse anything else.
    if headers.get("grpc-status")?.as_bytes() != b"13" {
        return None;
    }
    let status = Status::from_header_map(headers)?;
    if !status.message().starts_with(DECODE_FAILED) {
        return None;
    }
    let why = if status.message().contains("recursion limit reached") {
        "a value in it is nested too deeply (lists and objects inside one another): flatten it"
    } else {
        "it is not a valid protobuf message of the expected type"
    };
    Some(Status::invalid_argument(format!(
        "the request cannot be decoded: {why}"
    )))
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

/// The gRPC service [`serve`] runs for `provider` (also for tests that serve it on a listener
/// of their own).
pub type GrpcService<C> = ShortDecodeErrors<Routes<C>>;

/// [`GrpcService`] for `provider`, whose `GetSchema` answers `schema`.
pub fn grpc_service<C: ProviderConfigType>(
    provider: Arc<Provider<C>>,
    schema: String,
) -> GrpcService<C> {
    ShortDecodeErrors(Routes::new(Service::new(provider, schema)))
}

/// The generated `ResourceProviderServer`, except that the RPCs whose requests carry
/// property values ([`ROUTED`]) decode them with [`CutCodec`]: a value nested deeper than
/// the codec reads is cut out of the bytes first, so that the request decodes and the value
/// reaches validation, which fails its property, instead of failing the whole RPC in prost.
/// Each of those RPCs is served as the generated code serves it, codec aside.
pub struct Routes<C> {
    service: Arc<Service<C>>,
    generated: ResourceProviderServer<Service<C>>,
}

impl<C> Routes<C> {
    pub fn new(service: Service<C>) -> Self {
        let service = Arc::new(service);
        Self {
            generated: ResourceProviderServer::from_arc(service.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            service,
        }
    }
}

impl<C> Clone for Routes<C> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            generated: self.generated.clone(),
        }
    }
}

impl<C> NamedService for Routes<C> {
    const NAME: &'static str = SERVICE_NAME;
}

/// One unary RPC of [`Service`]: `call` on the service, for [`tonic::server::Grpc::unary`].
struct Unary<C, F>(Arc<Service<C>>, F);

impl<C, Req, Resp, F> tonic::server::UnaryService<Req> for Unary<C, F>
where
    F: Fn(Arc<Service<C>>, Request<Req>) -> BoxFuture<Response<Resp>, Status>,
{
    type Response = Resp;
    type Future = BoxFuture<Response<Resp>, Status>;

    fn call(&mut self, request: Request<Req>) -> Self::Future {
        (self.1)(self.0.clone(), request)
    }
}

type HttpFuture = BoxFuture<http::Response<tonic::body::Body>, Infallible>;

impl<C: ProviderConfigType> Routes<C> {
    /// Serves `req` as the generated code does for a unary RPC, with [`CutCodec`].
    fn unary<Req, Resp, B, F>(&self, req: http::Request<B>, call: F) -> HttpFuture
    where
        Req: PropertyMaps + Send + 'static,
        Resp: prost::Message + Send + 'static,
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
        F: Fn(Arc<Service<C>>, Request<Req>) -> BoxFuture<Response<Resp>, Status> + Send + 'static,
    {
        let method = Unary(self.service.clone(), call);
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(CutCodec::<Resp, Req>::default())
                .apply_max_message_size_config(Some(MAX_MESSAGE_BYTES), Some(MAX_MESSAGE_BYTES));
            Ok(grpc.unary(method, req).await)
        })
    }
}

/// The RPCs [`Routes`] serves with [`CutCodec`]: the unary ones whose request carries
/// property values (as [`PropertyMaps`] says where), each to its [`ResourceProvider`] method.
macro_rules! routed {
    ($($name:literal => $method:ident($request:ty)),* $(,)?) => {
        /// The RPCs [`Routes`] decodes with [`CutCodec`].
        pub const ROUTED: &[&str] = &[$($name),*];

        impl<C: ProviderConfigType> Routes<C> {
            /// `req` served with [`CutCodec`] when it is one of [`ROUTED`], else by the
            /// generated code.
            fn route<B>(&mut self, req: http::Request<B>) -> HttpFuture
            where
                B: Body + Send + 'static,
                B::Error: Into<StdError> + Send + 'static,
            {
                let name = req
                    .uri()
                    .path()
                    .strip_prefix('/')
                    .and_then(|p| p.split_once('/'))
                    .filter(|(service, _)| *service == SERVICE_NAME)
                    .map(|(_, name)| name);
                match name {
                    $(Some($name) => self.unary(req, |s, r: Request<$request>| {
                        Box::pin(async move {
                            <Service<C> as ResourceProvider>::$method(&s, r).await
                        })
                    }),)*
                    _ => self.generated.call(req),
                }
            }
        }
    };
}

routed! {
    "CheckConfig" => check_config(CheckRequest),
    "DiffConfig" => diff_config(DiffRequest),
    "Configure" => configure(ConfigureRequest),
    "Invoke" => invoke(InvokeRequest),
    "Call" => call(CallRequest),
    "Check" => check(CheckRequest),
    "Diff" => diff(DiffRequest),
    "Create" => create(CreateRequest),
    "Read" => read(ReadRequest),
    "Update" => update(UpdateRequest),
    "Delete" => delete(DeleteRequest),
    "Construct" => construct(ConstructRequest),
}

impl<C, B> HttpService<http::Request<B>> for Routes<C>
where
    C: ProviderConfigType,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.route(req)
    }
}

/// Why the provider could not serve the engine.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    EngineAddress(#[from] EngineAddressError),
    #[error("cannot listen on 127.0.0.1: {0}")]
    Listen(std::io::Error),
    #[error("cannot tell the engine the port (stdout): {0}")]
    Port(std::io::Error),
    #[error("gRPC server failed: {0}")]
    Grpc(tonic::transport::Error),
}

/// Serves `provider` the way the engine expects, until the engine goes away or a signal
/// arrives. Prints the port on stdout, then never writes to stdout again.
pub async fn serve<C>(
    provider: Provider<C>,
    schema: String,
    args: &[String],
) -> Result<(), ServeError>
where
    C: ProviderConfigType,
{
    let provider = Arc::new(provider);
    let engine = engine_address(args);
    if let Some(addr) = &engine {
        provider.set_engine_log(EngineLog::connect(addr)?);
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(ServeError::Listen)?;
    let port = listener.local_addr().map_err(ServeError::Listen)?.port();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{port}").map_err(ServeError::Port)?;
        out.flush().map_err(ServeError::Port)?;
    }
    let service = grpc_service(provider.clone(), schema);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
            let _ = stop_rx.await;
        });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.map_err(ServeError::Grpc),
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
    #[test]
    fn program_dir_ignores_the_plugin_directory_the_engine_sends() {
        use std::path::PathBuf;
        let exe = std::env::current_exe().unwrap().canonicalize().unwrap();
        let plugin_dir = exe.parent().unwrap().display().to_string();
        assert_eq!(super::program_dir(Some(plugin_dir)), None);
        let program = tempfile::tempdir().unwrap();
        let given = program.path().display().to_string();
        assert_eq!(
            super::program_dir(Some(given.clone())),
            Some(PathBuf::from(&given))
        );
        // A link to our binary in another directory marks that one as the plugin's too.
        std::os::unix::fs::symlink(&exe, program.path().join(exe.file_name().unwrap())).unwrap();
        assert_eq!(super::program_dir(Some(given)), None);
        assert_eq!(super::program_dir(Some(String::new())), None);
        assert_eq!(super::program_dir(None), None);
    }

    use super::engine_address;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn decode_failures_become_one_short_invalid_argument() {
        use super::short_decode_error;
        use tonic::Status;
        let stack = "Struct.fields: Value.kind: ".repeat(100);
        let long = Status::internal(format!(
            "failed to decode Protobuf message: {stack}recursion limit reached"
        ))
        .into_http::<()>();
        let short = short_decode_error(long.headers()).expect("rewritten");
        assert_eq!(short.code(), tonic::Code::InvalidArgument);
        assert!(short.message().len() < 200, "{}", short.message());
        assert!(short.message().contains("nested"), "{}", short.message());
        // Any other status passes untouched.
        for other in [
            Status::internal("something else"),
            Status::invalid_argument("failed to decode Protobuf message: x"),
            Status::unavailable("no daemon"),
        ] {
            assert!(short_decode_error(other.into_http::<()>().headers()).is_none());
        }
    }

    #[test]
    fn every_rpc_carrying_property_values_is_routed_through_the_cut() {
        let mut theirs: Vec<String> = crate::rpc::nesting::tests::methods_carrying_values()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        theirs.sort();
        let mut ours: Vec<String> = super::ROUTED.iter().map(|s| s.to_string()).collect();
        ours.sort();
        assert_eq!(ours, theirs);
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
