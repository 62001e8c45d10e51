"""Logs and traces in simulated time (question 5C), beside the metrics of ``ctx.metrics``.

* **Logs**: stdlib ``logging`` with a JSON formatter, one object per line, timestamped with the
  *simulated* time (``ts``, seconds) and carrying the event's fields (``client``, ``server``,
  ``reason``, ...). Each run has its own logger (no global handler), kept in memory.
* **Traces**: the **OpenTelemetry SDK** (``opentelemetry-sdk``) with an in-memory span exporter
  and its own ``TracerProvider`` (never the global one). Spans are recorded after the fact with
  explicit start and end times from the simulated clock (nanoseconds), so parent and child spans
  nest in simulated time; trace and span ids come from a seeded stream, so the same seed gives the
  same ids.

What each costs is measured on the run: bytes of log lines per second, bytes of spans (their
OTLP-like JSON) per second, next to the metric series.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any, Iterable

import simpy

NS = 1_000_000_000


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (simulated s), ``level``, ``logger``, ``msg`` and the
    record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(getattr(record, "sim_time", 0.0), 6), "level": record.levelname,
               "logger": getattr(record, "service", record.name), "msg": record.getMessage()}
        out.update(getattr(record, "fields", {}))
        return json.dumps(out, separators=(",", ":"), sort_keys=False)


class _SimTime(logging.Filter):
    def __init__(self, env: simpy.Environment, service: str) -> None:
        super().__init__()
        self.env, self.service = env, service

    def filter(self, record: logging.LogRecord) -> bool:
        record.sim_time = self.env.now
        record.service = self.service  # the same name in every run (the logger object is per run)
        return True


class RunLog:
    """A run's structured log: ``log.info("client disconnected", client=..., reason=...)``."""

    _count = 0

    def __init__(self, env: simpy.Environment, name: str = "sim") -> None:
        RunLog._count += 1
        # a logger of its own per run (never the root logger): several runs in one process stay apart
        self.logger = logging.getLogger(f"{name}.run{RunLog._count}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.buffer = io.StringIO()
        handler = logging.StreamHandler(self.buffer)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(_SimTime(env, name))
        self.logger.handlers[:] = [handler]
        self.logger_name = name

    def info(self, msg: str, **fields: Any) -> None:
        self.logger.info(msg, extra={"fields": fields})

    def warning(self, msg: str, **fields: Any) -> None:
        self.logger.warning(msg, extra={"fields": fields})

    def lines(self) -> list[str]:
        return self.buffer.getvalue().splitlines()

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.lines()]

    def bytes(self) -> int:
        return len(self.buffer.getvalue().encode("utf-8"))


class _SeededIds:
    """OpenTelemetry ``IdGenerator`` drawing ids from a seeded numpy stream (deterministic)."""

    def __init__(self, rng) -> None:
        self.rng = rng

    def generate_span_id(self) -> int:
        return int(self.rng.integers(1, 2**63)) | (int(self.rng.integers(0, 2)) << 63)

    def generate_trace_id(self) -> int:
        return (int(self.rng.integers(1, 2**63)) << 64) | int(self.rng.integers(0, 2**63))


class Tracer:
    """Spans of one run, recorded with simulated start and end times (see the module docstring)."""

    def __init__(self, rng, service: str = "realtime") -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.sdk.trace.id_generator import IdGenerator

        class Ids(_SeededIds, IdGenerator):
            pass

        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}), id_generator=Ids(rng))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("sim.monitoring")

    def record(self, name: str, start_s: float, end_s: float, parent=None, kind: str = "INTERNAL",
               **attributes: Any):
        """One finished span from ``start_s`` to ``end_s`` (simulated seconds), child of ``parent``."""
        from opentelemetry import trace

        context = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(name, context=context, kind=getattr(trace.SpanKind, kind),
                                      start_time=int(round(start_s * NS)), attributes=attributes)
        span.end(end_time=int(round(end_s * NS)))
        return span

    def spans(self):
        return list(self.exporter.get_finished_spans())

    def frame(self):
        """Every span: ``trace_id, span_id, parent_id, name, kind, start_s, end_s, duration_s`` + attributes."""
        import pandas as pd

        rows = []
        for s in self.spans():
            rows.append({"trace_id": f"{s.context.trace_id:032x}", "span_id": f"{s.context.span_id:016x}",
                         "parent_id": f"{s.parent.span_id:016x}" if s.parent is not None else "",
                         "name": s.name, "kind": s.kind.name, "start_s": s.start_time / NS, "end_s": s.end_time / NS,
                         "duration_s": (s.end_time - s.start_time) / NS, **dict(s.attributes or {})})
        return pd.DataFrame(rows)

    def bytes(self) -> int:
        """Size of every span as the SDK's JSON (about what an OTLP/JSON exporter sends)."""
        return sum(len(s.to_json(indent=None).encode("utf-8")) for s in self.spans())


def message_trace(tracer: Tracer, msg_id: int, client: str, server: str, published: float, submitted: float,
                  started: float, finished: float, delivered: float, backlogged: bool):
    """One message's journey gateway -> broker -> node -> client as a trace: the root span covers it
    all; the broker's span lasts until the node takes the message (a backlog wait included), the
    node's until it sends it, with its queue wait as a child, and the delivery over the network."""
    root = tracer.record("gateway publish", published, delivered, kind="PRODUCER",
                         **{"message.id": msg_id, "client": client})
    tracer.record("broker route", published, submitted, parent=root, kind="INTERNAL",
                  **{"broker.backlogged": backlogged})
    node = tracer.record("node process", submitted, finished, parent=root, kind="SERVER", **{"server": server})
    tracer.record("node queue wait", submitted, started, parent=node, kind="INTERNAL")
    tracer.record("network deliver", finished, delivered, parent=root, kind="CLIENT", **{"client": client})
    return root
