#!/usr/bin/env python3
"""Fixed load for run.sh: BATCHES rounds on CONNS keep-alive connections, each
round writing DEPTH requests per connection and reading their responses.
Prints the number of responses. Only ever talks to 127.0.0.1."""
import socket
import sys

port, batches, depth, conns = (int(a) for a in sys.argv[1:5])
req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(conns)]
total = 0
for _ in range(batches):
    for s in socks:
        s.sendall(req * depth)
    for s in socks:
        buf = b""
        while buf.count(b"hello\n") < depth:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit("server closed the connection")
            buf += chunk
        total += depth
print(total)
