"""Strings of the Requests explorer: its filters, the table of requests and one request's
detail (fields, texts, feedback, log lines). A plain table: loaded and merged by
`chatwatch.i18n`."""

from __future__ import annotations

REQUEST_STRINGS: dict[str, dict[str, str]] = {
    "req.title": {"es": "Peticiones", "en": "Requests"},
    "req.error_type": {"es": "Tipo de error", "en": "Error type"},
    "req.any": {"es": "Cualquiera", "en": "Any"},
    "req.session": {"es": "Sesión (id)", "en": "Session (id)"},
    "req.session.mine": {"es": "Solo esta sesión", "en": "This session only"},
    "req.search": {"es": "Buscar (id, error o contenido)", "en": "Search (id, error or content)"},
    "req.search.help": {
        "es": "Sin distinguir mayúsculas: id exacto, mensaje de error y, si se guarda, el texto de la petición y la respuesta.",
        "en": "Case-insensitive: exact id, error message and, when captured, the prompt and reply text.",
    },
    "req.page_size": {"es": "Filas por página", "en": "Rows per page"},
    "req.count": {
        "es": "{total} petición(es) · página {page} de {pages}",
        "en": "{total} request(s) · page {page} of {pages}",
    },
    "req.empty": {"es": "Ninguna petición coincide con estos filtros.", "en": "No requests match these filters."},
    "req.detail": {"es": "Detalle", "en": "Detail"},
    "req.pick": {"es": "Petición a inspeccionar", "en": "Request to inspect"},
    "req.pick.placeholder": {"es": "Elige una petición de esta página…", "en": "Choose a request on this page…"},
    "req.not_found": {"es": "La petición ya no está en el almacén.", "en": "The request is no longer in the store."},
    "req.fields": {"es": "Campos", "en": "Fields"},
    "req.field": {"es": "Campo", "en": "Field"},
    "req.value": {"es": "Valor", "en": "Value"},
    "req.error": {"es": "Error", "en": "Error"},
    "req.prompt": {"es": "Petición (texto)", "en": "Prompt"},
    "req.response": {"es": "Respuesta (texto)", "en": "Reply"},
    "req.no_content": {
        "es": "El texto no se guarda ([privacy] capture_content = false).",
        "en": "Text is not stored ([privacy] capture_content = false).",
    },
    "req.feedback": {"es": "Valoración", "en": "Feedback"},
    "req.feedback.none": {"es": "Sin valoración.", "en": "No feedback."},
    "req.feedback.up": {"es": "👍 el {time} UTC", "en": "👍 on {time} UTC"},
    "req.feedback.down": {"es": "👎 el {time} UTC", "en": "👎 on {time} UTC"},
    "req.logs": {"es": "Líneas de registro", "en": "Log lines"},
    "req.logs.none": {
        "es": "Ninguna línea de registro con este id en {dir}.",
        "en": "No log lines with this id in {dir}.",
    },
    "req.logs.scanned": {
        "es": "{lines} línea(s) de {files} archivo(s) revisados.",
        "en": "{lines} line(s) from {files} file(s) scanned.",
    },
    "req.logs.capped": {
        "es": "Búsqueda limitada: se revisaron {mb:g} MB de registros; puede haber más líneas.",
        "en": "Search capped: {mb:g} MB of logs scanned; there may be more lines.",
    },
    "req.logs.raw": {"es": "Líneas completas (JSON)", "en": "Full lines (JSON)"},
    "req.col.time": {"es": "Hora (UTC)", "en": "Time (UTC)"},
    "req.col.model": {"es": "Modelo", "en": "Model"},
    "req.col.status": {"es": "Estado", "en": "Status"},
    "req.col.error_type": {"es": "Tipo de error", "en": "Error type"},
    "req.col.latency": {"es": "Latencia (s)", "en": "Latency (s)"},
    "req.col.ttft": {"es": "Primer token (s)", "en": "TTFT (s)"},
    "req.col.tokens": {"es": "Tokens ent./sal.", "en": "Tokens in/out"},
    "req.col.cost": {"es": "Coste ($)", "en": "Cost ($)"},
    "req.col.session": {"es": "Sesión", "en": "Session"},
    "req.col.id": {"es": "Id", "en": "Id"},
    "req.col.message": {"es": "Error", "en": "Error"},
    "req.col.level": {"es": "Nivel", "en": "Level"},
    "req.col.logger": {"es": "Logger", "en": "Logger"},
    "req.col.log_message": {"es": "Mensaje", "en": "Message"},
    "req.col.file": {"es": "Archivo", "en": "File"},
}
