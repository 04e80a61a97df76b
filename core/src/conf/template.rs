//! Complex values: strings with `$var`, `${var}` and regex captures `$1`..`$9`,
//! compiled once at config time and rendered per request.
//! STUB: to be written (helper C).

/// Where a template finds variable values (the request, in the server).
pub trait Vars {
    /// The value of `$name` (name without `$`, lowercase as written), or
    /// None when the variable is unknown or not set.
    fn var(&mut self, name: &str) -> Option<String>;
}

#[derive(Debug, Clone)]
pub struct Template {
    // private parts
}

impl Template {
    /// Compile `s`; errors say what is wrong (e.g. `invalid variable name`).
    pub fn parse(s: &str) -> Result<Template, String> {
        let _ = s;
        unimplemented!()
    }
    /// A template without variables.
    pub fn literal(s: &str) -> Template {
        let _ = s;
        unimplemented!()
    }
    /// The text, when the template has no variables (fast path).
    pub fn as_literal(&self) -> Option<&str> {
        unimplemented!()
    }
    /// Render with variables and regex captures (caps[0] = whole match;
    /// a missing capture renders as "").
    pub fn render(&self, vars: &mut dyn Vars, caps: &[&str]) -> String {
        let _ = (vars, caps);
        unimplemented!()
    }
}
