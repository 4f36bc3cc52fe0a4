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
