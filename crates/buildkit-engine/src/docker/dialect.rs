//! Which `.dockerignore` dialect ([`IgnoreDialect`]) a daemon's builds follow: the rule of
//! the `docker build` that goes with the daemon's version. dockerd 20.10 (API 1.41) and
//! older: the docker CLI 20.10's BuildKit client ([`IgnoreDialect::Classic20_10`]); Docker
//! 23 (API 1.42) and later, whose `docker build` is buildx: [`IgnoreDialect::Modern`].
//!
//! A build knows its daemon's API version (it has just negotiated it). Check, which hashes
//! the context, asks [`probe`]: once per daemon address per provider process, bounded by
//! [`PROBE_TIMEOUT`], and [`IgnoreDialect::Classic20_10`] when the daemon does not answer
//! in time, so that Check never waits on a daemon for long and an unreachable one hashes
//! as the provider always did.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bollard::ClientVersion;
use tokio::sync::OnceCell;

use super::{DaemonAddress, connect, daemon_host};
use crate::context::IgnoreDialect;

/// The API version of Docker 23.0, the first whose `docker build` is buildx.
const FIRST_MODERN_API: (usize, usize) = (1, 42);

/// The longest [`probe`] waits for a daemon's version.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The dialect of a daemon that speaks API `major.minor` at most.
pub fn for_api_version(major: usize, minor: usize) -> IgnoreDialect {
    if (major, minor) >= FIRST_MODERN_API {
        IgnoreDialect::Modern
    } else {
        IgnoreDialect::Classic20_10
    }
}

/// The dialect of a daemon with which `version` was negotiated (bollard keeps the lower of
/// its own and the daemon's: still ≥ 1.42 for any Docker 23 and later).
pub fn for_client_version(version: &ClientVersion) -> IgnoreDialect {
    for_api_version(version.major_version, version.minor_version)
}

type Probes = Mutex<HashMap<(String, Option<String>), Arc<OnceCell<IgnoreDialect>>>>;

/// The dialect of the daemon at `address`, asked once per process (concurrent callers wait
/// for the same answer); [`IgnoreDialect::Classic20_10`] when it cannot be reached within
/// [`PROBE_TIMEOUT`] (also kept for the rest of the process).
pub async fn probe(address: &DaemonAddress) -> IgnoreDialect {
    // Our own client sends the context to a buildkitd, as buildx does: the rule of
    // today's docker CLI and buildx.
    if address.driver == super::plan::Driver::Buildkit {
        return IgnoreDialect::Modern;
    }
    static PROBES: OnceLock<Probes> = OnceLock::new();
    let key = (daemon_host(address), address.cert_path.clone());
    let cell = PROBES
        .get_or_init(Probes::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default()
        .clone();
    *cell
        .get_or_init(|| async {
            match tokio::time::timeout(PROBE_TIMEOUT, connect(address)).await {
                Ok(Ok(docker)) => for_client_version(&docker.client_version()),
                _ => IgnoreDialect::Classic20_10,
            }
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_23_and_later_are_modern() {
        for (major, minor, want) in [
            (1, 24, IgnoreDialect::Classic20_10),
            (1, 40, IgnoreDialect::Classic20_10),
            (1, 41, IgnoreDialect::Classic20_10),
            (1, 42, IgnoreDialect::Modern),
            (1, 43, IgnoreDialect::Modern),
            (1, 53, IgnoreDialect::Modern),
            (2, 0, IgnoreDialect::Modern),
        ] {
            assert_eq!(for_api_version(major, minor), want, "{major}.{minor}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_daemon_is_classic_and_answers_fast() {
        let dir = tempfile::tempdir().expect("tempdir");
        let address = DaemonAddress {
            host: Some(format!("unix://{}/none.sock", dir.path().display())),
            cert_path: None,
            ..DaemonAddress::default()
        };
        let started = std::time::Instant::now();
        assert_eq!(probe(&address).await, IgnoreDialect::Classic20_10);
        // A buildkitd gets what our own client sends: today's rule, without asking it.
        let kit = DaemonAddress {
            driver: crate::docker::plan::Driver::Buildkit,
            ..address.clone()
        };
        assert_eq!(probe(&kit).await, IgnoreDialect::Modern);
        assert_eq!(probe(&address).await, IgnoreDialect::Classic20_10);
        assert!(started.elapsed() < PROBE_TIMEOUT, "{:?}", started.elapsed());
    }
}
