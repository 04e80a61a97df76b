//! The names of the functions ffi-headers/*.h declare: used by build.rs (to
//! keep them in the binary) and by tests/ffi_exports.rs (to check they are
//! exported), so both read the headers the same way.

/// Names of the `halo_ffi_*` functions declared in a header: identifiers with
/// that prefix followed by `(`, outside comments.
pub fn declared_functions(text: &str) -> Vec<String> {
    let code = strip_comments(text);
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("halo_ffi_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let preceded_by_ident = rest[..i].chars().last().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !preceded_by_ident && tail[end..].trim_start().starts_with('(') {
            out.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    out
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let block = rest.find("/*");
        let line = rest.find("//");
        match (block, line) {
            (Some(b), l) if l.is_none_or(|l| b < l) => {
                out.push_str(&rest[..b]);
                rest = rest[b + 2..].find("*/").map_or("", |e| &rest[b + 2 + e + 2..]);
                out.push(' ');
            }
            (_, Some(l)) => {
                out.push_str(&rest[..l]);
                rest = rest[l..].find('\n').map_or("", |e| &rest[l + e..]);
            }
            _ => {
                out.push_str(rest);
                return out;
            }
        }
    }
}
