"""The report as one HTML file: plotly figures, plotly.js embedded once (opens offline)."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from distdl.core.codes import describe
from distdl.core.eta import eta_from_json, format_duration, format_range
from distdl.core.timeseries import Point
from distdl.report.data import ReportData

THROUGHPUT = "Throughput over time"
HOST_RATES = "Budget and refusals of the hosts that set the ETA"
ERROR_CODES = "Error rows by code"
IMAGE_SIZES = "Image sizes (originals)"
CRITICAL = "Hosts that set the ETA"
TITLES = (THROUGHPUT, HOST_RATES, ERROR_CODES, IMAGE_SIZES, CRITICAL)
HOSTS_PLOTTED = 6

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } .facts { columns: 2; font-size: 0.95em; }
.plot { margin: 1.5em 0; border-top: 1px solid #ddd; } .empty { color: #888; }
"""


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def _mid(point: Point) -> datetime:
    return _when(point.start + point.span / 2)


def _per_second(points: list[Point], key: str, scale: float = 1.0) -> list[float | None]:
    """A series' rates; a point that covers no time (a series' opening sample) has none."""
    return [
        point.counts.get(key, 0.0) / point.span / scale if point.span > 0 else None
        for point in points
    ]


def _empty(title: str, why: str) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(title=title, height=260)
    figure.add_annotation(text=why, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def throughput_figure(points: list[Point]) -> go.Figure:
    if not points:
        return _empty(THROUGHPUT, "no metrics yet: they are recorded while a download runs")
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    times = [_mid(point) for point in points]
    figure.add_scatter(x=times, y=_per_second(points, "images"), name="images/s")
    figure.add_scatter(x=times, y=_per_second(points, "requests"), name="requests/s")
    figure.add_scatter(x=times, y=_per_second(points, "rate_limited"), name="429/s")
    figure.add_scatter(x=times, y=_per_second(points, "bytes", 1e6), name="MB/s", secondary_y=True)
    figure.update_layout(title=THROUGHPUT, height=380)
    figure.update_yaxes(title_text="per second", secondary_y=False)
    figure.update_yaxes(title_text="MB/s", secondary_y=True)
    return figure


def host_rates_figure(hosts: dict[str, list[Point]], critical: list[str]) -> go.Figure:
    names = [name for name in critical if hosts.get(name)]
    names += [name for name in hosts if name not in names and hosts[name]]
    names = names[:HOSTS_PLOTTED]
    if not names:
        return _empty(HOST_RATES, "no host series yet")
    figure = make_subplots(rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names)
    for row, name in enumerate(names, start=1):
        points = hosts[name]
        times = [_mid(point) for point in points]
        series = [
            ("budget req/s", [point.gauges.get("budget") for point in points], "#1f77b4", "b"),
            ("requests/s", _per_second(points, "requests"), "#2ca02c", "r"),
            ("429/s", _per_second(points, "rate_limited"), "#d62728", "t"),
            ("5xx/s", _per_second(points, "server_errors"), "#ff7f0e", "s"),
        ]
        for label, values, color, group in series:
            figure.add_scatter(
                x=times,
                y=values,
                name=label,
                row=row,
                col=1,
                line={"color": color},
                showlegend=row == 1,
                legendgroup=group,
            )
    figure.update_layout(title=HOST_RATES, height=220 * len(names) + 120)
    return figure


def error_codes_figure(errors_by_code: dict[str, int]) -> go.Figure:
    if not errors_by_code:
        return _empty(ERROR_CODES, "no error rows")
    codes = sorted(errors_by_code, key=lambda code: -errors_by_code[code])
    labels = [f"{code} {describe(int(code))}" for code in codes]
    figure = go.Figure(go.Bar(x=[errors_by_code[c] for c in codes], y=labels, orientation="h"))
    figure.update_layout(title=ERROR_CODES, height=140 + 28 * len(codes))
    figure.update_yaxes(autorange="reversed")
    figure.update_xaxes(title_text="rows")
    return figure


def image_sizes_figure(sides: list[int], megapixels: list[float]) -> go.Figure:
    if not sides:
        return _empty(IMAGE_SIZES, "no stored image yet")
    figure = make_subplots(rows=1, cols=2, subplot_titles=("longer side, px", "megapixels"))
    figure.add_histogram(x=sides, nbinsx=40, name="longer side", row=1, col=1)
    figure.add_histogram(x=megapixels, nbinsx=40, name="megapixels", row=1, col=2)
    figure.update_layout(title=IMAGE_SIZES, height=340, showlegend=False)
    return figure


def _busy_hours(points: list[Point]) -> float:
    """From a host's first request to its last, in hours."""
    busy = [point for point in points if point.counts.get("requests", 0) > 0]
    if not busy:
        return 0.0
    return (busy[-1].start + busy[-1].span - busy[0].start) / 3600


def finished_figure(hosts: dict[str, list[Point]]) -> go.Figure:
    """Nothing is left: the hosts that set the run's length, by how long each was busy."""
    spans = sorted(((_busy_hours(points), name) for name, points in hosts.items()), reverse=True)
    spans = [(hours, name) for hours, name in spans if hours > 0][:HOSTS_PLOTTED]
    if not spans:
        return _empty(CRITICAL, "nothing left to download")
    figure = go.Figure(go.Bar(x=[h for h, _ in spans], y=[n for _, n in spans], orientation="h"))
    figure.update_layout(
        title=f"{CRITICAL} (all done: how long each was downloaded)",
        height=160 + 40 * len(spans),
    )
    figure.update_yaxes(autorange="reversed")
    figure.update_xaxes(title_text="hours from its first request to its last")
    return figure


def critical_figure(eta: dict[str, Any], hosts: dict[str, list[Point]]) -> go.Figure:
    critical = eta["critical"]
    if not critical:
        return finished_figure(hosts)
    names = [host["server_name"] for host in critical]
    high = [(host["seconds_high"] or 0.0) / 3600 for host in critical]
    low = [(host["seconds_low"] or 0.0) / 3600 for host in critical]
    hover = [
        f"{host['rows_left']} rows at {host['rate']:g} req/s (up to {host['best_rate']:g}); "
        f"{host['limited_by']}"
        for host in critical
    ]
    figure = go.Figure()
    figure.add_bar(x=high, y=names, orientation="h", name="at its budget now", hovertext=hover)
    figure.add_bar(x=low, y=names, orientation="h", name="at its best rate", hovertext=hover)
    figure.update_layout(title=CRITICAL, height=160 + 50 * len(names), barmode="group")
    figure.update_yaxes(autorange="reversed")
    figure.update_xaxes(title_text="hours of work left")
    return figure


def _facts(data: ReportData) -> list[str]:
    status = data.status
    rows, parts = status["rows"], status["partitions"]
    facts = [
        f"rows stored: {rows['stored']} of {rows['planned']} "
        f"({rows['successes']} images, {rows['errors']} errors)",
        f"partitions: {parts['done']} of {parts['planned']} done",
        f"rejected at planning: {rows['rejected']}",
    ]
    estimate = eta_from_json(status["eta"])
    if estimate.critical:
        facts.append(f"time left: {format_range(estimate)}")
    run = status["run"]
    if run is not None:
        rates = run["rates"]
        facts.append(
            f"last run: {run['ended'] or ('running' if run['active'] else 'interrupted')} "
            f"after {format_duration(run['elapsed_s'])}, {rates['images_per_s']:.1f} img/s"
        )
    if data.runs:
        facts.append(
            f"runs recorded: {len(data.runs)}, first {_when(data.runs[0]):%Y-%m-%d %H:%M} UTC"
        )
    return facts


def render(data: ReportData) -> str:
    status = data.status
    figures = [
        throughput_figure(data.total),
        host_rates_figure(data.hosts, [h["server_name"] for h in status["eta"]["critical"]]),
        error_codes_figure(status["rows"]["errors_by_code"]),
        image_sizes_figure(data.longer_sides, data.megapixels),
        critical_figure(status["eta"], data.hosts),
    ]
    plots = "\n".join(
        f'<div class="plot">{figure.to_html(full_html=False, include_plotlyjs=False)}</div>'
        for figure in figures
    )
    facts = "".join(f"<li>{html.escape(fact)}</li>" for fact in _facts(data))
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f"<title>distdl report: {html.escape(data.title)}</title>"
        f"<style>{_STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
        f'<h1>distdl report: {html.escape(data.title)}</h1><ul class="facts">{facts}</ul>'
        f"{plots}</body></html>\n"
    )
