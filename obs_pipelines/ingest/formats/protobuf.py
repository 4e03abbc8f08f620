"""OTLP/HTTP protobuf bodies, streamed one top-level ResourceSpans (or, for a huge one, one Span) at a
time."""

from __future__ import annotations

from collections.abc import Iterator

from obs_pipelines.ingest.formats.common import CHUNK, Record, escape_raw
from obs_pipelines.ingest.limits import DEFAULT_LIMITS, IngestLimits

# resourceSpans of a protobuf request mapped together (route / user propagation works inside a group)
PROTOBUF_GROUP_SPANS = 20_000


def _read_varint(stream) -> int | None:
    v = _read_varint_n(stream)
    return None if v is None else v[0]


def _read_varint_n(stream) -> tuple[int, int] | None:
    """(value, bytes read) of a varint; None at a clean end of stream."""
    shift = 0
    result = 0
    n = 0
    while True:
        b = stream.read(1)
        if not b:
            if n == 0:
                return None
            raise ValueError("truncated varint")
        n += 1
        byte = b[0]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, n
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _read_field(stream) -> tuple[int, int, int, int] | None:
    """(field number, wire type, value or length, bytes of the key and length) of the next field."""
    kv = _read_varint_n(stream)
    if kv is None:
        return None
    key, n = kv
    field, wire = key >> 3, key & 7
    if field == 0:  # illegal in protobuf: not protobuf data (a run of zeros, text ...)
        raise ValueError("field number 0")
    if wire == 2 or wire == 0:
        v = _read_varint_n(stream)
        if v is None:
            raise ValueError("truncated field")
        return field, wire, v[0], n + v[1]
    if wire == 1:
        return field, wire, 8, n
    if wire == 5:
        return field, wire, 4, n
    raise ValueError(f"unsupported wire type {wire}")


def _read_exact(stream, length: int, limits: IngestLimits = DEFAULT_LIMITS) -> bytes:
    """`length` bytes, read in chunks: a forged length (2**62) meets the end of the file, not a
    MemoryError."""
    if length > limits.max_line_bytes:
        raise ValueError(f"message of {length} bytes exceeds max_line_bytes ({limits.max_line_bytes})")
    if length <= CHUNK:
        data = stream.read(length)
    else:
        parts = []
        left = length
        while left:
            part = stream.read(min(left, CHUNK))
            if not part:
                break
            parts.append(part)
            left -= len(part)
        data = b"".join(parts)
    if len(data) != length:
        raise ValueError(f"truncated message: {len(data)} of {length} bytes")
    return data


def _skip(stream, length: int) -> None:
    """Pass over `length` bytes without holding them (ignored fields, over-long messages)."""
    left = length
    while left:
        part = stream.read(min(left, CHUNK))
        if not part:
            raise ValueError(f"truncated message: {length - left} of {length} bytes")
        left -= len(part)


# ResourceSpans up to this size are parsed whole; bigger ones are walked field by field (one Span at a time)
PROTOBUF_WHOLE_MAX = 16 * 2**20
# a request has only field 1 at the top level: a long run of other fields is not OTLP (and is read slowly)
PROTOBUF_MAX_UNKNOWN_FIELDS = 1000


def iter_protobuf(stream, source: str, limits: IngestLimits = DEFAULT_LIMITS) -> Iterator[Record]:
    """An ExportTraceServiceRequest, streamed: its top-level field 1 (repeated ResourceSpans) is read one
    message at a time and converted with json_format.MessageToDict; groups of resourceSpans up to about
    PROTOBUF_GROUP_SPANS spans make one record. A ResourceSpans bigger than PROTOBUF_WHOLE_MAX is walked
    field by field, one Span at a time (its resource must precede its scope spans, as serializers write)."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.trace.v1 import trace_pb2

    whole_max = min(PROTOBUF_WHOLE_MAX, limits.max_line_bytes)
    group: list[dict] = []
    group_spans = 0
    first = 0
    index = 0
    unknown = 0
    while True:
        try:
            f = _read_field(stream)
            if f is None:
                break
            field, wire, length, _ = f
            if wire != 2 or field != 1:
                unknown += 1
                if unknown > PROTOBUF_MAX_UNKNOWN_FIELDS:
                    raise ValueError(f"over {PROTOBUF_MAX_UNKNOWN_FIELDS} unknown top-level fields in a row (not OTLP)")
                if wire != 0:
                    _skip(stream, length)
                continue  # unknown top-level field: ignored, like protobuf parsers do
            unknown = 0
            if length > whole_max:
                if group:
                    yield Record(source, _group_loc(first, index), payload={"resourceSpans": group})
                    group, group_spans = [], 0
                yield from _iter_big_resource_spans(stream, length, source, index, limits)
                index += 1
                first = index
                continue
            data = _read_exact(stream, length, limits)
        except ValueError as exc:
            yield Record(source, f"resourceSpans[{index}]", error=f"invalid protobuf: {exc}", raw="")
            break
        msg = trace_pb2.ResourceSpans()
        try:
            msg.ParseFromString(data)
        except DecodeError as exc:
            yield Record(
                source,
                f"resourceSpans[{index}]",
                error=f"invalid protobuf ResourceSpans: {exc}",
                raw=escape_raw(data[:4096].hex()),
            )
            index += 1
            continue
        group.append(json_format.MessageToDict(msg))
        group_spans += sum(len(ss.spans) for ss in msg.scope_spans)
        index += 1
        if group_spans >= PROTOBUF_GROUP_SPANS or len(group) >= PROTOBUF_GROUP_SPANS:  # empty ones count too
            yield Record(source, _group_loc(first, index), payload={"resourceSpans": group})
            group, group_spans, first = [], 0, index
    if group:
        yield Record(source, _group_loc(first, index), payload={"resourceSpans": group})


def _iter_big_resource_spans(
    stream, length: int, source: str, index: int, limits: IngestLimits = DEFAULT_LIMITS
) -> Iterator[Record]:
    """One huge ResourceSpans message, field by field: records of up to PROTOBUF_GROUP_SPANS spans, each a
    request with the resource, the scope, and a slice of that scope's spans. Raises ValueError on
    truncation (the caller records it)."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    resource: dict = {}
    remaining = length
    si = 0
    while remaining > 0:
        f = _read_field(stream)
        if f is None:
            raise ValueError("truncated ResourceSpans")
        field, wire, flen, head = f
        remaining -= head + (flen if wire != 0 else 0)
        if wire == 2 and field == 1:
            msg = resource_pb2.Resource()
            msg.ParseFromString(_read_exact(stream, flen, limits))
            resource = json_format.MessageToDict(msg)
            continue
        if not (wire == 2 and field == 2):
            if wire != 0:
                _skip(stream, flen)
            continue
        # one ScopeSpans: scope, then its spans one at a time
        scope: dict = {}
        spans: list[dict] = []
        first_span = 0
        n_span = 0
        inner = flen
        loc = f"resourceSpans[{index}].scopeSpans[{si}]"
        while inner > 0:
            g = _read_field(stream)
            if g is None:
                raise ValueError("truncated ScopeSpans")
            gfield, gwire, glen, ghead = g
            inner -= ghead + (glen if gwire != 0 else 0)
            if gwire == 2 and gfield == 2 and glen > limits.max_line_bytes:
                _skip(stream, glen)
                yield Record(source, f"{loc}.spans[{n_span}]", raw="",
                             error=f"protobuf Span of {glen} bytes exceeds max_line_bytes ({limits.max_line_bytes}); skipped")  # fmt: skip
                n_span += 1
                continue
            if gwire != 0 and not (gwire == 2 and gfield in (1, 2)):
                _skip(stream, glen)
                continue
            data = _read_exact(stream, glen, limits) if gwire != 0 else b""
            if gwire == 2 and gfield == 1:
                msg = common_pb2.InstrumentationScope()
                msg.ParseFromString(data)
                scope = json_format.MessageToDict(msg)
            elif gwire == 2 and gfield == 2:
                span = trace_pb2.Span()
                try:
                    span.ParseFromString(data)
                except DecodeError as exc:
                    yield Record(source, f"{loc}.spans[{n_span}]", error=f"invalid protobuf Span: {exc}",
                                 raw=escape_raw(data[:4096].hex()))  # fmt: skip
                    n_span += 1
                    continue
                spans.append(json_format.MessageToDict(span))
                n_span += 1
                if len(spans) >= PROTOBUF_GROUP_SPANS:
                    yield _big_record(source, loc, first_span, n_span, resource, scope, spans)
                    spans, first_span = [], n_span
        if spans:
            yield _big_record(source, loc, first_span, n_span, resource, scope, spans)
        si += 1


def _big_record(source, loc, first, end, resource, scope, spans) -> Record:
    payload = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": scope, "spans": spans}]}]}
    return Record(source, f"{loc}.spans[{first}:{end}]", payload=payload)


def _group_loc(first: int, end: int) -> str:
    return f"resourceSpans[{first}]" if end - first == 1 else f"resourceSpans[{first}:{end}]"
