//! The names a section defines (listeners, upstreams, segments, tunnels): each name once,
//! and a reference to a name that is not there answered with what was probably meant.

use std::collections::HashMap;

use super::Checks;
use crate::issue::quoted;
use crate::suggest::nearest;

/// The first definition of each name of one kind, in file order, with what a reference to it
/// is checked against. A name whose item has errors of its own is still listed, so that a
/// reference to it gets one error (the item's), not two.
pub(super) struct Names<T = ()> {
    /// The kind as messages say it (`upstream`); its section is the plural (`upstreams`).
    kind: &'static str,
    /// Said after "no upstreams are defined", to tell where to define them.
    none_hint: &'static str,
    /// In file order, for suggestions.
    first: Vec<Defined<T>>,
    /// Each name's place in `first`.
    places: HashMap<String, usize>,
}

/// A name's first definition.
pub(super) struct Defined<T> {
    name: String,
    /// Index of the item in its section, and so in the built config.
    pub index: usize,
    /// What a reference is checked against.
    pub item: T,
}

impl<T> Names<T> {
    /// No names yet, of the kind called `kind` in messages.
    pub fn new(kind: &'static str, none_hint: &'static str) -> Self {
        Names {
            kind,
            none_hint,
            first: Vec::new(),
            places: HashMap::new(),
        }
    }

    /// The first definition of `name`.
    pub fn find(&self, name: &str) -> Option<&Defined<T>> {
        self.places.get(name).map(|&place| &self.first[place])
    }

    /// "no upstream named ..." with a hint of what was meant.
    fn unknown(&self, name: &str) -> String {
        let kind = self.kind;
        let names = self.first.iter().map(|defined| defined.name.as_str());
        let hint = match nearest(name, names.clone()) {
            Some(near) => format!("did you mean {}?", quoted(near)),
            None if self.first.is_empty() => format!("no {kind}s are defined{}", self.none_hint),
            None => {
                let listed: Vec<String> = names.take(8).map(quoted).collect();
                let more = if self.first.len() > 8 { ", ..." } else { "" };
                format!("defined {kind}s are {}{more}", listed.join(", "))
            }
        };
        format!("no {kind} named {}; {hint}", quoted(name))
    }
}

impl Checks<'_> {
    /// Records `name` as defined by item `index` of its section, with `item`, unless an
    /// earlier item has it: then reports the duplicate. The recorded item, to complete.
    pub(super) fn define<'n, T>(
        &mut self,
        names: &'n mut Names<T>,
        name: &str,
        index: usize,
        item: T,
    ) -> Option<&'n mut T> {
        let kind = names.kind;
        if let Some(first) = names.find(name) {
            self.report(
                &format!("{kind}s[{index}].name"),
                format!(
                    "duplicate {kind} name {}; {kind}s[{}] has it too",
                    quoted(name),
                    first.index
                ),
            );
            return None;
        }
        names.places.insert(name.to_owned(), names.first.len());
        names.first.push(Defined {
            name: name.to_owned(),
            index,
            item,
        });
        names.first.last_mut().map(|defined| &mut defined.item)
    }

    /// What `name`, written at `path`, refers to; an error with a hint if nothing.
    pub(super) fn resolve<'n, T>(
        &mut self,
        names: &'n Names<T>,
        name: &str,
        path: &str,
    ) -> Option<&'n Defined<T>> {
        let found = names.find(name);
        if found.is_none() {
            self.report(path, names.unknown(name));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn duplicates_are_refused_and_unknown_names_get_a_hint() {
        let mut checks = Checks {
            issues: Vec::new(),
            base_dir: Path::new(""),
        };
        let mut names = Names::new("tunnel", "; add them under a top-level `tunnels:`");
        assert_eq!(
            names.unknown("east"),
            "no tunnel named \"east\"; no tunnels are defined; add them under a top-level `tunnels:`"
        );
        for (i, name) in ["east", "west", "n1", "n2", "n3", "n4", "n5", "n6", "n7"]
            .into_iter()
            .enumerate()
        {
            assert!(checks.define(&mut names, name, i, i * 10).is_some());
        }
        assert!(checks.define(&mut names, "west", 9, 0).is_none());
        let issue = &checks.issues[0];
        assert_eq!(issue.path, "tunnels[9].name");
        assert_eq!(
            issue.message,
            "duplicate tunnel name \"west\"; tunnels[1] has it too"
        );
        let west = names.find("west").unwrap();
        assert_eq!((west.index, west.item), (1, 10));
        assert_eq!(
            names.unknown("wset"),
            "no tunnel named \"wset\"; did you mean \"west\"?"
        );
        assert_eq!(
            names.unknown("somewhere else"),
            "no tunnel named \"somewhere else\"; defined tunnels are \"east\", \"west\", \"n1\", \
             \"n2\", \"n3\", \"n4\", \"n5\", \"n6\", ..."
        );
        assert!(checks.resolve(&names, "nowhere", "x.via").is_none());
        assert_eq!(checks.issues[1].path, "x.via");
        assert_eq!(checks.resolve(&names, "n7", "x.via").unwrap().index, 8);
        assert_eq!(checks.issues.len(), 2);
    }
}
