#!/usr/bin/env python3
"""Client for benches/idle/run.sh: opens keep-alive connections to 127.0.0.1 and holds them.

  hold.py warm PORT [--conns 4] [--requests 100]
      Sends REQUESTS requests one after another on each of CONNS connections (all at
      once, one event loop), checks every response, closes them and exits 0.

  hold.py hold PORT --conns N [--timeout 30] [--hold 90] [--concurrency 256]
      Opens N connections, sends ONE request on each and reads its full response
      (HTTP/1.1 keep-alive, so the connection stays open). At most CONCURRENCY
      connections are being connected or awaiting their response at a time, so the
      listen backlog never overflows. When all N are answered it prints
      "READY <n> <seconds>" and leaves them open and idle. On SIGTERM or SIGINT, or
      after HOLD seconds, it checks every socket without reading from it (still
      open / closed by the server), prints "ALIVE <a> CLOSED <c> DATA <d>", closes all
      and exits 0 (1 if any connection was not alive or the hold timed out).

Errors (a bad response, a refused connection, TIMEOUT seconds to get everything answered)
go to stderr with exit status 1. Only 127.0.0.1 is ever contacted.
"""

import argparse
import errno
import os
import selectors
import signal
import socket
import sys
import time

HOST = "127.0.0.1"
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
EXPECT_BODY = b"hello\n"


def die(msg):
    print(f"hold.py: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


class Conn:
    __slots__ = ("sock", "buf", "left", "connected")

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.left = 0  # requests still to send and answer
        self.connected = False
        rc = self.sock.connect_ex((HOST, port))
        if rc not in (0, errno.EINPROGRESS):
            die(f"connect to {HOST}:{port}: {os.strerror(rc)}")
        self.connected = rc == 0


def parse_response(buf):
    """Returns (consumed_bytes, None) for one complete valid response, (0, None) when more
    bytes are needed, or (0, error_text)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return (0, None) if len(buf) < 65536 else (0, "response head over 64 KiB")
    head = buf[:end].decode("latin-1").split("\r\n")
    if not head[0].startswith("HTTP/1.1 200 "):
        return 0, f"status line {head[0]!r}"
    length = None
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.lower() == "close":
            return 0, "server answered Connection: close"
        elif name == "transfer-encoding":
            return 0, f"unexpected Transfer-Encoding: {value}"
    if length is None:
        return 0, "response without Content-Length"
    total = end + 4 + length
    if len(buf) < total:
        return 0, None
    body = buf[end + 4 : total]
    if body != EXPECT_BODY:
        return 0, f"body {body!r}, expected {EXPECT_BODY!r}"
    return total, None


def drive(port, nconns, requests, concurrency, timeout):
    """Runs nconns connections through `requests` request/response exchanges each, at most
    `concurrency` in flight. Returns the list of sockets (still open) in order."""
    sel = selectors.DefaultSelector()
    done = []
    started = 0
    inflight = 0
    deadline = time.monotonic() + timeout

    def start_one():
        nonlocal started, inflight
        c = Conn(port)
        c.left = requests
        started += 1
        inflight += 1
        if c.connected:
            c.sock.send(REQUEST)  # a fresh socket's buffer takes 30 bytes
            sel.register(c.sock, selectors.EVENT_READ, c)
        else:
            sel.register(c.sock, selectors.EVENT_WRITE, c)

    while started < nconns and inflight < concurrency:
        start_one()
    while inflight:
        left = deadline - time.monotonic()
        if left <= 0:
            die(f"timed out after {timeout}s: {len(done)} of {nconns} connections answered, "
                f"{inflight} in flight")
        for key, ev in sel.select(min(left, 1.0)):
            c = key.data
            if not c.connected:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    die(f"connect to {HOST}:{port}: {os.strerror(err)} "
                        f"(after {len(done)} answered connections)")
                c.connected = True
                c.sock.send(REQUEST)
                sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                die(f"recv: {e} (after {len(done)} answered connections)")
            if not data:
                die(f"server closed a connection before answering "
                    f"(after {len(done)} answered connections)")
            c.buf += data
            while True:
                used, err = parse_response(c.buf)
                if err:
                    die(err)
                if not used:
                    break
                c.buf = c.buf[used:]
                c.left -= 1
                if c.left == 0:
                    if c.buf:
                        die(f"{len(c.buf)} unexpected bytes after the last response")
                    break
                c.sock.send(REQUEST)
            if c.left == 0:
                sel.unregister(c.sock)
                done.append(c.sock)
                inflight -= 1
                if started < nconns:
                    start_one()
    sel.close()
    return done


def peek_state(sock):
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return "alive"
    except OSError:
        return "closed"  # reset by the server
    return "data" if data else "closed"


def cmd_warm(a):
    t0 = time.monotonic()
    socks = drive(a.port, a.conns, a.requests, a.conns, a.timeout)
    for s in socks:
        s.close()
    print(f"WARM {a.conns * a.requests} {time.monotonic() - t0:.3f}", flush=True)


def cmd_hold(a):
    stop = []

    def on_signal(signum, _frame):
        stop.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t0 = time.monotonic()
    socks = drive(a.port, a.conns, 1, a.concurrency, a.timeout)
    print(f"READY {len(socks)} {time.monotonic() - t0:.3f}", flush=True)

    # Idle: wait for a signal or the hold limit (stdin is not used: run.sh gives /dev/null).
    deadline = time.monotonic() + a.hold
    timed_out = False
    while not stop:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        time.sleep(min(left, 0.1))
    counts = {"alive": 0, "closed": 0, "data": 0}
    for s in socks:
        counts[peek_state(s)] += 1
    print(f"ALIVE {counts['alive']} CLOSED {counts['closed']} DATA {counts['data']}", flush=True)
    for s in socks:
        s.close()
    if timed_out:
        print(f"hold.py: hold limit of {a.hold}s reached, nobody stopped me", file=sys.stderr)
    sys.exit(0 if counts["alive"] == len(socks) and not timed_out else 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("warm")
    w.add_argument("port", type=int)
    w.add_argument("--conns", type=int, default=4)
    w.add_argument("--requests", type=int, default=100)
    w.add_argument("--timeout", type=float, default=20)
    h = sub.add_parser("hold")
    h.add_argument("port", type=int)
    h.add_argument("--conns", type=int, required=True)
    h.add_argument("--concurrency", type=int, default=256)
    h.add_argument("--timeout", type=float, default=30)
    h.add_argument("--hold", type=float, default=90)
    a = p.parse_args()
    if a.conns < 1:
        die("--conns must be at least 1")
    (cmd_warm if a.cmd == "warm" else cmd_hold)(a)


if __name__ == "__main__":
    main()
