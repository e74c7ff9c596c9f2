//! Cluster info: API server version, platform and node count, as the Flux
//! Operator's reporter fills it (`internal/reporter/cluster.go` in
//! https://github.com/controlplaneio-fluxcd/flux-operator).

use flux_reporter_api::ClusterInfo;

use crate::observed::ServerVersion;

pub fn cluster(version: &ServerVersion, nodes: i64) -> ClusterInfo {
    ClusterInfo {
        server_version: version.git_version.clone(),
        platform: version.platform.clone(),
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_info_from_version_and_nodes() {
        let v = ServerVersion {
            git_version: "v1.33.4".into(),
            platform: "linux/amd64".into(),
        };
        let c = cluster(&v, 3);
        assert_eq!(
            (c.server_version.as_str(), c.platform.as_str(), c.nodes),
            ("v1.33.4", "linux/amd64", 3)
        );
    }
}
