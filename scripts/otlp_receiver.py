#!/usr/bin/env python3
"""A small OTLP/HTTP trace receiver for tests: what a collector would get, as JSON lines.

    scripts/otlp_receiver.py --port PORT --out SPANS.jsonl [--port-file FILE]

Listens on 127.0.0.1:PORT (0 picks a free port, written to --port-file), decodes every
`ExportTraceServiceRequest` (protobuf, optionally gzip) POSTed to /v1/traces with PyPI's
`opentelemetry-proto`, and appends one JSON object per span to SPANS.jsonl:

    {"trace_id", "span_id", "parent_span_id" (hex, "" for a root), "name", "kind",
     "start_ns", "end_ns", "duration_ns", "service", "status", "attributes": {...}}

It answers an empty `ExportTraceServiceResponse`, as a collector does. Anything else it
is sent is answered 404 (another path) or 400 (a body that does not decode).
"""

import argparse
import gzip
import http.server
import json
import threading

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


def any_value(value):
    """The Python value of an OTLP AnyValue."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def spans_of(request):
    """Every span of an ExportTraceServiceRequest, as a dict."""
    for resource_spans in request.resource_spans:
        resource = {kv.key: any_value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield {
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "name": span.name,
                    "kind": span.kind,
                    "start_ns": span.start_time_unix_nano,
                    "end_ns": span.end_time_unix_nano,
                    "duration_ns": span.end_time_unix_nano - span.start_time_unix_nano,
                    "service": resource.get("service.name"),
                    "status": span.status.code,
                    "attributes": {kv.key: any_value(kv.value) for kv in span.attributes},
                }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--out", required=True)
    parser.add_argument("--port-file")
    args = parser.parse_args()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if self.path.split("?")[0] != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            try:
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
            except (DecodeError, OSError) as e:
                self.send_response(400)
                self.end_headers()
                self.wfile.write(str(e).encode())
                return
            lines = [json.dumps(span, sort_keys=True) + "\n" for span in spans_of(request)]
            with lock, open(args.out, "a", encoding="utf-8") as out:
                out.writelines(lines)
            answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.port_file:
        with open(args.port_file, "w", encoding="utf-8") as f:
            f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
