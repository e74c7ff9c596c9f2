//! What this binary is: version and platform, as the report shows them.

use flux_reporter_api::OperatorInfo;
use flux_reporter_api::constants::API_VERSION;

/// `v` + the crate version, as Go tools print versions.
pub fn version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

/// `os/arch` in Go's names (`linux/amd64`), as the Flux Operator reports it.
pub fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

pub fn operator_info() -> OperatorInfo {
    OperatorInfo {
        api_version: API_VERSION.into(),
        version: version(),
        platform: platform(),
    }
}
