//! `parse` never panics, whatever it is given: it returns an error, quickly.

use augur_config::parse;

/// The shipped example (an http and a tcp listener, three upstreams) with server settings
/// added, as the seed that is mutated.
const EXAMPLE: &str = concat!(
    "server: { threads: 2, grace_period: 5s, access_log: { path: '-', format: text } }\n",
    include_str!("../../examples/augur.yaml")
);

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn the_example_is_valid() {
    parse(EXAMPLE, "augur.yaml").unwrap();
}

#[test]
fn binary_garbage() {
    let all_bytes: Vec<u8> = (0..=255).collect();
    assert!(parse(&String::from_utf8_lossy(&all_bytes), "x").is_err());
    assert!(parse("\0\0\0", "x").is_err());
    assert!(parse("\u{feff}\u{feff}", "x").is_err());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..500 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = parse(&String::from_utf8_lossy(&bytes), "x");
    }
}

#[test]
fn deep_nesting() {
    for open in ["[", "{", "- ", "{a: ", "[{a: "] {
        let text = open.repeat(50_000);
        assert!(parse(&text, "x").is_err());
    }
    let balanced = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    assert!(parse(&balanced, "x").is_err());
    // An unknown key makes the position index walk the whole deep value.
    let deep_value = format!(
        "listeners: [ {{ zzz: {}{} }} ]\n",
        "[".repeat(60),
        "]".repeat(60)
    );
    let errors = parse(&deep_value, "x").unwrap_err();
    assert_eq!(
        errors.to_string(),
        "x:1:16: listeners[0].zzz: unknown key `zzz`; expected `name`, `bind`, `protocol`, `routes`, `upstream`, `tls`, `allow`, `segment_mode` or `idle_timeout`"
    );
    let indented: String = (0..1_000)
        .map(|i| format!("{}a{i}:\n", " ".repeat(i)))
        .collect();
    assert!(parse(&indented, "x").is_err());
}

#[test]
fn alias_bombs() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    assert!(parse(&text, "x").is_err());
    let in_schema = "upstreams: &u [ { name: a, backends: *u } ]\nlisteners: *u\n";
    assert!(parse(in_schema, "x").is_err());
    assert!(parse("listeners: *nowhere\n", "x").is_err());
}

#[test]
fn long_complex_keys_are_not_echoed() {
    let text = format!("? {}\n: 1\n", "k".repeat(10_000));
    for line in parse(&text, "x").unwrap_err().0 {
        assert!(line.to_string().len() < 600, "{line}");
    }
}

#[test]
fn mutated_examples() {
    let pieces = [
        "",
        " ",
        "\n",
        "\t",
        ":",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&a ",
        "*a",
        "!!str ",
        "? ",
        "'",
        "\"",
        "#",
        "|",
        ">",
        "~",
        "---\n",
        "...\n",
        "0",
        "-1",
        "1e999",
        "é",
        "\u{0}",
        "listeners",
        "upstreams",
        "routes: []",
        "protocol: tcp",
        "<<: *a",
    ];
    let mut rng = Rng(42);
    let lines: Vec<&str> = EXAMPLE.lines().collect();
    for _ in 0..1_500 {
        let mut text: Vec<char> = EXAMPLE.chars().collect();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(text.len());
            match rng.below(4) {
                0 => {
                    let end = (at + rng.below(20)).min(text.len());
                    text.drain(at..end);
                }
                1 => {
                    let piece = pieces[rng.below(pieces.len())];
                    text.splice(at..at, piece.chars());
                }
                2 => {
                    let line = lines[rng.below(lines.len())];
                    text.splice(at..at, line.chars().chain(['\n']));
                }
                _ => {
                    let other = rng.below(text.len());
                    text.swap(at, other);
                }
            }
        }
        let text: String = text.into_iter().collect();
        // Whatever the outcome, it must come back, and errors must have positions.
        if let Err(errors) = parse(&text, "x") {
            assert!(!errors.0.is_empty());
            for error in &errors.0 {
                assert!(error.line >= 1 && error.column >= 1, "{error}\n{text}");
            }
        }
    }
}
