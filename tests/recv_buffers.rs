//! Workers receive into a ring of provided buffers (multishot recv). When
//! more connections hold unread data than there are buffers (256), the
//! kernel runs out and those receives fall back to plain ones: every request
//! must still be answered, in order, with nothing lost.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn more_unread_data_than_receive_buffers_loses_nothing() {
    let h = Halo::server(
        r#"
        location /slow { content_by_lua_block { ngx.sleep(0.4) ngx.say("slow ", ngx.var.arg_i) } }
        location /fast { return 200 "fast $arg_i\n"; }"#,
    );
    const N: usize = 320;
    let mut conns: Vec<Conn> = (0..N).map(|_| h.connect()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.send(format!("GET /slow?i={i} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    }
    // While every handler sleeps, each connection gets its next request (and
    // a body-less padding header so it is not tiny): each takes a buffer.
    std::thread::sleep(Duration::from_millis(100));
    let pad = "x".repeat(1000);
    for (i, c) in conns.iter_mut().enumerate() {
        c.send(format!("GET /fast?i={i} HTTP/1.1\r\nHost: localhost\r\nX-Pad: {pad}\r\n\r\n"));
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let r = c.read_response(false);
        assert_eq!(r.text(), format!("slow {i}\n"), "{}", h.error_log());
        let r = c.read_response(false);
        assert_eq!(r.text(), format!("fast {i}\n"), "{}", h.error_log());
    }
    // The test did reach the fallback (logged at info).
    assert!(h.error_log().contains("all receive buffers of the worker are in use"), "{}", h.error_log());
    // And the connections keep working afterwards.
    for (i, c) in conns.iter_mut().enumerate().step_by(7) {
        c.send(format!("GET /fast?i=again{i} HTTP/1.1\r\nHost: localhost\r\n\r\n"));
        assert_eq!(c.read_response(false).text(), format!("fast again{i}\n"));
    }
}
