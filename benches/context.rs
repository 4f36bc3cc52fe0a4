//! Context hashing benchmark (issue #5: "context hashing at the speed of the
//! disk"). Run it with `scripts/bench.sh` (a release build).
//!
//! Generates its own trees under a temporary directory (1k, 10k and 100k
//! files of ~80 bytes; 64 × 16 MiB), warms the page cache, then measures in
//! the same run, round-robin and taking the median of several rounds:
//! `BuildContext::hash_with` with a cold stat cache, with a warm one and on
//! one thread, against `cat` of the same files (`xargs -0 cat`), a bare stat
//! walk (`find -printf`) and the peers' sha256-per-file walk (`find |
//! xargs sha256sum`). Peak RSS of hashing the
//! big tree is measured in child processes (this binary re-executed with a
//! sub-command, reading `VmHWM` from `/proc/self/status`). Prints a table
//! and PASS/MISS against the targets.
//!
//! Options: `--quick` (1k and 10k files, a 256 MiB tree, 3 rounds),
//! `--runs N`, `--dir DIR` (where to generate; default the temp dir).
//! Not a test: it asserts nothing and exits 0 unless something fails to run.
//!
//! `versus BIN... [options]` compares builds in the same run instead: BIN
//! is this benchmark built from other code (`cargo bench --no-run --bench
//! context` prints where the executable is; copy it). On the same trees,
//! round-robin, it runs `find` and `BIN phases DIR 1` for every BIN and
//! for this build, and prints the medians of the walk, the warm hash and
//! the uncached hash with their ratios to `find`: on a shared machine,
//! ratios from one run are what can be compared.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use docker_buildkit::context::{
    BuildContext, DockerfileSource, EntryKind, HashOptions, HashStats, StatCacheLocation,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const MIB: u64 = 1024 * 1024;

fn main() {
    // `cargo bench` appends `--bench`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let result = match args.first().map(String::as_str) {
        Some("rss-hash" | "rss-idle") => child(&args),
        Some("phases") => phases(&args),
        Some("loop") => hash_loop(&args),
        Some("versus") => versus(&args[1..]),
        _ => run(&args),
    };
    if let Err(e) = result {
        eprintln!("bench_context: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- children

/// `rss-hash DIR` / `rss-idle`: do the work, then print
/// `VmHWM` (kB) and the elapsed time (ns).
fn child(args: &[String]) -> Result<()> {
    let started = Instant::now();
    match (args[0].as_str(), args.get(1)) {
        ("rss-hash", Some(dir)) => {
            let ctx = open(Path::new(dir))?;
            let options = HashOptions {
                threads: 0,
                stat_cache: StatCacheLocation::Off,
            };
            ctx.hash_with(&options)?;
        }
        ("rss-idle", _) => {}
        _ => return Err("usage: rss-hash DIR | rss-idle".into()),
    }
    let elapsed = started.elapsed();
    let status = fs::read_to_string("/proc/self/status")?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmHWM in /proc/self/status")?;
    println!("{hwm} {}", elapsed.as_nanos());
    Ok(())
}

/// `loop DIR N [THREADS [CACHE_DIR]]`: N hashes (uncached unless a stat
/// cache directory is given), for profilers.
fn hash_loop(args: &[String]) -> Result<()> {
    let dir = PathBuf::from(
        args.get(1)
            .ok_or("usage: loop DIR N [THREADS [CACHE_DIR]]")?,
    );
    let n: usize = args.get(2).map_or(Ok(5), |r| r.parse())?;
    let threads: usize = args.get(3).map_or(Ok(0), |r| r.parse())?;
    let options = HashOptions {
        threads,
        stat_cache: args
            .get(4)
            .map_or(StatCacheLocation::Off, |d| StatCacheLocation::Dir(d.into())),
    };
    for _ in 0..n {
        open(&dir)?.hash_with(&options)?;
    }
    Ok(())
}

/// `phases DIR [RUNS]`: where the time of a warm hash goes (median ms of
/// each step, measured separately).
fn phases(args: &[String]) -> Result<()> {
    let dir = PathBuf::from(args.get(1).ok_or("usage: phases DIR [RUNS]")?);
    let runs: usize = args.get(2).map_or(Ok(7), |r| r.parse())?;
    let cache = StatCacheLocation::Dir(dir.with_extension("phases-cache"));
    let tree = Tree {
        name: String::new(),
        dir: dir.clone(),
        list: PathBuf::new(),
        files: 0,
        bytes: 0,
    };
    ours(&tree, 0, &cache)?;
    let (mut open_t, mut walk_t, mut warm_t, mut off_t) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        open_t.push(timed(|| open(&dir).map(drop))?);
        let ctx = open(&dir)?;
        walk_t.push(timed(|| ctx.entries().map(drop).map_err(Into::into))?);
        warm_t.push(timed(|| ours(&tree, 0, &cache).map(drop))?);
        off_t.push(timed(|| ours(&tree, 0, &StatCacheLocation::Off).map(drop))?);
    }
    println!(
        "open {} | entries() {} | warm hash {} | uncached hash {}",
        ms(median(open_t)),
        ms(median(walk_t)),
        ms(median(warm_t)),
        ms(median(off_t))
    );
    Ok(())
}

/// Runs this binary with a sub-command; returns (peak RSS in MiB, seconds).
fn measure_child(args: &[&str]) -> Result<(f64, f64)> {
    let out = Command::new(std::env::current_exe()?)
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("child {args:?} failed: {}", out.status).into());
    }
    let text = String::from_utf8(out.stdout)?;
    let mut fields = text.split_whitespace();
    let kb: f64 = fields.next().ok_or("child output")?.parse()?;
    let ns: f64 = fields.next().ok_or("child output")?.parse()?;
    Ok((kb / 1024.0, ns / 1e9))
}

// ------------------------------------------------------------------ trees

struct Tree {
    name: String,
    dir: PathBuf,
    /// NUL-separated absolute paths of the included files.
    list: PathBuf,
    files: usize,
    bytes: u64,
}

fn open(dir: &Path) -> Result<BuildContext> {
    Ok(BuildContext::open(
        dir,
        DockerfileSource::Path("Dockerfile".into()),
    )?)
}

/// `n` files of ~80 bytes, 100 per directory.
fn small_tree(base: &Path, n: usize) -> Result<PathBuf> {
    let dir = base.join(format!("small-{n}"));
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY . /\n")?;
    fs::write(dir.join(".dockerignore"), "*.tmp\n")?;
    for i in 0..n {
        let sub = dir.join(format!("d{:04}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(&sub)?;
        }
        let line = format!(
            "file {i:08} of a generated context, about eighty bytes long: {:016x}\n",
            mix(i as u64)
        );
        fs::write(sub.join(format!("f{:03}.txt", i % 100)), line)?;
    }
    Ok(dir)
}

/// `count` files of `size` bytes of incompressible data.
fn big_tree(base: &Path, count: usize, size: u64) -> Result<PathBuf> {
    let dir = base.join(format!("big-{count}x{}M", size / MIB));
    fs::create_dir_all(dir.join("data"))?;
    fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY . /\n")?;
    let mut block = vec![0u8; MIB as usize];
    for f in 0..count {
        let mut out = std::io::BufWriter::new(fs::File::create(
            dir.join("data").join(format!("blob{f:03}.bin")),
        )?);
        let mut state = mix(f as u64 + 1);
        for _ in 0..size / MIB {
            for word in block.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            out.write_all(&block)?;
        }
        out.flush()?;
    }
    Ok(dir)
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Lists the included files (as the hash sees them) for `cat`.
fn prepare(name: &str, dir: PathBuf) -> Result<Tree> {
    let entries = open(&dir)?.entries()?;
    let mut list = Vec::new();
    let (mut files, mut bytes) = (0, 0);
    for e in entries.iter().filter(|e| e.kind == EntryKind::File) {
        list.extend_from_slice(dir.join(&e.path).as_os_str().as_encoded_bytes());
        list.push(0);
        files += 1;
        bytes += e.size;
    }
    let list_path = dir.with_extension("list");
    fs::write(&list_path, list)?;
    Ok(Tree {
        name: name.to_owned(),
        dir,
        list: list_path,
        files,
        bytes,
    })
}

// ------------------------------------------------------------- measuring

fn shell(cmd: &mut Command) -> Result<()> {
    let status = cmd.stdout(Stdio::null()).status()?;
    if !status.success() {
        return Err(format!("{cmd:?} failed: {status}").into());
    }
    Ok(())
}

fn timed(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed().as_secs_f64())
}

fn find_walk(t: &Tree) -> Result<()> {
    shell(
        Command::new("find")
            .arg(&t.dir)
            .args(["-printf", "%s %T@ %p\n"]),
    )
}

fn cat_all(t: &Tree) -> Result<()> {
    shell(
        Command::new("xargs")
            .args(["-0", "cat"])
            .stdin(fs::File::open(&t.list)?),
    )
}

fn sha256_walk(t: &Tree) -> Result<()> {
    shell(
        Command::new("sh")
            .args([
                "-c",
                "find \"$1\" -type f -print0 | xargs -0 sha256sum > /dev/null",
                "sh",
            ])
            .arg(&t.dir),
    )
}

fn ours(t: &Tree, threads: usize, cache: &StatCacheLocation) -> Result<HashStats> {
    let ctx = open(&t.dir)?;
    let options = HashOptions {
        threads,
        stat_cache: cache.clone(),
    };
    Ok(ctx.hash_with(&options)?.1)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Medians (seconds) of one tree's measurements.
struct Row {
    find: f64,
    cat: f64,
    sha: f64,
    cold: f64,
    warm: f64,
    single: f64,
    /// `BuildContext::entries()` alone: the walk a warm hash cannot skip.
    walk: f64,
    /// Size of the stat cache file.
    cache_bytes: u64,
}

fn measure(t: &Tree, cache_dir: &Path, runs: usize) -> Result<Row> {
    let cache = StatCacheLocation::Dir(cache_dir.to_path_buf());
    let clear = || -> Result<()> {
        if cache_dir.exists() {
            fs::remove_dir_all(cache_dir)?;
        }
        Ok(())
    };
    // Warm the page cache and dentries; make sure the tree is older than the
    // racy margin, so a warm stat cache is trusted.
    find_walk(t)?;
    cat_all(t)?;
    std::thread::sleep(Duration::from_millis(2100));
    let (mut find, mut cat, mut sha, mut cold, mut warm, mut single, mut walk) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut cache_bytes = 0;
    for _ in 0..runs {
        find.push(timed(|| find_walk(t))?);
        cat.push(timed(|| cat_all(t))?);
        sha.push(timed(|| sha256_walk(t))?);
        clear()?;
        let mut stats = HashStats::default();
        cold.push(timed(|| {
            stats = ours(t, 0, &cache)?;
            Ok(())
        })?);
        check(&stats, t.files, true)?;
        warm.push(timed(|| {
            stats = ours(t, 0, &cache)?;
            Ok(())
        })?);
        check(&stats, t.files, false)?;
        cache_bytes = fs::read_dir(cache_dir)?
            .map(|e| e.and_then(|e| e.metadata()).map(|m| m.len()))
            .sum::<std::io::Result<u64>>()?;
        walk.push(timed(|| {
            open(&t.dir)?.entries().map(drop).map_err(Into::into)
        })?);
        single.push(timed(|| ours(t, 1, &StatCacheLocation::Off).map(drop))?);
    }
    clear()?;
    Ok(Row {
        find: median(find),
        cat: median(cat),
        sha: median(sha),
        cold: median(cold),
        warm: median(warm),
        single: median(single),
        walk: median(walk),
        cache_bytes,
    })
}

/// A cold run must read everything and write the cache; a warm one must
/// read nothing.
fn check(stats: &HashStats, files: usize, cold: bool) -> Result<()> {
    let ok = if cold {
        stats.files_read == stats.files && stats.stat_cache_written
    } else {
        stats.files_read == 0 && !stats.stat_cache_written
    };
    if !ok || stats.files != files {
        return Err(format!("unexpected stats (cold: {cold}): {stats:?}").into());
    }
    Ok(())
}

// ------------------------------------------------------------------- main

struct Options {
    quick: bool,
    runs: usize,
    dir: PathBuf,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        quick: false,
        runs: 5,
        dir: std::env::temp_dir(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {
                o.quick = true;
                o.runs = 3;
            }
            "--runs" => o.runs = it.next().ok_or("--runs N")?.parse()?,
            "--dir" => o.dir = PathBuf::from(it.next().ok_or("--dir DIR")?),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    o.runs = o.runs.max(1);
    Ok(o)
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

/// The trees of a run (see the module docs), with their file lists.
fn generate(o: &Options, base: &Path) -> Result<Vec<Tree>> {
    let sizes: &[usize] = if o.quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    let (big_count, big_size) = if o.quick {
        (16, 16 * MIB)
    } else {
        (64, 16 * MIB)
    };
    let mut trees = Vec::new();
    let gen_started = SystemTime::now();
    for &n in sizes {
        trees.push(prepare(
            &format!("{}k × 80 B", n / 1000),
            small_tree(base, n)?,
        )?);
    }
    let big = prepare(
        &format!("{big_count} × {} MiB", big_size / MIB),
        big_tree(base, big_count, big_size)?,
    )?;
    trees.push(big);
    // Let writeback finish so it does not disturb the measurements.
    shell(&mut Command::new("sync"))?;
    println!(
        "generated in {:.1} s",
        gen_started.elapsed().map_or(0.0, |d| d.as_secs_f64())
    );
    Ok(trees)
}

/// Makes the directory the trees of a run go into, and says what runs
/// where, with the load average.
fn start(title: &str, o: &Options) -> Result<tempfile::TempDir> {
    let base = tempfile::Builder::new()
        .prefix("dbk-bench-")
        .tempdir_in(&o.dir)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{title}: {cores} cores, load average {}, {} rounds, trees in {}",
        loadavg(),
        o.runs,
        base.path().display()
    );
    Ok(base)
}

fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let base = start("context hashing benchmark", &o)?;
    let cache_dir = base.path().join("statcache");

    let trees = generate(&o, base.path())?;

    let mut rows = Vec::new();
    for t in &trees {
        let row = measure(t, &cache_dir, o.runs)?;
        println!("  {:<14} done (load {})", t.name, loadavg());
        rows.push(row);
    }

    println!();
    println!(
        "| tree | files | MiB | find | cat | sha256sum | ours cold | ours warm | ours 1 thread cold | ours walk only | cold ÷ cat | warm ÷ find | sha256 ÷ cold |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (t, r) in trees.iter().zip(&rows) {
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.1} |",
            t.name,
            t.files,
            t.bytes as f64 / MIB as f64,
            ms(r.find),
            ms(r.cat),
            ms(r.sha),
            ms(r.cold),
            ms(r.warm),
            ms(r.single),
            ms(r.walk),
            r.cold / r.cat,
            r.warm / r.find,
            r.sha / r.cold,
        );
    }

    println!();
    for (t, r) in trees.iter().zip(&rows) {
        println!(
            "stat cache file for {}: {:.1} KiB, {:.1} bytes per file",
            t.name,
            r.cache_bytes as f64 / 1024.0,
            r.cache_bytes as f64 / t.files as f64
        );
    }

    let big = trees.last().ok_or("no trees")?;
    let (idle, _) = measure_child(&["rss-idle"])?;
    let big_dir = big.dir.to_string_lossy().into_owned();
    let (hash_rss, hash_s) = measure_child(&["rss-hash", &big_dir])?;
    let largest_small = &trees[trees.len() - 2];
    let small_dir = largest_small.dir.to_string_lossy().into_owned();
    let (small_hash_rss, _) = measure_child(&["rss-hash", &small_dir])?;
    println!();
    println!("| peak RSS (VmHWM) | MiB | time |");
    println!("|---|---:|---:|");
    println!("| idle process (baseline) | {idle:.1} | |");
    println!("| hash {} | {hash_rss:.1} | {} |", big.name, ms(hash_s));
    println!("| hash {} | {small_hash_rss:.1} | |", largest_small.name);

    // Growth from the second largest to the largest small tree.
    let (a, b) = (&rows[rows.len() - 3], &rows[rows.len() - 2]);
    let (ta, tb) = (&trees[trees.len() - 3], &trees[trees.len() - 2]);
    let files_ratio = tb.files as f64 / ta.files as f64;
    println!();
    println!(
        "growth {} → {} ({files_ratio:.0}× files): cold {:.1}×, warm {:.1}×, cat {:.1}×, find {:.1}×",
        ta.name,
        tb.name,
        b.cold / a.cold,
        b.warm / a.warm,
        b.cat / a.cat,
        b.find / a.find,
    );

    println!();
    println!("targets:");
    for (t, r) in trees.iter().zip(&rows) {
        println!(
            "  {} full hash ≤ 1.1 × cat ({}): {:.2}",
            verdict(r.cold <= 1.1 * r.cat),
            t.name,
            r.cold / r.cat
        );
    }
    for (t, r) in trees.iter().zip(&rows) {
        println!(
            "  {} warm unchanged hash ≤ 1.5 × stat walk ({}): {:.2} ({})",
            verdict(r.warm <= 1.5 * r.find),
            t.name,
            r.warm / r.find,
            ms(r.warm)
        );
    }
    for (t, r) in trees.iter().zip(&rows) {
        println!(
            "  {} full hash ≥ 5 × faster than sha256 per file ({}): {:.1}× (warm: {:.1}×)",
            verdict(r.sha >= 5.0 * r.cold),
            t.name,
            r.sha / r.cold,
            r.sha / r.warm
        );
    }
    println!(
        "  {} peak RSS ≤ 64 MiB hashing {}: {hash_rss:.1} MiB",
        verdict(hash_rss <= 64.0),
        big.name
    );
    let linear = |x: f64| x <= files_ratio * 1.3;
    println!(
        "  {} cost linear in files ({}→{}): cold {:.1}×, warm {:.1}× for {files_ratio:.0}× files",
        verdict(linear(b.cold / a.cold) && linear(b.warm / a.warm)),
        ta.name,
        tb.name,
        b.cold / a.cold,
        b.warm / a.warm
    );
    let bytes_per_s = big.bytes as f64 / rows.last().map_or(1.0, |r| r.cold);
    println!(
        "  cost in bytes: {:.1} GiB/s hashing {} cold (cat: {:.1} GiB/s)",
        bytes_per_s / (1024.0 * MIB as f64),
        big.name,
        big.bytes as f64 / rows.last().map_or(1.0, |r| r.cat) / (1024.0 * MIB as f64)
    );
    println!();
    println!("load average at the end: {}", loadavg());
    Ok(())
}

// ----------------------------------------------------------------- versus

/// `versus BIN... [options]`: this build against other builds of this
/// benchmark, in the same run (see the module docs).
fn versus(args: &[String]) -> Result<()> {
    let split = args
        .iter()
        .position(|a| a.starts_with("--"))
        .unwrap_or(args.len());
    let (others, options) = args.split_at(split);
    if others.is_empty() {
        return Err("usage: versus BIN... [--quick] [--runs N] [--dir DIR]".into());
    }
    let o = parse(options)?;
    let mut builds: Vec<PathBuf> = others.iter().map(PathBuf::from).collect();
    builds.push(std::env::current_exe()?);
    let base = start("same-run comparison", &o)?;
    let name = |i: usize| {
        if i + 1 == builds.len() {
            "this build".to_owned()
        } else {
            format!("build {}", i + 1)
        }
    };
    for (i, build) in builds.iter().enumerate() {
        println!("  {}: {}", name(i), build.display());
    }
    let trees = generate(&o, base.path())?;

    println!();
    println!(
        "| tree | build | walk | warm hash | uncached hash | walk ÷ find | warm ÷ find | uncached ÷ this build's |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for t in &trees {
        // Warm the page cache; let the tree age past the racy margin.
        find_walk(t)?;
        cat_all(t)?;
        std::thread::sleep(Duration::from_millis(2100));
        let mut find = Vec::new();
        let mut phases = vec![Vec::new(); builds.len()];
        for _ in 0..o.runs {
            find.push(timed(|| find_walk(t))?);
            for (build, times) in builds.iter().zip(&mut phases) {
                times.push(phases_of(build, &t.dir)?);
            }
        }
        let find = median(find);
        let medians: Vec<[f64; 3]> = phases
            .into_iter()
            .map(|times| std::array::from_fn(|k| median(times.iter().map(|p| p[k]).collect())))
            .collect();
        let ours = medians.last().ok_or("no builds")?;
        println!("| {} | `find` | {} | | | | | |", t.name, ms(find));
        for (i, [walk, warm, uncached]) in medians.iter().enumerate() {
            println!(
                "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
                t.name,
                name(i),
                ms(*walk),
                ms(*warm),
                ms(*uncached),
                walk / find,
                warm / find,
                uncached / ours[2],
            );
        }
    }
    println!();
    println!("load average at the end: {}", loadavg());
    Ok(())
}

/// Runs `BIN phases DIR 1`; returns its walk, warm hash and uncached hash
/// times in seconds.
fn phases_of(build: &Path, dir: &Path) -> Result<[f64; 3]> {
    let out = Command::new(build)
        .arg("phases")
        .arg(dir)
        .arg("1")
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("{} phases failed: {}", build.display(), out.status).into());
    }
    // "open 0.1 ms | entries() 1.4 ms | warm hash 1.6 ms | uncached hash 5.6 ms"
    let text = String::from_utf8(out.stdout)?;
    let seconds = |part: &str| -> Option<f64> {
        let mut words = part.split_whitespace().rev();
        let unit = words.next()?;
        let value: f64 = words.next()?.parse().ok()?;
        match unit {
            "ms" => Some(value / 1000.0),
            "s" => Some(value),
            _ => None,
        }
    };
    let times: Vec<f64> = text.trim().split('|').filter_map(seconds).collect();
    match times[..] {
        [_open, walk, warm, uncached] => Ok([walk, warm, uncached]),
        _ => Err(format!("unexpected phases output: {text}").into()),
    }
}

fn ms(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1000.0)
    }
}
