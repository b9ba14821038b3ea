"""A real gRPC health server for the probing tests (grpcio + grpcio-health-checking), run as a
subprocess so grpcio's threads never live in the pytest process. Prints its port, then serves
until stdin closes. Services: "" and "ok" SERVING, "down" NOT_SERVING; any other is unknown."""

from __future__ import annotations

import sys
from concurrent import futures

import grpc  # type: ignore[import-untyped]
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("ok", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("down", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(grace=None).wait()


if __name__ == "__main__":
    main()
