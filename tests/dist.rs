//! Installable like any Pulumi provider: `scripts/dist.sh` (`make dist`) packs the binary
//! the way Pulumi installs plugins, and Cargo.toml's version is the one version that the
//! binary, the schema and both SDKs carry.
//!
//! The tarball test packs the debug binary cargo built for the tests (`--binary`), so it
//! needs no release build; `make dist` runs the same script with `cargo build --release`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use docker_buildkit::generated::pulumirpc::GetSchemaRequest;
use docker_buildkit::generated::pulumirpc::resource_provider_client::ResourceProviderClient;
use docker_buildkit::resources::{PACKAGE, PACKAGE_INFO};
use serde_json::Value;
use tonic::transport::Channel;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const BUILT: &str = env!("CARGO_BIN_EXE_pulumi-resource-docker-buildkit");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn json(rel: &str) -> Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The quoted string on the first line of `text` that starts with `prefix`
/// (`version = "0.1.0"` → `0.1.0`).
fn quoted_after(text: &str, prefix: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split('"').nth(1))
        .unwrap_or_else(|| panic!("no line {prefix}\"…\""))
        .to_string()
}

/// A provider process started from `binary` as the engine starts it, killed on drop.
struct Plugin(Child);

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `binary` and asks it, over gRPC on the port it prints first, what the engine asks:
/// GetPluginInfo's version and the schema of GetSchema.
async fn plugin_info_and_schema(binary: &Path) -> (String, Value) {
    let mut plugin = Plugin(
        Command::new(binary)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display())),
    );
    let mut line = String::new();
    BufReader::new(plugin.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the first stdout line is the port, got {line:?}"));
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the plugin");
    let mut client = ResourceProviderClient::new(channel);
    let info = client.get_plugin_info(()).await.unwrap().into_inner();
    let schema = client
        .get_schema(GetSchemaRequest::default())
        .await
        .unwrap()
        .into_inner()
        .schema;
    drop(plugin);
    (info.version, serde_json::from_str(&schema).unwrap())
}

#[tokio::test]
async fn one_version_everywhere() {
    let out = Command::new(BUILT).arg("--version").output().unwrap();
    let (plugin_info, served) = plugin_info_and_schema(Path::new(BUILT)).await;
    let schema = json("schema/schema.json");
    let plugin_json = json("sdk/python/pulumi_docker_buildkit/pulumi-plugin.json");
    let package_json = json("sdk/nodejs/package.json");
    let str_of = |v: &Value| v.as_str().unwrap_or("<missing>").to_string();

    let versions = [
        (
            "binary --version",
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        ),
        ("binary GetPluginInfo", plugin_info),
        ("binary GetSchema version", str_of(&served["version"])),
        ("schema/schema.json version", str_of(&schema["version"])),
        (
            "sdk/python/pyproject.toml",
            quoted_after(&read("sdk/python/pyproject.toml"), "version = "),
        ),
        (
            "sdk/python/…/pulumi-plugin.json",
            str_of(&plugin_json["version"]),
        ),
        (
            "sdk/python/…/_utilities.py",
            quoted_after(
                &read("sdk/python/pulumi_docker_buildkit/_utilities.py"),
                "_VERSION = ",
            ),
        ),
        (
            "sdk/nodejs/package.json version",
            str_of(&package_json["version"]),
        ),
        (
            "sdk/nodejs/package.json pulumi.version",
            str_of(&package_json["pulumi"]["version"]),
        ),
        (
            "sdk/nodejs/utilities.ts",
            quoted_after(&read("sdk/nodejs/utilities.ts"), "const version = "),
        ),
        (
            "sdk/nodejs/bin/utilities.js",
            quoted_after(&read("sdk/nodejs/bin/utilities.js"), "const version = "),
        ),
    ];
    let wrong: Vec<String> = versions
        .iter()
        .filter(|(_, v)| v != VERSION)
        .map(|(place, v)| format!("{place}: {v}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "Cargo.toml says {VERSION}, but {wrong:?} (rebuild, then `cargo run -p codegen -- all`)"
    );

    // The download source the SDKs hand the engine is the schema's, which is PACKAGE_INFO's.
    let url = PACKAGE_INFO.plugin_download_url;
    let servers = [
        ("binary GetSchema", str_of(&served["pluginDownloadURL"])),
        ("schema/schema.json", str_of(&schema["pluginDownloadURL"])),
        ("pulumi-plugin.json server", str_of(&plugin_json["server"])),
        (
            "package.json pulumi.server",
            str_of(&package_json["pulumi"]["server"]),
        ),
    ];
    for (place, server) in servers {
        assert_eq!(server, url, "{place}");
    }
}

/// Pulumi's names for the host (`standardAssetName` in Pulumi's plugin workspace).
fn pulumi_os_arch() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    (os, arch)
}

/// `scripts/dist.sh --binary <binary> --out <out>`: packs a built binary, builds nothing.
fn dist_sh(binary: &Path, out: &Path) -> std::process::Output {
    Command::new("bash")
        .arg(root().join("scripts/dist.sh"))
        .arg("--binary")
        .arg(binary)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_tarball_installs_and_runs_as_a_pulumi_plugin() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("dist");
    let run = dist_sh(Path::new(BUILT), &out_dir);
    assert!(
        run.status.success(),
        "dist.sh failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );

    let (os, arch) = pulumi_os_arch();
    let bin = format!("pulumi-resource-{PACKAGE}{}", std::env::consts::EXE_SUFFIX);
    let tarball = out_dir.join(format!(
        "pulumi-resource-{PACKAGE}-v{VERSION}-{os}-{arch}.tar.gz"
    ));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        stdout.lines().last().map(PathBuf::from),
        Some(tarball.clone()),
        "the last line is the tarball"
    );

    // Plain files at the root: the binary, README.md, and LICENSE when there is one.
    let list = Command::new("tar")
        .arg("-tzf")
        .arg(&tarball)
        .output()
        .unwrap();
    assert!(list.status.success());
    let mut entries: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    entries.sort();
    let mut want = vec![bin.clone(), "README.md".to_string()];
    if root().join("LICENSE").exists() {
        want.push("LICENSE".to_string());
    }
    want.sort();
    assert_eq!(entries, want);

    // Unpacked as Pulumi installs a plugin: $PULUMI_HOME/plugins/<kind>-<name>-v<version>/.
    let pulumi_home = tmp.path().join("pulumi-home");
    let plugin_dir = pulumi_home
        .join("plugins")
        .join(format!("resource-{PACKAGE}-v{VERSION}"));
    std::fs::create_dir_all(&plugin_dir).unwrap();
    let unpack = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&plugin_dir)
        .status()
        .unwrap();
    assert!(unpack.success());
    assert_eq!(
        std::fs::read(plugin_dir.join("README.md")).unwrap(),
        std::fs::read(root().join("README.md")).unwrap()
    );
    let binary = plugin_dir.join(&bin);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&binary).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{bin} is executable: {mode:o}");
    }

    let (plugin_info, schema) = plugin_info_and_schema(&binary).await;
    assert_eq!(plugin_info, VERSION);
    assert_eq!(schema["version"], VERSION);
    assert_eq!(
        schema["pluginDownloadURL"],
        PACKAGE_INFO.plugin_download_url
    );
}

/// The script refuses a binary that reports another version than Cargo.toml's: the tarball's
/// name would lie about what it holds.
#[test]
fn dist_refuses_a_binary_of_another_version() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("pulumi-resource-docker-buildkit");
    std::fs::write(&fake, "#!/bin/sh\necho 9.9.9\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = dist_sh(&fake, &tmp.path().join("dist"));
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("reports version 9.9.9"), "{stderr}");
    assert!(!tmp.path().join("dist").exists(), "no tarball is written");
}
