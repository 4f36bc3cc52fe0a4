//! The Dockerfile check's cost in Check (issue 20, item 4): a 1,000-line Dockerfile with 200
//! COPY sources over a 100,000-file context. Measures, in the same run and round-robin, the
//! warm context hash Check makes (`BuildContext::hash`, stat cache warm) and the check over
//! the listing that hash made (`dockerfile::check`: the only work the check adds, since it
//! reuses the walk and the Dockerfile text the hash read), and prints the medians, the
//! ratio, and PASS/MISS against the target (under 5 ms). Not a test.
//!
//! `cargo bench --bench dockerfile_check [-- --files N --runs N]`

use std::fmt::Write as _;
use std::fs;
use std::time::Instant;

use docker_buildkit::context::{BuildContext, DockerfileSource};
use docker_buildkit::dockerfile::{self, CheckOptions, ContextView};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let files = opt("--files", 100_000);
    let runs = opt("--runs", 9);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let root = tmp.path();
    let dirs = files / 100;
    for d in 0..dirs {
        let dir = root.join(format!("d{d:04}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..100 {
            fs::write(dir.join(format!("f{f:03}.txt")), format!("{d} {f}\n")).unwrap();
        }
    }
    fs::write(
        root.join(".dockerignore"),
        "**/*.log\nd0001/f00*\n!d0001/f001.txt\n",
    )
    .unwrap();
    // 1,000 lines: 200 COPY sources (files and directories, some through ARGs), and the rest
    // the ENV, ARG, RUN, LABEL and comment lines a long Dockerfile has.
    let mut df = String::from(
        "# syntax=docker/dockerfile:1\nARG BASE=scratch\nFROM ${BASE} AS build\nARG SUB=d0002\n",
    );
    let mut lines = 4;
    let mut sources = 0;
    let mut k = 0;
    while lines < 1000 {
        k += 1;
        if sources < 200 && k % 4 == 0 {
            let d = (sources * 7) % dirs.max(1);
            match sources % 3 {
                0 => writeln!(df, "COPY d{d:04}/f{:03}.txt /app/{sources}/", sources % 100),
                1 => writeln!(df, "COPY d{d:04} /app/dir{sources}/"),
                _ => writeln!(
                    df,
                    "COPY ${{SUB}}/f{:03}.txt /app/arg{sources}/",
                    sources % 100
                ),
            }
            .unwrap();
            sources += 1;
        } else {
            match k % 4 {
                1 => writeln!(df, "ENV V{lines}=value{lines}"),
                2 => writeln!(df, "LABEL l{lines}=\"x\""),
                _ => {
                    lines += 1;
                    writeln!(df, "RUN echo {lines} \\\n  && true")
                }
            }
            .unwrap();
        }
        lines += 1;
    }
    df.push_str("FROM scratch\nCOPY --from=build /app /app\n");
    fs::write(root.join("Dockerfile"), &df).unwrap();
    let ctx = BuildContext::open(root, DockerfileSource::Path("Dockerfile".into())).unwrap();
    let _ = ctx.hash().unwrap(); // warms the page cache and the stat cache
    let opts = CheckOptions::default();
    let (mut hash_ms, mut check_ms) = (Vec::new(), Vec::new());
    let mut findings = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let digest = ctx.hash().unwrap();
        hash_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let listings = [digest.files.as_slice()];
        let view = ContextView {
            root,
            listings: &listings,
            symlinks: &digest.symlinks,
            ignore: ctx.dockerignore(),
            ignore_file: ctx.ignore_file(),
        };
        let text = digest.dockerfile.as_deref().unwrap();
        let t = Instant::now();
        let report = dockerfile::check(text, Some(&view), &opts);
        check_ms.push(t.elapsed().as_secs_f64() * 1e3);
        findings = report.findings.len();
    }
    let (h, c) = (median(hash_ms), median(check_ms));
    println!(
        "context: {files} files; Dockerfile: {} lines, {sources} COPY sources; runs: {runs}",
        df.lines().count()
    );
    println!("warm hash (Check without the check): {h:.2} ms");
    println!("the check over its listing:          {c:.3} ms ({findings} findings)");
    println!("check / hash: {:.4}", c / h);
    println!(
        "{} the check adds under 5 ms",
        if c < 5.0 { "PASS" } else { "MISS" }
    );
}
