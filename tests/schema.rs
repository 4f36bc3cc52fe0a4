//! The package schema: derived from the Rust structs, committed as `schema/schema.json`,
//! snapshotted so every API change shows in review, and valid against Pulumi's metaschema.

use docker_buildkit::resources::{PACKAGE_INFO, provider};
use docker_buildkit::schema::package_schema;
use serde_json::Value;

fn derived() -> Value {
    package_schema(&provider(), &PACKAGE_INFO)
}

#[test]
fn schema_snapshot() {
    // A change here is an API change: review the snapshot diff, then `cargo insta review`.
    insta::assert_json_snapshot!("schema", derived());
}

#[test]
fn committed_schema_is_current() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/schema.json"))
            .expect("schema/schema.json exists");
    let committed: Value = serde_json::from_str(&committed).unwrap();
    assert!(
        committed == derived(),
        "schema/schema.json is stale: run `cargo run -p codegen -- schema`"
    );
}

#[test]
fn schema_validates_against_pulumi_metaschema() {
    // Pulumi's package metaschema (pkg/codegen/schema/pulumi.json), kept in the repository
    // as a fixture: see tests/fixtures/README.md for its origin.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pulumi-metaschema.json"
    );
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(path).expect("tests/fixtures/pulumi-metaschema.json"),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&meta).expect("the metaschema compiles");
    let schema = derived();
    let errors: Vec<String> = validator
        .iter_errors(&schema)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "schema violates the metaschema:\n{}",
        errors.join("\n")
    );

    // And the validator is not vacuous: a broken schema fails.
    let mut broken = schema.clone();
    broken["resources"]["docker-buildkit:index:Image"]["inputProperties"]["name"]["type"] =
        Value::from("text");
    assert!(
        !validator.is_valid(&broken),
        "the metaschema rejects an unknown type"
    );
}

/// The README's list of inputs names every input of the Image, and its hash composition every
/// input that makes the image (`index` was missing from both).
#[test]
fn the_readme_names_every_input_and_what_is_hashed() {
    use docker_buildkit::resources::inputs::hashed;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let paragraph = |start: &str| -> String {
        let i = readme
            .find(start)
            .unwrap_or_else(|| panic!("README has {start:?}"));
        let rest = &readme[i..];
        rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
    };
    let inputs = paragraph("Inputs: `name`");
    let schema = derived();
    let props = schema["resources"]["docker-buildkit:index:Image"]["inputProperties"]
        .as_object()
        .unwrap();
    let missing: Vec<&String> = props
        .keys()
        .filter(|k| *k != "contextHash" && !inputs.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "the README's input list lacks {missing:?}"
    );
    let hash = paragraph("- Nothing builds when nothing in the context changed");
    // The README says these in words: "build args", "the ids of `secrets`", the context's
    // files and the Dockerfile.
    let words = |input: &str| match input {
        "buildArgs" => "build args".to_string(),
        "context" => "file's path".to_string(),
        "dockerfile" | "dockerfileInline" => "the Dockerfile".to_string(),
        "addHosts" | "index" | "secrets" | "triggers" => format!("`{input}`"),
        other => other.to_string(),
    };
    let unsaid: Vec<&str> = hashed().filter(|i| !hash.contains(&words(i))).collect();
    assert!(
        unsaid.is_empty(),
        "the README's hash composition lacks {unsaid:?}"
    );
}
