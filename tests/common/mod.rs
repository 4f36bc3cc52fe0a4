//! Test harness that plays the Pulumi engine: starts the real provider binary, reads the
//! port it prints, talks gRPC to it, and runs a real `Engine` service that records every
//! `Log` call (so tests can assert what the user would see).
#![allow(dead_code)]

pub mod services;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use docker_buildkit::generated::pulumirpc::engine_server::{Engine, EngineServer};
use docker_buildkit::generated::pulumirpc::resource_provider_client::ResourceProviderClient;
use docker_buildkit::generated::pulumirpc::*;
use docker_buildkit::rpc::codec::{OUTPUT_SIG, SECRET_SIG, SIG_KEY, UNKNOWN};
use prost_types::value::Kind;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;

pub const TOKEN: &str = "docker-buildkit:index:Image";

/// A Docker host nobody serves.
pub const NO_DAEMON: &str = "unix:///nonexistent/docker.sock";

pub fn urn(name: &str) -> String {
    format!("urn:pulumi:test::proj::{TOKEN}::{name}")
}

/// The engine's side of `Log`: records every request.
#[derive(Clone, Default)]
pub struct LogSink(pub Arc<Mutex<Vec<LogRequest>>>);

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

/// A running provider and the fake engine it logs to.
pub struct Harness {
    pub client: ResourceProviderClient<Channel>,
    pub logs: LogSink,
    pub stderr: Arc<Mutex<String>>,
    child: Child,
    engine_task: tokio::task::JoinHandle<()>,
}

impl Harness {
    /// Starts the provider binary with `envs` added to its environment.
    pub async fn start(envs: &[(&str, &str)]) -> Harness {
        let logs = LogSink::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let engine_addr = listener.local_addr().unwrap();
        let sink = logs.clone();
        let engine_task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(EngineServer::new(sink))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulumi-resource-docker-buildkit"));
        cmd.arg("--logtostderr")
            .arg("-v=9")
            .arg(engine_addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the provider binary");
        let stdout = child.stdout.take().unwrap();
        let port = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        let port: u16 = port
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("first stdout line is the port, got {port:?}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = stderr.clone();
            let mut pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    stderr
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .expect("connect to the provider");
        let client = ResourceProviderClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        Harness {
            client,
            logs,
            stderr,
            child,
            engine_task,
        }
    }

    /// Started, then Handshake and Configure with `config` for `program_dir`.
    pub async fn configured(program_dir: &Path, config: Value) -> Harness {
        let mut h = Harness::start(&[]).await;
        h.configure(program_dir, config).await;
        h
    }

    /// A harness whose provider points at a daemon that does not exist: any Docker call it
    /// made would fail, so a passing Check/Diff/preview (or a reuse) through it proves none
    /// was made.
    pub async fn dockerless(program_dir: &Path) -> Harness {
        Harness::configured(program_dir, json!({"host": NO_DAEMON})).await
    }

    /// Handshake then Configure, as the engine does first.
    pub async fn configure(&mut self, program_dir: &Path, config: Value) {
        self.client
            .handshake(ProviderHandshakeRequest {
                engine_address: String::new(),
                program_directory: Some(program_dir.display().to_string()),
                root_directory: Some(program_dir.display().to_string()),
                ..Default::default()
            })
            .await
            .unwrap();
        let resp = self
            .client
            .configure(ConfigureRequest {
                args: Some(to_struct(&config)),
                accept_secrets: true,
                accept_resources: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(resp.accept_secrets && resp.supports_preview && resp.accept_resources);
    }

    pub async fn check(&mut self, name: &str, olds: &Value, news: &Value) -> CheckResponse {
        self.client
            .check(CheckRequest {
                urn: urn(name),
                olds: Some(to_struct(olds)),
                news: Some(to_struct(news)),
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Check that must fail on `property`, with a reason containing `reason`.
    pub async fn assert_check_fails(&mut self, news: &Value, property: &str, reason: &str) {
        let r = self.check("app", &json!({}), news).await;
        assert!(
            r.failures
                .iter()
                .any(|f| f.property == property && f.reason.contains(reason)),
            "for {news}: expected a failure on {property} containing {reason:?}, got {:?}",
            r.failures
        );
    }

    /// Check that must pass; returns the checked inputs.
    pub async fn check_ok(
        &mut self,
        name: &str,
        olds: &Value,
        news: &Value,
    ) -> prost_types::Struct {
        let r = self.check(name, olds, news).await;
        assert!(
            r.failures.is_empty(),
            "unexpected check failures: {:?}",
            r.failures
        );
        r.inputs.unwrap()
    }

    pub async fn diff(
        &mut self,
        name: &str,
        olds: &prost_types::Struct,
        news: &prost_types::Struct,
    ) -> DiffResponse {
        self.client
            .diff(DiffRequest {
                id: name.into(),
                urn: urn(name),
                olds: Some(olds.clone()),
                news: Some(news.clone()),
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn create(
        &mut self,
        name: &str,
        props: &prost_types::Struct,
        preview: bool,
    ) -> Result<CreateResponse, tonic::Status> {
        self.client
            .create(CreateRequest {
                urn: urn(name),
                properties: Some(props.clone()),
                preview,
                name: name.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn update(
        &mut self,
        name: &str,
        id: &str,
        olds: &prost_types::Struct,
        news: &prost_types::Struct,
        preview: bool,
    ) -> Result<UpdateResponse, tonic::Status> {
        self.client
            .update(UpdateRequest {
                id: id.into(),
                urn: urn(name),
                olds: Some(olds.clone()),
                news: Some(news.clone()),
                preview,
                name: name.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn read(
        &mut self,
        name: &str,
        id: &str,
        state: &prost_types::Struct,
        inputs: &prost_types::Struct,
    ) -> Result<ReadResponse, tonic::Status> {
        self.client
            .read(ReadRequest {
                id: id.into(),
                urn: urn(name),
                properties: Some(state.clone()),
                inputs: Some(inputs.clone()),
                name: name.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn delete(
        &mut self,
        name: &str,
        id: &str,
        state: &prost_types::Struct,
    ) -> Result<(), tonic::Status> {
        self.client
            .delete(DeleteRequest {
                id: id.into(),
                urn: urn(name),
                properties: Some(state.clone()),
                name: name.into(),
                ..Default::default()
            })
            .await
            .map(|_| ())
    }

    /// Starts a Create (not a preview) in the background, with the engine's `timeout` in
    /// seconds (0: none), so the test can act while it runs.
    pub fn create_in_background(
        &self,
        name: &str,
        props: &prost_types::Struct,
        timeout: f64,
    ) -> tokio::task::JoinHandle<Result<CreateResponse, tonic::Status>> {
        let mut client = self.client.clone();
        let request = CreateRequest {
            urn: urn(name),
            properties: Some(props.clone()),
            preview: false,
            name: name.into(),
            timeout,
            ..Default::default()
        };
        tokio::spawn(async move { client.create(request).await.map(|r| r.into_inner()) })
    }

    /// Waits until a logged message contains `needle`; fails the test, showing the log, after
    /// `within`.
    pub async fn wait_for_log(&self, needle: &str, within: Duration) {
        let start = std::time::Instant::now();
        while !self.log_text().contains(needle) {
            assert!(
                start.elapsed() < within,
                "{needle:?} was not logged within {within:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every logged message so far, one per line.
    pub fn log_text(&self) -> String {
        self.logs
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|l| l.message.clone())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn log_count(&self) -> usize {
        self.logs.0.lock().unwrap().len()
    }

    /// The provider's peak resident memory (VmHWM) in bytes, from /proc.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the provider's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM")
            * 1024
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Stops the provider; returns its exit status.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let _ = self.client.cancel(()).await;
        unsafe_kill(&self.child, "TERM");
        let status = wait_timeout(&mut self.child, Duration::from_secs(10));
        self.engine_task.abort();
        status
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("the provider did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// JSON → protobuf Struct (objects with the signature key pass through as they are).
pub fn to_struct(v: &Value) -> prost_types::Struct {
    match to_value(v).kind {
        Some(Kind::StructValue(s)) => s,
        _ => prost_types::Struct::default(),
    }
}

pub fn to_value(v: &Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(to_value).collect(),
        }),
        Value::Object(m) => Kind::StructValue(prost_types::Struct {
            fields: m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// protobuf Struct → JSON, keeping secret envelopes and unknown markers visible.
pub fn from_struct(s: &prost_types::Struct) -> Value {
    Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), from_value(v)))
            .collect::<Map<_, _>>(),
    )
}

pub fn from_value(v: &prost_types::Value) -> Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::NumberValue(n)) => json!(n),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(from_value).collect()),
        Some(Kind::StructValue(s)) => from_struct(s),
    }
}

pub fn secret(v: Value) -> Value {
    json!({SIG_KEY: SECRET_SIG, "value": v})
}

pub fn unknown() -> Value {
    json!(UNKNOWN)
}

pub fn output_unknown() -> Value {
    json!({SIG_KEY: OUTPUT_SIG})
}

pub fn is_secret(v: &Value) -> bool {
    v.get(SIG_KEY).and_then(Value::as_str) == Some(SECRET_SIG)
}

pub fn is_unknown(v: &Value) -> bool {
    v.as_str() == Some(UNKNOWN)
}

/// Writes files (path → content) under `dir`.
pub fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (p, c) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
}

/// A context whose image says which architecture it is for (`/hello.txt`), with no `RUN`
/// step, so that any platform builds without an emulator.
pub fn arch_context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG TARGETARCH\nCOPY hello-${TARGETARCH}.txt /hello.txt\n",
            ),
            ("hello-amd64.txt", "amd64\n"),
            ("hello-arm64.txt", "arm64\n"),
        ],
    );
    dir
}
