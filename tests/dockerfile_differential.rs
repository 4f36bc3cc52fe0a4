//! The Dockerfile checker of the provider's Check (issue 20) against the real builders: every
//! case of `tests/dockerfile-corpus/` is built on the private dockerd (20.10, its built-in
//! BuildKit, through `docker buildx build --builder default`) and on the standalone buildkitd
//! (`buildctl build --frontend dockerfile.v0`), both with `--no-cache` (a cached `RUN` step
//! never checks its secret and ssh mounts), and checked by
//! `docker_buildkit::resources::image::check_dockerfile`. Then:
//!
//! 1. every failure our check reports is a failure on both builders (no false alarm);
//! 2. a case that either builder builds gets no failure from our check (the same rule, seen
//!    from the builders' side);
//! 3. a case both builders fail for a reason the check models (`"modelled"` in its
//!    `case.json`: `target`, `parse`, `source`, `secret`, `from`, or `true`) gets a failure
//!    from our check.
//!
//! A summary table (case, dockerd, buildkitd, ours) is printed; run with `--nocapture` to see
//! it on success. Without the services (`scripts/services.sh up` and its env file) the test
//! skips, unless `DBK_REQUIRE_SERVICES=1`.
//!
//! # The corpus
//!
//! Each `tests/dockerfile-corpus/<case>/` is a build context: a `Dockerfile` (or the file
//! `case.json` names), an optional `.dockerignore`, the context's files, and `case.json`:
//!
//! ```json
//! {"about": "what the case is about", "target": "x", "buildArgs": {"K": "V"},
//!  "secrets": {"id": "value"}, "ssh": false, "dockerfile": "build/App.dockerfile",
//!  "symlinks": {"link": "target"}, "dirs": ["empty-dir"],
//!  "expect": "ok" | "fail" | {"dockerd": "ok", "buildkitd": "fail"},
//!  "modelled": "source"}
//! ```
//!
//! All fields are optional. The case is copied to a temporary directory without its
//! `case.json`; there `symlinks` are made (git keeps them badly) and `dirs` created (git keeps
//! no empty directory). `expect` is for the reader: the test never trusts it, it only prints a
//! note when a builder disagrees with it. A Dockerfile that mentions `BASE` gets the build arg
//! `BASE`: a busybox image each builder has (dockerd: `$DBK_BASE_IMAGE`; buildkitd: the same
//! image pushed to the test registry as `dbk-differential-base:1`), for cases that need `RUN`.
//! `ssh: true` forwards an (empty) ssh-agent started for the run as the `default` id.
//!
//! `DBK_DIFFERENTIAL_CORPUS=DIR` (several joined by `:`) adds the cases of other directories,
//! laid out the same way, to the built-in corpus: a hidden or private corpus runs under the
//! same three rules. A case name found twice (in the built-in corpus or another directory) is
//! an error rather than a silent choice.
//! `DBK_DIFFERENTIAL_CASES=a,b` runs only the cases whose names contain one of the words (in
//! every corpus); `DBK_DIFFERENTIAL_JOBS` sets how many cases build at once (default 8).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::services::{on_path, services_required, skip};
use docker_buildkit::resources::image::{ImageArgs, check_dockerfile};
use serde::Deserialize;
use serde_json::json;

/// How long one build may take before the case counts as broken infrastructure.
const BUILD_TIMEOUT: Duration = Duration::from_secs(240);

/// The repository (in the test registry) of the buildkitd's copy of the base image.
const BASE_REPO: &str = "dbk-differential-base:1";

// ---------------------------------------------------------------- case.json

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Case {
    #[allow(dead_code)]
    about: Option<String>,
    target: Option<String>,
    #[serde(default)]
    build_args: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    #[serde(default)]
    ssh: bool,
    dockerfile: Option<String>,
    #[serde(default)]
    symlinks: BTreeMap<String, String>,
    #[serde(default)]
    dirs: Vec<String>,
    expect: Option<Expect>,
    modelled: Option<Modelled>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Ok,
    Fail,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Expect {
    Both(Verdict),
    Each {
        dockerd: Verdict,
        buildkitd: Verdict,
    },
}

impl Expect {
    fn dockerd(&self) -> Verdict {
        match self {
            Expect::Both(v) | Expect::Each { dockerd: v, .. } => *v,
        }
    }
    fn buildkitd(&self) -> Verdict {
        match self {
            Expect::Both(v) | Expect::Each { buildkitd: v, .. } => *v,
        }
    }
}

/// Which failure the check models for a case both builders fail.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Modelled {
    Flag(bool),
    Kind(String),
}

const MODELLED_KINDS: [&str; 5] = ["target", "parse", "source", "secret", "from"];

impl Modelled {
    fn is_modelled(&self) -> bool {
        match self {
            Modelled::Flag(b) => *b,
            Modelled::Kind(_) => true,
        }
    }
}

// ---------------------------------------------------------------- the environment

/// What the builds need from `scripts/services.sh`.
struct Env {
    docker_host: String,
    registry: String,
    user: String,
    password: String,
    base_image: String,
    buildkit_host: String,
    buildctl: PathBuf,
    buildx_plugin: PathBuf,
}

/// The services, or `None` after a skip line (a failure under `DBK_REQUIRE_SERVICES=1`).
fn env_or_skip() -> Option<Env> {
    let get = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let names = [
        "DOCKER_HOST",
        "DBK_REGISTRY",
        "DBK_REGISTRY_USER",
        "DBK_REGISTRY_PASSWORD",
        "DBK_BASE_IMAGE",
        "DBK_BUILDKIT_HOST",
        "DBK_TOOLS_BIN",
        "DBK_DOCKER_CONFIG",
    ];
    let missing: Vec<&str> = names.iter().copied().filter(|n| get(n).is_none()).collect();
    let not_there = |what: String| {
        if services_required() {
            panic!("{what}: run scripts/services.sh up and source its env file");
        }
        skip(
            "the private dockerd, the registry and the standalone buildkitd of scripts/services.sh",
        );
        eprintln!("  ({what})");
        None
    };
    if !missing.is_empty() {
        return not_there(format!("{} not set", missing.join(", ")));
    }
    let v = |n: &str| get(n).unwrap();
    let buildctl = Path::new(&v("DBK_TOOLS_BIN")).join("buildctl");
    let buildx_plugin = Path::new(&v("DBK_DOCKER_CONFIG")).join("cli-plugins/docker-buildx");
    if !on_path("docker") {
        return not_there("no docker CLI on PATH".into());
    }
    if !buildctl.is_file() {
        return not_there(format!("no {}", buildctl.display()));
    }
    if !buildx_plugin.exists() {
        return not_there(format!("no buildx plugin at {}", buildx_plugin.display()));
    }
    Some(Env {
        docker_host: v("DOCKER_HOST"),
        registry: v("DBK_REGISTRY"),
        user: v("DBK_REGISTRY_USER"),
        password: v("DBK_REGISTRY_PASSWORD"),
        base_image: v("DBK_BASE_IMAGE"),
        buildkit_host: v("DBK_BUILDKIT_HOST"),
        buildctl,
        buildx_plugin,
    })
}

/// A Docker config of our own: the registry's credentials (for the push of the base image and
/// for buildctl's pulls of it) and the buildx plugin (the docker CLI needs it for BuildKit).
fn docker_config(env: &Env, dir: &Path) {
    fs::create_dir_all(dir.join("cli-plugins")).unwrap();
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", env.user, env.password));
    let config = json!({"auths": {env.registry.clone(): {"auth": auth}}});
    fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::os::unix::fs::symlink(&env.buildx_plugin, dir.join("cli-plugins/docker-buildx")).unwrap();
}

/// An ssh-agent of our own, on a socket in the run's directory; stopped on drop.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Option<Agent> {
        if !on_path("ssh-agent") {
            return None;
        }
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut agent = Agent { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !agent.socket.exists() {
            if Instant::now() > deadline || agent.child.try_wait().ok().flatten().is_some() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(agent)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- running builds

#[derive(Debug, Clone)]
enum Outcome {
    Pass,
    Fail(String),
    /// Not built: the infrastructure failed (a timeout, a program that did not start).
    Broken(String),
    /// Not built: the case needs what this run does not have (e.g. no ssh-agent).
    Skipped(String),
}

impl Outcome {
    fn passed(&self) -> bool {
        matches!(self, Outcome::Pass)
    }
    fn failed(&self) -> bool {
        matches!(self, Outcome::Fail(_))
    }
    fn cell(&self) -> &'static str {
        match self {
            Outcome::Pass => "ok",
            Outcome::Fail(_) => "FAIL",
            Outcome::Broken(_) => "BROKEN",
            Outcome::Skipped(_) => "skip",
        }
    }
    fn detail(&self) -> &str {
        match self {
            Outcome::Pass => "",
            Outcome::Fail(s) | Outcome::Broken(s) | Outcome::Skipped(s) => s,
        }
    }
}

/// Starts `cmd` with its output into `log`; returns the child, or why it did not start.
fn spawn(mut cmd: Command, log: &Path) -> Result<Child, String> {
    let out = fs::File::create(log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))
}

/// Waits for a build started by [`spawn`], killing it after [`BUILD_TIMEOUT`].
fn finish(child: Result<Child, String>, log: &Path) -> Outcome {
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Outcome::Broken(e),
    };
    let deadline = Instant::now() + BUILD_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::Broken(format!("timed out after {BUILD_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(25)),
            Err(e) => return Outcome::Broken(e.to_string()),
        }
    };
    if status.success() {
        Outcome::Pass
    } else {
        Outcome::Fail(key_line(&fs::read_to_string(log).unwrap_or_default()))
    }
}

/// The line of a build's output that says why it failed.
fn key_line(output: &str) -> String {
    let line = output
        .lines()
        .rev()
        .find(|l| l.starts_with("ERROR") || l.starts_with("error:"))
        .or_else(|| output.lines().rev().find(|l| l.contains("ERROR")))
        .or_else(|| output.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("(no output)")
        .trim();
    let line = line
        .trim_start_matches("ERROR: ")
        .trim_start_matches("error: ")
        .trim_start_matches("failed to build: ")
        .trim_start_matches("failed to solve: ")
        .trim_start_matches("rpc error: code = Unknown desc = ")
        .trim_start_matches("failed to solve with frontend dockerfile.v0: ")
        .trim_start_matches("failed to create LLB definition: ");
    line.chars().take(180).collect()
}

/// Everything one case's builds and check need, laid out in the run's directory.
struct Prepared {
    name: String,
    case: Case,
    context: PathBuf,
    dockerfile: String,
    uses_base: bool,
    secret_files: BTreeMap<String, PathBuf>,
}

fn copy_tree(from: &Path, to: &Path, skip_top: &[&str]) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip_top.iter().any(|s| name == *s) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&src, &dst, &[]);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

fn prepare(case_dir: &Path, run_dir: &Path) -> Prepared {
    let name = case_dir.file_name().unwrap().to_string_lossy().into_owned();
    let json_path = case_dir.join("case.json");
    let case: Case = match fs::read_to_string(&json_path) {
        Ok(text) => {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", json_path.display()))
        }
        Err(_) => Case::default(),
    };
    if let Some(Modelled::Kind(kind)) = &case.modelled {
        assert!(
            MODELLED_KINDS.contains(&kind.as_str()),
            "{}: modelled must be true, false or one of {MODELLED_KINDS:?}, not {kind:?}",
            json_path.display()
        );
    }
    let context = run_dir.join("cases").join(&name);
    copy_tree(case_dir, &context, &["case.json"]);
    for (link, target) in &case.symlinks {
        let at = context.join(link);
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, &at).unwrap();
    }
    for dir in &case.dirs {
        fs::create_dir_all(context.join(dir)).unwrap();
    }
    let dockerfile = case
        .dockerfile
        .clone()
        .unwrap_or_else(|| "Dockerfile".to_string());
    let text = fs::read_to_string(context.join(&dockerfile)).unwrap_or_default();
    let uses_base = text.contains("BASE");
    let mut secret_files = BTreeMap::new();
    for (id, value) in &case.secrets {
        let file = run_dir.join("secrets").join(&name).join(id);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, value).unwrap();
        secret_files.insert(id.clone(), file);
    }
    Prepared {
        name,
        case,
        context,
        dockerfile,
        uses_base,
        secret_files,
    }
}

struct Run<'a> {
    env: &'a Env,
    docker_config: PathBuf,
    agent: Option<&'a Agent>,
    logs: PathBuf,
    kit_base: String,
}

impl Run<'_> {
    fn build_args(&self, p: &Prepared, base: &str) -> Vec<(String, String)> {
        let mut args: Vec<(String, String)> = Vec::new();
        if p.uses_base {
            args.push(("BASE".into(), base.into()));
        }
        args.extend(
            p.case
                .build_args
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        args
    }

    fn dockerd(&self, p: &Prepared) -> Result<Command, String> {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", &self.env.docker_host)
            .env("DOCKER_CONFIG", &self.docker_config)
            .env("DOCKER_BUILDKIT", "1")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("BUILDX_BUILDER")
            .args(["buildx", "build", "--builder", "default"])
            // dockerd has no bridge network here; RUN steps need `none`.
            .args(["--network", "none", "--output", "type=cacheonly"])
            .args(["--no-cache", "--progress", "plain", "-f"])
            .arg(p.context.join(&p.dockerfile));
        if let Some(t) = &p.case.target {
            cmd.args(["--target", t]);
        }
        for (k, v) in self.build_args(p, &self.env.base_image) {
            cmd.arg("--build-arg").arg(format!("{k}={v}"));
        }
        self.session_args(p, &mut cmd)?;
        cmd.arg(&p.context);
        Ok(cmd)
    }

    fn buildkitd(&self, p: &Prepared) -> Result<Command, String> {
        let dockerfile = p.context.join(&p.dockerfile);
        let mut cmd = Command::new(&self.env.buildctl);
        cmd.env("DOCKER_CONFIG", &self.docker_config)
            .env_remove("SSH_AUTH_SOCK")
            .arg("--addr")
            .arg(&self.env.buildkit_host)
            .args(["build", "--no-cache", "--progress", "plain"])
            .args(["--frontend", "dockerfile.v0", "--local"])
            .arg(format!("context={}", p.context.display()))
            .arg("--local")
            .arg(format!(
                "dockerfile={}",
                dockerfile.parent().unwrap().display()
            ))
            .arg("--opt")
            .arg(format!(
                "filename={}",
                dockerfile.file_name().unwrap().to_string_lossy()
            ));
        if let Some(t) = &p.case.target {
            cmd.arg("--opt").arg(format!("target={t}"));
        }
        for (k, v) in self.build_args(p, &self.kit_base) {
            cmd.arg("--opt").arg(format!("build-arg:{k}={v}"));
        }
        self.session_args(p, &mut cmd)?;
        Ok(cmd)
    }

    /// The case's secrets and ssh agent: both CLIs spell them the same way.
    fn session_args(&self, p: &Prepared, cmd: &mut Command) -> Result<(), String> {
        for (id, file) in &p.secret_files {
            cmd.arg("--secret")
                .arg(format!("id={id},src={}", file.display()));
        }
        if p.case.ssh {
            let agent = self.agent.ok_or("no ssh-agent on PATH")?;
            cmd.arg("--ssh")
                .arg(format!("default={}", agent.socket.display()));
        }
        Ok(())
    }

    /// Builds `p` on both builders at once.
    fn build_both(&self, p: &Prepared) -> (Outcome, Outcome) {
        let dlog = self.logs.join(format!("{}.dockerd.log", p.name));
        let blog = self.logs.join(format!("{}.buildkitd.log", p.name));
        let d = self.dockerd(p).map(|c| spawn(c, &dlog));
        let b = self.buildkitd(p).map(|c| spawn(c, &blog));
        let d = match d {
            Ok(child) => finish(child, &dlog),
            Err(why) => Outcome::Skipped(why),
        };
        let b = match b {
            Ok(child) => finish(child, &blog),
            Err(why) => Outcome::Skipped(why),
        };
        (d, b)
    }
}

// ---------------------------------------------------------------- our check

struct Ours {
    /// `property: reason` of each failure.
    failures: Vec<String>,
    warnings: Vec<String>,
    unchecked: Option<String>,
}

impl Ours {
    fn cell(&self) -> String {
        if !self.failures.is_empty() {
            let props: Vec<&str> = self
                .failures
                .iter()
                .map(|f| f.split(':').next().unwrap_or(""))
                .collect();
            format!("FAIL({})", props.join(","))
        } else if self.unchecked.is_some() {
            "unchecked".into()
        } else if !self.warnings.is_empty() {
            format!("ok+{}w", self.warnings.len())
        } else {
            "ok".into()
        }
    }
}

fn our_check(p: &Prepared, base: &str, agent: Option<&Agent>) -> Ours {
    let mut build_args: BTreeMap<String, String> = BTreeMap::new();
    if p.uses_base {
        build_args.insert("BASE".into(), base.into());
    }
    build_args.extend(p.case.build_args.clone());
    let mut input = json!({
        "name": format!("dbk-differential/{}:latest", p.name),
        "context": p.context.display().to_string(),
        "push": false,
    });
    let fields = input.as_object_mut().unwrap();
    if p.dockerfile != "Dockerfile" {
        fields.insert("dockerfile".into(), json!(p.dockerfile));
    }
    if let Some(t) = &p.case.target {
        fields.insert("target".into(), json!(t));
    }
    if !build_args.is_empty() {
        fields.insert("buildArgs".into(), json!(build_args));
    }
    if !p.case.secrets.is_empty() {
        fields.insert("secrets".into(), json!(p.case.secrets));
    }
    if p.case.ssh {
        let paths: Vec<String> = agent
            .map(|a| vec![a.socket.display().to_string()])
            .unwrap_or_default();
        fields.insert("ssh".into(), json!([{"id": "default", "paths": paths}]));
    }
    let args: ImageArgs = serde_json::from_value(input)
        .unwrap_or_else(|e| panic!("{}: the ImageArgs of the case: {e}", p.name));
    let program_dir = p.context.parent().unwrap();
    let report = check_dockerfile(program_dir, &args);
    Ours {
        failures: report
            .failures
            .iter()
            .map(|f| format!("{}: {}", f.property, f.reason))
            .collect(),
        warnings: report.warnings.clone(),
        unchecked: report.unchecked.clone(),
    }
}

// ---------------------------------------------------------------- setup

fn docker(env: &Env, config: &Path, args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .env("DOCKER_HOST", &env.docker_host)
        .env("DOCKER_CONFIG", config)
        .args(args)
        .output()
        .expect("run docker")
}

/// The base image in the test registry, for the buildkitd (which cannot see dockerd's images).
fn push_base(env: &Env, config: &Path) -> String {
    let kit_base = format!("{}/{BASE_REPO}", env.registry);
    for args in [
        vec!["tag", env.base_image.as_str(), kit_base.as_str()],
        vec!["push", kit_base.as_str()],
    ] {
        let out = docker(env, config, &args);
        assert!(
            out.status.success(),
            "docker {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    kit_base
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dockerfile-corpus")
}

/// The built-in corpus, then every directory of `DBK_DIFFERENTIAL_CORPUS`.
fn corpus_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![corpus_dir()];
    if let Some(extra) = std::env::var_os("DBK_DIFFERENTIAL_CORPUS") {
        dirs.extend(std::env::split_paths(&extra).filter(|p| !p.as_os_str().is_empty()));
    }
    dirs
}

/// The case directories of one corpus (every subdirectory); `selected_cases` orders them.
fn cases_in(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("the corpus {} cannot be read: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect()
}

fn selected_cases() -> Vec<PathBuf> {
    let filter: Vec<String> = std::env::var("DBK_DIFFERENTIAL_CASES")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in corpus_dirs() {
        for case in cases_in(&dir) {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(first) = by_name.get(&name) {
                panic!(
                    "two corpus cases are named `{name}`: {} and {} (logs and rows go by name)",
                    first.display(),
                    case.display()
                );
            }
            by_name.insert(name, case);
        }
    }
    by_name
        .into_iter()
        .filter(|(name, _)| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())))
        .map(|(_, case)| case)
        .collect()
}

/// Checks that both builders build a trivial scratch image and run a step on the base image,
/// so that a broken service shows as one clear failure instead of a corpus of odd results.
fn smoke(run: &Run, run_dir: &Path) {
    let dir = run_dir.join("smoke");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("Dockerfile"),
        "ARG BASE\nFROM ${BASE} AS run\nRUN echo smoke > /smoke\nFROM scratch\nCOPY --from=run /smoke /\nCOPY a.txt /\n",
    )
    .unwrap();
    fs::write(dir.join("a.txt"), "a").unwrap();
    fs::write(dir.join("case.json"), "{}").unwrap();
    let p = prepare(&dir, run_dir);
    let (d, b) = run.build_both(&p);
    let log = |which: &str| {
        fs::read_to_string(run.logs.join(format!("smoke.{which}.log"))).unwrap_or_default()
    };
    assert!(
        d.passed(),
        "dockerd cannot build a trivial image: {d:?}\n{}",
        log("dockerd")
    );
    assert!(
        b.passed(),
        "buildkitd cannot build a trivial image: {b:?}\n{}",
        log("buildkitd")
    );
}

// ---------------------------------------------------------------- the test

struct Row {
    name: String,
    dockerd: Outcome,
    buildkitd: Outcome,
    ours: Ours,
    modelled: bool,
    notes: Vec<String>,
}

#[test]
fn dockerfile_check_agrees_with_both_builders() {
    let Some(env) = env_or_skip() else {
        return;
    };
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path();
    let config = run_dir.join("docker-config");
    docker_config(&env, &config);
    let logs = run_dir.join("logs");
    fs::create_dir_all(&logs).unwrap();
    let kit_base = push_base(&env, &config);
    let agent = Agent::start(run_dir);
    if agent.is_none() {
        eprintln!("no ssh-agent could be started: the cases with \"ssh\": true are skipped");
    }
    let run = Run {
        env: &env,
        docker_config: config,
        agent: agent.as_ref(),
        logs,
        kit_base,
    };
    smoke(&run, run_dir);

    let cases = selected_cases();
    assert!(!cases.is_empty(), "no case selected in {:?}", corpus_dirs());
    let jobs: usize = std::env::var("DBK_DIFFERENTIAL_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(8);
    let next = AtomicUsize::new(0);
    let rows: Mutex<Vec<Row>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(cases.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case_dir) = cases.get(i) else { break };
                    let p = prepare(case_dir, run_dir);
                    let (dockerd, buildkitd) = run.build_both(&p);
                    let ours = our_check(&p, &env.base_image, run.agent);
                    let mut notes = Vec::new();
                    if let Some(expect) = &p.case.expect {
                        for (who, want, got) in [
                            ("dockerd", expect.dockerd(), &dockerd),
                            ("buildkitd", expect.buildkitd(), &buildkitd),
                        ] {
                            let differs = match want {
                                Verdict::Ok => got.failed(),
                                Verdict::Fail => got.passed(),
                            };
                            if differs {
                                notes.push(format!(
                                    "case.json expects {want:?} on {who}, got {}",
                                    got.cell()
                                ));
                            }
                        }
                    }
                    let modelled = p.case.modelled.as_ref().is_some_and(Modelled::is_modelled);
                    rows.lock().unwrap().push(Row {
                        name: p.name,
                        dockerd,
                        buildkitd,
                        ours,
                        modelled,
                        notes,
                    });
                }
            });
        }
    });
    let mut rows = rows.into_inner().unwrap();
    rows.sort_by(|a, b| a.name.cmp(&b.name));

    let mut violations = Vec::new();
    for r in &rows {
        let (d, b) = (&r.dockerd, &r.buildkitd);
        for (who, o) in [("dockerd", d), ("buildkitd", b)] {
            if let Outcome::Broken(why) = o {
                violations.push(format!("{}: {who} did not build: {why}", r.name));
            }
        }
        let both_fail = d.failed() && b.failed();
        let either_passes = d.passed() || b.passed();
        if !r.ours.failures.is_empty() && !both_fail && !either_passes {
            // A builder was skipped or broken: nothing to compare with.
            continue;
        }
        // (1) every failure we report is a failure on both builders, and (2) a case either
        // builder builds gets none: one rule, told apart in the message.
        if !r.ours.failures.is_empty() && either_passes {
            let who: Vec<&str> = [("dockerd", d), ("buildkitd", b)]
                .iter()
                .filter(|(_, o)| o.passed())
                .map(|(w, _)| *w)
                .collect();
            violations.push(format!(
                "{}: false alarm, {} builds it but our check reports: {}",
                r.name,
                who.join(" and "),
                r.ours.failures.join(" | ")
            ));
        }
        // (3) a modelled failure of both builders is reported.
        if r.modelled && both_fail && r.ours.failures.is_empty() {
            violations.push(format!(
                "{}: both builders fail (dockerd: {}; buildkitd: {}) for a reason the check models, but it reports nothing{}",
                r.name,
                d.detail(),
                b.detail(),
                r.ours
                    .unchecked
                    .as_deref()
                    .map(|u| format!(" (unchecked: {u})"))
                    .unwrap_or_default()
            ));
        }
    }

    // The summary.
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    println!();
    println!(
        "{:width$}  {:9}  {:9}  {:14}  modelled",
        "case", "dockerd", "buildkitd", "ours"
    );
    println!("{}", "-".repeat(width + 50));
    for r in &rows {
        println!(
            "{:width$}  {:9}  {:9}  {:14}  {}",
            r.name,
            r.dockerd.cell(),
            r.buildkitd.cell(),
            r.ours.cell(),
            if r.modelled { "yes" } else { "" }
        );
    }
    println!();
    println!("Why each failed build failed, and what our check said (failures and warnings):");
    for r in &rows {
        let mut lines = Vec::new();
        if !r.dockerd.passed() {
            lines.push(format!("dockerd:   {}", r.dockerd.detail()));
        }
        if !r.buildkitd.passed() {
            lines.push(format!("buildkitd: {}", r.buildkitd.detail()));
        }
        for f in &r.ours.failures {
            lines.push(format!("ours:      {f}"));
        }
        if let Some(u) = &r.ours.unchecked {
            lines.push(format!("ours:      unchecked: {u}"));
        }
        for w in &r.ours.warnings {
            lines.push(format!("warning:   {w}"));
        }
        for n in &r.notes {
            lines.push(format!("note:      {n}"));
        }
        if !lines.is_empty() {
            println!("  {}", r.name);
            for l in lines {
                println!("      {l}");
            }
        }
    }
    let count = |f: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| f(r)).count();
    println!();
    println!(
        "{} cases in {:.0?}: {} pass on both, {} fail on both, {} disagree; ours reports failures for {}, unchecked {}",
        rows.len(),
        started.elapsed(),
        count(&|r| r.dockerd.passed() && r.buildkitd.passed()),
        count(&|r| r.dockerd.failed() && r.buildkitd.failed()),
        count(&|r| r.dockerd.passed() != r.buildkitd.passed()),
        count(&|r| !r.ours.failures.is_empty()),
        count(&|r| r.ours.unchecked.is_some()),
    );
    assert!(
        violations.is_empty(),
        "{} violation(s):\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}
