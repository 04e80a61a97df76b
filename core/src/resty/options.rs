//! `halo resty`'s options, read as resty-cli reads them: options up to the
//! first other word (the Lua file), `--` ending them; `-X value`, `-Xvalue`
//! and `--long=value` forms; the same messages and exit codes for bad ones.

/// The parsed command line.
#[derive(Debug, Default)]
pub struct Options {
    /// Lua source to run before the file: `-e` code and `-l` requires in
    /// order, `-j`'s switch first; joined with "; " as resty-cli does.
    pub src: Vec<String>,
    /// `-I`: directories searched for Lua modules (`?.lua`, `?.so`).
    pub inc_dirs: Vec<String>,
    /// `-c`: worker_connections (64 when not given).
    pub conns: Option<String>,
    pub ns: Vec<String>,
    /// `--shdict 'NAME SIZE'`.
    pub shdicts: Vec<String>,
    /// `--nginx`: the server binary to run instead of this halo.
    pub nginx: Option<String>,
    pub http_confs: Vec<String>,
    pub http_includes: Vec<String>,
    /// `--main-conf`: directives for the main context (newer resty-cli's).
    pub main_confs: Vec<String>,
    pub main_includes: Vec<String>,
    pub errlog_level: String,
    pub resolve_ipv6: bool,
    pub gdb: bool,
    pub valgrind: bool,
    pub valgrind_opts: Option<String>,
    pub rr: bool,
    /// `-V`/`-v`.
    pub version: bool,
    /// The Lua file and its arguments (`arg[1]`...).
    pub rest: Vec<String>,
}

/// Why the command stops before running anything.
#[derive(Debug, PartialEq)]
pub enum Stop {
    /// `-h`: the usage on stdout, exit 0.
    Help,
    /// A message for stderr, the usage after it or not, and the exit code.
    Fail { msg: String, usage: bool, code: i32 },
}

/// resty-cli dies (Perl's `die`, exit 255) on a bad option value.
pub const DIE: i32 = 255;

/// A message and an exit code, no usage.
pub fn fail(msg: impl Into<String>, code: i32) -> Stop {
    Stop::Fail { msg: msg.into(), usage: false, code }
}

fn die(msg: impl Into<String>) -> Stop {
    fail(msg, DIE)
}

fn bad_usage(msg: impl Into<String>) -> Stop {
    Stop::Fail { msg: msg.into(), usage: true, code: 1 }
}

/// Parse the words after `resty`.
pub fn parse(words: &[String]) -> Result<Options, Stop> {
    let mut o = Options { errlog_level: "warn".into(), ..Options::default() };
    let mut jit: Option<String> = None;
    let mut it = words.iter().cloned();
    while let Some(arg) = it.next() {
        if !arg.starts_with('-') {
            o.rest.push(arg);
            break;
        }
        if arg == "--" {
            break;
        }
        let mut value = |name: &str| it.next().ok_or_else(|| die(format!("option {name} takes an argument but found none.\n")));
        // Short options take their value glued on too: `-Idir`, `-I=dir`.
        if let Some((flag, glued)) = short_option(&arg) {
            let v = match glued {
                Some(v) => v,
                None => value(flag)?,
            };
            match flag {
                "-I" => o.inc_dirs.push(v),
                "-e" => o.src.push(v),
                "-l" => o.src.push(format!("require({})", super::conf::lua_string(&v))),
                "-c" => o.conns = Some(v),
                _ => {
                    if jit.is_some() {
                        return Err(die("duplicate -j option found.\n"));
                    }
                    jit = Some(v);
                }
            }
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut take = |name: &str| match &inline {
            Some(v) => Ok(v.clone()),
            None => value(name),
        };
        match name.as_str() {
            "--ns" => o.ns.push(take("--ns")?),
            "--shdict" => o.shdicts.push(take("--shdict")?),
            "--nginx" => o.nginx = Some(take("--nginx")?),
            "--http-conf" => o.http_confs.push(take("--http-conf")?),
            "--http-include" => o.http_includes.push(take("--http-include")?),
            "--main-conf" => o.main_confs.push(take("--main-conf")?),
            "--main-include" => o.main_includes.push(take("--main-include")?),
            "--errlog-level" => o.errlog_level = take("--errlog-level")?,
            "--valgrind-opts" => {
                if o.valgrind_opts.is_some() {
                    return Err(die("ERROR: duplicate --valgrind-opts options\n"));
                }
                o.valgrind_opts = Some(take("--valgrind-opts")?);
            }
            "--resolve-ipv6" if inline.is_none() => o.resolve_ipv6 = true,
            "--gdb" if inline.is_none() => o.gdb = true,
            "--valgrind" if inline.is_none() => o.valgrind = true,
            "--rr" if inline.is_none() => o.rr = true,
            "--help" | "-h" => return Err(Stop::Help),
            "-v" | "-V" => o.version = true,
            _ => return Err(bad_usage(format!("ERROR: unknown option {arg}\n\n"))),
        }
    }
    o.rest.extend(it);
    check(&o)?;
    if let Some(j) = jit {
        let on = match j.as_str() {
            "v" => r#"require "jit.v".on()"#,
            "dump" => r#"require "jit.dump".on()"#,
            "off" => r#"require "jit".off()"#,
            _ => return Err(bad_usage(format!("ERROR: unknown -j option value: {j}.\n"))),
        };
        o.src.insert(0, on.to_string());
    }
    Ok(o)
}

/// `-I`, `-e`, `-l`, `-c`, `-j`, with the value glued on (`-Ifoo`,
/// `-I=foo`) or not (None: the next word).
fn short_option(arg: &str) -> Option<(&'static str, Option<String>)> {
    let flag = ["-I", "-e", "-l", "-c", "-j"].into_iter().find(|f| arg.starts_with(f))?;
    let rest = &arg[2..];
    Some((flag, (!rest.is_empty()).then(|| rest.strip_prefix('=').unwrap_or(rest).to_string())))
}

/// The values resty-cli checks once all options are read.
fn check(o: &Options) -> Result<(), Stop> {
    if let Some(c) = &o.conns {
        if c.is_empty() || !c.bytes().all(|b| b.is_ascii_digit()) {
            return Err(die(format!("option -c value must be a number but found '{c}'.\n")));
        }
    }
    if o.errlog_level.is_empty() || !o.errlog_level.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(die(format!("bad --errlog-level option value: {}\n", o.errlog_level)));
    }
    for v in &o.ns {
        if !is_nameserver(v) {
            return Err(die(format!("ERROR: Invalid --ns option value: {v}\n  (expecting an IP address)\n")));
        }
    }
    for v in &o.shdicts {
        if !is_shdict(v) {
            return Err(die(format!("ERROR: invalid --shdict option value: {v}\n  (expecting NAME SIZE)\n")));
        }
    }
    Ok(())
}

/// A dotted quad of 1-3 digit groups, or `[hex and colons]`, as resty-cli's
/// pattern has it (the resolver directive checks the address itself).
fn is_nameserver(v: &str) -> bool {
    if let Some(inner) = v.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 4 && parts.iter().all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `NAME SIZE`: a name of `[_a-z]`, blanks, digits, an optional k/m.
fn is_shdict(v: &str) -> bool {
    let Some((name, size)) = v.split_once(|c: char| c.is_ascii_whitespace()) else {
        return false;
    };
    let size = size.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let digits = size.strip_suffix(['k', 'K', 'm', 'M']).unwrap_or(size);
    !name.is_empty()
        && name.bytes().all(|b| b == b'_' || b.is_ascii_lowercase())
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(words: &[&str]) -> Result<Options, Stop> {
        parse(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_stop_at_the_file_and_at_double_dash() {
        let o = p(&["-e", "a()", "-Ilib", "-I=lib2", "f.lua", "-e", "x"]).unwrap();
        assert_eq!(o.src, ["a()"]);
        assert_eq!(o.inc_dirs, ["lib", "lib2"]);
        assert_eq!(o.rest, ["f.lua", "-e", "x"]);
        assert_eq!(p(&["--", "-f.lua", "--help"]).unwrap().rest, ["-f.lua", "--help"]);
        assert_eq!(p(&["f.lua", "--", "--help"]).unwrap().rest, ["f.lua", "--", "--help"]);
    }

    #[test]
    fn long_options_with_and_without_equals() {
        let o = p(&["--shdict=dogs 1m", "--shdict", "cats_x   20000", "--ns", "127.0.0.1", "--ns=[::1]", "--http-conf", "a b;"]).unwrap();
        assert_eq!(o.shdicts, ["dogs 1m", "cats_x   20000"]);
        assert_eq!(o.ns, ["127.0.0.1", "[::1]"]);
        assert_eq!(o.http_confs, ["a b;"]);
    }

    #[test]
    fn l_and_j_become_lua() {
        let o = p(&["-e", "print(1)", "-l", "a.b", "-j", "off"]).unwrap();
        assert_eq!(o.src, [r#"require "jit".off()"#, "print(1)", "require([=[a.b]=])"]);
    }

    #[test]
    fn bad_values_die_as_resty_cli_does() {
        let fail = |words: &[&str]| match p(words) {
            Err(Stop::Fail { msg, usage, code }) => (msg, usage, code),
            other => panic!("{other:?}"),
        };
        assert_eq!(fail(&["--shdict=dogs"]), ("ERROR: invalid --shdict option value: dogs\n  (expecting NAME SIZE)\n".into(), false, 255));
        assert_eq!(fail(&["--ns", "invalid"]).0, "ERROR: Invalid --ns option value: invalid\n  (expecting an IP address)\n");
        assert_eq!(fail(&["-c", "x1"]).0, "option -c value must be a number but found 'x1'.\n");
        assert_eq!(fail(&["-e"]).0, "option -e takes an argument but found none.\n");
        assert_eq!(fail(&["--bogus"]), ("ERROR: unknown option --bogus\n\n".into(), true, 1));
        assert_eq!(fail(&["-j", "x"]), ("ERROR: unknown -j option value: x.\n".into(), true, 1));
        assert_eq!(p(&["-e", "1", "-h"]).unwrap_err(), Stop::Help);
    }
}
