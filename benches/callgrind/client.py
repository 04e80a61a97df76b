#!/usr/bin/env python3
"""Fixed load for run.sh: BATCHES rounds on CONNS keep-alive connections, each
round writing DEPTH requests per connection and reading their responses.
Prints the number of responses. Only ever talks to 127.0.0.1.

    client.py PORT BATCHES DEPTH CONNS [PATH [BODY [HEADER:VALUE]]]

PATH defaults to "/" and BODY to "hello\\n". Every response is parsed
(Content-Length or chunked) and must be a 200 whose body is BODY and, if
given, which carries HEADER with VALUE; anything else exits non-zero with the
response quoted. Requests carry a User-Agent. Connecting is retried for up to
60 s, so the client can be started while the server is still coming up."""
import socket
import sys
import time

USER_AGENT = "halo-callgrind/1"

args = sys.argv[1:]
if not 4 <= len(args) <= 7:
    sys.exit(__doc__)
port, batches, depth, conns = (int(a) for a in args[:4])
path = args[4] if len(args) > 4 else "/"
want_body = (args[5] if len(args) > 5 else "hello\n").encode()
want_header = None
if len(args) > 6:
    name, _, value = args[6].partition(":")
    want_header = (name.strip().lower().encode(), value.strip().encode())

req = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: %s\r\n\r\n" % (
    path.encode(), port, USER_AGENT.encode())


def connect():
    deadline = time.monotonic() + 60
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=120)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def fail(why, raw):
    sys.exit("client.py: GET %s: %s\n%r" % (path, why, bytes(raw[:2000])))


def parse(buf):
    """One complete response at the start of buf: (length, status, headers,
    body), or None if more bytes are needed."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        fail("bad status line", buf)
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    pos = end + 4
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            pos = eol + 2
            if size == 0:
                # No trailers expected: the terminating empty line follows.
                if len(buf) < pos + 2:
                    return None
                if buf[pos:pos + 2] != b"\r\n":
                    fail("trailers are not expected", buf)
                pos += 2
                break
            if len(buf) < pos + size + 2:
                return None
            body += bytes(buf[pos:pos + size])
            pos += size + 2
    elif b"content-length" in headers:
        n = int(headers[b"content-length"])
        if len(buf) < pos + n:
            return None
        body = bytes(buf[pos:pos + n])
        pos += n
    else:
        fail("neither Content-Length nor chunked", buf)
    return pos, status, headers, body


socks = [connect() for _ in range(conns)]
bufs = [bytearray() for _ in socks]
total = 0
for _ in range(batches):
    for s in socks:
        s.sendall(req * depth)
    for s, buf in zip(socks, bufs):
        got = 0
        while got < depth:
            r = parse(buf)
            if r is None:
                chunk = s.recv(65536)
                if not chunk:
                    fail("server closed the connection", buf)
                buf += chunk
                continue
            n, status, headers, body = r
            if status != 200:
                fail("status %d, not 200" % status, buf[:n])
            if body != want_body:
                fail("body %r, not %r" % (body, want_body), buf[:n])
            if want_header and headers.get(want_header[0]) != want_header[1]:
                fail("header %s is %r, not %r" % (want_header[0].decode(),
                     headers.get(want_header[0]), want_header[1]), buf[:n])
            if headers.get(b"connection", b"").lower() == b"close":
                fail("server closes the keep-alive connection", buf[:n])
            del buf[:n]
            got += 1
        total += depth
for buf in bufs:
    if buf:
        fail("unexpected bytes after the last response", buf)
print(total)
