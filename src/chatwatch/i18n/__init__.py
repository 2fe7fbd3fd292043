"""Every user-visible UI string, in Spanish and English."""

from __future__ import annotations

LANGUAGES = {"es": "Español", "en": "English"}

STRINGS: dict[str, dict[str, str]] = {
    "app.title": {"es": "chatwatch", "en": "chatwatch"},
    "nav.chat": {"es": "Chat", "en": "Chat"},
    "nav.dashboard": {"es": "Panel de monitoreo", "en": "Monitoring dashboard"},
    "nav.requests": {"es": "Peticiones", "en": "Requests"},
    "nav.alerts": {"es": "Alertas", "en": "Alerts"},
    "sidebar.language": {"es": "Idioma", "en": "Language"},
    "sidebar.model": {"es": "Modelo", "en": "Model"},
    "sidebar.settings": {"es": "Parámetros de generación", "en": "Generation settings"},
    "sidebar.temperature": {"es": "Temperatura", "en": "Temperature"},
    "sidebar.top_p": {"es": "Top-p", "en": "Top-p"},
    "sidebar.max_tokens": {"es": "Máximo de tokens", "en": "Max tokens"},
    "sidebar.seed": {"es": "Semilla (vacío = aleatoria)", "en": "Seed (empty = random)"},
    "sidebar.seed_invalid": {"es": "La semilla debe ser un número entero.", "en": "The seed must be a whole number."},
    "sidebar.system": {"es": "Instrucción de sistema", "en": "System prompt"},
    "sidebar.new_chat": {"es": "Nueva conversación", "en": "New conversation"},
    "sidebar.price": {"es": "Precio", "en": "Price"},
    "chat.placeholder": {"es": "Escribe tu mensaje…", "en": "Type your message…"},
    "chat.stop": {"es": "Detener", "en": "Stop"},
    "chat.stopped": {"es": "Generación detenida.", "en": "Generation stopped."},
    "chat.waiting": {
        "es": "Esperando al modelo: hay {place} petición(es) delante.",
        "en": "Waiting for the model: {place} request(s) ahead of you.",
    },
    "chat.error": {"es": "Error del modelo ({kind}): {message}", "en": "Model error ({kind}): {message}"},
    "chat.empty": {"es": "Escribe algo antes de enviar.", "en": "Type something before sending."},
    "chat.meta": {
        "es": "{model} · {latency} · {tokens} tokens · {cost}",
        "en": "{model} · {latency} · {tokens} tokens · {cost}",
    },
    "chat.unpriced": {"es": "sin precio", "en": "unpriced"},
    "chat.local": {"es": "local, $0", "en": "local, $0"},
    "chat.store_error": {
        "es": "No se pudo guardar el registro de la petición: {message}",
        "en": "Could not save the request record: {message}",
    },
    "chat.feedback_saved": {"es": "Gracias por tu opinión.", "en": "Thanks for your feedback."},
    "config.error": {"es": "Configuración inválida: {message}", "en": "Invalid configuration: {message}"},
}


def t(key: str, lang: str = "es", **values) -> str:
    """The string for `key` in `lang` (English if missing), formatted with `values`."""
    entry = STRINGS.get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry["en"]
    return text.format(**values) if values else text


# Every table is loaded at import, so t() finds a key whichever page imported first.
from chatwatch.i18n import alerts as _alerts  # noqa: E402,F401
from chatwatch.i18n import dashboard as _dashboard  # noqa: E402,F401
