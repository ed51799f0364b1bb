#!/usr/bin/env python3
"""A minimal classic peer for the tests, written straight from the reference's description
(docs/PROTOCOL.md: "The ring and the routing rule", "Classic encoding"). It shares nothing
with the Rust codec.
Standard library only.

    classic_peer.py node HOST PORT [--delay-ms MS] [--slow-summary] [--seed N]
        A messaging node: registers, takes a manifest, connects to its entries, originates on
        task initiate, relays (appending its ID to the trace), reports task finished and its
        summary (then resets). Checks every delivered packet's trace against the route it
        computes itself and prints "TRACE MISMATCH" to stderr for one that differs.
        Reads `exit-overlay` and `print-counters-and-diagnostics` from stdin (end of input
        is fine). --delay-ms waits before connecting (a late peer); --slow-summary sends the
        summary one byte at a time, 20 ms apart.

    classic_peer.py registry --nodes N [--nr 3] [--packets P] [--settle-ms MS] [--port 0]
        A scripted registry: registers N nodes (random IDs 0..=127), sends the manifests, waits
        for every setup status, sends task initiate P, waits for every task finished, waits
        the settle time, requests the summaries and prints them, then
        `RESULT PASS|FAIL sent=.. received=.. sum_sent=.. sum_received=..`; exit status 0 on
        PASS.
"""
import argparse
import os
import random
import socket
import struct
import sys
import threading
import time

REGISTER = 2
REGISTER_STATUS = 3
DEREGISTER = 4
DEREGISTER_STATUS = 5
MANIFEST = 6
SETUP_STATUS = 7
TASK_INITIATE = 8
DATA = 9
TASK_FINISHED = 10
SUMMARY_REQUEST = 11
SUMMARY = 12

ID_SPACE = 128
DEADLINE_S = 60


def say(line):
    print(line, flush=True)


def warn(line):
    print(line, file=sys.stderr, flush=True)


# ----- framing and fields (big-endian, Java DataOutputStream) -----


def read_frame(stream):
    """One message (type byte first) from a buffered socket file; None at end of stream."""
    prefix = stream.read(4)
    if len(prefix) < 4:
        return None
    (length,) = struct.unpack(">i", prefix)
    if length <= 0 or length > 1 << 20:
        raise ValueError(f"bad frame length {length}")
    body = stream.read(length)
    if len(body) < length:
        return None
    return body


def frame(body):
    return struct.pack(">i", len(body)) + body


def enc_ip(ip):
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    raw = socket.inet_pton(family, ip)
    return bytes([len(raw)]) + raw


def enc_string(text):
    raw = text.encode("ascii", "replace")[:127]
    return bytes([len(raw)]) + raw


class Fields:
    """Reads fields off a message body, type byte first."""

    def __init__(self, body):
        self.body = body
        self.at = 0

    def take(self, n):
        if self.at + n > len(self.body):
            raise ValueError("truncated message")
        chunk = self.body[self.at : self.at + n]
        self.at += n
        return chunk

    def u8(self):
        return self.take(1)[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def ip(self):
        n = self.u8()
        raw = self.take(n)
        if n == 4:
            return socket.inet_ntop(socket.AF_INET, raw)
        if n == 16:
            return socket.inet_ntop(socket.AF_INET6, raw)
        raise ValueError(f"address of {n} bytes")

    def string(self):
        return self.take(self.u8()).decode("ascii", "replace")

    def done(self):
        if self.at != len(self.body):
            raise ValueError(f"{len(self.body) - self.at} stray bytes")


# ----- routing (docs/PROTOCOL.md, "The ring and the routing rule") -----


def table_of(ring, node, nr):
    """Entry i is the node 2^i positions after `node` in the sorted ring."""
    position = ring.index(node)
    return [ring[(position + (1 << i)) % len(ring)] for i in range(nr)]


def next_hop(me, table, sink):
    if sink in table:
        return sink
    best, best_distance = None, -1
    limit = (sink - me) % ID_SPACE
    for entry in table:
        distance = (entry - me) % ID_SPACE
        if distance < limit and distance > best_distance:
            best, best_distance = entry, distance
    return best


def route_relays(ring, nr, source, sink):
    """The relays a packet from `source` to `sink` passes, in order."""
    relays = []
    at = source
    while True:
        hop = next_hop(at, table_of(ring, at, nr), sink)
        if hop == sink:
            return relays
        relays.append(hop)
        at = hop
        if len(relays) > len(ring):
            raise ValueError("routing loop")


# ----- messaging node -----


class Link:
    def __init__(self, sock):
        self.sock = sock
        self.lock = threading.Lock()

    def send(self, data):
        with self.lock:
            self.sock.sendall(data)


class ClassicNode:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.reset_counters()
        self.id = None
        self.ring = []
        self.nr = 0
        self.table = []
        self.links = {}
        self.mismatches = 0

    def reset_counters(self):
        self.sent = self.received = self.relayed = 0
        self.sum_sent = self.sum_received = 0

    def run(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.ip, self.port = self.listener.getsockname()
        say(f"Node listening on {self.ip}:{self.port}, registry {self.args.host}:{self.args.port}")
        threading.Thread(target=self.accept_loop, daemon=True).start()
        threading.Thread(target=self.console, daemon=True).start()
        if self.args.delay_ms:
            time.sleep(self.args.delay_ms / 1000)
        sock = socket.create_connection((self.args.host, self.args.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.registry = Link(sock)
        stream = sock.makefile("rb")
        self.registry.send(frame(bytes([REGISTER]) + enc_ip(self.ip) + struct.pack(">i", self.port)))
        while True:
            body = read_frame(stream)
            if body is None:
                say("the registry closed the connection; exiting")
                return 1
            code = self.handle_registry(body)
            if code is not None:
                return code

    def handle_registry(self, body):
        fields = Fields(body)
        kind = fields.u8()
        if kind == REGISTER_STATUS:
            status, info = fields.i32(), fields.string()
            fields.done()
            if status < 0:
                say(f"Registration refused: {info}")
                return 1
            self.id = status
            say(f"Registered as node {status}: {info}")
        elif kind == DEREGISTER_STATUS:
            status, info = fields.i32(), fields.string()
            fields.done()
            say(f"Deregistration status {status}: {info}")
            if status >= 0:
                return 0
        elif kind == MANIFEST:
            nr = fields.u8()
            entries = []
            for _ in range(nr):
                entry_id = fields.i32()
                ip = fields.ip()
                port = fields.i32()
                entries.append((entry_id, ip, port))
            ids = [fields.i32() for _ in range(fields.u8())]
            fields.done()
            self.on_manifest(entries, ids)
        elif kind == TASK_INITIATE:
            packets = fields.i32()
            fields.done()
            threading.Thread(target=self.originate, args=(packets,), daemon=True).start()
        elif kind == SUMMARY_REQUEST:
            fields.done()
            self.send_summary()
        else:
            warn(f"unexpected message type {kind} from the registry")
            return 1
        return None

    def on_manifest(self, entries, ids):
        self.ring = sorted(ids)
        self.nr = len(entries)
        self.table = [e[0] for e in entries]
        with self.lock:
            self.reset_counters()
        try:
            for entry_id, ip, port in entries:
                sock = socket.create_connection((ip, port))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.links[entry_id] = Link(sock)
            status, info = self.id, f"node {self.id} connected to {len(entries)} entries"
        except OSError as error:
            status, info = -1, f"connect failed: {error}"
        self.registry.send(frame(bytes([SETUP_STATUS]) + struct.pack(">i", status) + enc_string(info)))
        say(f"Setup status {status}: {info}")

    def originate(self, packets):
        others = [n for n in self.ring if n != self.id]
        for _ in range(packets):
            sink = self.rng.choice(others)
            payload = self.rng.randint(-(1 << 31), (1 << 31) - 1)
            hop = next_hop(self.id, self.table, sink)
            body = bytes([DATA]) + struct.pack(">iiii", sink, self.id, payload, 0)
            with self.lock:
                self.sent += 1
                self.sum_sent += payload
            self.links[hop].send(frame(body))
        self.registry.send(
            frame(
                bytes([TASK_FINISHED])
                + enc_ip(self.ip)
                + struct.pack(">i", self.port)
                + struct.pack(">i", self.id)
            )
        )
        say(f"Task finished: {packets} packets sent")

    def send_summary(self):
        with self.lock:
            body = bytes([SUMMARY]) + struct.pack(
                ">iiiqiq",
                self.id,
                self.sent,
                self.relayed,
                self.sum_sent,
                self.received,
                self.sum_received,
            )
            self.reset_counters()
        data = frame(body)
        if self.args.slow_summary:
            for i in range(len(data)):
                self.registry.send(data[i : i + 1])
                time.sleep(0.02)
        else:
            self.registry.send(data)

    def accept_loop(self):
        while True:
            sock, _ = self.listener.accept()
            threading.Thread(target=self.data_loop, args=(sock,), daemon=True).start()

    def data_loop(self, sock):
        stream = sock.makefile("rb")
        while True:
            try:
                body = read_frame(stream)
            except (OSError, ValueError) as error:
                warn(f"data link failed: {error}")
                return
            if body is None:
                return
            if body[0] != DATA or len(body) < 17:
                warn(f"unexpected message type {body[0]} on a data link")
                return
            sink, source, payload, trace_len = struct.unpack(">iiii", body[1:17])
            if len(body) != 17 + 4 * trace_len:
                warn(f"data frame of {len(body)} bytes with trace_len {trace_len}")
                return
            if sink == self.id:
                trace = list(struct.unpack(f">{trace_len}i", body[17:]))
                expected = route_relays(self.ring, self.nr, source, sink)
                if trace != expected:
                    self.mismatches += 1
                    warn(f"TRACE MISMATCH from {source}: {trace}, expected {expected}")
                with self.lock:
                    self.received += 1
                    self.sum_received += payload
            else:
                relayed = (
                    body[:13]
                    + struct.pack(">i", trace_len + 1)
                    + body[17:]
                    + struct.pack(">i", self.id)
                )
                hop = next_hop(self.id, self.table, sink)
                with self.lock:
                    self.relayed += 1
                self.links[hop].send(frame(relayed))

    def console(self):
        for line in sys.stdin:
            command = line.strip()
            if command == "exit-overlay" and self.id is not None:
                self.registry.send(
                    frame(
                        bytes([DEREGISTER])
                        + enc_ip(self.ip)
                        + struct.pack(">ii", self.port, self.id)
                    )
                )
            elif command == "print-counters-and-diagnostics":
                with self.lock:
                    say(
                        f"node {self.id}: sent {self.sent} received {self.received} relayed "
                        f"{self.relayed} sum sent {self.sum_sent} sum received "
                        f"{self.sum_received} trace mismatches {self.mismatches}"
                    )


# ----- registry -----


class ClassicRegistry:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.nodes = {}  # id -> (ip, port, Link)
        self.ready = set()
        self.finished = set()
        self.summaries = {}

    def wait(self, what, condition):
        deadline = time.monotonic() + DEADLINE_S
        with self.changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    say(f"RESULT FAIL timeout waiting for {what}")
                    os._exit(2)
                self.changed.wait(left)

    def run(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.args.port))
        listener.listen(256)
        say(f"Registry listening on 127.0.0.1:{listener.getsockname()[1]}")
        threading.Thread(target=self.accept_loop, args=(listener,), daemon=True).start()
        n = self.args.nodes
        self.wait("registrations", lambda: len(self.nodes) >= n)
        with self.lock:
            ring = sorted(self.nodes)
            nodes = dict(self.nodes)
        for node in ring:
            table = table_of(ring, node, self.args.nr)
            body = bytes([MANIFEST, len(table)])
            for entry in table:
                ip, port, _ = nodes[entry]
                body += struct.pack(">i", entry) + enc_ip(ip) + struct.pack(">i", port)
            body += bytes([len(ring)]) + b"".join(struct.pack(">i", i) for i in ring)
            nodes[node][2].send(frame(body))
        self.wait("setup statuses", lambda: len(self.ready) >= n)
        say("Registry now ready to initiate tasks.")
        for node in ring:
            nodes[node][2].send(frame(bytes([TASK_INITIATE]) + struct.pack(">i", self.args.packets)))
        self.wait("task finished", lambda: len(self.finished) >= n)
        time.sleep(self.args.settle_ms / 1000)
        for node in ring:
            nodes[node][2].send(frame(bytes([SUMMARY_REQUEST])))
        self.wait("traffic summaries", lambda: len(self.summaries) >= n)
        totals = [0, 0, 0, 0, 0]
        for node in ring:
            sent, relayed, sum_sent, received, sum_received = self.summaries[node]
            say(f"Node {node} {sent} {received} {relayed} {sum_sent} {sum_received}")
            for i, value in enumerate((sent, received, relayed, sum_sent, sum_received)):
                totals[i] += value
        say("Sum {} {} {} {} {}".format(*totals))
        passed = totals[0] == totals[1] == n * self.args.packets and totals[3] == totals[4]
        say(
            f"RESULT {'PASS' if passed else 'FAIL'} sent={totals[0]} received={totals[1]} "
            f"relayed={totals[2]} sum_sent={totals[3]} sum_received={totals[4]}"
        )
        return 0 if passed else 1

    def accept_loop(self, listener):
        while True:
            sock, peer = listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self.serve, args=(sock, peer), daemon=True).start()

    def status(self, link, kind, status, info):
        link.send(frame(bytes([kind]) + struct.pack(">i", status) + enc_string(info)))

    def serve(self, sock, peer):
        link = Link(sock)
        stream = sock.makefile("rb")
        own = None
        while True:
            try:
                body = read_frame(stream)
            except (OSError, ValueError) as error:
                warn(f"{peer}: {error}")
                return
            if body is None:
                return
            fields = Fields(body)
            kind = fields.u8()
            with self.changed:
                if kind == REGISTER:
                    ip, port = fields.ip(), fields.i32()
                    fields.done()
                    taken = any((ip, port) == (n[0], n[1]) for n in self.nodes.values())
                    if ip != peer[0]:
                        self.status(link, REGISTER_STATUS, -1, f"address {ip} is not {peer[0]}")
                    elif taken or own is not None:
                        self.status(link, REGISTER_STATUS, -1, "already registered")
                    else:
                        own = self.rng.choice([i for i in range(ID_SPACE) if i not in self.nodes])
                        self.nodes[own] = (ip, port, link)
                        self.status(
                            link,
                            REGISTER_STATUS,
                            own,
                            f"Registration request successful. The number of messaging nodes "
                            f"currently constituting the overlay is ({len(self.nodes)})",
                        )
                        say(f"Registered node {own} at {ip}:{port}")
                elif kind == DEREGISTER:
                    ip, port, node = fields.ip(), fields.i32(), fields.i32()
                    fields.done()
                    if ip != peer[0] or node not in self.nodes:
                        self.status(link, DEREGISTER_STATUS, -1, "not registered")
                    else:
                        del self.nodes[node]
                        own = None
                        self.status(link, DEREGISTER_STATUS, node, "deregistered")
                elif kind == SETUP_STATUS:
                    status, info = fields.i32(), fields.string()
                    fields.done()
                    if status < 0 or status != own:
                        say(f"RESULT FAIL node {own} setup failed: {info}")
                        os._exit(1)
                    self.ready.add(own)
                elif kind == TASK_FINISHED:
                    ip, port, node = fields.ip(), fields.i32(), fields.i32()
                    fields.done()
                    if node != own or ip != peer[0]:
                        warn(f"task finished for {node} at {ip}:{port} on the link of {own}")
                    self.finished.add(own)
                elif kind == SUMMARY:
                    node, sent, relayed, sum_sent, received, sum_received = (
                        fields.i32(),
                        fields.i32(),
                        fields.i32(),
                        fields.i64(),
                        fields.i32(),
                        fields.i64(),
                    )
                    fields.done()
                    self.summaries[own] = (sent, relayed, sum_sent, received, sum_received)
                else:
                    warn(f"{peer}: unexpected message type {kind}")
                    return
                self.changed.notify_all()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="role", required=True)
    node = sub.add_parser("node")
    node.add_argument("host")
    node.add_argument("port", type=int)
    node.add_argument("--delay-ms", type=int, default=0)
    node.add_argument("--slow-summary", action="store_true")
    node.add_argument("--seed", type=int, default=None)
    registry = sub.add_parser("registry")
    registry.add_argument("--nodes", type=int, required=True)
    registry.add_argument("--nr", type=int, default=3)
    registry.add_argument("--packets", type=int, default=1000)
    registry.add_argument("--settle-ms", type=int, default=500)
    registry.add_argument("--port", type=int, default=0)
    registry.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if args.role == "node":
        code = ClassicNode(args).run()
    else:
        code = ClassicRegistry(args).run()
    sys.stdout.flush()
    # Daemon threads may still block in accept/recv: leave at once.
    os._exit(code)


if __name__ == "__main__":
    main()
