"""Readers of the OTLP file formats, one module each (`ingest/readers.py` picks one per file and re-exports
the public names): `common` (records, JSON decoding, payload caps), `stream` (opening, gzip, sniffing),
`jsonl`, `json_values` (JSON documents and arrays) and `protobuf` (OTLP/HTTP bodies)."""
