//! Variables defined by a table over a source value: `map $source $result
//! { ... }` (ngx_http_map_module) and `split_clients $source $result { ...
//! }` (ngx_http_split_clients_module): the tables, read from their blocks,
//! and the lookup of a source value in them. Requests evaluate them when
//! `$result` is read (request/vars.rs).

use std::collections::HashMap;

use regex::Regex;

use super::build::compile_regex;
use super::parse::{ConfError, Directive};
use super::template::Template;

/// One `map` block.
#[derive(Debug)]
pub struct MapConf {
    /// The variable it defines (without `$`, lowercased).
    pub var: String,
    /// What is looked up (a complex value: `$uri`, `$host$uri`...).
    pub source: Template,
    /// `volatile`: evaluated at each read, not once per request.
    pub volatile: bool,
    hostnames: bool,
    /// Exact keys, lowercased (nginx looks up the lowercased source).
    exact: HashMap<String, Template>,
    /// `hostnames` `*.example.com` / `.example.com`: the suffix with its
    /// leading dot, and whether the bare name (example.com) matches too.
    head: Vec<(String, bool, Template)>,
    /// `hostnames` `www.example.*`: the prefix with its trailing dot.
    tail: Vec<(String, Template)>,
    /// `~re` / `~*re` keys in config order.
    regexes: Vec<(Regex, Template)>,
    default: Template,
    /// `split_clients`: the parts, each with the end of its MurmurHash2
    /// range (0 for `*`); when set, the keys above are empty.
    split: Vec<(u32, Template)>,
}

/// A match: the value to render, with the regex captures (`$1`, and by
/// name) when a regex key matched.
pub struct MapHit<'m> {
    pub value: &'m Template,
    pub captures: Vec<String>,
    pub named: Vec<(&'m str, String)>,
}

impl MapConf {
    /// The value for source value `s` (the default when no key matches).
    pub fn find(&self, s: &str) -> MapHit<'_> {
        let hit = |value| MapHit { value, captures: Vec::new(), named: Vec::new() };
        if !self.split.is_empty() {
            let hash = murmur2::murmur2(s.as_bytes(), 0);
            let part = self.split.iter().find(|(end, _)| hash < *end || *end == 0);
            return hit(part.map_or(&self.default, |(_, v)| v));
        }
        let mut s = s;
        if self.hostnames {
            s = s.strip_suffix('.').unwrap_or(s);
        }
        let low = s.to_ascii_lowercase();
        if let Some(v) = self.exact.get(&low) {
            return hit(v);
        }
        if self.hostnames {
            let head = self
                .head
                .iter()
                .filter(|(suffix, bare, _)| low.ends_with(suffix.as_str()) && low.len() > suffix.len() || *bare && low == suffix[1..])
                .max_by_key(|(suffix, _, _)| suffix.len());
            if let Some((_, _, v)) = head {
                return hit(v);
            }
            let tail = self.tail.iter().filter(|(p, _)| low.starts_with(p.as_str()) && low.len() > p.len()).max_by_key(|(p, _)| p.len());
            if let Some((_, v)) = tail {
                return hit(v);
            }
        }
        for (re, v) in &self.regexes {
            if let Some(c) = re.captures(s) {
                let captures = c.iter().map(|m| m.map_or("", |m| m.as_str()).to_string()).collect();
                let named = re
                    .capture_names()
                    .flatten()
                    .map(|n| (n, c.name(n).map_or("", |m| m.as_str()).to_string()))
                    .collect();
                return MapHit { value: v, captures, named };
            }
        }
        hit(&self.default)
    }
}

/// The table of a `map` or `split_clients` directive (two arguments,
/// checked by its spec) before its block is read.
fn table(d: &Directive) -> Result<MapConf, ConfError> {
    let source = super::build::tmpl(d, &d.args[0])?;
    let var = d.args[1].strip_prefix('$').filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    let Some(var) = var else {
        return Err(ConfError::at(format!("invalid variable name \"{}\"", d.args[1]), d));
    };
    Ok(MapConf {
        var: var.to_ascii_lowercase(),
        source,
        volatile: false,
        hostnames: false,
        exact: HashMap::new(),
        head: Vec::new(),
        tail: Vec::new(),
        regexes: Vec::new(),
        default: Template::literal(""),
        split: Vec::new(),
    })
}

/// Reads a `split_clients` directive: `N.NN% value;` parts and `* value;`,
/// each part's range ending where nginx's does (the sum of the parts'
/// shares of 2^32-1, each rounded down). Values are taken as written
/// (no variables), as in nginx.
pub(super) fn split_clients_block(d: &Directive) -> Result<MapConf, ConfError> {
    let mut m = table(d)?;
    let (mut sum, mut end, mut over) = (0u64, 0u64, false);
    for e in d.block.as_deref().unwrap_or(&[]) {
        if e.block.is_some() {
            return Err(ConfError::at("unexpected \"{\"", e));
        }
        let value = Template::literal(e.args.first().map_or("", String::as_str));
        let share = if e.name == "*" { 0 } else { percent(&e.name).ok_or_else(|| ConfError::at(format!("invalid percent value \"{}\"", e.name), e))? };
        sum = if share == 0 { 10000 } else { sum + share };
        over |= sum > 10000;
        if share > 0 {
            end += share * u64::from(u32::MAX) / 10000;
        }
        m.split.push((if share == 0 { 0 } else { end.min(u64::from(u32::MAX)) as u32 }, value));
    }
    if over {
        // Found once the block is read: at its closing brace, as nginx.
        return Err(ConfError::new("percent total is greater than 100%", Some(format!("{}:{}", d.file, d.end_line))));
    }
    if m.split.is_empty() {
        // No parts: the value is always empty.
        m.split.push((0, Template::literal("")));
    }
    Ok(m)
}

/// `12.5%` as hundredths of a percent (1250), as nginx's `ngx_atofp(.., 2)`:
/// digits with at most two decimals, not zero.
fn percent(s: &str) -> Option<u64> {
    let n = s.strip_suffix('%')?;
    let (int, frac) = n.split_once('.').unwrap_or((n, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() && frac.is_empty() || frac.len() > 2 || !digits(int) || !digits(frac) || int.len() > 5 {
        return None;
    }
    let v = format!("{int}{frac:0<2}").parse::<u64>().ok()?;
    (v > 0).then_some(v)
}

/// Reads a `map` directive.
pub(super) fn map_block(d: &Directive) -> Result<MapConf, ConfError> {
    let mut m = table(d)?;
    let mut has_default = false;
    for e in d.block.as_deref().unwrap_or(&[]) {
        if e.block.is_some() {
            return Err(ConfError::at("unexpected \"{\"", e));
        }
        match (e.name.as_str(), e.args.len()) {
            ("hostnames", 0) => {
                m.hostnames = true;
                continue;
            }
            ("volatile", 0) => {
                m.volatile = true;
                continue;
            }
            (_, 1) => {}
            _ => return Err(ConfError::at("invalid number of the map parameters", e)),
        }
        let value = super::build::tmpl(e, &e.args[0])?;
        let key = e.name.as_str();
        // nginx names the key lowercased, as its hash holds it.
        let conflict = || ConfError::at(format!("conflicting parameter \"{}\"", key.to_ascii_lowercase()), e);
        if key == "default" {
            if has_default {
                return Err(ConfError::at("duplicate default map parameter", e));
            }
            has_default = true;
            m.default = value;
            continue;
        }
        if let Some(re) = key.strip_prefix('~') {
            let (re, caseless) = re.strip_prefix('*').map_or((re, false), |r| (r, true));
            m.regexes.push((compile_regex(e, re, caseless)?, value));
            continue;
        }
        let key = key.strip_prefix('\\').unwrap_or(key).to_ascii_lowercase();
        if m.hostnames && (key.starts_with('.') || key.starts_with("*.") || key.ends_with(".*")) {
            let bad = || ConfError::at(format!("invalid hostname or wildcard \"{}\"", e.name), e);
            if let Some(suffix) = key.strip_prefix('*').or_else(|| key.starts_with('.').then_some(key.as_str())) {
                let bare = !key.starts_with('*');
                if suffix.len() < 2 || suffix[1..].contains('*') {
                    return Err(bad());
                }
                if m.head.iter().any(|(s, _, _)| s == suffix) || bare && m.exact.contains_key(&suffix[1..]) {
                    return Err(conflict());
                }
                m.head.push((suffix.to_string(), bare, value));
            } else {
                let prefix = &key[..key.len() - 1];
                if prefix.len() < 2 || prefix.contains('*') {
                    return Err(bad());
                }
                if m.tail.iter().any(|(p, _)| p == prefix) {
                    return Err(conflict());
                }
                m.tail.push((prefix.to_string(), value));
            }
            continue;
        }
        if m.hostnames && key.contains('*') {
            return Err(ConfError::at(format!("invalid hostname or wildcard \"{}\"", e.name), e));
        }
        if m.exact.contains_key(&key) || m.hostnames && m.head.iter().any(|(s, bare, _)| *bare && s[1..] == key) {
            return Err(conflict());
        }
        m.exact.insert(key, value);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn percents_in_hundredths() {
        assert_eq!(percent("12.5%"), Some(1250));
        assert_eq!(percent("100%"), Some(10000));
        assert_eq!(percent("0.01%"), Some(1));
        assert_eq!(percent(".5%"), Some(50));
        for bad in ["%", "5", "0%", "0.00%", "1.234%", "x%", "-1%", "1e2%", "999999%"] {
            assert_eq!(percent(bad), None, "{bad}");
        }
    }
}
