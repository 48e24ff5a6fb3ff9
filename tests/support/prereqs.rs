//! What some tests need from the machine beyond augur itself: tools on `PATH` and the right
//! to create network namespaces. A test that lacks one fails (it is not skipped) with a
//! message naming what is missing and how to get it.

use std::path::Path;
use std::process::Command;

/// How to get what is missing; the test command (`scripts/test.sh`) runs it first.
const HOW: &str = "scripts/prereqs.sh installs them on Debian (run as root or with sudo)";

/// The Debian package that provides `tool`.
fn package_of(tool: &str) -> &str {
    match tool {
        "wg" => "wireguard-tools",
        "ip" => "iproute2",
        "kill" => "procps",
        other => other,
    }
}

/// Whether an executable file named `tool` is in a directory of `PATH`.
pub fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(tool))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Fails the test unless every one of `tools` is on `PATH`, naming those that are not.
pub fn require_tools(tools: &[&str]) {
    let missing: Vec<String> = tools
        .iter()
        .filter(|t| !on_path(t))
        .map(|t| format!("`{t}` (package {})", package_of(t)))
        .collect();
    assert!(
        missing.is_empty(),
        "this test needs these on PATH, and they are missing: {}; {HOW}",
        missing.join(", ")
    );
}

/// The failure message for a tool that could not be started.
pub fn cannot_run(tool: &str, error: &std::io::Error) -> String {
    format!(
        "cannot run `{tool}` ({error}): this test needs package {}; {HOW}",
        package_of(tool)
    )
}

/// Fails the test unless this process may create network namespaces and veth pairs (root,
/// or CAP_SYS_ADMIN and CAP_NET_ADMIN), and the TUN device wireguard-go opens exists.
pub fn require_namespaces() {
    require_tools(&["ip"]);
    // One name per call: the tests that need namespaces run in parallel in this process.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = format!("augur-probe-{}-{call}", std::process::id());
    let out = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .unwrap_or_else(|e| panic!("{}", cannot_run("ip", &e)));
    let _ = Command::new("ip").args(["netns", "del", &probe]).output();
    assert!(
        out.status.success(),
        "this test creates a network namespace and a veth pair, which needs root (or \
         CAP_SYS_ADMIN and CAP_NET_ADMIN); `ip netns add` said: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    assert!(
        Path::new("/dev/net/tun").exists(),
        "this test runs wireguard-go, which needs the TUN device /dev/net/tun (in a container: \
         pass it in, e.g. `--device /dev/net/tun`)"
    );
}
