"""`qp broker`: an embedded Kafka-compatible broker for development, demos and tests.

It is librdkafka's own mock cluster (exact offsets, consumer groups, topics auto-created with 4 partitions,
data in memory), held by this process. The mock listens on an ephemeral port, so a small TCP relay publishes
it on the fixed bootstrap address (QP_KAFKA_BOOTSTRAP, 127.0.0.1:9092 by default): clients bootstrap through
the relay and then talk to the broker address its metadata advertises, on the same loopback host.
"""

from __future__ import annotations

import argparse
import contextlib
import selectors
import signal
import socket
import sys
import threading

from confluent_kafka import Producer

from quarantine_platform.kafka.client import quiet_logger


class MockCluster:
    def __init__(self) -> None:
        self._holder = Producer({"test.mock.num.brokers": 1, "logger": quiet_logger()})
        meta = self._holder.list_topics(timeout=10)
        self.address = ",".join(f"{b.host}:{b.port}" for b in meta.brokers.values())

    def close(self) -> None:
        self._holder.flush(1)


class Relay:
    """Forwards every connection accepted on (host, port) to `target` ("host:port"), both ways."""

    def __init__(self, host: str, port: int, target: str) -> None:
        self.target = target.rsplit(":", 1)[0], int(target.rsplit(":", 1)[1])
        self.listener = socket.create_server((host, port), reuse_port=False)
        self.address = f"{host}:{self.listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="bootstrap-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        self.listener.setblocking(False)
        sel.register(self.listener, selectors.EVENT_READ, None)
        peers: dict[socket.socket, socket.socket] = {}
        while not self._stop.is_set():
            try:
                events = sel.select(timeout=0.2)
            except (OSError, ValueError):
                break
            for key, _ in events:
                sock = key.fileobj
                if sock is self.listener:
                    try:
                        client, _ = self.listener.accept()
                        upstream = socket.create_connection(self.target, timeout=5)
                    except OSError:
                        continue
                    for s in (client, upstream):
                        s.settimeout(
                            10
                        )  # recv follows readiness; sendall must not drop bytes on a full buffer
                        sel.register(s, selectors.EVENT_READ, None)
                    peers[client], peers[upstream] = upstream, client
                    continue
                try:
                    data = sock.recv(65536)  # type: ignore[union-attr]
                    if data:
                        peers[sock].sendall(data)  # type: ignore[index]
                        continue
                except OSError:
                    pass
                other = peers.pop(sock, None)  # type: ignore[arg-type]
                for s in (sock, other):
                    if s is not None:
                        peers.pop(s, None)  # type: ignore[arg-type]
                        with contextlib.suppress(KeyError, ValueError):
                            sel.unregister(s)
                        s.close()  # type: ignore[union-attr]


def serve(bootstrap: str) -> None:
    """Run until SIGTERM/SIGINT, announcing readiness on stdout with one `BROKER READY <address>` line."""
    host, port = bootstrap.rsplit(":", 1)
    cluster = MockCluster()
    try:
        relay = Relay(host, int(port), cluster.address)
    except OSError as exc:
        sys.exit(f"qp broker: cannot listen on {bootstrap}: {exc.strerror}")
    relay.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"BROKER READY {relay.address} (mock cluster at {cluster.address})", flush=True)
    stop.wait()
    relay.stop()
    cluster.close()


def run(args: argparse.Namespace) -> int:
    """`qp broker`."""
    from quarantine_platform import settings

    serve(args.bootstrap or settings.get("QP_KAFKA_BOOTSTRAP"))
    return 0
