//! `augur check`, `--help`, `--version`, and every example config.

use std::path::Path;

use crate::support::*;

/// Writes `yaml` to `name` in `dir` and runs `augur check` on it: (the file's path as
/// printed, exit code, stdout).
fn check(dir: &Path, name: &str, yaml: &str) -> (String, i32, String) {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    let (code, out, _) = augur_cmd(&["check", "-c", path.to_str().unwrap()]);
    (path.display().to_string(), code, out)
}

#[test]
fn check_accepts_a_good_file_and_locates_every_problem_in_a_bad_one() {
    let dir = temp_dir("check");
    let (_, code, out) = check(
        &dir,
        "good.yaml",
        "listeners:\n  - { name: web, bind: 127.0.0.1:8080, protocol: http, routes: [ { upstream: api } ] }\nupstreams:\n  - { name: api, backends: [ { addr: 127.0.0.1:9001 } ] }\n",
    );
    assert_eq!((code, out.trim()), (0, "ok"));

    let (file, code, out) = check(
        &dir,
        "bad.yaml",
        "listeners:
  - name: web
    bind: 127.0.0.1:8080
    protocol: http
    routes:
      - upstream: apii
upstreams:
  - name: api
    backends:
      - addr: 10.0.0.1:80a
",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{file}:6:19: listeners[0].routes[0].upstream: "))
            && out.contains("\"api\""),
        "{out}"
    );
    assert!(
        out.contains(&format!("{file}:10:15: upstreams[0].backends[0].addr: ")),
        "{out}"
    );

    let (typo, code, out) = check(
        &dir,
        "typo.yaml",
        "listeners:\n  - name: web\n    bnd: 127.0.0.1:8080\n",
    );
    assert_eq!(code, 1);
    assert!(out.contains(&format!("{typo}:3:5: listeners[0]")), "{out}");
    assert!(out.contains("did you mean `bind`"), "{out}");

    let (code, out, err) = augur_cmd(&["check", "-c", dir.join("missing.yaml").to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("missing.yaml"), "{out}");
}

#[test]
fn help_and_version() {
    let (code, out, _) = augur_cmd(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("augur "), "{out}");
    let (code, out, _) = augur_cmd(&["--help"]);
    assert_eq!(code, 0);
    for word in ["run", "check", "reload", "demo"] {
        assert!(out.contains(word), "{out}");
    }
}

#[test]
fn every_example_config_passes_check() {
    use std::os::unix::fs::PermissionsExt;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    // Git does not keep the mode 600 that a tunnel's key file needs.
    for key in std::fs::read_dir(examples.join("keys")).unwrap() {
        let key = key.unwrap().path();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let (code, out, err) = augur_cmd(&["check", "-c", path.to_str().unwrap()]);
            assert_eq!(code, 0, "{}: {out}{err}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 1);
}
