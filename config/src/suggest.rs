//! "Did you mean ...?": the nearest valid name to a misspelt one.

/// The candidate closest to `found`, if any is close enough to be a plausible typo.
///
/// Close enough means an edit distance of at most 2 and at most a third of the longer
/// name: `bnd` suggests `bind`, but `x` suggests nothing for `y` (every one-letter name is
/// one edit from every other). Case differences alone always match.
pub fn nearest<'a, I>(found: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let found_lower = found.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = edit_distance(&found_lower, &candidate.to_lowercase());
        let longest = found.chars().count().max(candidate.chars().count());
        if distance > 2 || distance * 3 > longest {
            continue;
        }
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// two neighbouring characters each cost one (`pbort` -> `port` is one edit).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rolling rows: the swap rule looks two rows back.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// `` `a`, `b` or `c` ``: a human list of names.
pub fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("bnd", "bind"), 1);
        assert_eq!(edit_distance("htp", "http"), 1);
        assert_eq!(edit_distance("pbort", "port"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("héllo", "hello"), 1);
    }

    #[test]
    fn nearest_suggests_only_plausible_typos() {
        let keys = ["name", "bind", "protocol", "routes", "upstream", "tls"];
        assert_eq!(nearest("bnd", keys), Some("bind"));
        assert_eq!(nearest("BIND", keys), Some("bind"));
        assert_eq!(nearest("upstreams", keys), Some("upstream"));
        assert_eq!(nearest("protcol", keys), Some("protocol"));
        assert_eq!(nearest("zzz", keys), None);
        assert_eq!(nearest("", keys), None);
        assert_eq!(nearest("htp", ["http", "https", "tcp"]), Some("http"));
        assert_eq!(nearest("apii", ["api", "pg"]), Some("api"));
        assert_eq!(nearest("x", ["y"]), None);
    }

    #[test]
    fn lists() {
        assert_eq!(one_of(&[]), "");
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b"]), "`a` or `b`");
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
