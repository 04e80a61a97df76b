//! Location matching, following nginx's `ngx_http_core_find_location`.
//!
//! At each level (the server's top-level locations, then the children of
//! the chosen location):
//! 1. an `= uri` location equal to the URI wins at once;
//! 2. otherwise the longest matching prefix (`/p` or `^~ /p`) is remembered
//!    and its children are searched the same way; an exact or regex match
//!    found there ends the search;
//! 3. unless that prefix is `^~`, this level's regex locations are tried in
//!    config order; the first that matches wins (its children are searched
//!    too, and a match there refines it);
//! 4. else the remembered prefix (or the deepest prefix found inside it).
//!
//! As in nginx, `^~` only stops the regexes of its own level: a `^~`
//! nested in a plain prefix location still lets the parent level's regexes
//! run (nginx's recursion returns "declined" in that case).

use crate::conf::types::{LocKind, Location, Server};

/// The result of matching a URI against the locations of a server.
#[derive(Debug)]
pub struct Matched<'a> {
    pub loc: &'a Location,
    /// Captures of the last regex location that matched on the way
    /// (`[0]` = whole match, unmatched groups as ""); empty when the
    /// location was found without a regex.
    pub captures: Vec<String>,
}

/// What one level of the search produced (nginx's return codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Exact or regex match: the search is over.
    Final,
    /// A prefix match (maybe refined by nested prefixes): regexes of the
    /// enclosing levels may still override it.
    Prefix,
    /// Nothing at this level.
    None,
}

/// Find the location for `uri` (already decoded and normalized) among the
/// top-level `locs` of a server. None when nothing matches: the caller
/// then uses the server-level configuration.
pub fn find_location<'a>(locs: &'a [Location], uri: &str) -> Option<Matched<'a>> {
    let mut loc = None;
    let mut captures = Vec::new();
    find_level(locs, uri, &mut loc, &mut captures);
    loc.map(|loc| Matched { loc, captures })
}

/// One level of the search. `found` holds the best location so far and is
/// only overwritten by better matches, as nginx overwrites `r->loc_conf`.
fn find_level<'a>(
    locs: &'a [Location],
    uri: &str,
    found: &mut Option<&'a Location>,
    captures: &mut Vec<String>,
) -> Found {
    let mut longest: Option<&'a Location> = None;
    for loc in locs {
        match loc.kind {
            LocKind::Exact => {
                if loc.pattern == uri {
                    *found = Some(loc);
                    return Found::Final;
                }
            }
            LocKind::Prefix | LocKind::PrefixNoRegex => {
                // `>`: the first of two equal prefixes wins (nginx rejects
                // duplicates at config time anyway).
                if uri.starts_with(loc.pattern.as_str())
                    && longest.is_none_or(|l| loc.pattern.len() > l.pattern.len())
                {
                    longest = Some(loc);
                }
            }
            LocKind::Regex | LocKind::Named => {}
        }
    }

    let mut result = Found::None;
    let mut noregex = false;
    if let Some(prefix) = longest {
        *found = Some(prefix);
        noregex = prefix.kind == LocKind::PrefixNoRegex;
        if !prefix.children.is_empty() && find_level(&prefix.children, uri, found, captures) == Found::Final {
            return Found::Final;
        }
        // Whatever the children gave, `found` now holds the deepest prefix;
        // nginx reports it to the parent as "declined" or "again", both of
        // which let the parent try its regexes.
        result = Found::Prefix;
    }

    if !noregex {
        for loc in locs.iter().filter(|l| l.kind == LocKind::Regex) {
            let Some(re) = loc.regex.as_ref() else {
                continue;
            };
            if regex_match(re, uri, captures) {
                *found = Some(loc);
                find_level(&loc.children, uri, found, captures);
                return Found::Final;
            }
        }
    }
    result
}

/// Test `re` against `uri`; on a match replace `captures` with its groups.
/// Failed matches leave the previous captures alone, as in nginx.
fn regex_match(re: &regex::Regex, uri: &str, captures: &mut Vec<String>) -> bool {
    if re.captures_len() == 1 {
        // No groups: `find` is cheaper than building a Captures.
        let Some(m) = re.find(uri) else { return false };
        captures.clear();
        captures.push(m.as_str().to_owned());
        return true;
    }
    let Some(caps) = re.captures(uri) else {
        return false;
    };
    captures.clear();
    captures.extend(
        caps.iter()
            .map(|m| m.map_or_else(String::new, |m| m.as_str().to_owned())),
    );
    true
}

/// The named location `name` (`@fallback`; the leading `@` is optional)
/// of `server`.
pub fn find_named<'a>(server: &'a Server, name: &str) -> Option<&'a Location> {
    if let Some(loc) = server.named.get(name) {
        return Some(loc);
    }
    // The map may be keyed with or without the '@': accept either form.
    match name.strip_prefix('@') {
        Some(bare) => server.named.get(bare),
        None => server.named.get(&format!("@{name}")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::conf::types::LocConf;
    use regex::{Regex, RegexBuilder};
    use std::collections::HashMap;
    use std::time::Duration;

    /// A LocConf with nginx's defaults, for hand-built test configs.
    pub(crate) fn default_loc_conf() -> LocConf {
        LocConf::nginx_defaults("html")
    }

    /// Build a location from its nginx spelling: "= /x", "^~ /x", "/x",
    /// "~ re", "~* re", "@name".
    fn loc(spec: &str, children: Vec<Location>) -> Location {
        let (kind, pattern, regex) = if let Some(p) = spec.strip_prefix("= ") {
            (LocKind::Exact, p, None)
        } else if let Some(p) = spec.strip_prefix("^~ ") {
            (LocKind::PrefixNoRegex, p, None)
        } else if let Some(p) = spec.strip_prefix("~* ") {
            let re = RegexBuilder::new(p).case_insensitive(true).build().unwrap();
            (LocKind::Regex, p, Some(re))
        } else if let Some(p) = spec.strip_prefix("~ ") {
            (LocKind::Regex, p, Some(Regex::new(p).unwrap()))
        } else if spec.starts_with('@') {
            (LocKind::Named, spec, None)
        } else {
            (LocKind::Prefix, spec, None)
        };
        Location {
            kind,
            pattern: pattern.to_owned(),
            regex,
            internal: kind == LocKind::Named,
            rewrites: Vec::new(),
            conf: default_loc_conf(),
            children,
            origin: format!("test:{spec}"),
        }
    }

    fn leaf(spec: &str) -> Location {
        loc(spec, Vec::new())
    }

    /// The `origin` (spec) of the matched location, or "none".
    fn which(locs: &[Location], uri: &str) -> String {
        match find_location(locs, uri) {
            Some(m) => m.loc.origin.trim_start_matches("test:").to_owned(),
            None => "none".into(),
        }
    }

    /// The example from the nginx `location` documentation.
    fn docs_example() -> Vec<Location> {
        vec![
            leaf("= /"),                   // A
            leaf("/"),                     // B
            leaf("/documents/"),           // C
            leaf("^~ /images/"),           // D
            leaf("~* \\.(gif|jpg|jpeg)$"), // E
        ]
    }

    #[test]
    fn nginx_docs_example() {
        let locs = docs_example();
        assert_eq!(which(&locs, "/"), "= /");
        assert_eq!(which(&locs, "/index.html"), "/");
        assert_eq!(which(&locs, "/documents/document.html"), "/documents/");
        assert_eq!(which(&locs, "/images/1.gif"), "^~ /images/");
        assert_eq!(which(&locs, "/documents/1.jpg"), "~* \\.(gif|jpg|jpeg)$");
        // ~* is case-insensitive.
        assert_eq!(which(&locs, "/x/1.JPG"), "~* \\.(gif|jpg|jpeg)$");
    }

    #[test]
    fn prefix_matching_is_case_sensitive_and_bytewise() {
        let locs = docs_example();
        assert_eq!(which(&locs, "/Documents/a.html"), "/");
        assert_eq!(which(&locs, "/documents"), "/");
        assert_eq!(which(&locs, "/IMAGES/1.gif"), "~* \\.(gif|jpg|jpeg)$");
    }

    #[test]
    fn no_match_at_all() {
        let locs = vec![leaf("/a/"), leaf("= /b"), leaf("~ \\.php$")];
        assert_eq!(which(&locs, "/c"), "none");
        assert_eq!(which(&locs, "/b/"), "none");
        assert!(find_location(&[], "/").is_none());
    }

    #[test]
    fn exact_beats_prefix_of_same_name_only_when_equal() {
        let locs = vec![leaf("/api"), leaf("= /api"), leaf("~ ^/api")];
        assert_eq!(which(&locs, "/api"), "= /api");
        // Longer URI: the prefix, then the regex overrides it.
        assert_eq!(which(&locs, "/api/x"), "~ ^/api");
    }

    #[test]
    fn exact_beats_regex() {
        let locs = vec![leaf("~ \\.html$"), leaf("= /index.html")];
        assert_eq!(which(&locs, "/index.html"), "= /index.html");
        assert_eq!(which(&locs, "/a.html"), "~ \\.html$");
    }

    #[test]
    fn longest_prefix_wins_regardless_of_order() {
        let locs = vec![leaf("/a/b/c/"), leaf("/a/"), leaf("/a/b/")];
        assert_eq!(which(&locs, "/a/b/c/d"), "/a/b/c/");
        assert_eq!(which(&locs, "/a/b/x"), "/a/b/");
        assert_eq!(which(&locs, "/a/x"), "/a/");
    }

    #[test]
    fn first_regex_in_config_order_wins() {
        let locs = vec![leaf("/"), leaf("~ \\.php$"), leaf("~ ^/admin/.*\\.php$")];
        assert_eq!(which(&locs, "/admin/x.php"), "~ \\.php$");
    }

    #[test]
    fn regex_beats_longer_plain_prefix() {
        let locs = vec![leaf("/static/long/prefix/"), leaf("~ \\.css$")];
        assert_eq!(which(&locs, "/static/long/prefix/a.css"), "~ \\.css$");
    }

    #[test]
    fn noregex_only_if_it_is_the_longest_prefix() {
        // ^~ /a/ is shorter than /a/b/, so regexes are still tried.
        let locs = vec![leaf("^~ /a/"), leaf("/a/b/"), leaf("~ \\.png$")];
        assert_eq!(which(&locs, "/a/b/x.png"), "~ \\.png$");
        assert_eq!(which(&locs, "/a/x.png"), "^~ /a/");
    }

    #[test]
    fn named_locations_are_never_matched() {
        let locs = vec![leaf("@/"), leaf("/x")];
        assert_eq!(which(&locs, "/"), "none");
        assert_eq!(which(&locs, "@/"), "none");
    }

    #[test]
    fn captures() {
        let locs = vec![
            leaf("/"),
            leaf("~ ^/u/(\\w+)(/(\\d+))?$"),
            leaf("~ \\.txt$"),
        ];
        let m = find_location(&locs, "/u/bob").unwrap();
        assert_eq!(m.captures, vec!["/u/bob", "bob", "", ""]);
        let m = find_location(&locs, "/u/bob/42").unwrap();
        assert_eq!(m.captures, vec!["/u/bob/42", "bob", "/42", "42"]);
        // Group-less regex: just the whole match.
        let m = find_location(&locs, "/a.txt").unwrap();
        assert_eq!(m.captures, vec![".txt"]);
        // Prefix match: no captures (and no allocation).
        let m = find_location(&locs, "/other").unwrap();
        assert!(m.captures.is_empty());
        assert_eq!(m.captures.capacity(), 0);
    }

    #[test]
    fn nested_prefix_refines_parent() {
        let locs = vec![
            leaf("/"),
            loc("/a/", vec![leaf("/a/b/"), leaf("= /a/exact")]),
        ];
        assert_eq!(which(&locs, "/a/b/c"), "/a/b/");
        assert_eq!(which(&locs, "/a/c"), "/a/");
        assert_eq!(which(&locs, "/a/exact"), "= /a/exact");
        assert_eq!(which(&locs, "/b"), "/");
    }

    #[test]
    fn nested_exact_ends_search_before_outer_regex() {
        let locs = vec![loc("/a/", vec![leaf("= /a/x.php")]), leaf("~ \\.php$")];
        assert_eq!(which(&locs, "/a/x.php"), "= /a/x.php");
        assert_eq!(which(&locs, "/a/y.php"), "~ \\.php$");
    }

    #[test]
    fn nested_regex_wins_over_outer_regex() {
        let locs = vec![
            loc("/a/", vec![leaf("~ \\.php$")]),
            leaf("~ \\.(php|html)$"),
        ];
        let m = find_location(&locs, "/a/x.php").unwrap();
        assert_eq!(m.loc.origin, "test:~ \\.php$");
        assert_eq!(m.captures, vec![".php"]);
        assert_eq!(which(&locs, "/a/x.html"), "~ \\.(php|html)$");
        assert_eq!(which(&locs, "/b/x.php"), "~ \\.(php|html)$");
    }

    #[test]
    fn nested_prefix_does_not_stop_outer_regex() {
        let locs = vec![loc("/a/", vec![leaf("/a/b/")]), leaf("~ \\.gif$")];
        assert_eq!(which(&locs, "/a/b/x.gif"), "~ \\.gif$");
    }

    #[test]
    fn noregex_parent_blocks_its_level_but_nested_regex_still_runs() {
        let locs = vec![
            loc("^~ /img/", vec![leaf("~ \\.svg$")]),
            leaf("~ \\.(svg|png)$"),
        ];
        assert_eq!(which(&locs, "/img/a.svg"), "~ \\.svg$");
        assert_eq!(which(&locs, "/img/a.png"), "^~ /img/");
    }

    #[test]
    fn nested_noregex_only_blocks_its_own_level() {
        // nginx: the ^~ inside /a/ stops regexes nested in /a/, but the
        // top-level regexes are still tried because /a/ itself is plain.
        let locs = vec![
            loc("/a/", vec![leaf("^~ /a/b/"), leaf("~ \\.png$")]),
            leaf("~ \\.(png|jpg)$"),
        ];
        assert_eq!(which(&locs, "/a/b/x.png"), "~ \\.(png|jpg)$");
        assert_eq!(which(&locs, "/a/b/x.txt"), "^~ /a/b/");
        assert_eq!(which(&locs, "/a/c/x.png"), "~ \\.png$");
    }

    #[test]
    fn regex_location_children() {
        let locs = vec![
            leaf("/"),
            loc("~ ^/(\\w+)/", vec![leaf("~ \\.(js)$"), leaf("= /x/exact")]),
        ];
        // Child regex refines the parent and its captures replace them.
        let m = find_location(&locs, "/app/main.js").unwrap();
        assert_eq!(m.loc.origin, "test:~ \\.(js)$");
        assert_eq!(m.captures, vec![".js", "js"]);
        // Children don't match: the parent regex, with its own captures.
        let m = find_location(&locs, "/app/main.css").unwrap();
        assert_eq!(m.loc.origin, "test:~ ^/(\\w+)/");
        assert_eq!(m.captures, vec!["/app/", "app"]);
        assert_eq!(which(&locs, "/x/exact"), "= /x/exact");
    }

    #[test]
    fn prefix_inside_regex_keeps_regex_captures() {
        let locs = vec![loc("~ ^/(d)", vec![leaf("/d/sub/")])];
        let m = find_location(&locs, "/d/sub/x").unwrap();
        assert_eq!(m.loc.origin, "test:/d/sub/");
        assert_eq!(m.captures, vec!["/d", "d"]);
    }

    #[test]
    fn deep_nesting() {
        let locs = vec![loc(
            "/a/",
            vec![loc("/a/b/", vec![loc("/a/b/c/", vec![leaf("~ z$")])])],
        )];
        assert_eq!(which(&locs, "/a/b/c/z"), "~ z$");
        assert_eq!(which(&locs, "/a/b/c/y"), "/a/b/c/");
        assert_eq!(which(&locs, "/a/b/y"), "/a/b/");
    }

    #[test]
    fn find_named_accepts_either_spelling() {
        let mut named = HashMap::new();
        named.insert("@fallback".to_owned(), leaf("@fallback"));
        let server = Server {
            listen: Vec::new(),
            names: Vec::new(),
            has_regex_name: false,
            primary_name: String::new(),
            rewrites: Vec::new(),
            locations: Vec::new(),
            named,
            conf: default_loc_conf(),
            client_header_timeout: Duration::from_secs(60),
            client_header_buffer_size: 1024,
            large_client_header_buffers: (4, 8192),
            underscores_in_headers: false,
            ignore_invalid_headers: true,
            maps: Vec::new().into(),
        };
        assert_eq!(
            find_named(&server, "@fallback").unwrap().pattern,
            "@fallback"
        );
        assert_eq!(
            find_named(&server, "fallback").unwrap().pattern,
            "@fallback"
        );
        assert!(find_named(&server, "@other").is_none());
    }
}
