"""Every page as a Spanish-speaking user finds it: the chat (a reply, its notice and vote),
the dashboard with data, the requests explorer with a detail open and the alerts page
with a firing alert, rendered by AppTest over a real store (and the real local model for
the chat). Every visible string is collected — markdown, captions, labels, options,
placeholders, help, metric labels and values, table columns and cells, toasts, Plotly
titles, axis titles and trace names — and none may hold English the tables translate.

The forbidden list is built from the tables themselves: the literal parts of every English
string that differs from its Spanish one and occurs in no Spanish string (so "UTC" or
"Top-p" are allowed; "Requests", "unpriced" or "Choose options" are not)."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict
from streamlit.testing.v1 import AppTest

from chatwatch import config as config_mod
from chatwatch.i18n import STRINGS
from chatwatch.store.records import Store
from chatwatch.ui.state import runtimes
from tests.fixtures.db import make_record

UI = Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui"
# Streamlit's own words (its multiselect placeholder and "select all" entry) and Python's
# spelling of missing values, which must not reach a cell.
ALWAYS_FORBIDDEN = {"None", "True", "False", "NaN", "nan", "NaT", "Choose options", "Select all"}
# In both languages on purpose: the language picker must be findable by someone who reads
# only one (see chatwatch.ui.state.language_picker).
BILINGUAL = {"Idioma / Language"}
# Proto fields that are not shown: ids and keys, icons, raw Arrow bytes, the Plotly spec
# (read apart, below), formats and types.
HIDDEN_FIELDS = {
    "id",
    "form_id",
    "key",
    "data",
    "spec",
    "icon",
    "fragment_id",
    "theme",
    "format",
    "type",
    "selection_mode",
    "column_order",
    "columns",  # st.dataframe's column_config JSON (its help texts are checked via t())
    "mime",
    "url",
    "avatar",
    "avatar_type",
}


def _word(fragment: str, text: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(fragment) + r"(?!\w)", text) is not None


def forbidden_english() -> set[str]:
    spanish = [re.sub(r"\{[^}]*\}", " ", entry["es"]) for entry in STRINGS.values()]
    out = set(ALWAYS_FORBIDDEN)
    for entry in STRINGS.values():
        if entry["en"] == entry["es"]:
            continue
        for part in re.split(r"\{[^}]*\}", entry["en"]):
            part = part.strip(" ·:,.;()[]+-–—/'\"*\n!?«»…")
            if re.search(r"[A-Za-z]{2,}", part) and not any(_word(part, s) for s in spanish):
                out.add(part)
    return out


FORBIDDEN = forbidden_english()


def _proto_strings(proto) -> list[str]:
    out: list[str] = []

    def walk(value, field=None):
        if field in HIDDEN_FIELDS:
            return
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, field)

    walk(MessageToDict(proto, preserving_proto_field_name=True, use_integers_for_enums=True))
    return out


def _figure_strings(spec: str) -> list[str]:
    """What a Plotly figure shows: its title, axis titles, legend, trace names, annotations;
    and its date axes must use numeric dates (no month or day names)."""
    fig = json.loads(spec)
    layout = fig.get("layout", {})
    out = []

    def title(obj):
        t = obj.get("title")
        return t.get("text") if isinstance(t, dict) else t

    if title(layout):
        out.append(title(layout))
    for name, axis in layout.items():
        if re.fullmatch(r"[xy]axis\d*", name):
            if title(axis):
                out.append(title(axis))
            if axis.get("type") == "date":
                fmt = axis.get("tickformat", "")
                assert fmt and not re.search(r"%[aAbB]", fmt), (name, axis)
                assert not re.search(r"%[aAbB]", axis.get("hoverformat", "")), (name, axis)
    out += [a["text"] for a in layout.get("annotations", []) if a.get("text")]
    out += [trace["name"] for trace in fig.get("data", []) if trace.get("name")]
    return out


def visible_strings(at: AppTest) -> list[str]:
    """Every string the page shows, from the element protos of the main area, the sidebar
    and the toasts, plus table columns and cells and Plotly figure texts."""
    out: list[str] = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.extend(_proto_strings(proto))
            if getattr(node, "type", None) == "plotly_chart":
                out.extend(_figure_strings(proto.spec))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    walk(at.sidebar)
    for toast in at.toast:
        out.append(toast.value)
    for box in at.chat_input:  # drawn in the page's bottom bar, outside main
        out.extend(_proto_strings(box.proto))
    for frame in at.dataframe:
        df = frame.value
        out.extend(str(c) for c in df.columns)
        # (bool cells draw as checkboxes, not words)
        out.extend(
            str(v)
            for col in df.columns
            for v in df[col].tolist()
            if v is not None and v == v and not isinstance(v, bool)
        )
        if df.isna().to_numpy().any():  # missing values are shown as the placeholder
            assert frame.proto.placeholder == "—", list(df.columns)
    return out


def assert_spanish(at: AppTest, allowed: set[str] = frozenset()) -> list[str]:
    """`allowed`: whole strings that are data, not UI (the user's prompt, the model's reply).
    The test's own folder (in paths the page names) is data too."""
    folder = str(Path.cwd())
    allowed = set(allowed) | BILINGUAL
    texts = [s.replace(folder, "…") for s in visible_strings(at) if s not in allowed]
    leftovers = sorted({f"{word!r} in {text!r}" for text in texts for word in FORBIDDEN if _word(word, text)})
    assert not leftovers, "English on a Spanish page:\n" + "\n".join(leftovers)
    return texts


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def spanish(tmp_path, monkeypatch):
    path = tmp_path / "chatwatch.toml"
    path.write_text(
        """
[app]
language = "es"
data_dir = "data"
log_dir = "logs"
[dashboard]
refresh_seconds = 5
[[models]]
id = "smollm2"
kind = "llama_cpp"
[models.defaults]
max_tokens = 5
seed = 3
[[alerts.rules]]
name = "modelo caído"
kind = "consecutive_failures"
threshold = 2
model = "smollm2"
severity = "critical"
[[alerts.rules]]
name = "muchos errores"
kind = "error_rate"
threshold = 0.5
min_requests = 10
[[alerts.rules]]
name = "respuestas lentas"
kind = "slow_response"
threshold = 20
window_minutes = 60
"""
    )
    monkeypatch.setenv("CHATWATCH_CONFIG", str(path))
    return path


def _seed(path: Path) -> list:
    """Requests of every status, error type and price source, with Spanish error texts."""
    now = datetime.now(UTC)
    kinds = ("timeout", "rate_limit", "connection", "context_length", "invalid_request", "provider_error")
    records = []
    for i in range(30):
        kw = dict(
            started_at=now - timedelta(minutes=50 - i),
            model=("smollm2", "remoto")[i % 2],
            session_id="sesión-a",
            cost_usd=None if i % 4 == 0 else Decimal("0.00012"),
            price_source="unpriced" if i % 4 == 0 else "config",
            token_source=("counted", "reported", "estimated")[i % 3],
            finish_reason="length" if i % 5 == 0 else "stop",
            conversation_id=None if i % 3 == 0 else "conversación-1",
        )
        if i % 6 == 1:
            kw.update(status="error", error_type=kinds[(i // 6) % len(kinds)], error_message=f"fallo número {i}")
        elif i % 7 == 2:
            kw.update(status="cancelled")
        records.append(make_record(**kw))
    # The last two fail in a row on smollm2: the "modelo caído" rule fires.
    for i in (1, 2):
        records.append(
            make_record(
                started_at=now - timedelta(seconds=10 - i),
                model="smollm2",
                status="error",
                error_type="connection",
                error_message="sin conexión con el servidor",
                conversation_id=None,
            )
        )
    with Store.open(f"sqlite:///{path.parent / 'data' / 'chatwatch.db'}") as store:
        store.write_many(records)
        for r, score in zip(records[3:12:2], (1, 0, 1, 1, 0)):
            store.add_feedback(r.id, score, r.model, r.session_id)
    return records


def _page(name: str) -> AppTest:
    at = AppTest.from_file(str(UI / "views" / name), default_timeout=120).run()
    assert not at.exception, at.exception
    return at


# --- the pages --------------------------------------------------------------------------------


def test_chat_in_spanish(spanish):
    at = AppTest.from_file(str(UI / "app.py"), default_timeout=120).run()
    assert not at.exception
    prompt = "Write a long story about a lighthouse keeper."
    at.chat_input[0].set_value(prompt).run()
    assert not at.exception
    reply = at.chat_message[1].markdown[0].value
    captions = [c.value for c in at.chat_message[1].caption]
    assert "Respuesta cortada: se alcanzó el máximo de tokens (5)." in captions
    texts = assert_spanish(at, allowed={prompt, reply})  # the conversation itself is the user's and the model's
    assert any(s.startswith("Precio: gratis (local)") for s in texts), texts
    assert "Escribe tu mensaje…" in texts, texts
    assert "Nueva conversación" in texts, texts


def test_dashboard_with_data_in_spanish(spanish):
    _seed(spanish)
    at = _page("dashboard.py")
    texts = assert_spanish(at)
    metrics = {m.label: m.value for m in at.metric}
    assert {"Peticiones", "Tasa de errores", "Tasa de cancelaciones", "Coste total"} <= set(metrics)
    assert len(at.get("plotly_chart")) == 6  # every chart was checked (titles, axes, dates)
    assert "Elige una o varias opciones" in texts  # the multiselects' placeholder
    table = at.dataframe[0].value
    assert "Canceladas" in table.columns
    errors = at.dataframe[1].value
    assert set(errors["Tipo de error"]) <= {
        "tiempo agotado",
        "límite de peticiones",
        "conexión",
        "contexto demasiado largo",
        "petición no válida",
        "error del proveedor",
    }


def test_requests_with_a_detail_in_spanish(spanish):
    records = _seed(spanish)
    at = _page("requests.py")
    assert_spanish(at)
    assert set(at.dataframe[0].value["Estado"]) == {"correcta", "error", "cancelada"}
    picked = records[-1]
    (picker,) = [s for s in at.selectbox if s.label == "Petición a inspeccionar"]
    picker.set_value(picked.id).run()
    assert not at.exception
    texts = assert_spanish(at)
    fields = dict(at.dataframe[1].value.itertuples(index=False))
    assert fields["Estado"] == "error" and fields["Conversación"] == "—" and fields["En streaming"] == "sí"
    assert any(s.startswith("Ninguna línea de registro con este id") for s in texts)


def test_alerts_page_in_spanish_without_arrow_warnings(spanish, caplog):
    _seed(spanish)
    runtimes().get(config_mod.load(spanish), role="app").alerts.evaluate_now()
    # Streamlit logs (at INFO, on its own non-propagating logger) when a frame needs its
    # column types fixed for Arrow; listen there.
    streamlit_log = logging.getLogger("streamlit")
    streamlit_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="streamlit"):
            at = _page("alerts.py")
            at.run()
    finally:
        streamlit_log.removeHandler(caplog.handler)
    arrow = [r.getMessage() for r in caplog.records if "arrow" in r.getMessage().lower()]
    assert not arrow, arrow
    texts = assert_spanish(at)
    joined = "\n".join(texts)
    assert "modelo caído" in joined and "crítica" in joined and "activa" in joined
    assert len(at.dataframe) >= 3  # active alerts, history, rules


def test_the_forbidden_list_catches_english():
    """The check above can fail: English labels, Streamlit's placeholder and a raw None are
    all on the list, while words both languages share are not."""
    for english in ("Requests", "Error rate", "unpriced", "Choose options", "None", "Last 7 days", "cancelled"):
        assert any(_word(w, english) for w in FORBIDDEN), english
    for shared in ("UTC", "Top-p", "MB", "chatwatch", "tokens", "p95"):
        assert not any(_word(w, shared) for w in FORBIDDEN), shared
