//! The ORCA load report parser: every accepted form and every rejection, each by its exact
//! error; random round trips are in load_report_round_trip.rs.

mod load_report {
    use augur_predictor::load_report::{
        parse, to_text, LoadReport, LoadReportError, MAX_HEADER_LEN, MAX_NAMED, MAX_NAME_LEN,
    };
    use LoadReportError::*;

    fn ok(header: &str) -> LoadReport {
        match parse(header.as_bytes()) {
            Ok(report) => report,
            Err(e) => panic!("{header:?} rejected: {e}"),
        }
    }

    fn err(header: &str) -> LoadReportError {
        match parse(header.as_bytes()) {
            Ok(report) => panic!("{header:?} accepted as {report:?}"),
            Err(e) => e,
        }
    }

    fn s(text: &str) -> String {
        text.to_owned()
    }

    /// The report Envoy's own tests use.
    fn example() -> LoadReport {
        LoadReport {
            cpu_utilization: Some(0.7),
            mem_utilization: Some(0.9),
            application_utilization: Some(0.8),
            rps_fractional: Some(1000.0),
            eps: Some(2.0),
            named_metrics: vec![(s("foo"), 123.0), (s("bar"), 0.2)],
        }
    }

    // ---- accepted forms ----

    #[test]
    fn text_with_every_field() {
        let header = "TEXT cpu_utilization=0.7,application_utilization=0.8,mem_utilization=0.9,\
                      rps_fractional=1000,eps=2,named_metrics.foo=123,named_metrics.bar=0.2";
        assert_eq!(ok(header), example());
    }

    #[test]
    fn text_whitespace_and_empty_items_are_ignored() {
        let want = LoadReport {
            cpu_utilization: Some(0.3),
            mem_utilization: Some(0.8),
            named_metrics: vec![(s("foo"), 123.0)],
            ..LoadReport::default()
        };
        for header in [
            "TEXT cpu_utilization=0.3, mem_utilization=0.8, named_metrics.foo=123",
            "TEXT cpu_utilization=0.3,mem_utilization=0.8,named_metrics.foo=123",
            "  TEXT   cpu_utilization = 0.3 ,\tmem_utilization=\t0.8 , named_metrics.foo =123  ",
            "TEXT\tcpu_utilization=0.3,,mem_utilization=0.8, ,named_metrics.foo=123,",
            "TEXT ,cpu_utilization=0.3\t,\t mem_utilization=0.8,named_metrics.foo=123,,",
        ] {
            assert_eq!(ok(header), want, "{header:?}");
        }
    }

    #[test]
    fn text_number_spellings() {
        for (value, want) in [
            ("1", 1.0),
            ("0.25", 0.25),
            ("1e3", 1000.0),
            ("2.5E-1", 0.25),
            ("+0.5", 0.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("0", 0.0),
        ] {
            let report = ok(&format!("TEXT eps={value}"));
            assert_eq!(report.eps, Some(want), "{value}");
        }
        // -0 is not below zero; it is read as 0 so it prints as 0.
        let zero = ok("TEXT eps=-0").eps.unwrap();
        assert!(zero == 0.0 && zero.is_sign_positive());
    }

    #[test]
    fn empty_reports() {
        for header in [
            "TEXT ",
            "TEXT",
            "TEXT  , ,",
            "JSON {}",
            "JSON  { \n }",
            "JSON{}",
        ] {
            if header == "JSON{}" {
                // The format word must be followed by whitespace, as in Envoy.
                assert_eq!(err(header), UnknownFormat(s("JSON{}")));
            } else {
                assert_eq!(ok(header), LoadReport::default(), "{header:?}");
            }
        }
    }

    #[test]
    fn json_with_every_field() {
        let header = r#"JSON {"cpu_utilization": 0.7, "application_utilization": 0.8, "mem_utilization": 0.9, "rps_fractional": 1000, "eps": 2, "named_metrics": {"foo": 123,"bar": 0.2}}"#;
        assert_eq!(ok(header), example());
    }

    #[test]
    fn json_lower_camel_case_names() {
        let header = r#"JSON {"cpuUtilization":0.7,"applicationUtilization":0.8,"memUtilization":0.9,"rpsFractional":1e3,"eps":2,"namedMetrics":{"foo":123,"bar":0.2}}"#;
        assert_eq!(ok(header), example());
    }

    #[test]
    fn json_whitespace_and_escapes() {
        let header = "JSON \n{\r\n\t\"cpu\\u005futilization\" :\t0.5 ,\n \"named_metrics\" : { \"a\\/b\" : 1.5E+2 } \n}\t";
        let want = LoadReport {
            cpu_utilization: Some(0.5),
            named_metrics: vec![(s("a/b"), 150.0)],
            ..LoadReport::default()
        };
        assert_eq!(ok(header), want);
        assert_eq!(ok(r#"JSON {"named_metrics": {}}"#), LoadReport::default());
    }

    #[test]
    fn named_metrics_in_both_forms_keep_their_order() {
        let names = ["zeta", "alpha", "m.i-d:d/le_9"];
        let text =
            ok("TEXT named_metrics.zeta=3,named_metrics.alpha=1,named_metrics.m.i-d:d/le_9=2");
        let json = ok(r#"JSON {"named_metrics": {"zeta": 3, "alpha": 1, "m.i-d:d/le_9": 2}}"#);
        assert_eq!(text, json);
        let got: Vec<&str> = text.named_metrics.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(got, names);
        // Named metrics are opaque figures: any size is fine.
        assert_eq!(ok("TEXT named_metrics.big=1e300").named_metrics[0].1, 1e300);
    }

    #[test]
    fn utilisation_above_one_is_kept() {
        let report = ok("TEXT cpu_utilization=1.5,mem_utilization=1.2,application_utilization=3");
        assert_eq!(report.cpu_utilization, Some(1.5));
        assert_eq!(report.mem_utilization, Some(1.2));
        assert_eq!(report.application_utilization, Some(3.0));
    }

    #[test]
    fn utilization_prefers_a_positive_application_figure() {
        let report = |app, cpu| LoadReport {
            application_utilization: app,
            cpu_utilization: cpu,
            ..LoadReport::default()
        };
        assert_eq!(report(Some(0.6), Some(0.2)).utilization(), Some(0.6));
        assert_eq!(report(Some(0.0), Some(0.2)).utilization(), Some(0.2));
        assert_eq!(report(None, Some(0.2)).utilization(), Some(0.2));
        assert_eq!(report(Some(0.0), None).utilization(), None);
        assert_eq!(report(None, None).utilization(), None);
        assert_eq!(report(Some(1.7), None).utilization(), Some(1.7));
    }

    #[test]
    fn header_at_the_length_limit_is_read() {
        let mut header = String::from("TEXT eps=1");
        header.push_str(&",".repeat(MAX_HEADER_LEN - header.len()));
        assert_eq!(header.len(), MAX_HEADER_LEN);
        assert_eq!(ok(&header).eps, Some(1.0));
        header.push(',');
        assert_eq!(
            err(&header),
            TooLong {
                len: MAX_HEADER_LEN + 1
            }
        );
    }

    #[test]
    fn sixteen_named_metrics_are_allowed_seventeen_are_not() {
        let items = |n: usize| {
            (0..n)
                .map(|i| format!("named_metrics.m{i}={i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let json = |n: usize| {
            let body = (0..n)
                .map(|i| format!("\"m{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",");
            format!("JSON {{\"named_metrics\":{{{body}}}}}")
        };
        assert_eq!(
            ok(&format!("TEXT {}", items(MAX_NAMED)))
                .named_metrics
                .len(),
            MAX_NAMED
        );
        assert_eq!(ok(&json(MAX_NAMED)).named_metrics.len(), MAX_NAMED);
        assert_eq!(err(&format!("TEXT {}", items(MAX_NAMED + 1))), TooManyNamed);
        assert_eq!(err(&json(MAX_NAMED + 1)), TooManyNamed);
    }

    // ---- rejections, one per reason ----

    #[test]
    fn rejects_non_utf8() {
        assert_eq!(
            parse(b"TEXT named_metrics.\xff=1"),
            Err(NotUtf8 { offset: 19 })
        );
    }

    #[test]
    fn rejects_unknown_formats() {
        assert_eq!(err("BAD random-value"), UnknownFormat(s("BAD")));
        assert_eq!(err(""), UnknownFormat(s("")));
        assert_eq!(err("   "), UnknownFormat(s("")));
        assert_eq!(err("text cpu_utilization=0.3"), UnknownFormat(s("text")));
        assert_eq!(
            err("cpu_utilization=0.3"),
            UnknownFormat(s("cpu_utilization=0.3"))
        );
        // Only the first 40 characters of a long word are quoted back.
        let long = "X".repeat(100);
        assert_eq!(err(&long), UnknownFormat(format!("{}…", "X".repeat(40))));
    }

    #[test]
    fn rejects_bin_as_unsupported() {
        assert_eq!(err("BIN CQAAAAAAAOA/"), Unsupported("BIN"));
        assert_eq!(err("BIN"), Unsupported("BIN"));
        assert_eq!(err("BIN not base64 at all!"), Unsupported("BIN"));
    }

    #[test]
    fn rejects_malformed_pairs() {
        assert_eq!(
            err("TEXT not-a-list-of-key-value-pairs"),
            MalformedPair(s("not-a-list-of-key-value-pairs"))
        );
        assert_eq!(err("TEXT =0.3"), MalformedPair(s("=0.3")));
        assert_eq!(err("TEXT  = 0.3"), MalformedPair(s("= 0.3")));
        assert_eq!(
            err("TEXT cpu_utilization="),
            MalformedPair(s("cpu_utilization="))
        );
        assert_eq!(
            err("TEXT cpu_utilization = "),
            MalformedPair(s("cpu_utilization ="))
        );
        assert_eq!(
            err("TEXT eps=1, cpu_utilization"),
            MalformedPair(s("cpu_utilization"))
        );
    }

    #[test]
    fn rejects_unknown_fields() {
        for (header, key) in [
            (
                "TEXT cpu_utilization=0.7,unsupported_metric=0.8",
                "unsupported_metric",
            ),
            ("TEXT rps=10", "rps"),
            ("TEXT utilization=0.1", "utilization"),
            ("TEXT named_metrics=1", "named_metrics"),
            ("TEXT CPU_UTILIZATION=0.1", "CPU_UTILIZATION"),
            // lowerCamelCase is a JSON spelling only.
            ("TEXT cpuUtilization=0.1", "cpuUtilization"),
            (r#"JSON {"unknown_field": 2}"#, "unknown_field"),
            (r#"JSON {"request_cost": {"a": 1}}"#, "request_cost"),
            (r#"JSON {"named_metrics.foo": 1}"#, "named_metrics.foo"),
        ] {
            assert_eq!(err(header), UnknownField(s(key)), "{header:?}");
        }
    }

    #[test]
    fn rejects_duplicates() {
        for (header, key) in [
            ("TEXT cpu_utilization=0.7,cpu_utilization=0.8", "cpu_utilization"),
            ("TEXT eps=1, eps = 1", "eps"),
            (
                "TEXT named_metrics.foo=123,named_metrics.duplicate=123,named_metrics.duplicate=0.2",
                "named_metrics.duplicate",
            ),
            (r#"JSON {"eps": 1, "eps": 2}"#, "eps"),
            (r#"JSON {"cpu_utilization": 1, "cpuUtilization": 2}"#, "cpu_utilization"),
            (r#"JSON {"named_metrics": {"a": 1, "a": 2}}"#, "named_metrics.a"),
            (r#"JSON {"named_metrics": {}, "namedMetrics": {}}"#, "named_metrics"),
        ] {
            assert_eq!(err(header), DuplicateField(s(key)), "{header:?}");
        }
    }

    #[test]
    fn rejects_empty_names() {
        assert_eq!(err("TEXT named_metrics.=123"), EmptyName);
        assert_eq!(err("TEXT named_metrics. =123"), EmptyName);
        assert_eq!(err(r#"JSON {"named_metrics": {"": 1}}"#), EmptyName);
    }

    #[test]
    fn rejects_names_text_cannot_carry() {
        assert_eq!(err("TEXT named_metrics.a b=1"), InvalidName(s("a b")));
        assert_eq!(err("TEXT named_metrics.é=1"), InvalidName(s("é")));
        assert_eq!(
            err(r#"JSON {"named_metrics": {"a b": 1}}"#),
            InvalidName(s("a b"))
        );
        assert_eq!(
            err(r#"JSON {"named_metrics": {"a,b": 1}}"#),
            InvalidName(s("a,b"))
        );
        assert_eq!(
            err(r#"JSON {"named_metrics": {"a=b": 1}}"#),
            InvalidName(s("a=b"))
        );
        assert_eq!(
            err(r#"JSON {"named_metrics": {"a\nb": 1}}"#),
            InvalidName(s("a\nb"))
        );
        let longest = "n".repeat(MAX_NAME_LEN);
        assert_eq!(
            ok(&format!("TEXT named_metrics.{longest}=1"))
                .named_metrics
                .len(),
            1
        );
        let too_long = "n".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            err(&format!("TEXT named_metrics.{too_long}=1")),
            InvalidName(format!("{}…", "n".repeat(40)))
        );
    }

    #[test]
    fn rejects_values_that_are_not_numbers() {
        for (value, found) in [
            ("\"0.7\"", "\"0.7\""),
            ("0x10", "0x10"),
            ("1.2.3", "1.2.3"),
            ("0.5 0.6", "0.5 0.6"),
            ("abc", "abc"),
            ("1e", "1e"),
        ] {
            assert_eq!(
                err(&format!("TEXT cpu_utilization={value}")),
                InvalidNumber {
                    field: s("cpu_utilization"),
                    value: s(found)
                },
                "{value}"
            );
        }
    }

    #[test]
    fn rejects_nan() {
        for value in ["NaN", "nan", "-NaN"] {
            assert_eq!(
                err(&format!("TEXT cpu_utilization={value}")),
                NotANumber {
                    field: s("cpu_utilization")
                }
            );
        }
        assert_eq!(
            err("TEXT named_metrics.foo=NaN"),
            NotANumber {
                field: s("named_metrics.foo")
            }
        );
    }

    #[test]
    fn rejects_infinity() {
        for value in ["inf", "infinity", "-inf", "1e999"] {
            assert_eq!(
                err(&format!("TEXT eps={value}")),
                Infinite { field: s("eps") },
                "{value}"
            );
        }
        assert_eq!(err(r#"JSON {"eps": 1e999}"#), Infinite { field: s("eps") });
        assert_eq!(
            err(r#"JSON {"named_metrics": {"x": -2e400}}"#),
            Infinite {
                field: s("named_metrics.x")
            }
        );
    }

    #[test]
    fn rejects_negative_values() {
        assert_eq!(
            err("TEXT cpu_utilization=-0.5"),
            Negative {
                field: s("cpu_utilization"),
                value: -0.5
            }
        );
        assert_eq!(
            err("TEXT named_metrics.foo=-1"),
            Negative {
                field: s("named_metrics.foo"),
                value: -1.0
            }
        );
        assert_eq!(
            err(r#"JSON {"rps_fractional": -3}"#),
            Negative {
                field: s("rps_fractional"),
                value: -3.0
            }
        );
        assert_eq!(
            err(r#"JSON {"named_metrics": {"q": -1e-300}}"#),
            Negative {
                field: s("named_metrics.q"),
                value: -1e-300
            }
        );
    }

    #[test]
    fn rejects_invalid_json() {
        // (header, where the fault is: the first occurrence of this text, or "" for the end)
        for (header, at, expected) in [
            ("JSON not-a-valid-json-string", "not", "'{'"),
            ("JSON [1]", "[", "'{'"),
            (r#"JSON {"cpu_utilization": "0.7"}"#, "\"0.7", "a number"),
            (r#"JSON {"eps": null}"#, "null", "a number"),
            (r#"JSON {"eps": true}"#, "true", "a number"),
            (r#"JSON {"eps": [1]}"#, "[", "a number"),
            (r#"JSON {"eps": {"a": 1}}"#, "{\"a", "a number"),
            (r#"JSON {"eps": NaN}"#, "NaN", "a number"),
            (r#"JSON {"eps": .5}"#, ".5", "a number"),
            (r#"JSON {"eps": +5}"#, "+", "a number"),
            (r#"JSON {"eps": 01}"#, "1}", "',' or '}'"),
            (r#"JSON {"eps": 5.}"#, "}", "a digit after '.'"),
            (r#"JSON {"eps": 5e}"#, "}", "a digit in the exponent"),
            (r#"JSON {"named_metrics": 5}"#, "5", "'{'"),
            (r#"JSON {"eps": 1,}"#, "}", "a string key"),
            (r#"JSON {,}"#, ",", "a string key"),
            (r#"JSON {eps: 1}"#, "eps", "a string key"),
            (r#"JSON {'eps': 1}"#, "'", "a string key"),
            (r#"JSON {"eps" 1}"#, "1", "':'"),
            (
                r#"JSON {"eps": 1 "mem_utilization": 1}"#,
                "\"mem",
                "',' or '}'",
            ),
            (r#"JSON {"eps": 1"#, "", "',' or '}'"),
            (
                r#"JSON {"eps": 1} x"#,
                "x",
                "the end of the header after the object",
            ),
            (
                r#"JSON {"eps": 1}{}"#,
                "{}",
                "the end of the header after the object",
            ),
            (
                r#"JSON {"eps"#,
                "",
                "a closing '\"' before any control character",
            ),
            (
                "JSON {\"e\tps\": 1}",
                "\t",
                "a closing '\"' before any control character",
            ),
            (
                r#"JSON {"e\x": 1}"#,
                "x",
                "one of \" \\ / b f n r t u after '\\'",
            ),
            (
                r#"JSON {"\ud800": 1}"#,
                "\": 1",
                "a low surrogate after a high one",
            ),
            (
                r#"JSON {"\ud800\u0041": 1}"#,
                "\": 1",
                "a low surrogate after a high one",
            ),
            (r#"JSON {"\udc00": 1}"#, "\": 1", "a valid \\u escape"),
            (r#"JSON {"\u12G4": 1}"#, "G", "four hex digits after \\u"),
        ] {
            let offset = if at.is_empty() {
                header.len()
            } else {
                header.find(at).unwrap()
            };
            assert_eq!(err(header), InvalidJson { offset, expected }, "{header:?}");
        }
        // A bare JSON word has nothing after it: the fault is at the end of the word.
        assert_eq!(
            err("JSON "),
            InvalidJson {
                offset: 4,
                expected: "'{'"
            }
        );
        // Offsets count from the start of the header as received, leading whitespace included.
        assert_eq!(
            err("  JSON  {\"eps\": x}"),
            InvalidJson {
                offset: 16,
                expected: "a number"
            }
        );
    }

    #[test]
    fn errors_say_what_was_expected_and_found() {
        let message = err("TEXT cpu_utilization=abc").to_string();
        assert_eq!(message, "cpu_utilization: expected a number, found \"abc\"");
        let message = err("TEXT eps=-1").to_string();
        assert_eq!(message, "eps: expected a value >= 0, found -1");
        let message = err("XML <a/>").to_string();
        assert_eq!(
            message,
            "unknown load report format \"XML\", expected TEXT, JSON or BIN"
        );
        // Control characters from a backend are escaped, never written raw into a log line.
        let message = err(r#"JSON {"named_metrics": {"a\u001bb": 1}}"#).to_string();
        assert!(message.contains(r#""a\u{1b}b""#), "{message}");
    }

    // ---- to_text ----

    #[test]
    fn to_text_writes_fields_then_named_metrics() {
        assert_eq!(
            to_text(&example()),
            "TEXT cpu_utilization=0.7,mem_utilization=0.9,application_utilization=0.8,\
             rps_fractional=1000,eps=2,named_metrics.foo=123,named_metrics.bar=0.2"
        );
        assert_eq!(to_text(&LoadReport::default()), "TEXT ");
        // Very large and very small figures use exponent notation rather than 300 digits.
        let report = LoadReport {
            eps: Some(1e300),
            rps_fractional: Some(1e-300),
            ..LoadReport::default()
        };
        assert_eq!(to_text(&report), "TEXT rps_fractional=1e-300,eps=1e300");
    }

    #[test]
    fn to_text_of_the_largest_report_fits_and_reads_back() {
        // The longest shortest-round-trip spelling of an f64 is 23 characters.
        let wide = 2.2250738585072014e-308;
        let report = LoadReport {
            cpu_utilization: Some(wide),
            mem_utilization: Some(wide),
            application_utilization: Some(wide),
            rps_fractional: Some(wide),
            eps: Some(wide),
            named_metrics: (0..MAX_NAMED)
                .map(|i| (format!("{i:0>width$}", width = MAX_NAME_LEN), wide))
                .collect(),
        };
        let text = to_text(&report);
        assert!(text.len() <= MAX_HEADER_LEN, "{} bytes", text.len());
        assert_eq!(parse(text.as_bytes()), Ok(report));
    }
}
