"""The traffic model: Poisson arrivals with a diurnal rate, routes by share, a Zipf-Mandelbrot user
population with idle-timeout sessions; one master random stream, one seed per trace."""

from __future__ import annotations

import math
import random
import uuid
from bisect import bisect
from collections.abc import Iterator, Sequence
from datetime import datetime

from obs_pipelines.synth.catalog import (
    ROUTES,
)
from obs_pipelines.synth.incidents import Incident
from obs_pipelines.synth.routes import ROUTE_CUM, build_trace
from obs_pipelines.synth.trace_builder import (
    EPOCH,
    NO_EFFECTS,
    US_PER_S,
    ActiveIncident,
    effects_at,
    to_us,
)

# ---- traffic ----------------------------------------------------------------------------------------
DIURNAL_AMPLITUDE = 0.6
DIURNAL_PEAK_HOUR_UTC = 15.0  # US morning / EU afternoon
N_USERS = 20_000
ZIPF_S, ZIPF_Q = 1.05, 5.0
SESSION_IDLE_S = 30 * 60
SESSION_MAX_S = 2 * 3600


def diurnal_factor(t: datetime | float) -> float:
    """Traffic multiplier at a UTC time (datetime or epoch seconds); its mean over a day is 1."""
    secs = (t - EPOCH).total_seconds() if isinstance(t, datetime) else t
    hour = (secs % 86400) / 3600.0
    return 1.0 + DIURNAL_AMPLITUDE * math.cos(2 * math.pi * (hour - DIURNAL_PEAK_HOUR_UTC) / 24.0)


# =====================================================================================================
# traffic
# =====================================================================================================


class _Users:
    """A Zipf-Mandelbrot population (a few heavy users dominate) with 30-minute idle sessions."""

    def __init__(self, seed: int):
        prng = random.Random(f"synth-users-{seed}")
        self.ids = [f"user_{prng.getrandbits(40):010x}" for _ in range(N_USERS)]
        cum, acc = [], 0.0
        for k in range(1, N_USERS + 1):
            acc += 1.0 / (k + ZIPF_Q) ** ZIPF_S
            cum.append(acc)
        self.cum = cum
        self.total = acc
        # user index -> [session id, last request us, turns so far, session start us]
        self.sessions: dict[int, list] = {}

    def pick(self, rng: random.Random, t_us: int) -> tuple[str, str, int]:
        i = bisect(self.cum, rng.random() * self.total)
        if i >= N_USERS:
            i = N_USERS - 1
        s = self.sessions.get(i)
        if s is None or t_us - s[1] > SESSION_IDLE_S * US_PER_S or t_us - s[3] > SESSION_MAX_S * US_PER_S:
            b = rng.getrandbits(128)
            s = [str(uuid.UUID(int=b, version=4)), t_us, 0, t_us]
            self.sessions[i] = s
        else:
            s[1] = t_us
            s[2] += 1
        return self.ids[i], s[0], s[2]


def generate_traces(
    start: datetime,
    hours: float,
    rate: float,
    seed: int,
    incidents: Sequence[Incident] = (),
) -> Iterator[list[dict]]:
    """Yield traces (lists of `spans` contract rows) in start-time order over ``[start, start + hours)``.

    ``rate`` is the mean number of traces per second; arrivals are Poisson with a diurnal rate
    ``rate * diurnal_factor(t)`` (peak at 15:00 UTC, trough at 03:00 UTC). Same arguments -> same rows.
    """
    return _generate(start, hours, rate, seed, incidents, datetimes=True)


def _generate(
    start: datetime,
    hours: float,
    rate: float,
    seed: int,
    incidents: Sequence[Incident],
    datetimes: bool,
) -> Iterator[list[dict]]:
    active = [ActiveIncident(i) for i in incidents]
    trace_rng = random.Random()
    for trace_seed, t_us, route, user_id, session_id, turn in arrival_stream(start, hours, rate, seed):
        trace_rng.seed(trace_seed)
        fx = effects_at(active, t_us) if active else NO_EFFECTS
        yield build_trace(trace_rng, fx, t_us, route, user_id, session_id, turn, datetimes)


# (trace_seed, start us, route, user_id, session_id, turn): all a trace needs from the master stream
Arrival = tuple[int, int, str, str, str, int]


def arrival_stream(start: datetime, hours: float, rate: float, seed: int) -> Iterator[Arrival]:
    """The master stream, in start-time order: cheap, sequential, and independent of incidents."""
    if rate < 0 or hours < 0:
        raise ValueError("rate and hours must be >= 0")
    if rate == 0 or hours == 0:
        return
    t0 = to_us(start)
    t_end = t0 + int(hours * 3600 * US_PER_S)
    master = random.Random(seed)
    users = _Users(seed)
    lam_max = rate * (1.0 + DIURNAL_AMPLITUDE)
    t_s = t0 / US_PER_S
    end_s = t_end / US_PER_S
    expo, rnd, bits = master.expovariate, master.random, master.getrandbits
    routes = ROUTES
    cum = ROUTE_CUM
    amp, peak = DIURNAL_AMPLITUDE, DIURNAL_PEAK_HOUR_UTC
    two_pi_24 = 2 * math.pi / 24.0
    cos = math.cos
    pick = users.pick
    while True:
        t_s += expo(lam_max)
        if t_s >= end_s:
            return
        # thinning: accept with probability rate(t) / lam_max
        hour = (t_s % 86400) / 3600.0
        accept = rnd() * (1.0 + amp) < 1.0 + amp * cos(two_pi_24 * (hour - peak))
        trace_seed = bits(64)
        if not accept:
            continue
        t_us = int(t_s * US_PER_S)
        route = routes[bisect(cum, rnd() * cum[-1])]
        user_id, session_id, turn = pick(master, t_us)
        yield trace_seed, t_us, route, user_id, session_id, turn
