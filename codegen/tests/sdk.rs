//! The generated SDKs: `sdk/` on disk is what `schema/schema.json` renders to, byte for byte,
//! so every schema change shows in review as the SDK diff it causes — one reviewed copy (the
//! schema itself is snapshot-tested in `tests/schema.rs`); rendering is deterministic and
//! generic (a new schema field reaches both SDKs with no template edit).
//!
//! The compiled `sdk/nodejs/bin/` needs Node.js, so only its shape is checked here;
//! `cargo run -p codegen -- sdk-check` (run by scripts/test-sdk.sh) compares its bytes.

use std::path::{Path, PathBuf};

use codegen::sdk::{self, SdkFile};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("codegen/ sits in the repository")
        .to_path_buf()
}

fn schema_text() -> String {
    std::fs::read_to_string(root().join("schema/schema.json")).expect("schema/schema.json")
}

fn rendered() -> Vec<SdkFile> {
    sdk::render(&schema_text()).expect("the schema renders")
}

fn file<'a>(files: &'a [SdkFile], path: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("{path} is rendered"))
        .text
}

#[test]
fn committed_sdk_is_current() {
    let sdk_dir = root().join("sdk");
    let files = rendered();
    let stale: Vec<&str> = files
        .iter()
        .filter(|f| std::fs::read(sdk_dir.join(&f.path)).ok().as_deref() != Some(f.text.as_bytes()))
        .map(|f| f.path.as_str())
        .collect();
    assert!(
        stale.is_empty(),
        "sdk/ is stale against schema/schema.json (run `cargo run -p codegen -- sdk`): {stale:?}"
    );
    let extra = sdk::extra_files(&files, &sdk_dir).unwrap();
    assert!(
        extra.is_empty(),
        "sdk/ holds files the schema no longer generates (run `cargo run -p codegen -- sdk`): {extra:?}"
    );

    // Each TypeScript module has its compiled JavaScript and declarations, and nothing else
    // is in bin/ (`codegen -- sdk-check` compares the bytes).
    let mut want: Vec<String> = files
        .iter()
        .filter_map(|f| f.path.strip_prefix("nodejs/")?.strip_suffix(".ts"))
        .flat_map(|m| [format!("{m}.d.ts"), format!("{m}.js")])
        .collect();
    want.sort();
    let mut have = Vec::new();
    list(&sdk_dir.join("nodejs/bin"), "", &mut have);
    have.sort();
    assert_eq!(
        have, want,
        "sdk/nodejs/bin/ does not match the TypeScript sources"
    );
}

fn list(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.unwrap();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            list(&entry.path(), &format!("{name}/"), out);
        } else {
            out.push(name);
        }
    }
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(rendered(), rendered());
}

#[test]
fn the_sdks_carry_the_package_metadata() {
    let schema: Value = serde_json::from_str(&schema_text()).unwrap();
    let version = schema["version"].as_str().unwrap();
    // The engine downloads the plugin from here (Pulumi's generators write it as `server`).
    let server = schema["pluginDownloadURL"].as_str().unwrap();
    let files = rendered();
    let plugin: Value = serde_json::from_str(file(
        &files,
        "python/pulumi_docker_buildkit/pulumi-plugin.json",
    ))
    .unwrap();
    assert_eq!(
        plugin,
        json!({"resource": true, "name": "docker-buildkit", "version": version, "server": server})
    );
    let package: Value = serde_json::from_str(file(&files, "nodejs/package.json")).unwrap();
    assert_eq!(package["name"], schema["language"]["nodejs"]["packageName"]);
    assert_eq!(
        package["pulumi"],
        json!({"resource": true, "name": "docker-buildkit", "version": version, "server": server})
    );
    assert_eq!(package["dependencies"]["@pulumi/pulumi"], "^3.248.0");
    let pyproject = file(&files, "python/pyproject.toml");
    assert!(pyproject.contains(&format!("version = \"{version}\"")));
    assert!(pyproject.contains("\"pulumi>=3.0.0,<4.0.0\""));
    // Every resource asks the engine for this version of the plugin, from this source.
    let py_utilities = file(&files, "python/pulumi_docker_buildkit/_utilities.py");
    assert!(py_utilities.contains(&format!(
        "_PLUGIN_DOWNLOAD_URL: typing.Optional[str] = \"{server}\""
    )));
    let ts_utilities = file(&files, "nodejs/utilities.ts");
    assert!(ts_utilities.contains(&format!(
        "const pluginDownloadURL: string | undefined = \"{server}\";"
    )));
}

/// Adding a field to the Rust struct changes only the schema; both SDKs follow.
#[test]
fn a_new_schema_field_reaches_both_sdks() {
    let mut schema: Value = serde_json::from_str(&schema_text()).unwrap();
    let image = &mut schema["resources"]["docker-buildkit:index:Image"];
    let field = json!({"type": "integer", "description": "Shared memory for RUN steps, in MiB."});
    image["inputProperties"]["shmSize"] = field.clone();
    image["properties"]["shmSize"] = field;
    schema["types"]["docker-buildkit:index:Registry"]["properties"]["tokenFile"] =
        json!({"type": "string", "secret": true});
    let files = sdk::render(&schema.to_string()).unwrap();

    let py = file(&files, "python/pulumi_docker_buildkit/image.py");
    assert!(py.contains("shm_size: Optional[pulumi.Input[_builtins.int]] = None"));
    assert!(py.contains("@pulumi.getter(name=\"shmSize\")"));
    assert!(py.contains("Shared memory for RUN steps, in MiB."));
    assert!(
        py.contains("(\"tokenFile\", \"token_file\", True)"),
        "nested secrets follow"
    );
    let inputs = file(&files, "python/pulumi_docker_buildkit/_inputs.py");
    assert!(inputs.contains("token_file: Optional[pulumi.Input[_builtins.str]] = None"));

    let ts = file(&files, "nodejs/image.ts");
    assert!(ts.contains("shmSize?: pulumi.Input<number>;"));
    assert!(ts.contains("public readonly shmSize!: pulumi.Output<number | undefined>;"));
    assert!(ts.contains("resourceInputs[\"shmSize\"] = args?.shmSize;"));
    assert!(ts.contains("\"tokenFile\": true"));
}

/// The fixture schema uses every feature the generator supports (see its Python and Node.js
/// tests under tests/sdk/); here it must render, with the names each language needs.
#[test]
fn the_fixture_schema_renders() {
    let text = std::fs::read_to_string(root().join("tests/sdk/fixture/schema.json")).unwrap();
    let files = sdk::render(&text).unwrap();
    // Without a `pluginDownloadURL` the plugin metadata names no server.
    let plugin: Value =
        serde_json::from_str(file(&files, "python/pulumi_kitchen/pulumi-plugin.json")).unwrap();
    assert_eq!(plugin.get("server"), None);
    let package: Value = serde_json::from_str(file(&files, "nodejs/package.json")).unwrap();
    assert_eq!(package["pulumi"].get("server"), None);
    assert!(
        file(&files, "nodejs/utilities.ts")
            .contains("const pluginDownloadURL: string | undefined = undefined;")
    );
    let widget = file(&files, "python/pulumi_kitchen/widget.py");
    assert!(widget.contains("additional_secret_outputs=[\"password\", \"secret_out\"]"));
    assert!(widget.contains(
        "pulumi.Input[Mapping[str, pulumi.Input[Union['EndpointArgs', 'EndpointArgsDict']]]]"
    ));
    assert!(
        file(&files, "python/pulumi_kitchen/bucket.py")
            .contains("from_: Optional[pulumi.Input[_builtins.str]] = None")
    );
    assert!(file(&files, "python/pulumi_kitchen/_enums.py").contains("CAREFUL = \"safe\""));
    assert!(
        file(&files, "python/pulumi_kitchen/provider.py").contains("apply(pulumi.runtime.to_json)")
    );
    let index = file(&files, "nodejs/index.ts");
    assert!(index.contains("registerResourceModule(\"kitchen\", \"storage\""));
    assert!(
        file(&files, "nodejs/widget.ts")
            .contains("matrix?: pulumi.Input<pulumi.Input<pulumi.Input<number>[]>[]>;")
    );
}

#[test]
fn schema_errors_name_the_property() {
    let mut schema: Value = serde_json::from_str(&schema_text()).unwrap();
    schema["resources"]["docker-buildkit:index:Image"]["inputProperties"]["name"] =
        json!({"$ref": "#/types/docker-buildkit:index:Nowhere"});
    let err = sdk::render(&schema.to_string()).unwrap_err().to_string();
    assert!(err.contains("inputProperties.name"), "{err}");
    assert!(err.contains("docker-buildkit:index:Nowhere"), "{err}");
}
