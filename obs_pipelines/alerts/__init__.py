"""Alerts: rules over the rollup tables, evaluated as asset checks, delivered through an outbox."""
