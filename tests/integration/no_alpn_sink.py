"""no_alpn_sink.py — test helper: a TLS server that verifies the client's
certificate as a sink does but offers no ALPN, as a sink older than the
stream before the welcome. It answers nothing and counts the bytes each
connection sends after the handshake: OUT gets a line "N BYTES" (N counts
connections from 1) at the connection's start and whenever more arrive,
and "N closed" when the peer closes.

usage: no_alpn_sink.py PORT CA CERT KEY OUT
"""
import socket
import ssl
import sys
import threading

port, ca, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(ca)
ctx.load_cert_chain(cert, key)
lock = threading.Lock()


def note(line):
    with lock, open(out, "a") as f:
        f.write(line + "\n")


def serve(conn, n):
    total = 0
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
        note("%d %d" % (n, total))
        while True:
            data = tls.recv(65536)
            if not data:
                break
            total += len(data)
            note("%d %d" % (n, total))
    except (OSError, ssl.SSLError):
        pass
    note("%d closed" % n)
    conn.close()


listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(8)
n = 0
while True:
    conn, _ = listener.accept()
    n += 1
    threading.Thread(target=serve, args=(conn, n), daemon=True).start()
