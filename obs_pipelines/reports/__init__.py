"""Reports: the dashboard page and the SLA reports (HTML + charts + JSON figures), read from the rollup and
alert tables only (never the raw spans). Plain modules; ``defs.py`` wires them into Dagster."""
