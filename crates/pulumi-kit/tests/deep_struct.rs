//! Property values nested deeply (issue 18, item 4), through the kit's real gRPC service on a
//! local port, with a small test resource: a value nested deeper than the bound is a
//! CheckFailure naming its top-level property (or, under a property the schema does not
//! know, the usual warning naming that property), never an undecodable request; Create and
//! Update refuse what Check would, with the same words (and Configure what CheckConfig
//! would); 10,000 levels (sent as raw bytes, since prost itself would recurse that deep
//! building them) crash nothing; and a value within the bound arrives whole.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use prost::Message;
use prost::bytes::BufMut;
use prost_types::value::Kind;
use prost_types::{Struct, Value};
use pulumi_kit::generated::pulumirpc::engine_server::{Engine, EngineServer};
use pulumi_kit::generated::pulumirpc::resource_provider_client::ResourceProviderClient;
use pulumi_kit::generated::pulumirpc::{
    CheckRequest, CheckResponse, ConfigureRequest, CreateRequest, LogRequest,
    ProviderHandshakeRequest, UpdateRequest,
};
use pulumi_kit::provider::{Provider, ValidateConfig};
use pulumi_kit::resource::{CheckFailure, Created, Ctx, Inputs, Resource};
use pulumi_kit::rpc::codec::{MAX_NESTING, PropertyPath};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

const TOKEN: &str = "kit:index:Thing";
const URN: &str = "urn:pulumi:test::proj::kit:index:Thing::thing";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Config {
    /// A map of strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
}

impl ValidateConfig for Config {
    fn validate(&self) -> Vec<CheckFailure> {
        Vec::new()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ThingArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// A map of strings, like an image's labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    /// Any JSON value: the schema constrains nothing inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    anything: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
struct ThingState {
    #[serde(flatten)]
    args: ThingArgs,
}

struct Thing;

impl Resource for Thing {
    const TOKEN: &'static str = TOKEN;
    type Config = Config;
    type Args = ThingArgs;
    type State = ThingState;

    async fn create(
        &self,
        _ctx: &Ctx<Config>,
        inputs: Inputs<ThingArgs>,
        _preview: bool,
    ) -> pulumi_kit::resource::Result<Created<ThingState>> {
        Ok(Created {
            id: "thing".into(),
            state: ThingState { args: inputs.args },
        })
    }

    async fn update(
        &self,
        _ctx: &Ctx<Config>,
        _id: &str,
        _olds: ThingState,
        news: Inputs<ThingArgs>,
        _preview: bool,
    ) -> pulumi_kit::resource::Result<ThingState> {
        Ok(ThingState { args: news.args })
    }
}

/// The engine's side of `Log`: records every line.
#[derive(Clone, Default)]
struct LogSink(Arc<Mutex<Vec<LogRequest>>>);

#[tonic::async_trait]
impl Engine for LogSink {
    async fn log(
        &self,
        request: tonic::Request<LogRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(()))
    }
}

struct Served {
    client: ResourceProviderClient<Channel>,
    channel: Channel,
    logs: LogSink,
}

impl Served {
    fn warnings(&self) -> Vec<String> {
        self.logs
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.severity == 2)
            .map(|l| l.message.clone())
            .collect()
    }
}

/// The kit's gRPC service for a provider of [`Thing`], on a local port, its log going to a
/// recording engine.
async fn serve() -> Served {
    let logs = LogSink::default();
    let engine = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let engine_addr = engine.local_addr().unwrap();
    let sink = logs.clone();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(EngineServer::new(sink))
            .serve_with_incoming(TcpListenerStream::new(engine))
            .await;
    });
    let provider = Provider::<Config>::new("kit", "1.2.3", "test").with(Thing);
    let service = pulumi_kit::rpc::server::grpc_service(Arc::new(provider), "{}".into());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ResourceProviderClient::new(channel.clone());
    client
        .handshake(ProviderHandshakeRequest {
            engine_address: engine_addr.to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    Served {
        client,
        channel,
        logs,
    }
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

/// `{"a": {"a": … "leaf" …}}`: `levels` objects one inside the other.
fn nested(levels: usize) -> Value {
    let mut v = string("leaf");
    for _ in 0..levels {
        v = Value {
            kind: Some(Kind::StructValue(Struct {
                fields: [("a".to_string(), v)].into_iter().collect(),
            })),
        };
    }
    v
}

fn props(pairs: Vec<(&str, Value)>) -> Struct {
    Struct {
        fields: pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}

/// The top-level property a failure names.
fn top(f: &pulumi_kit::generated::pulumirpc::CheckFailure) -> String {
    PropertyPath::parse(&f.property)
        .and_then(|p| p.top().map(str::to_string))
        .unwrap_or_default()
}

async fn check(s: &mut Served, news: Struct) -> Result<CheckResponse, Status> {
    s.client
        .check(CheckRequest {
            urn: URN.into(),
            olds: Some(Struct::default()),
            news: Some(news),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn a_map_of_strings_nested_200_deep_is_a_check_failure_naming_it() {
    let mut s = serve().await;
    let news = props(vec![("name", string("n")), ("labels", nested(200))]);
    let resp = check(&mut s, news.clone()).await.expect("Check answers");
    assert_eq!(resp.failures.len(), 1, "{:?}", resp.failures);
    let f = &resp.failures[0];
    assert_eq!(top(f), "labels", "{f:?}");
    assert!(f.reason.contains("expected a string"), "{f:?}");

    // Create and Update refuse it, in the same words.
    let said = format!("{}: {}", f.property, f.reason);
    let err = s
        .client
        .create(CreateRequest {
            urn: URN.into(),
            properties: Some(news.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains(&said), "{}", err.message());
    let err = s
        .client
        .update(UpdateRequest {
            urn: URN.into(),
            id: "thing".into(),
            olds: Some(props(vec![("name", string("n"))])),
            news: Some(news),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains(&said), "{}", err.message());
}

#[tokio::test]
async fn an_unconstrained_value_nested_200_deep_fails_naming_its_property() {
    let mut s = serve().await;
    let news = props(vec![("name", string("n")), ("anything", nested(200))]);
    let resp = check(&mut s, news.clone()).await.expect("Check answers");
    assert_eq!(resp.failures.len(), 1, "{:?}", resp.failures);
    let f = &resp.failures[0];
    assert_eq!(f.property, "anything", "{f:?}");
    assert!(f.reason.contains("nested too deeply"), "{f:?}");
    assert!(f.reason.contains(&MAX_NESTING.to_string()), "{f:?}");
    let err = s
        .client
        .create(CreateRequest {
            urn: URN.into(),
            properties: Some(news),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .contains(&format!("{}: {}", f.property, f.reason)),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_value_200_deep_under_an_unknown_property_is_its_usual_warning() {
    let mut s = serve().await;
    let news = props(vec![("name", string("n")), ("labelz", nested(200))]);
    let resp = check(&mut s, news).await.expect("Check answers");
    assert!(resp.failures.is_empty(), "{:?}", resp.failures);
    // The unknown property is dropped from the checked inputs, as any unknown property is.
    let inputs = resp.inputs.unwrap();
    assert!(!inputs.fields.contains_key("labelz"), "{inputs:?}");
    let warnings = s.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("labelz is not a known property")
                && w.contains("did you mean labels?")),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn a_value_within_the_bound_arrives_whole_and_one_past_it_fails() {
    let mut s = serve().await;
    let resp = check(
        &mut s,
        props(vec![
            ("name", string("n")),
            ("anything", nested(MAX_NESTING)),
        ]),
    )
    .await
    .expect("Check answers");
    assert!(resp.failures.is_empty(), "{:?}", resp.failures);
    assert_eq!(
        resp.inputs.unwrap().fields["anything"],
        nested(MAX_NESTING),
        "the value comes back as sent"
    );
    let resp = check(
        &mut s,
        props(vec![
            ("name", string("n")),
            ("anything", nested(MAX_NESTING + 1)),
        ]),
    )
    .await
    .expect("Check answers");
    let props: Vec<&str> = resp.failures.iter().map(|f| f.property.as_str()).collect();
    assert_eq!(props, vec!["anything"]);
}

#[tokio::test]
async fn configuration_nested_200_deep_fails_naming_its_property() {
    let mut s = serve().await;
    let news = props(vec![("headers", nested(200))]);
    let resp = s
        .client
        .check_config(CheckRequest {
            urn: "urn:pulumi:test::proj::pulumi:providers:kit::default".into(),
            olds: Some(Struct::default()),
            news: Some(news.clone()),
            ..Default::default()
        })
        .await
        .expect("CheckConfig answers")
        .into_inner();
    let tops: Vec<String> = resp.failures.iter().map(top).collect();
    assert_eq!(tops, vec!["headers"], "{:?}", resp.failures);
    let err = s
        .client
        .configure(ConfigureRequest {
            args: Some(news),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("headers"), "{}", err.message());
}

/// Sends raw bytes as the request message; decodes the answer as `R`.
struct Raw<R>(PhantomData<R>);

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl<R: Message + Default + Send + 'static> Codec for Raw<R> {
    type Encode = Vec<u8>;
    type Decode = R;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder<R>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder<R> {
        RawDecoder(PhantomData)
    }
}

struct RawDecoder<R>(PhantomData<R>);

impl<R: Message + Default> Decoder for RawDecoder<R> {
    type Item = R;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<R>, Status> {
        R::decode(buf)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint_len(n: usize) -> usize {
    let mut v = Vec::new();
    varint(n, &mut v);
    v.len()
}

/// The wire bytes of a `Value` holding `levels` objects `{"a": …}` one inside the other
/// around the string "leaf", written without recursion (prost would recurse `levels` deep
/// to encode, and again to drop, the same value built of its types).
fn nested_bytes(levels: usize) -> Vec<u8> {
    let leaf = [0x1a, 4, b'l', b'e', b'a', b'f'];
    let mut prefixes: Vec<Vec<u8>> = Vec::with_capacity(levels);
    let mut len = leaf.len();
    for _ in 0..levels {
        // Value{struct_value(5): Struct{fields(1): Entry{key(1): "a", value(2): <len>}}}
        let entry = 3 + 1 + varint_len(len) + len;
        let strukt = 1 + varint_len(entry) + entry;
        let mut p = vec![0x2a];
        varint(strukt, &mut p);
        p.push(0x0a);
        varint(entry, &mut p);
        p.extend_from_slice(&[0x0a, 1, b'a', 0x12]);
        varint(len, &mut p);
        len = 1 + varint_len(strukt) + strukt;
        prefixes.push(p);
    }
    let mut out = Vec::with_capacity(len);
    for p in prefixes.iter().rev() {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(&leaf);
    out
}

/// A `CheckRequest` whose `news` is `{name: "n", <prop>: <value bytes>}`, as wire bytes.
fn check_request_bytes(prop: &str, value: &[u8]) -> Vec<u8> {
    let entry = |key: &str, value: &[u8]| {
        let mut e = vec![0x0a];
        varint(key.len(), &mut e);
        e.extend_from_slice(key.as_bytes());
        e.push(0x12);
        varint(value.len(), &mut e);
        e.extend_from_slice(value);
        let mut f = vec![0x0a];
        varint(e.len(), &mut f);
        f.extend(e);
        f
    };
    let mut news = entry("name", &string("n").encode_to_vec());
    news.extend(entry(prop, value));
    let mut req = CheckRequest {
        urn: URN.into(),
        ..Default::default()
    }
    .encode_to_vec();
    req.push(0x1a);
    varint(news.len(), &mut req);
    req.extend(news);
    req
}

async fn raw_check(s: &Served, request: Vec<u8>) -> Result<CheckResponse, Status> {
    let mut grpc = tonic::client::Grpc::new(s.channel.clone());
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(request),
        tonic::codegen::http::uri::PathAndQuery::from_static("/pulumirpc.ResourceProvider/Check"),
        Raw::<CheckResponse>(PhantomData),
    )
    .await
    .map(|r| r.into_inner())
}

#[test]
fn the_raw_builder_writes_what_prost_would() {
    let v = nested(40);
    assert_eq!(nested_bytes(40), v.encode_to_vec());
    let news = props(vec![("name", string("n")), ("labels", v.clone())]);
    let req = CheckRequest {
        urn: URN.into(),
        news: Some(news),
        ..Default::default()
    };
    assert_eq!(
        CheckRequest::decode(check_request_bytes("labels", &v.encode_to_vec()).as_slice())
            .map_err(|e| e.to_string()),
        CheckRequest::decode(req.encode_to_vec().as_slice()).map_err(|e| e.to_string()),
    );
}

#[tokio::test]
async fn ten_thousand_levels_crash_nothing_and_fail_naming_the_property() {
    let s = serve().await;
    for prop in ["labels", "anything"] {
        let resp = raw_check(&s, check_request_bytes(prop, &nested_bytes(10_000)))
            .await
            .expect("Check answers");
        assert_eq!(resp.failures.len(), 1, "{:?}", resp.failures);
        assert_eq!(top(&resp.failures[0]), prop, "{:?}", resp.failures);
    }
    let resp = raw_check(&s, check_request_bytes("labelz", &nested_bytes(10_000)))
        .await
        .expect("Check answers");
    assert!(resp.failures.is_empty(), "{:?}", resp.failures);
    // And the server still serves.
    s.client.clone().get_plugin_info(()).await.unwrap();
}
