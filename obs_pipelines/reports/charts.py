"""Charts of the reports: Vega-Lite specs built with altair, rendered to SVG (inlined in the HTML, no script,
no network) and PNG by vl-convert, which runs Vega in-process: no browser, no server.

Static SVG has no tooltips, so the specs carry none. Each builder takes a tidy frame and returns an
``altair.Chart``, or None when the frame has no data point (the page then says "no data" instead of drawing
empty axes).
"""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import pandas as pd
import vl_convert as vlc

WIDTH, HEIGHT = 560, 220
TOP_SERIES = 8  # lines per chart: more colours than this cannot be told apart; the tables hold every value


@dataclass
class Rendered:
    name: str
    title: str
    svg: str
    points: int  # data points drawn (rows of the chart's data)

    def png(self, scale: float = 1.0) -> bytes:
        return vlc.svg_to_png(self.svg, scale=scale)


def _utc(series: pd.Series) -> pd.Series:
    """Naive-UTC timestamps as ISO strings with a Z: Vega parses them as UTC, whatever the machine's zone."""
    return pd.to_datetime(series).dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _time_axis(field: str, title: str) -> alt.X:
    return alt.X(f"{field}:T", title=title, scale=alt.Scale(type="utc"), axis=alt.Axis(labelOverlap=True))


def _clean(frame: pd.DataFrame, y: str) -> pd.DataFrame:
    frame = frame[frame[y].notna()].copy()
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = _utc(frame[column])
    return frame


def top_values(frame: pd.DataFrame, key: str, weight: str, n: int = TOP_SERIES) -> pd.DataFrame:
    """Rows of the ``n`` values of ``key`` with the largest total ``weight``."""
    keep = frame.groupby(key)[weight].sum().sort_values(ascending=False, kind="stable").head(n).index
    return frame[frame[key].isin(keep)]


def time_lines(frame: pd.DataFrame, *, t: str, y: str, title: str, y_title: str, color: str | None = None,
               y_format: str = "~s", legend: str | None = None) -> alt.Chart | None:
    data = _clean(frame, y)
    if data.empty:
        return None
    encoding = {"x": _time_axis(t, "UTC"), "y": alt.Y(f"{y}:Q", title=y_title, axis=alt.Axis(format=y_format))}
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=legend or color,
                                      legend=alt.Legend(orient="right", labelLimit=160))
    return alt.Chart(data, title=title).mark_line(point=len(data) <= 60).encode(**encoding)


def stacked_bars(frame: pd.DataFrame, *, t: str, y: str, color: str, title: str, y_title: str,
                 y_format: str = "~s", legend: str | None = None) -> alt.Chart | None:
    """One bar per day, stacked by ``color`` (the hourly rows summed here: one segment per value)."""
    data = frame[frame[y].notna()]
    if data.empty:
        return None
    data = data.assign(day=pd.to_datetime(data[t]).dt.strftime("%Y-%m-%d")).groupby(
        ["day", color], as_index=False)[y].sum()
    return alt.Chart(data, title=title).mark_bar().encode(
        x=alt.X("day:O", title="day (UTC)", axis=alt.Axis(labelAngle=-45)),
        y=alt.Y(f"{y}:Q", title=y_title, axis=alt.Axis(format=y_format)),
        color=alt.Color(f"{color}:N", title=legend or color, legend=alt.Legend(orient="right", labelLimit=160)))


def hbars(frame: pd.DataFrame, *, label: str, x: str, title: str, x_title: str, x_format: str = "~s",
          rule: float | None = None) -> alt.Chart | None:
    data = _clean(frame, x)
    if data.empty:
        return None
    bars = alt.Chart(data, title=title).mark_bar().encode(
        y=alt.Y(f"{label}:N", sort="-x", title=None, axis=alt.Axis(labelLimit=220)),
        x=alt.X(f"{x}:Q", title=x_title, axis=alt.Axis(format=x_format)))
    if rule is None:
        return bars
    return alt.layer(bars, alt.Chart(pd.DataFrame({"target": [rule]})).mark_rule(color="firebrick").encode(
        x="target:Q"), title=title)


def compare_lines(this: pd.DataFrame, previous: pd.DataFrame, *, x: str, y: str, title: str, x_title: str,
                  y_title: str, labels: tuple[str, str], y_format: str = "~s") -> alt.Chart | None:
    """This period against the previous one, aligned on the offset from each period's start."""
    frame = pd.concat([this.assign(period=labels[0]), previous.assign(period=labels[1])], ignore_index=True)
    data = _clean(frame, y) if y in frame else frame.iloc[0:0]
    if data.empty:
        return None
    return alt.Chart(data, title=title).mark_line(point=True).encode(
        x=alt.X(f"{x}:Q", title=x_title, axis=alt.Axis(format="d", tickMinStep=1)),
        y=alt.Y(f"{y}:Q", title=y_title, axis=alt.Axis(format=y_format)),
        color=alt.Color("period:N", sort=list(labels), scale=alt.Scale(range=["#1f77b4", "#bbbbbb"])))


def render(name: str, chart: alt.Chart | alt.LayerChart | None) -> Rendered | None:
    """The chart as SVG (None stays None). The spec carries its data inline: nothing is fetched."""
    if chart is None:
        return None
    spec = chart.properties(width=WIDTH, height=HEIGHT).to_dict(validate=False)  # built here: valid by construction
    title = spec.get("title")
    title = title.get("text") if isinstance(title, dict) else title
    points = sum(len(d) for d in spec.get("datasets", {}).values())
    return Rendered(name, str(title or name), vlc.vegalite_to_svg(spec), points)
