"""Strings of the resilience features on the pages: the circuit breakers' states."""

from __future__ import annotations

RESILIENCE_STRINGS: dict[str, dict[str, str]] = {
    "breakers.title": {"es": "Circuitos de los modelos", "en": "Model circuits"},
    "breakers.caption": {
        "es": "Un circuito se abre cuando un modelo falla seguido (o a menudo): sus peticiones se saltan el modelo hasta que, tras la espera, una petición de prueba lo cierre.",
        "en": "A circuit opens when a model keeps failing (or fails often): its requests skip the model until, after the cool-down, one probe request closes it.",
    },
    "breakers.all_closed": {"es": "Todos los circuitos cerrados.", "en": "All circuits closed."},
    "breakers.col.model": {"es": "Modelo", "en": "Model"},
    "breakers.col.state": {"es": "Estado", "en": "State"},
    "breakers.col.failures": {"es": "Fallos seguidos", "en": "Failures in a row"},
    "breakers.col.last_error": {"es": "Último error", "en": "Last error"},
    "breakers.col.since": {"es": "Abierto desde (UTC)", "en": "Open since (UTC)"},
    "breakers.state.closed": {"es": "cerrado", "en": "closed"},
    "breakers.state.open": {"es": "abierto · próximo intento en {seconds} s", "en": "open · next try in {seconds} s"},
    "breakers.state.open_now": {
        "es": "abierto · próximo intento con la siguiente petición",
        "en": "open · next try with the next request",
    },
    "breakers.state.half_open": {"es": "semiabierto · una prueba decide", "en": "half-open · a probe decides"},
}
