//! `pulumi-resource-docker-buildkit`: the binary the Pulumi engine starts. It serves the
//! provider on 127.0.0.1, prints the port as its first stdout line, and exits when the engine
//! goes away.

use std::process::ExitCode;

use docker_buildkit::resources::{PACKAGE_INFO, provider};
use docker_buildkit::rpc::server::serve;
use docker_buildkit::schema::package_schema;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version") {
        println!("{}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let provider = provider();
    let schema = package_schema(&provider, &PACKAGE_INFO);
    if args.iter().any(|a| a == "--schema") {
        println!(
            "{}",
            serde_json::to_string_pretty(&schema).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let served = serve(provider, schema.to_string(), &args).await;
    // The private sockets in front of ssh:// hosts.
    docker_buildkit::docker::tunnel::remove_all();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pulumi-resource-docker-buildkit: {e}");
            ExitCode::FAILURE
        }
    }
}
