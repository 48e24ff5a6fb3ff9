//! `augur keygen` and `augur pubkey` agree with WireGuard's own `wg genkey` and `wg pubkey`
//! (wireguard-tools, installed by the test command).

use crate::support::*;

fn augur_pubkey(private: &str) -> String {
    let (code, public, err) = run_with_stdin(AUGUR, &["pubkey"], private);
    assert_eq!(code, 0, "{err}");
    public
}

fn wg_pubkey(private: &str) -> String {
    let (code, public, err) = run_with_stdin("wg", &["pubkey"], private);
    assert_eq!(code, 0, "{err}");
    public
}

#[test]
fn keys_agree_with_wireguard_tools_both_ways() {
    require_tools(&["wg"]);
    for _ in 0..5 {
        // A key from augur, read by both.
        let (code, ours, err) = augur_cmd(&["keygen"]);
        assert_eq!(code, 0, "{err}");
        let ours = ours.trim();
        assert_eq!(augur_pubkey(ours), wg_pubkey(ours));
        // A key from wg, read by both.
        let (code, theirs, err) = run_with_stdin("wg", &["genkey"], "");
        assert_eq!(code, 0, "{err}");
        assert_eq!(augur_pubkey(&theirs), wg_pubkey(&theirs));
    }
    let (code, _, err) = run_with_stdin(AUGUR, &["pubkey"], "not a key\n");
    assert_eq!(code, 1);
    assert!(err.contains("not a WireGuard key"), "{err}");
}
