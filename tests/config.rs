//! The command line and config parsing: `-t`, `-T`, `-q`, error messages with file:line, `-g`,
//! `-v`, `-V`, `-h`.
//! nginx's messages are the oracle (with the program name in front).

mod common;
use common::*;
use std::time::Duration;

/// A valid config with one server on a free port (never bound by `-t`).
fn valid_conf() -> String {
    server_conf("        location / { return 200 \"hello\\n\"; }").replace("{{PORT}}", &free_port().to_string())
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes `conf`, runs `-t`, and expects failure with `msg` at `file:line` (file relative to
/// the prefix).
#[track_caller]
fn expect_emerg(p: &Prefix, msg: &str, file: &str, line: usize) {
    let out = p.cli(&["-t"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "-t should fail:\n{err}");
    let path = p.path().join(file);
    let want = format!("{}: [emerg] {msg} in {}:{line}", prog(), path.display());
    assert_contains(&err, &want);
    assert_contains(&err, &format!("{}: configuration file {} test failed", prog(), p.conf_path().display()));
}

/// The 1-based line of the first line of `conf` containing `needle`.
fn line_of(conf: &str, needle: &str) -> usize {
    conf.lines().position(|l| l.contains(needle)).expect("needle not in conf") + 1
}

#[test]
fn test_flag_accepts_valid_config() {
    let p = Prefix::new();
    p.write_conf(&valid_conf());
    let out = p.cli(&["-t"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let conf = p.conf_path();
    assert_contains(&err, &format!("{}: the configuration file {} syntax is ok", prog(), conf.display()));
    assert_contains(&err, &format!("{}: configuration file {} test is successful", prog(), conf.display()));
}

#[test]
fn unknown_directive_names_file_and_line() {
    let p = Prefix::new();
    let conf = valid_conf().replace("server_name localhost;", "server_name localhost;\n        foo bar;");
    p.write_conf(&conf);
    expect_emerg(&p, "unknown directive \"foo\"", "conf/nginx.conf", line_of(&conf, "foo bar;"));
}

#[test]
fn unknown_directive_in_main_context_first_line() {
    let p = Prefix::new();
    let conf = format!("frobnicate on;\n{}", valid_conf());
    p.write_conf(&conf);
    expect_emerg(&p, "unknown directive \"frobnicate\"", "conf/nginx.conf", 1);
}

#[test]
fn error_in_included_file_names_that_file() {
    let p = Prefix::new();
    // Relative includes are resolved against the directory of the main config file.
    let conf = valid_conf().replace("server_name localhost;", "server_name localhost;\n        include extra/*.conf;");
    p.write_conf(&conf);
    p.write_file("conf/extra/a.conf", "# a comment\nlocation /a {\n    return 200 \"a\";\n    bogus_directive 1;\n}\n");
    expect_emerg(&p, "unknown directive \"bogus_directive\"", "conf/extra/a.conf", 4);
}

#[test]
fn include_of_valid_file_is_ok() {
    let p = Prefix::new();
    let conf = valid_conf().replace("server_name localhost;", "server_name localhost;\n        include extra/*.conf;");
    p.write_conf(&conf);
    p.write_file("conf/extra/a.conf", "location /a { return 200 \"a\"; }\n");
    p.write_file("conf/extra/b.conf", "location /b { return 200 \"b\"; }\n");
    let out = p.cli(&["-t"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

#[test]
fn directive_in_wrong_context() {
    let p = Prefix::new();
    // `listen` belongs in server{}, not in location{}.
    let conf = valid_conf().replace("location / {", "location / {\n            listen 8080;\n");
    p.write_conf(&conf);
    expect_emerg(&p, "\"listen\" directive is not allowed here", "conf/nginx.conf", line_of(&conf, "listen 8080;"));
}

#[test]
fn block_directive_in_wrong_context() {
    let p = Prefix::new();
    // server{} directly in the main context.
    let conf = format!("{}server {{\n    listen 1;\n}}\n", valid_conf());
    p.write_conf(&conf);
    let line = conf.lines().count() - 2;
    expect_emerg(&p, "\"server\" directive is not allowed here", "conf/nginx.conf", line);
}

#[test]
fn invalid_number_of_arguments() {
    let p = Prefix::new();
    let conf = valid_conf().replace("worker_connections 1024;", "worker_connections 1024 2048;");
    p.write_conf(&conf);
    expect_emerg(
        &p,
        "invalid number of arguments in \"worker_connections\" directive",
        "conf/nginx.conf",
        line_of(&conf, "worker_connections"),
    );
}

#[test]
fn unexpected_closing_brace() {
    let p = Prefix::new();
    let conf = format!("{}}}\n", valid_conf());
    p.write_conf(&conf);
    expect_emerg(&p, "unexpected \"}\"", "conf/nginx.conf", conf.lines().count());
}

#[test]
fn unexpected_end_of_file() {
    let p = Prefix::new();
    let mut conf = valid_conf();
    // Drop the final "}" that closes http{}.
    let cut = conf.trim_end().len() - 1;
    conf.truncate(cut);
    p.write_conf(&conf);
    let out = p.cli(&["-t"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_contains(
        &err,
        &format!("{}: [emerg] unexpected end of file, expecting \"}}\" in {}:", prog(), p.conf_path().display()),
    );
}

#[test]
fn missing_semicolon_before_brace() {
    let p = Prefix::new();
    // nginx: `directive "return" is not terminated by ";"`.
    let conf = valid_conf().replace("return 200 \"hello\\n\";", "return 200 \"hello\\n\"\n        }\n        location /x {");
    p.write_conf(&conf);
    let out = p.cli(&["-t"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_contains(&err, "[emerg]");
    assert_contains(&err, &format!("{}:", p.conf_path().display()));
}

#[test]
fn quoted_strings_with_braces_semicolons_and_escapes() {
    // Braces, semicolons and `#` inside quotes are literal; `\"` is an escaped quote.
    let h = Halo::server(
        "        location /q { return 200 \"a { b } ; c # not a comment\"; }   # a real comment\n\
         location /e { return 200 'say \\\"hi\\\"'; }",
    );
    let r = h.get("/q");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "a { b } ; c # not a comment");
    assert_eq!(h.get("/e").text(), "say \"hi\"");
}

#[test]
fn starting_with_bad_config_fails_with_emerg() {
    let p = Prefix::new();
    let conf = valid_conf().replace("server_name localhost;", "server_name localhost;\n        no_such_thing;");
    p.write_conf(&conf);
    let out = p.cli(&[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = line_of(&conf, "no_such_thing");
    assert_contains(
        &err,
        &format!("{}: [emerg] unknown directive \"no_such_thing\" in {}:{line}", prog(), p.conf_path().display()),
    );
}

#[test]
fn missing_config_file_fails() {
    let p = Prefix::new();
    let out = p.cli(&["-t"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_contains(&err, "[emerg]");
    assert_contains(&err, &p.conf_path().display().to_string());
}

#[test]
fn global_directives_flag_is_accepted() {
    let p = Prefix::new();
    p.write_conf(&valid_conf());
    let out = p.cli(&["-t", "-g", "worker_processes 2;"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

#[test]
fn global_directive_duplicating_the_file_fails() {
    let p = Prefix::new();
    p.write_conf(&format!("worker_processes 1;\n{}", valid_conf()));
    let out = p.cli(&["-t", "-g", "worker_processes 2;"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_contains(&err, "\"worker_processes\" directive is duplicate");
}

#[test]
fn global_directives_take_effect() {
    // -g adds main-context directives: here it turns on the master and asks for 3 workers.
    let conf = server_conf("        location / { return 200 \"g\"; }").replace("master_process off;\n", "");
    let h = Prefix::new().start_with_args(&conf, &["-g", "master_process on; worker_processes 3;"]);
    assert!(
        wait_until(Duration::from_secs(5), || h.children().len() == 3),
        "expected 3 workers, got {:?}\n{}",
        h.children(),
        h.logs()
    );
    assert_eq!(h.get("/").text(), "g");
}

#[test]
fn version_flag() {
    let out = run_with_timeout(std::process::Command::new(bin()).arg("-v"), Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // nginx: "nginx version: nginx/1.22.1".
    assert_contains(&text, &format!("{} version: ", prog()));
    assert!(text.chars().any(|c| c.is_ascii_digit()), "no version number in {text:?}");
}

#[test]
fn build_info_flag() {
    let out = run_with_timeout(std::process::Command::new(bin()).arg("-V"), Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let err = stderr_of(&out);
    let first = format!("{0} version: {0}/", prog());
    assert!(err.starts_with(&first), "{err}");
    assert!(err.lines().any(|l| l.starts_with("built ")), "no build line in {err}");
    // What Test::Nginx reads from `-V` to learn the nginx version.
    assert!(regex::Regex::new(r"nginx/\d+\.\d+\.\d+").unwrap().is_match(&err), "{err}");
}

#[test]
fn dump_flag_prints_each_file_read_once() {
    let p = Prefix::new();
    let conf = valid_conf().replace("http {", "http {\n    include mime.types;\n    include extra/*.conf;\n    include mime.types;");
    p.write_conf(&conf);
    p.write_file("conf/mime.types", MIME_TYPES);
    p.write_file("conf/extra/a.conf", "# a\n");
    p.write_file("conf/extra/b.conf", "# b\n");
    let out = p.cli(&["-T"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_contains(&err, "test is successful");
    let dir = p.path().join("conf");
    let want = format!(
        "# configuration file {}:\n{conf}\n# configuration file {}:\n{MIME_TYPES}\n# configuration file {}:\n# a\n\n# configuration file {}:\n# b\n\n",
        p.conf_path().display(),
        dir.join("mime.types").display(),
        dir.join("extra/a.conf").display(),
        dir.join("extra/b.conf").display()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

#[test]
fn dump_flag_on_a_bad_config_fails_without_a_dump() {
    let p = Prefix::new();
    p.write_conf(&valid_conf().replace("server_name localhost;", "bogus;"));
    let out = p.cli(&["-T"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_contains(&stderr_of(&out), "test failed");
}

#[test]
fn quiet_flag_silences_a_successful_test_only() {
    let p = Prefix::new();
    p.write_conf(&valid_conf());
    for flags in [&["-q", "-t"][..], &["-tq"]] {
        let out = p.cli(flags);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(stderr_of(&out), "", "{flags:?}");
    }
    let out = p.cli(&["-q", "-T"]);
    assert_eq!(stderr_of(&out), "");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("# configuration file "));
    p.write_conf(&valid_conf().replace("server_name localhost;", "bogus;"));
    let out = p.cli(&["-q", "-t"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_contains(&err, "[emerg] unknown directive \"bogus\"");
    assert_contains(&err, "test failed");
}

#[test]
fn help_flag() {
    let out = run_with_timeout(std::process::Command::new(bin()).arg("-h"), Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_contains(&text, "Usage:");
    for flag in ["-t", "-s signal", "-p prefix", "-c filename", "-g directives"] {
        assert_contains(&text, flag);
    }
}

#[test]
fn unknown_flag_fails() {
    let out = run_with_timeout(std::process::Command::new(bin()).arg("-Z"), Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    assert_contains(&String::from_utf8_lossy(&out.stderr), "invalid option: \"Z\"");
}

#[test]
fn resolver_directives_accepted_at_every_level() {
    let p = Prefix::new();
    let conf = valid_conf()
        .replace("server_name localhost;", "server_name localhost;\n        resolver 127.0.0.1:5353 [::1] valid=30s ipv6=off;\n        location /r { resolver 10.0.0.1 ipv4=off; resolver_timeout 5s; }")
        .replacen("http {", "http {\n    resolver_timeout 10s;", 1);
    assert!(conf.contains("resolver_timeout 10s;"), "{conf}");
    p.write_conf(&conf);
    let out = p.cli(&["-t"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

#[test]
fn resolver_bad_parameter_names_file_and_line() {
    let p = Prefix::new();
    let conf = valid_conf().replace("server_name localhost;", "server_name localhost;\n        resolver 127.0.0.1 foo=bar;");
    p.write_conf(&conf);
    expect_emerg(&p, "invalid parameter \"foo=bar\"", "conf/nginx.conf", line_of(&conf, "foo=bar"));
    let conf = valid_conf().replace("server_name localhost;", "server_name localhost;\n        resolver 127.0.0.1 valid=soon;");
    p.write_conf(&conf);
    expect_emerg(&p, "invalid parameter: valid=soon", "conf/nginx.conf", line_of(&conf, "valid=soon"));
    let conf = valid_conf().replace("server_name localhost;", "server_name localhost;\n        resolver 127.0.0.1:0;");
    p.write_conf(&conf);
    expect_emerg(&p, "invalid port in resolver \"127.0.0.1:0\"", "conf/nginx.conf", line_of(&conf, "127.0.0.1:0"));
    let conf = valid_conf().replace("server_name localhost;", "server_name localhost;\n        resolver_timeout forever;");
    p.write_conf(&conf);
    expect_emerg(&p, "\"resolver_timeout\" directive invalid value", "conf/nginx.conf", line_of(&conf, "forever"));
}
