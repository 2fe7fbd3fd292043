"""Strings of the Monitoring dashboard: filters (shared with the requests explorer), KPIs,
charts, tables and exports. A plain table: loaded and merged by `chatwatch.i18n`."""

from __future__ import annotations

DASHBOARD_STRINGS: dict[str, dict[str, str]] = {
    # shared filters
    "dash.filters": {"es": "Filtros", "en": "Filters"},
    "dash.range": {"es": "Periodo", "en": "Time range"},
    "dash.range.15m": {"es": "Últimos 15 minutos", "en": "Last 15 minutes"},
    "dash.range.1h": {"es": "Última hora", "en": "Last hour"},
    "dash.range.24h": {"es": "Últimas 24 horas", "en": "Last 24 hours"},
    "dash.range.7d": {"es": "Últimos 7 días", "en": "Last 7 days"},
    "dash.range.30d": {"es": "Últimos 30 días", "en": "Last 30 days"},
    "dash.range.custom": {"es": "Personalizado", "en": "Custom"},
    "dash.range.from": {"es": "Desde (UTC)", "en": "From (UTC)"},
    "dash.range.to": {"es": "Hasta (UTC)", "en": "To (UTC)"},
    "dash.range.invalid": {"es": "«Hasta» debe ser posterior a «Desde».", "en": "'To' must be after 'From'."},
    "dash.models": {"es": "Modelos (vacío = todos)", "en": "Models (empty = all)"},
    "dash.statuses": {"es": "Estado (vacío = todos)", "en": "Status (empty = all)"},
    "dash.scope": {"es": "Sesiones", "en": "Sessions"},
    "dash.scope.all": {"es": "Todas las sesiones", "en": "All sessions"},
    "dash.scope.mine": {"es": "Esta sesión", "en": "This session"},
    "dash.live": {"es": "En vivo (cada {seconds:g} s)", "en": "Live (every {seconds:g} s)"},
    "dash.live.help": {
        "es": "Actualiza el panel solo mientras está abierto. Desactívalo para congelar la vista.",
        "en": "Refreshes the dashboard only while it is open. Turn off to freeze the view.",
    },
    # dashboard
    "dash.title": {"es": "Panel de monitoreo", "en": "Monitoring dashboard"},
    "dash.updated": {"es": "Actualizado {time} UTC · {range}", "en": "Updated {time} UTC · {range}"},
    "dash.paused": {"es": "En pausa", "en": "Paused"},
    "dash.method.exact": {
        "es": "Percentiles exactos, calculados sobre las filas de cada petición.",
        "en": "Exact percentiles, computed from the raw request rows.",
    },
    "dash.method.histogram": {
        "es": "Percentiles estimados con los histogramas de los resúmenes por minuto/hora (error ≤ 5 %); "
        "conteos, tasas, tokens y costes son exactos.",
        "en": "Percentiles estimated from the minute/hour rollup histograms (within 5 %); counts, rates, "
        "tokens and costs are exact.",
    },
    "dash.coverage.rollups": {
        "es": "Las filas de peticiones anteriores al {date} UTC se borraron por retención: "
        "lo anterior se cuenta con los resúmenes por minuto/hora.",
        "en": "Raw request rows before {date} UTC were cleaned up by retention: "
        "figures before then come from the minute/hour rollups.",
    },
    "dash.coverage.partial": {
        "es": "Parcial: las filas de peticiones anteriores al {date} UTC se borraron por retención y "
        "con estos filtros no se pueden contar; solo se incluye desde el {date}.",
        "en": "Partial: raw request rows before {date} UTC were cleaned up by retention and cannot be "
        "counted with these filters; only requests from {date} on are included.",
    },
    "dash.coverage.none": {
        "es": "Parcial: todas las filas de peticiones de este rango se borraron por retención.",
        "en": "Partial: every raw request row of this range was cleaned up by retention.",
    },
    "dash.empty": {"es": "No hay peticiones en esta vista.", "en": "No requests in this view."},
    "dash.losses": {
        "es": "Faltan {n} peticiones en este rango: no se pudieron guardar y se perdieron ({reasons}).",
        "en": "{n} requests in this range are missing: they could not be saved and were lost ({reasons}).",
    },
    "dash.kpi.requests": {"es": "Peticiones", "en": "Requests"},
    "dash.kpi.requests.help": {
        "es": (
            "Peticiones de usuario, cada una en el periodo de su primer intento. Registros en el periodo: "
            "{records} (cada reintento, alternativa o rechazo es un registro; {retries} intentos tras el primero)."
        ),
        "en": (
            "User requests, each counted in the period of its first attempt. Records in the period: {records} "
            "(each retry, fallback or refusal is a record of its own; {retries} attempts after the first)."
        ),
    },
    "dash.kpi.error_rate": {"es": "Tasa de errores", "en": "Error rate"},
    "dash.kpi.error_rate.help": {
        "es": (
            "Tasa de errores de los modelos: intentos fallidos / intentos ({failed} de {attempts}); "
            "cada reintento o alternativa es un intento. Las {refused} peticiones que chatwatch rechazó "
            "sin llamar a ningún modelo no cuentan."
        ),
        "en": (
            "Model error rate: failed attempts / attempts ({failed} of {attempts}); every retry or "
            "fallback is an attempt. The {refused} requests chatwatch refused without calling a model "
            "are left out."
        ),
    },
    "dash.kpi.user_error_rate": {"es": "Errores para el usuario", "en": "User-facing error rate"},
    "dash.kpi.user_error_rate.help": {
        "es": (
            "Peticiones cuyo último intento falló / peticiones de usuario ({failed} de {requests}), "
            "rechazos de chatwatch incluidos. Cada petición cuenta en el periodo de su primer intento."
        ),
        "en": (
            "Requests whose last attempt failed / user requests ({failed} of {requests}), chatwatch's "
            "refusals included. Each request counts in the range of its first attempt."
        ),
    },
    "dash.kpi.rescued": {"es": "Rescatadas", "en": "Rescued"},
    "dash.kpi.rescued.help": {
        "es": (
            "Peticiones respondidas después de al menos un intento fallido ({retries} reintentos, "
            "{fallbacks} respuestas de un modelo alternativo)."
        ),
        "en": (
            "Requests answered after at least one failed attempt ({retries} retries, {fallbacks} "
            "answers by a fallback model)."
        ),
    },
    "dash.kpi.cancel_rate": {"es": "Tasa de cancelaciones", "en": "Cancel rate"},
    "dash.kpi.cancel_rate.help": {
        "es": "Canceladas / todas las peticiones ({cancelled} de {requests}): el usuario detuvo la respuesta.",
        "en": "Cancelled / all requests ({cancelled} of {requests}): the user stopped the reply.",
    },
    "dash.kpi.latency_mean": {"es": "Latencia media", "en": "Latency mean"},
    "dash.kpi.latency_p50": {"es": "Latencia p50", "en": "Latency p50"},
    "dash.kpi.latency_p95": {"es": "Latencia p95", "en": "Latency p95"},
    "dash.kpi.latency_p99": {"es": "Latencia p99", "en": "Latency p99"},
    "dash.kpi.ttft_p50": {"es": "Primer token p50", "en": "TTFT p50"},
    "dash.kpi.ttft_p95": {"es": "Primer token p95", "en": "TTFT p95"},
    "dash.kpi.tokens_per_s": {"es": "Tokens de salida/s", "en": "Output tokens/s"},
    "dash.kpi.tokens_per_s.help": {
        "es": "Tokens de salida / tiempo de generación (latencia − tiempo al primer token), en total.",
        "en": "Output tokens / decode time (latency − time to first token), over all requests.",
    },
    "dash.kpi.input_tokens": {"es": "Tokens de entrada", "en": "Input tokens"},
    "dash.kpi.output_tokens": {"es": "Tokens de salida", "en": "Output tokens"},
    "dash.kpi.cost": {"es": "Coste total", "en": "Total cost"},
    "dash.kpi.cost.help": {
        "es": "Suma exacta: ${exact} · {unpriced} petición(es) sin precio no cuentan.",
        "en": "Exact sum: ${exact} · {unpriced} unpriced request(s) not counted.",
    },
    "dash.kpi.rss": {"es": "Memoria del proceso", "en": "Process memory"},
    "dash.kpi.rss.help": {
        "es": "Memoria residente (RSS) de este proceso de la app, ahora.",
        "en": "Resident memory (RSS) of this app process, now.",
    },
    "dash.kpi.available": {"es": "Memoria disponible", "en": "Available memory"},
    "dash.kpi.available.help": {
        "es": "Memoria que el sistema puede dar sin usar swap, ahora.",
        "en": "Memory the system can hand out without swapping, now.",
    },
    "dash.kpi.satisfaction": {"es": "Satisfacción", "en": "Satisfaction"},
    "dash.kpi.satisfaction.help": {
        "es": "👍 / todas las valoraciones ({up} de {total}).",
        "en": "👍 / all ratings ({up} of {total}).",
    },
    "dash.unpriced_suffix": {"es": "+{n} sin precio", "en": "+{n} unpriced"},
    "dash.all_unpriced": {"es": "sin precio ({n})", "en": "unpriced ({n})"},
    "dash.no_feedback": {"es": "sin valoraciones", "en": "no ratings"},
    "dash.chart.share": {"es": "Uso por modelo", "en": "Model usage share"},
    "dash.chart.requests": {"es": "Peticiones y errores", "en": "Requests and errors"},
    "dash.chart.latency": {"es": "Latencia p50 / p95 por modelo", "en": "Latency p50 / p95 per model"},
    "dash.chart.tokens_cost": {"es": "Tokens y coste por modelo", "en": "Tokens and cost per model"},
    "dash.chart.ttft": {"es": "Distribución del tiempo al primer token", "en": "Time to first token distribution"},
    "dash.chart.memory": {"es": "Memoria", "en": "Memory"},
    "dash.axis.time": {"es": "Hora (UTC)", "en": "Time (UTC)"},
    "dash.axis.requests": {"es": "Peticiones", "en": "Requests"},
    "dash.axis.seconds": {"es": "Segundos", "en": "Seconds"},
    "dash.axis.tokens": {"es": "Tokens", "en": "Tokens"},
    "dash.axis.cost": {"es": "Coste (USD)", "en": "Cost (USD)"},
    "dash.axis.ttft": {"es": "Tiempo al primer token (s, escala log)", "en": "Time to first token (s, log scale)"},
    "dash.axis.mb": {"es": "MB", "en": "MB"},
    "dash.series.errors": {"es": "errores", "en": "errors"},
    "dash.series.rss": {"es": "RSS máx. de la app", "en": "App RSS (max)"},
    "dash.series.available": {"es": "Disponible en el sistema (mín.)", "en": "System available (min)"},
    "dash.models_table": {"es": "Comparación por modelo", "en": "Per-model comparison"},
    "dash.errors_table": {"es": "Errores recientes", "en": "Recent errors"},
    "dash.no_errors": {"es": "Sin errores en esta vista.", "en": "No errors in this view."},
    "dash.beyond": {
        "es": "Fuera del rango del histograma (0,1 ms a 2 h), la tabla muestra el límite: {cells}.",
        "en": "Beyond the histogram's range (0.1 ms to 2 h), the table shows the bound: {cells}.",
    },
    "dash.export": {"es": "Exportar la vista filtrada", "en": "Export the filtered view"},
    "dash.export.json": {"es": "Descargar JSON", "en": "Download JSON"},
    "dash.export.csv": {"es": "Descargar CSV", "en": "Download CSV"},
    "dash.export.help": {
        "es": "Todas las peticiones de la vista, igual que `chatwatch export` con el mismo filtro.",
        "en": "Every request in the view, as `chatwatch export` gives with the same filter.",
    },
    "dash.col.model": {"es": "Modelo", "en": "Model"},
    "dash.col.requests": {"es": "Peticiones", "en": "Requests"},
    "dash.col.error_rate": {"es": "Tasa de errores", "en": "Error rate"},
    "dash.col.cancelled": {"es": "Canceladas", "en": "Cancelled"},
    "dash.col.retries": {"es": "Reintentos", "en": "Retries"},
    "dash.col.fallback_served": {"es": "Respuestas como alternativa", "en": "Fallbacks served"},
    "dash.col.latency_p50": {"es": "Latencia p50 (s)", "en": "Latency p50 (s)"},
    "dash.col.latency_p95": {"es": "Latencia p95 (s)", "en": "Latency p95 (s)"},
    "dash.col.ttft_p50": {"es": "Primer token p50 (s)", "en": "TTFT p50 (s)"},
    "dash.col.tokens_per_s": {"es": "Tokens/s", "en": "Tokens/s"},
    "dash.col.cost_per_1k": {"es": "Coste / 1000 peticiones ($)", "en": "Cost / 1,000 requests ($)"},
    "dash.col.cost_per_1k.help": {
        "es": "Coste medio de 1000 peticiones con precio; vacío si ninguna tiene precio.",
        "en": "Average cost of 1,000 priced requests; empty when none is priced.",
    },
    "dash.col.unpriced": {"es": "Sin precio", "en": "Unpriced"},
    "dash.col.satisfaction": {"es": "Satisfacción", "en": "Satisfaction"},
    "dash.col.time": {"es": "Hora (UTC)", "en": "Time (UTC)"},
    "dash.col.error_type": {"es": "Tipo de error", "en": "Error type"},
    "dash.col.message": {"es": "Mensaje", "en": "Message"},
    "dash.col.request_id": {"es": "Petición", "en": "Request"},
}
