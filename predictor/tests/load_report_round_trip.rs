//! The ORCA load report parser against random reports: they read back exactly through TEXT,
//! JSON and `to_text`, and mutating their bytes never makes the parser panic.

mod load_report_round_trip {
    use augur_predictor::load_report::{parse, to_text, LoadReport, MAX_HEADER_LEN, MAX_NAMED};
    use augur_predictor::sampling;

    /// The policies' splitmix64 (deterministic, good enough to pick test cases), with the
    /// draws these tests make.
    struct Rng(sampling::Rng);

    impl Rng {
        fn new(seed: u64) -> Self {
            Rng(sampling::Rng::new(seed))
        }

        fn next(&mut self) -> u64 {
            self.0.next_u64()
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn chance(&mut self, one_in: u64) -> bool {
            self.below(one_in) == 0
        }

        fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
            choices[self.below(choices.len() as u64) as usize]
        }
    }

    /// A finite value >= 0 whose `{}` spelling is short enough to fit many in one header.
    fn random_value(rng: &mut Rng) -> f64 {
        match rng.below(5) {
            0 => 0.0,
            1 => rng.below(1_000_000) as f64,
            2 => rng.below(1001) as f64 / 1000.0,
            3 => format!("{}e-{}", rng.below(1 << 40), rng.below(20))
                .parse()
                .unwrap(),
            // Any bit pattern with an exponent between 2^-20 and 2^20: full 53-bit mantissas.
            _ => {
                let exponent = 1023 - 20 + rng.below(41);
                f64::from_bits((exponent << 52) | (rng.next() >> 12))
            }
        }
    }

    fn random_report(rng: &mut Rng) -> LoadReport {
        let field = |rng: &mut Rng| rng.chance(2).then(|| random_value(rng));
        const NAME_CHARS: &[u8] =
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:/";
        let named = (0..rng.below(MAX_NAMED as u64 + 1))
            .map(|i| {
                let len = 1 + rng.below(12);
                let mut name: String = (0..len)
                    .map(|_| NAME_CHARS[rng.below(NAME_CHARS.len() as u64) as usize] as char)
                    .collect();
                name.push_str(&i.to_string()); // unique
                (name, random_value(rng))
            })
            .collect();
        LoadReport {
            cpu_utilization: field(rng),
            mem_utilization: field(rng),
            application_utilization: field(rng),
            rps_fractional: field(rng),
            eps: field(rng),
            named_metrics: named,
        }
    }

    /// (snake name, camel name, value) of each fixed field that is set.
    fn fixed_fields(report: &LoadReport) -> Vec<(&'static str, &'static str, f64)> {
        [
            ("cpu_utilization", "cpuUtilization", report.cpu_utilization),
            ("mem_utilization", "memUtilization", report.mem_utilization),
            (
                "application_utilization",
                "applicationUtilization",
                report.application_utilization,
            ),
            ("rps_fractional", "rpsFractional", report.rps_fractional),
            ("eps", "eps", report.eps),
        ]
        .into_iter()
        .filter_map(|(snake, camel, v)| v.map(|v| (snake, camel, v)))
        .collect()
    }

    /// Puts the fixed fields at random places among the named ones, which keep their order.
    fn interleave(rng: &mut Rng, fixed: Vec<String>, mut items: Vec<String>) -> Vec<String> {
        for item in fixed {
            let at = rng.below(items.len() as u64 + 1) as usize;
            items.insert(at, item);
        }
        items
    }

    fn as_text(rng: &mut Rng, report: &LoadReport) -> String {
        let space = |rng: &mut Rng| rng.pick(&["", "", " ", "  ", "\t"]).to_owned();
        let fixed = fixed_fields(report)
            .into_iter()
            .map(|(name, _, v)| format!("{name}{}={}{v}", space(rng), space(rng)))
            .collect();
        let named = report
            .named_metrics
            .iter()
            .map(|(name, v)| format!("named_metrics.{name}={v}"))
            .collect();
        let items = interleave(rng, fixed, named);
        let mut out = String::from("TEXT ");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(rng.pick(&[",", ", ", " ,", ",,", " , "]));
            }
            out.push_str(&space(rng));
            out.push_str(item);
        }
        out
    }

    fn as_json(rng: &mut Rng, report: &LoadReport) -> String {
        let space = |rng: &mut Rng| rng.pick(&["", " ", "\n", "\r\n  ", "\t"]).to_owned();
        let fixed = fixed_fields(report)
            .into_iter()
            .map(|(snake, camel, v)| {
                let name = if rng.chance(2) { snake } else { camel };
                format!("\"{name}\"{}:{}{v}", space(rng), space(rng))
            })
            .collect();
        let mut items = interleave(rng, fixed, Vec::new());
        if !report.named_metrics.is_empty() || rng.chance(2) {
            let named: Vec<String> = report
                .named_metrics
                .iter()
                .map(|(name, v)| format!("\"{name}\":{}{v}", space(rng)))
                .collect();
            let key = if rng.chance(2) {
                "named_metrics"
            } else {
                "namedMetrics"
            };
            let object = format!("\"{key}\": {{{}}}", named.join(&format!(",{}", space(rng))));
            let at = rng.below(items.len() as u64 + 1) as usize;
            items.insert(at, object);
        }
        format!(
            "JSON {}{{{}}}{}",
            space(rng),
            items.join(&format!("{},", space(rng))),
            space(rng)
        )
    }

    #[test]
    fn random_reports_round_trip_through_text_and_json() {
        let mut rng = Rng::new(0x0bad_5eed);
        for _ in 0..5_000 {
            let report = random_report(&mut rng);
            for header in [as_text(&mut rng, &report), as_json(&mut rng, &report)] {
                assert!(header.len() <= MAX_HEADER_LEN);
                assert_eq!(parse(header.as_bytes()).as_ref(), Ok(&report), "{header}");
            }
            let text = to_text(&report);
            assert_eq!(parse(text.as_bytes()), Ok(report), "{text}");
        }
    }

    #[test]
    fn mutated_headers_never_panic_and_what_is_read_round_trips() {
        const INTERESTING: &[u8] = b",=.{}\":\\ \t\n-+eE0159_nNaAiIfu\xff\xc3";
        let mut rng = Rng::new(0xfee1_900d);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let report = random_report(&mut rng);
            let header = if rng.chance(2) {
                as_text(&mut rng, &report)
            } else {
                as_json(&mut rng, &report)
            };
            let mut bytes = header.into_bytes();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len() as u64 + 1) as usize;
                let byte = if rng.chance(2) {
                    INTERESTING[rng.below(INTERESTING.len() as u64) as usize]
                } else {
                    rng.next() as u8
                };
                match rng.below(5) {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    2 => bytes.truncate(at),
                    3 => {
                        let end = (at + 1 + rng.below(8) as usize).min(bytes.len());
                        let copy = bytes[at.min(end)..end].to_vec();
                        bytes.splice(at..at, copy);
                    }
                    _ => bytes.insert(at, byte),
                }
            }
            if let Ok(read) = parse(&bytes) {
                accepted += 1;
                let values = fixed_fields(&read)
                    .into_iter()
                    .map(|(_, _, v)| v)
                    .chain(read.named_metrics.iter().map(|(_, v)| *v));
                for v in values {
                    assert!(v.is_finite() && v >= 0.0, "{v} from {bytes:?}");
                }
                assert!(read.named_metrics.len() <= MAX_NAMED);
                let text = to_text(&read);
                assert_eq!(parse(text.as_bytes()), Ok(read), "{text}");
            }
        }
        // The mutations are mild enough that some headers still read; make sure of it, so
        // the round-trip half of this test is not vacuous.
        assert!(accepted > 1_000, "only {accepted} mutated headers accepted");
    }
}
