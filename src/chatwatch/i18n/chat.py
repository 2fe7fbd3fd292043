"""Strings of the chat page and its sidebar (model, generation settings, price line). A
plain table: loaded and merged by `chatwatch.i18n`."""

from __future__ import annotations

CHAT_STRINGS: dict[str, dict[str, str]] = {
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
    "chat.loading": {
        "es": "Cargando el modelo {model} en memoria…",
        "en": "Loading model {model} into memory…",
    },
    "chat.thinking": {"es": "{model} está pensando…", "en": "{model} is thinking…"},
    "chat.waiting": {
        "es": "Esperando al modelo: hay {place} petición(es) delante.",
        "en": "Waiting for the model: {place} request(s) ahead of you.",
    },
    "chat.error": {"es": "Error del modelo ({kind}): {message}", "en": "Model error ({kind}): {message}"},
    "chat.answered_by": {"es": "{failed} - respondió {model}", "en": "{failed} - answered by {model}"},
    "chat.model_failed": {"es": "{model} falló ({reasons})", "en": "{model} failed ({reasons})"},
    "chat.answered_after_retries": {
        "es": "{model} respondió en el intento {n} (antes: {reasons})",
        "en": "{model} answered on attempt {n} (before: {reasons})",
    },
    "sidebar.cache_on": {
        "es": (
            "Caché activa: las repeticiones exactas (temperatura 0 o semilla) se responden desde la base de datos, "
            "que guarda el texto de las respuestas durante {hours} h."
        ),
        "en": (
            "Cache on: exact repeats (temperature 0 or a seed) are answered from the store, which keeps the "
            "answers' text for {hours} h."
        ),
    },
    "chat.cache_hit": {
        "es": "Respuesta de la caché: coste $0, ahorró {saved} y {s} s.",
        "en": "Answered from the cache: cost $0, saved {saved} and {s} s.",
    },
    "sidebar.circuit_open": {
        "es": "Circuito abierto: el modelo falló repetidamente. Próximo intento en {s} s; mientras tanto responde: {fallbacks}.",
        "en": "Circuit open: this model kept failing. Next try in {s} s; meanwhile answering: {fallbacks}.",
    },
    "sidebar.circuit_half_open": {
        "es": "Circuito semiabierto: una petición de prueba decide si el modelo vuelve.",
        "en": "Circuit half-open: one probe request decides whether this model is back.",
    },
    "chat.empty": {"es": "Escribe algo antes de enviar.", "en": "Type something before sending."},
    "chat.truncated": {
        "es": "Respuesta cortada: se alcanzó el máximo de tokens ({n}).",
        "en": "Reply cut short: the maximum of {n} tokens was reached.",
    },
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
    "chat.monitoring_degraded": {
        "es": "Monitoreo degradado: {unsaved} registros aún sin guardar ({reason}); {lost} perdidos.",
        "en": "Monitoring degraded: {unsaved} records not saved yet ({reason}); {lost} lost.",
    },
    "chat.cost_estimated": {"es": "≈{cost} (tokens estimados)", "en": "≈{cost} (estimated tokens)"},
}
