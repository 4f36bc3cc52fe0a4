//! End-to-end build benchmark (issue #11): the provider against the docker CLI 20.10's own
//! BuildKit client (`DOCKER_BUILDKIT=1 /usr/bin/docker build`, plus `docker push`), the
//! same context, the same daemon and registry, side by side in one run. Run it with
//! `scripts/bench.sh build` (it starts the services and makes a release build).
//!
//! The context: `--files N` files of 4 KiB (20,000 by default), `FROM scratch` +
//! `COPY . /app/`. Each side builds its own copy of it, which differs from the other's in
//! one salt file, so that neither reuses the other's layers. Measured per round, the two
//! sides alternating which goes first:
//! - `push`: a cold build + push (a new context directory: nothing of it in BuildKit), then
//!   a build + push after a one-file edit;
//! - `build`: the same with the image kept in the daemon (`push: false` / no `docker push`).
//!
//! The provider side is what `pulumi up` asks of it: Check (which hashes the context) and
//! Create, on a provider process that stays up (as during an update). Prints the median of
//! each measurement over `--runs N` rounds (3 by default), the ratio provider / CLI, and
//! the bytes of file data the provider sent to the builder. Not a test: it asserts nothing.
//!
//! `fleet` (issue #12): two platforms on two builders (the default daemon and a second one,
//! `DBK_DOCKER_HOST2`, listing `linux/arm64`) against both on one daemon, and against each
//! platform alone; every build a `RUN` step of `--sleep S` seconds (2 by default; a native
//! builder's own CPU is what a sleep stands for: here both daemons share one machine) and
//! a push. Prints the medians and the ratios of the two-builder wall time to the slower
//! platform alone and to the sum of both.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Harness;
use common::services::Services;
use serde_json::json;

const CLI: &str = "/usr/bin/docker";
const FILE_SIZE: usize = 4096;

struct Options {
    files: usize,
    runs: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench" && a != "fleet")
        .collect();
    let mut o = Options {
        files: 20_000,
        runs: 3,
    };
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| args.get(i + 1).and_then(|v| v.parse().ok());
        match args[i].as_str() {
            "--files" => o.files = value(i).expect("--files N"),
            "--runs" => o.runs = value(i).expect("--runs N"),
            "--quick" => {
                o.files = 2_000;
                o.runs = 1;
                i += 1;
                continue;
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o
}

/// A fresh context of `files` files (content depends on the index and `salt`).
fn make_context(dir: &Path, files: usize, salt: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY . /app/\n").unwrap();
    std::fs::write(dir.join("salt"), salt).unwrap();
    for i in 0..files {
        let sub = dir.join(format!("d{:03}", i / 200));
        if i % 200 == 0 {
            std::fs::create_dir_all(&sub).unwrap();
        }
        let line = format!("file {i} of the benchmark context\n");
        let mut data = line.repeat(FILE_SIZE / line.len() + 1).into_bytes();
        data.truncate(FILE_SIZE);
        std::fs::write(sub.join(format!("f{i:05}.txt")), data).unwrap();
    }
}

/// Changes one file (same size) and moves its mtime on.
fn edit_one(dir: &Path, round: usize) {
    let path = dir.join("d000").join("f00007.txt");
    let mut data = std::fs::read(&path).unwrap();
    let stamp = format!("edit {round} {}", uuid::Uuid::new_v4().simple());
    data[..stamp.len()].copy_from_slice(stamp.as_bytes());
    std::fs::write(&path, data).unwrap();
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The CLI side: `docker build` (+ `docker push`), timed.
fn cli_build(s: &Services, config_dir: &Path, dir: &Path, tag: &str, push: bool) -> Duration {
    let cli = |args: &[&str]| {
        let mut c = Command::new(CLI);
        c.args(args)
            .env("DOCKER_HOST", &s.docker_host)
            .env("DOCKER_CONFIG", config_dir)
            .env("DOCKER_BUILDKIT", "1");
        c
    };
    let started = Instant::now();
    run(
        cli(&["build", "-q", "-t", tag]).arg(dir),
        "DOCKER_BUILDKIT=1 docker build",
    );
    if push {
        run(&mut cli(&["push", "-q", tag]), "docker push");
    }
    started.elapsed()
}

/// The provider side: Check + Create, timed; and the bytes it sent to the builder.
async fn provider_build(
    s: &Services,
    h: &mut Harness,
    dir: &Path,
    name: &str,
    push: bool,
) -> (Duration, u64) {
    let mut inputs = json!({"name": name, "context": dir.display().to_string(), "push": push});
    if push {
        inputs["registry"] = s.registry_input();
    }
    let before = h.log_count();
    let started = Instant::now();
    let checked = h.check_ok("bench", &json!({}), &inputs).await;
    let checked_after = started.elapsed();
    let verbose = std::env::var_os("DBK_BENCH_VERBOSE").is_some();
    let create = h.create_in_background("bench", &checked, 0.0);
    let mut seen = before;
    while !create.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if verbose {
            let logs = h.logs.0.lock().unwrap();
            for l in &logs[seen..] {
                let line = l.message.lines().next().unwrap_or("");
                eprintln!("  {:>6.3}s {line}", started.elapsed().as_secs_f64());
            }
            seen = logs.len();
        }
    }
    let created = create.await.unwrap();
    if verbose {
        eprintln!("  check took {:.3}s", checked_after.as_secs_f64());
    }
    let took = started.elapsed();
    if let Err(e) = created {
        panic!("provider build failed: {e}\n{}", h.log_text());
    }
    let logs = h.logs.0.lock().unwrap();
    let bytes = logs[before..]
        .iter()
        .filter_map(|l| {
            let rest = l.message.split(": sent ").nth(1)?;
            let inner = rest.split(" (").nth(1)?;
            inner.split(" bytes)").next()?.parse::<u64>().ok()
        })
        .sum();
    (took, bytes)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[derive(Default)]
struct Samples {
    provider: Vec<Duration>,
    cli: Vec<Duration>,
    bytes: Vec<u64>,
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "fleet") {
        return fleet().await;
    }
    let o = options();
    let s = Services::get();
    let work = tempfile::tempdir().unwrap();
    let config_dir = work.path().join("docker-config");
    std::fs::create_dir_all(&config_dir).unwrap();
    let auth = base64_encode(&format!("{}:{}", s.user, s.password));
    std::fs::write(
        config_dir.join("config.json"),
        json!({"auths": {s.registry.clone(): {"auth": auth}}}).to_string(),
    )
    .unwrap();

    let mut h = Harness::start(&[]).await;
    h.configure(work.path(), s.config()).await;

    println!(
        "== build benchmark: {} files × {} KiB, {} round(s); provider (Check + Create) vs DOCKER_BUILDKIT=1 {CLI} build [+ push]",
        o.files,
        FILE_SIZE / 1024,
        o.runs
    );
    // (mode, phase) → samples
    let mut table: Vec<((bool, &str), Samples)> = vec![
        ((true, "cold"), Samples::default()),
        ((true, "one-file edit"), Samples::default()),
        ((false, "cold"), Samples::default()),
        ((false, "one-file edit"), Samples::default()),
    ];
    for round in 0..o.runs {
        for push in [true, false] {
            let tag_base = s.repo(if push { "bench-push" } else { "bench-build" });
            let prov_dir: PathBuf = work.path().join(format!("p{round}{push}"));
            let cli_dir: PathBuf = work.path().join(format!("c{round}{push}"));
            let salt = uuid::Uuid::new_v4().simple().to_string();
            make_context(&prov_dir, o.files, &format!("provider {salt}"));
            make_context(&cli_dir, o.files, &format!("cli {salt}"));
            let prov_name = format!("{tag_base}-provider");
            let cli_tag = format!("{tag_base}-cli");
            for phase in ["cold", "one-file edit"] {
                if phase != "cold" {
                    edit_one(&prov_dir, round);
                    edit_one(&cli_dir, round);
                }
                let provider_first = round % 2 == 0;
                let mut p = None;
                let mut c = None;
                for side in 0..2 {
                    if (side == 0) == provider_first {
                        p = Some(provider_build(&s, &mut h, &prov_dir, &prov_name, push).await);
                    } else {
                        c = Some(cli_build(&s, &config_dir, &cli_dir, &cli_tag, push));
                    }
                }
                let (pt, bytes) = p.unwrap();
                let ct = c.unwrap();
                println!(
                    "round {round} {:<5} {phase:<13} provider {:>6.2}s  cli {:>6.2}s  ratio {:.2}  sent {bytes} bytes",
                    if push { "push" } else { "build" },
                    pt.as_secs_f64(),
                    ct.as_secs_f64(),
                    pt.as_secs_f64() / ct.as_secs_f64()
                );
                let samples = &mut table
                    .iter_mut()
                    .find(|((m, ph), _)| *m == push && *ph == phase)
                    .unwrap()
                    .1;
                samples.provider.push(pt);
                samples.cli.push(ct);
                samples.bytes.push(bytes);
            }
            for image in [format!("{prov_name}:latest"), format!("{cli_tag}:latest")] {
                let _ = s.docker(&["rmi", "-f", &image]);
            }
            let _ = std::fs::remove_dir_all(&prov_dir);
            let _ = std::fs::remove_dir_all(&cli_dir);
        }
    }
    println!("\n== medians ({} round(s))", o.runs);
    println!(
        "{:<14} {:<14} {:>10} {:>10} {:>16} {:>14}",
        "mode", "phase", "provider", "cli", "ratio (≤ 1.0)", "bytes sent"
    );
    for ((push, phase), samples) in table {
        let p = median(samples.provider);
        let c = median(samples.cli);
        let mut bytes = samples.bytes;
        bytes.sort();
        println!(
            "{:<14} {:<14} {:>9.2}s {:>9.2}s {:>16.2} {:>14}",
            if push { "build + push" } else { "build only" },
            phase,
            p.as_secs_f64(),
            c.as_secs_f64(),
            p.as_secs_f64() / c.as_secs_f64(),
            bytes[bytes.len() / 2]
        );
    }
    let _ = h.stop().await;
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// `fleet`: see the module's documentation.
async fn fleet() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str, default: u64| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let runs = value("--runs", 3) as usize;
    let sleep = value("--sleep", 2);
    let s = Services::get();
    let host2 = std::env::var("DBK_DOCKER_HOST2").expect("DBK_DOCKER_HOST2 (scripts/services.sh)");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("Dockerfile"),
        format!(
            "FROM dbk-busybox-${{TARGETARCH}}:1\nARG NONCE\nRUN echo $NONCE > /nonce && sleep {sleep}\n"
        ),
    )
    .unwrap();
    let mut one = Harness::start(&[]).await;
    one.configure(work.path(), s.config()).await;
    let mut two = Harness::start(&[]).await;
    two.configure(
        work.path(),
        json!({"host": s.docker_host, "builders": [{"host": host2, "platforms": ["linux/arm64"]}]}),
    )
    .await;
    println!(
        "== fleet benchmark: RUN sleep {sleep} + push per platform, {runs} round(s); arm64 emulated (qemu) on either daemon"
    );
    let mut samples: Vec<(&str, Vec<Duration>)> = vec![
        ("amd64 alone", Vec::new()),
        ("arm64 alone (2nd daemon)", Vec::new()),
        ("both, two builders", Vec::new()),
        ("both, one daemon", Vec::new()),
    ];
    for round in 0..runs {
        let mut order: Vec<usize> = (0..4).collect();
        order.rotate_left(round % 4);
        for which in order {
            let (h, platforms): (&mut Harness, &[&str]) = match which {
                0 => (&mut one, &["linux/amd64"]),
                1 => (&mut two, &["linux/arm64"]),
                2 => (&mut two, &["linux/amd64", "linux/arm64"]),
                _ => (&mut one, &["linux/amd64", "linux/arm64"]),
            };
            let repo = s.repo("bench-fleet");
            let inputs = json!({
                "name": repo,
                "platforms": platforms,
                "buildArgs": {"NONCE": uuid::Uuid::new_v4().simple().to_string()},
                "network": "none",
                "registry": s.registry_input(),
            });
            let started = Instant::now();
            let checked = h.check_ok("fleet", &json!({}), &inputs).await;
            if let Err(e) = h.create("fleet", &checked, false).await {
                panic!("{e}\n{}", h.log_text());
            }
            let took = started.elapsed();
            println!(
                "round {round} {:<26} {:>6.2}s",
                samples[which].0,
                took.as_secs_f64()
            );
            samples[which].1.push(took);
        }
    }
    let m: Vec<f64> = samples
        .iter()
        .map(|(_, v)| median(v.clone()).as_secs_f64())
        .collect();
    println!("\n== medians ({runs} round(s))");
    for ((what, _), t) in samples.iter().zip(&m) {
        println!("{what:<26} {t:>6.2}s");
    }
    println!(
        "two builders / slower platform alone: {:.2}   two builders / sum of both alone: {:.2}   one daemon / sum: {:.2}",
        m[2] / m[0].max(m[1]),
        m[2] / (m[0] + m[1]),
        m[3] / (m[0] + m[1])
    );
    let _ = one.stop().await;
    let _ = two.stop().await;
}
