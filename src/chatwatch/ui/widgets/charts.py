"""Figures and tables of the dashboard, built from query results only (no Streamlit, no
store): each is a pure function, so tests check them without running the app.

Figures never carry text from prompts, replies or errors (only model ids, numbers and our
own labels); tables do, and they are shown with st.dataframe, which renders cells as text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from chatwatch.i18n import t
from chatwatch.reports.queries import FeedbackCount, Histogram, Summary
from chatwatch.store import histogram
from chatwatch.store.record import RequestRecord, exact_usd
from chatwatch.ui.widgets.format import MB, NONE, fmt_time, label

PALETTE = qualitative.Plotly
ERROR_COLOR = "#d62728"
TTFT_BINS_PER_GROUP = 4  # histogram buckets are 5 % wide: 4 together (~22 %) read better
_LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.2), hovermode="x unified")
# Numeric dates on every time axis: Plotly's default ticks and hover headers spell month
# and day names in English ("Dec 1, 2026") whatever the page's language.
DATE_TICKS = "%d/%m %H:%M"
DATE_HOVER = "%d/%m/%Y %H:%M"


Colors = Mapping[str, str] | None


def model_colors(models: Sequence[str]) -> dict[str, str]:
    """One color per model (sorted, so stable). Build it once from every model of a view
    and pass it to each chart, so a model keeps its color even in a chart it is absent
    from (e.g. no TTFT when all its requests failed)."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(sorted(set(models)))}


def _colors(colors: Colors, models) -> Mapping[str, str]:
    if colors is not None and set(models) <= set(colors):
        return colors
    return model_colors(models)


def _figure(title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, **_LAYOUT)
    return fig


def _dates(fig: go.Figure) -> go.Figure:
    """Every x axis of a time chart with numeric dates (see DATE_TICKS)."""
    fig.update_xaxes(type="date", tickformat=DATE_TICKS, hoverformat=DATE_HOVER)
    return fig


# --- charts ---------------------------------------------------------------------------------


def model_share(per_model: Sequence[Summary], lang: str, colors: Colors = None) -> go.Figure:
    """Share of requests per model (a pie)."""
    models = [s.model or "?" for s in per_model]
    colors = _colors(colors, models)
    fig = _figure(t("dash.chart.share", lang))
    fig.add_trace(
        go.Pie(
            labels=models,
            values=[s.requests for s in per_model],
            sort=False,
            hole=0.4,
            marker=dict(colors=[colors[m] for m in models]),
            textinfo="percent+label",
        )
    )
    fig.update_layout(hovermode="closest")
    return fig


def requests_errors(ts: pd.DataFrame, lang: str, colors: Colors = None) -> go.Figure:
    """Requests per model (stacked bars) and all errors (a line) per time bucket."""
    fig = _figure(t("dash.chart.requests", lang))
    colors = _colors(colors, ts["model"])
    for model, part in ts.groupby("model", sort=True):
        fig.add_trace(go.Bar(x=part["bucket"], y=part["requests"], name=str(model), marker_color=colors[model]))
    errors = ts.groupby("bucket", as_index=False)["errors"].sum()
    fig.add_trace(
        go.Scatter(
            x=errors["bucket"],
            y=errors["errors"],
            name=t("dash.series.errors", lang),
            mode="lines+markers",
            line=dict(color=ERROR_COLOR, width=2),
        )
    )
    fig.update_layout(barmode="stack", xaxis_title=t("dash.axis.time", lang), yaxis_title=t("dash.axis.requests", lang))
    return _dates(fig)


def latency_over_time(ts: pd.DataFrame, lang: str, colors: Colors = None) -> go.Figure:
    """Latency p50 (solid) and p95 (dashed) per model and time bucket."""
    fig = _figure(t("dash.chart.latency", lang))
    colors = _colors(colors, ts["model"])
    for model, part in ts.groupby("model", sort=True):
        for column, dash in (("latency_p50_s", "solid"), ("latency_p95_s", "dash")):
            q = column.split("_")[1]
            fig.add_trace(
                go.Scatter(
                    x=part["bucket"],
                    y=part[column],
                    name=f"{model} {q}",
                    mode="lines",
                    legendgroup=str(model),
                    line=dict(color=colors[model], dash=dash),
                )
            )
    fig.update_layout(xaxis_title=t("dash.axis.time", lang), yaxis_title=t("dash.axis.seconds", lang))
    return _dates(fig)


def tokens_cost_over_time(ts: pd.DataFrame, lang: str, colors: Colors = None) -> go.Figure:
    """Tokens (input + output) and cost of priced requests per model and time bucket."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    fig.update_layout(title=t("dash.chart.tokens_cost", lang), **_LAYOUT)
    colors = _colors(colors, ts["model"])
    for model, part in ts.groupby("model", sort=True):
        style = dict(legendgroup=str(model), line=dict(color=colors[model]), mode="lines")
        fig.add_trace(
            go.Scatter(x=part["bucket"], y=part["input_tokens"] + part["output_tokens"], name=str(model), **style),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(x=part["bucket"], y=part["cost_usd"], name=str(model), showlegend=False, **style), row=2, col=1
        )
    fig.update_yaxes(title_text=t("dash.axis.tokens", lang), row=1, col=1)
    fig.update_yaxes(title_text=t("dash.axis.cost", lang), row=2, col=1)
    fig.update_xaxes(title_text=t("dash.axis.time", lang), row=2, col=1)
    return _dates(fig)


def coarse_histogram(frame: pd.DataFrame, per_group: int = TTFT_BINS_PER_GROUP) -> pd.DataFrame:
    """Histogram buckets merged `per_group` at a time (underflow and overflow kept apart):
    model, lo_s, hi_s, x_s (where to draw it on a log axis), count."""
    if frame.empty:
        return pd.DataFrame(columns=["model", "lo_s", "hi_s", "x_s", "count"])
    b = frame["bucket"].to_numpy()
    group = np.where(
        b == histogram.UNDERFLOW, -1, np.where(b == histogram.OVERFLOW, histogram.SIZE, (b - 1) // per_group)
    )
    merged = (
        frame.assign(group=group)
        .groupby(["model", "group"], as_index=False, sort=True)
        .agg(lo_s=("lo_s", "min"), hi_s=("hi_s", "max"), count=("count", "sum"))
    )
    lo, hi = merged["lo_s"].to_numpy(float), merged["hi_s"].to_numpy(float)
    # Geometric middle of a log-spaced bin; the open-ended edge bins sit at their finite bound.
    x = np.where(lo <= 0, hi / 2, np.where(np.isinf(hi), lo, np.sqrt(lo * np.where(np.isinf(hi), 1.0, hi))))
    return merged.assign(x_s=x)[["model", "lo_s", "hi_s", "x_s", "count"]]


def ttft_distribution(hist: Histogram, lang: str, colors: Colors = None) -> go.Figure:
    """Requests per TTFT bin and model, on a log time axis (the bins are log-spaced)."""
    fig = _figure(t("dash.chart.ttft", lang))
    bins = coarse_histogram(hist.frame)
    colors = _colors(colors, bins["model"])
    for model, part in bins.groupby("model", sort=True):
        ranges = [f"{lo:.3g}–{hi:.3g} s" for lo, hi in zip(part["lo_s"], part["hi_s"])]
        fig.add_trace(
            go.Scatter(
                x=part["x_s"],
                y=part["count"],
                name=str(model),
                mode="lines+markers",
                line=dict(color=colors[model], shape="spline", smoothing=0.3),
                customdata=ranges,
                hovertemplate="%{customdata}: %{y}",
            )
        )
    fig.update_layout(
        xaxis=dict(type="log", title=t("dash.axis.ttft", lang)),
        yaxis_title=t("dash.axis.requests", lang),
        hovermode="closest",
    )
    return fig


def memory_over_time(memory: pd.DataFrame, lang: str) -> go.Figure:
    """The app's worst RSS and the system's lowest available memory per time bucket (MB)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.update_layout(title=t("dash.chart.memory", lang), **_LAYOUT)
    fig.add_trace(
        go.Scatter(
            x=memory["bucket"], y=memory["rss_after_max_bytes"] / MB, mode="lines", name=t("dash.series.rss", lang)
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=memory["bucket"],
            y=memory["system_available_min_bytes"] / MB,
            mode="lines",
            name=t("dash.series.available", lang),
            line=dict(dash="dot"),
        ),
        secondary_y=True,
    )
    fig.update_yaxes(title_text=f"{t('dash.series.rss', lang)} ({t('dash.axis.mb', lang)})", secondary_y=False)
    fig.update_yaxes(title_text=f"{t('dash.series.available', lang)} ({t('dash.axis.mb', lang)})", secondary_y=True)
    fig.update_xaxes(title_text=t("dash.axis.time", lang))
    return _dates(fig)


# --- tables ---------------------------------------------------------------------------------


def model_table(per_model: Sequence[Summary], feedback: Sequence[FeedbackCount], lang: str) -> pd.DataFrame:
    """The per-model comparison: numbers stay numbers (None where unknown) so columns sort.
    Cost per 1,000 requests counts priced requests only; None when no request has a price."""
    thumbs = {f.model: f for f in feedback}
    rows = []
    for s in per_model:
        priced = s.requests - s.unpriced
        f = thumbs.get(s.model or "")
        rows.append(
            {
                t("dash.col.model", lang): s.model,
                t("dash.col.requests", lang): s.requests,
                t("dash.col.error_rate", lang): None if s.error_rate is None else s.error_rate * 100,
                t("dash.col.cancelled", lang): s.cancelled,
                t("dash.col.retries", lang): s.outcomes.retries,
                t("dash.col.fallback_served", lang): s.outcomes.fallback_served,
                t("dash.col.latency_p50", lang): s.latency_p50_s,
                t("dash.col.latency_p95", lang): s.latency_p95_s,
                t("dash.col.ttft_p50", lang): s.ttft_p50_s,
                t("dash.col.tokens_per_s", lang): s.output_tokens_per_s,
                t("dash.col.cost_per_1k", lang): float(s.cost_usd) * 1000 / priced if priced else None,
                t("dash.col.unpriced", lang): s.unpriced,
                t("dash.col.satisfaction", lang): None if f is None or f.up_ratio is None else f.up_ratio * 100,
            }
        )
    columns = [
        t(f"dash.col.{c}", lang)
        for c in (
            "model",
            "requests",
            "error_rate",
            "cancelled",
            "retries",
            "fallback_served",
            "latency_p50",
            "latency_p95",
            "ttft_p50",
            "tokens_per_s",
            "cost_per_1k",
            "unpriced",
            "satisfaction",
        )
    ]
    return pd.DataFrame(rows, columns=columns)


def errors_table(records: Sequence[RequestRecord], lang: str) -> pd.DataFrame:
    """Recent errors: time, model, error type, message (plain text cells) and request id."""
    columns = [t(f"dash.col.{c}", lang) for c in ("time", "model", "error_type", "message", "request_id")]
    rows = [
        (fmt_time(r.started_at), r.model, label("error_type", r.error_type, lang), r.error_message or "", r.id)
        for r in records
    ]
    return pd.DataFrame(rows, columns=columns)


def requests_table(records: Sequence[RequestRecord], lang: str) -> pd.DataFrame:
    """One page of the explorer, newest first."""
    columns = [
        t(f"req.col.{c}", lang)
        for c in (
            "time",
            "model",
            "status",
            "error_type",
            "latency",
            "ttft",
            "tokens",
            "cost",
            "session",
            "id",
            "message",
            "attempt",
            "request",
        )
    ]
    rows = [
        (
            fmt_time(r.started_at),
            r.model,
            label("status", r.status, lang),
            "" if r.error_type is None else label("error_type", r.error_type, lang),
            np.nan if r.latency_s is None else r.latency_s,
            np.nan if r.ttft_s is None else r.ttft_s,
            f"{'–' if r.input_tokens is None else r.input_tokens} / {'–' if r.output_tokens is None else r.output_tokens}",
            # Text, so an unpriced request reads empty rather than a made-up 0.
            "" if r.cost_usd is None else exact_usd(r.cost_usd),
            r.session_id,
            r.id,
            r.error_message or "",
            r.attempt,
            r.request_id,
        )
        for r in records
    ]
    # Float columns (NaN where unknown, shown as the table's placeholder): a column of
    # floats and Nones is "object" to pyarrow and draws with a warning.
    return pd.DataFrame(rows, columns=columns).astype({columns[4]: float, columns[5]: float})


# Fields whose stored code reads as a word (see format.label), and the kind of word.
_CODED_FIELDS = {
    "status": "status",
    "error_type": "error_type",
    "token_source": "token_source",
    "price_source": "price_source",
    "finish_reason": "finish_reason",
    "retry_reason": "error_type",
}


def field_value(name: str, value: object, lang: str) -> str:
    """One field of a request as the detail shows it: codes in words, yes/no, "—" if unknown."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return t("common.yes" if value else "common.no", lang)
    if name in _CODED_FIELDS:
        return label(_CODED_FIELDS[name], str(value), lang)
    return str(value)


def attempt_timeline(attempts: Sequence[RequestRecord], lang: str) -> pd.DataFrame:
    """Every attempt of one user request in order: model, outcome, why it was made (the
    previous attempt's error, the model it fell back from), its latency, and the wait
    between the end of the previous attempt and its start (backoff, Retry-After; unknown
    when the previous attempt has no latency)."""
    columns = [
        t(f"req.timeline.{c}", lang)
        for c in (
            "attempt",
            "time",
            "model",
            "status",
            "error_type",
            "retry_reason",
            "fallback_from",
            "latency",
            "wait",
        )
    ]
    rows, previous = [], None
    for r in attempts:
        wait = np.nan
        if previous is not None and previous.latency_s is not None:
            ended = previous.started_at + timedelta(seconds=previous.latency_s)
            wait = max(0.0, (r.started_at - ended).total_seconds())
        rows.append(
            (
                r.attempt,
                fmt_time(r.started_at),
                r.model,
                label("status", r.status, lang),
                label("error_type", r.error_type, lang) if r.error_type else "",
                label("error_type", r.retry_reason, lang) if r.retry_reason else "",
                r.fallback_from or "",
                np.nan if r.latency_s is None else r.latency_s,
                wait,
            )
        )
        previous = r
    return pd.DataFrame(rows, columns=columns).astype({columns[7]: float, columns[8]: float})


def record_fields(record: RequestRecord, lang: str) -> pd.DataFrame:
    """Every field of a request (but the captured texts, shown apart) as text rows, its name
    in words (in `lang`) and its value as text."""
    d = record.to_dict()
    rows = [
        (t(f"field.{k}", lang), field_value(k, v, lang))
        for k, v in d.items()
        if k not in ("prompt_text", "response_text")
    ]
    return pd.DataFrame(rows, columns=[t("req.field", lang), t("req.value", lang)])
