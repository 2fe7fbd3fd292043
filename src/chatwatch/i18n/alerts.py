"""Alert wording in Spanish and English: plain tables, loaded and merged by
`chatwatch.i18n` at import (a key defined twice anywhere is an error there).

Two tables: ALERT_STRINGS for the Alerts page, the banner and toasts ("alerts.*"), and
NOTIFY_STRINGS for what notifications, logs and the page share ("alert.*": titles,
bodies, kinds, units, "no data", validation errors); alerts/text.py puts values into
them."""

from __future__ import annotations

ALERT_STRINGS: dict[str, dict[str, str]] = {
    "alerts.title": {"es": "Alertas", "en": "Alerts"},
    "alerts.tab.active": {"es": "Activas", "en": "Active"},
    "alerts.tab.history": {"es": "Historial", "en": "History"},
    "alerts.tab.rules": {"es": "Reglas", "en": "Rules"},
    "alerts.tab.channels": {"es": "Canales", "en": "Channels"},
    "alerts.none_active": {"es": "No hay alertas activas.", "en": "No active alerts."},
    "alerts.config_problem": {
        "es": "Regla de la configuración ignorada: {message}",
        "en": "Config rule ignored: {message}",
    },
    "alerts.col.rule": {"es": "Regla", "en": "Rule"},
    "alerts.col.kind": {"es": "Tipo", "en": "Kind"},
    "alerts.col.severity": {"es": "Severidad", "en": "Severity"},
    "alerts.col.state": {"es": "Estado", "en": "State"},
    "alerts.col.value": {"es": "Valor", "en": "Value"},
    "alerts.col.current": {"es": "Valor actual", "en": "Current value"},
    "alerts.col.threshold": {"es": "Umbral", "en": "Threshold"},
    "alerts.col.baseline": {"es": "Lo normal", "en": "Baseline"},
    "alerts.col.band": {"es": "Banda normal", "en": "Band"},
    "alerts.col.scope": {"es": "Ámbito", "en": "Scope"},
    "alerts.col.model": {"es": "Modelo", "en": "Model"},
    "alerts.col.since": {"es": "Desde (UTC)", "en": "Since (UTC)"},
    "alerts.col.notified": {"es": "Último aviso (UTC)", "en": "Last notified (UTC)"},
    "alerts.col.time": {"es": "Hora (UTC)", "en": "Time (UTC)"},
    "alerts.col.instance": {"es": "Instancia", "en": "Instance"},
    "alerts.col.window": {"es": "Ventana (min)", "en": "Window (min)"},
    "alerts.col.min_requests": {"es": "Mín. peticiones", "en": "Min. requests"},
    "alerts.col.for": {"es": "Durante (min)", "en": "For (min)"},
    "alerts.col.enabled": {"es": "Activa", "en": "Enabled"},
    "alerts.col.origin": {"es": "Origen", "en": "Origin"},
    "alerts.col.source": {"es": "Origen", "en": "Source"},
    "alerts.col.channel": {"es": "Canal", "en": "Channel"},
    "alerts.col.status": {"es": "Estado", "en": "Status"},
    "alerts.state.ok": {"es": "normal", "en": "ok"},
    "alerts.state.pending": {"es": "pendiente", "en": "pending"},
    "alerts.state.firing": {"es": "activa", "en": "firing"},
    "alerts.state.renotify": {"es": "sigue activa", "en": "still firing"},
    "alerts.state.resolved": {"es": "resuelta", "en": "resolved"},
    "alerts.severity.info": {"es": "info", "en": "info"},
    "alerts.severity.warning": {"es": "aviso", "en": "warning"},
    "alerts.severity.critical": {"es": "crítica", "en": "critical"},
    "alerts.scope.all": {"es": "Todos los modelos", "en": "All models"},
    "alerts.origin.config": {"es": "configuración", "en": "config"},
    "alerts.origin.edited": {"es": "configuración (editada aquí)", "en": "config (edited here)"},
    "alerts.origin.page": {"es": "esta página", "en": "this page"},
    "alerts.origin.default": {"es": "predeterminada", "en": "built-in default"},
    "alerts.history.rules": {"es": "Reglas", "en": "Rules"},
    "alerts.history.states": {"es": "Eventos", "en": "Events"},
    "alerts.history.severities": {"es": "Severidad", "en": "Severity"},
    "alerts.history.period": {"es": "Periodo", "en": "Period"},
    "alerts.history.empty": {"es": "Ningún evento con estos filtros.", "en": "No events match these filters."},
    "alerts.period.1h": {"es": "Última hora", "en": "Last hour"},
    "alerts.period.24h": {"es": "Últimas 24 horas", "en": "Last 24 hours"},
    "alerts.period.7d": {"es": "Últimos 7 días", "en": "Last 7 days"},
    "alerts.period.30d": {"es": "Últimos 30 días", "en": "Last 30 days"},
    "alerts.period.all": {"es": "Todo", "en": "All time"},
    "alerts.rules.empty": {"es": "Todavía no hay reglas.", "en": "No rules yet."},
    "alerts.editor.title": {"es": "Editar reglas", "en": "Edit rules"},
    "alerts.editor.pick": {"es": "Regla", "en": "Rule"},
    "alerts.editor.new": {"es": "➕ Nueva regla", "en": "➕ New rule"},
    "alerts.editor.name": {"es": "Nombre", "en": "Name"},
    "alerts.editor.kind": {"es": "Tipo", "en": "Kind"},
    "alerts.editor.severity": {"es": "Severidad", "en": "Severity"},
    "alerts.editor.model": {"es": "Modelo", "en": "Model"},
    "alerts.editor.threshold": {"es": "Umbral", "en": "Threshold"},
    "alerts.editor.window_minutes": {"es": "Ventana (minutos)", "en": "Window (minutes)"},
    "alerts.editor.min_requests": {"es": "Mínimo de peticiones en la ventana", "en": "Minimum requests in the window"},
    "alerts.editor.for_minutes": {"es": "Debe mantenerse durante (minutos)", "en": "Must hold for (minutes)"},
    "alerts.editor.enabled": {"es": "Activa", "en": "Enabled"},
    "alerts.editor.no_data": {
        "es": "Sin datos (ventana sin peticiones suficientes)",
        "en": "On no data (too few requests)",
    },
    "alerts.help.no_data": {
        "es": "Seguir activa: conserva el último estado. Resolver: una alerta activa se resuelve como «sin datos». "
        "Cero: una ventana vacía cuenta como 0 (se resuelve; una caída del tráfico puede saltar). "
        "Avisar: la falta de datos durante los minutos de «Debe mantenerse durante» es la alerta.",
        "en": "Keep firing: keeps the last state. Resolve: a firing alert resolves as 'no data'. "
        "Zero: an empty window measures 0 (it resolves; a traffic drop can fire). "
        "Notify: no data for the 'must hold for' minutes is itself the alert.",
    },
    "alerts.no_data.keep": {"es": "seguir activa", "en": "keep firing"},
    "alerts.no_data.resolve": {"es": "resolver como «sin datos»", "en": "resolve as 'no data'"},
    "alerts.no_data.zero": {
        "es": "contar como cero (tasa 0, tráfico 0)",
        "en": "treat as zero (rate 0, traffic 0)",
    },
    "alerts.no_data.notify": {"es": "avisar: la falta de datos es la alerta", "en": "notify: no data is the alert"},
    "alerts.editor.save": {"es": "Guardar", "en": "Save"},
    "alerts.editor.delete": {"es": "Borrar", "en": "Delete"},
    "alerts.editor.reset": {"es": "Volver a la versión de la configuración", "en": "Back to the config version"},
    "alerts.editor.edited_note": {
        "es": "Esta regla viene de la configuración y se editó aquí: los cambios valen hasta que cambie en la configuración.",
        "en": "This rule comes from the config and was edited here: the edits hold until the config's version changes.",
    },
    "alerts.editor.ignored_fields": {
        "es": "Este tipo no usa: {fields}.",
        "en": "This kind does not use: {fields}.",
    },
    "alerts.editor.problems": {"es": "No se pudo guardar la regla:", "en": "The rule was not saved:"},
    "alerts.editor.saved": {"es": "Regla «{name}» guardada.", "en": "Rule '{name}' saved."},
    "alerts.editor.deleted": {"es": "Regla «{name}» borrada.", "en": "Rule '{name}' deleted."},
    "alerts.editor.reset_done": {
        "es": "Regla «{name}» restaurada desde la configuración.",
        "en": "Rule '{name}' restored from the config.",
    },
    "alerts.help.error_rate": {
        "es": "Fracción de peticiones con error en la ventana (0.05 = 5 %).",
        "en": "Fraction of requests that failed in the window (0.05 = 5 %).",
    },
    "alerts.help.consecutive_failures": {
        "es": "Fallos seguidos de un mismo modelo.",
        "en": "Failures in a row of one model.",
    },
    "alerts.help.latency_p95": {
        "es": "Segundos: percentil 95 de la latencia en la ventana.",
        "en": "Seconds: 95th percentile of latency in the window.",
    },
    "alerts.help.ttft_p95": {
        "es": "Segundos: percentil 95 del tiempo al primer token.",
        "en": "Seconds: 95th percentile of time to first token.",
    },
    "alerts.help.slow_response": {
        "es": "Segundos: basta una respuesta más lenta en la ventana.",
        "en": "Seconds: one response slower than this in the window fires.",
    },
    "alerts.help.daily_cost": {"es": "Dólares gastados en el día UTC.", "en": "Dollars spent in the UTC day."},
    "alerts.help.memory": {
        "es": "MB de memoria residente (RSS) de un proceso.",
        "en": "MB of resident memory (RSS) of a process.",
    },
    "alerts.help.no_success": {
        "es": "Sin umbral: un modelo con peticiones y ninguna correcta en la ventana.",
        "en": "No threshold: a model with requests and not one success in the window.",
    },
    "alerts.help.circuit_open": {
        "es": "Sin umbral: el circuito de un modelo está abierto (el modelo falla y se salta hasta que una prueba lo cierre).",
        "en": "No threshold: a model's circuit is open (the model keeps failing and is skipped until a probe closes it).",
    },
    "alerts.help.latency_p95_anomaly": {
        "es": "Frente a lo normal: p95 de la latencia. Con «proporción», veces lo normal (2 = el doble); "
        "con «z», desviaciones típicas por encima de la media (3 = el borde de la banda habitual).",
        "en": "Against normal: latency p95. With 'ratio', times normal (2 = twice); "
        "with 'z', standard deviations above the mean (3 = the usual band's edge).",
    },
    "alerts.help.ttft_p95_anomaly": {
        "es": "Frente a lo normal: p95 del tiempo al primer token. Con «proporción», veces lo normal; "
        "con «z», desviaciones típicas por encima de la media.",
        "en": "Against normal: time to first token p95. With 'ratio', times normal; "
        "with 'z', standard deviations above the mean.",
    },
    "alerts.help.error_rate_anomaly": {
        "es": "Frente a lo normal: tasa de errores. Con «proporción», veces lo normal (3 = el triple); "
        "con «z», desviaciones típicas por encima de la media.",
        "en": "Against normal: error rate. With 'ratio', times normal (3 = three times); "
        "with 'z', standard deviations above the mean.",
    },
    "alerts.help.traffic_drop": {
        "es": "Frente a lo normal: peticiones. Con «proporción», fracción de lo normal (0.5 = la mitad); "
        "con «z», desviaciones típicas por debajo de la media.",
        "en": "Against normal: requests. With 'ratio', a fraction of normal (0.5 = half); "
        "with 'z', standard deviations below the mean.",
    },
    "alerts.editor.baseline": {"es": "Lo normal es", "en": "Compared with"},
    "alerts.editor.baseline_windows": {"es": "Ventanas anteriores", "en": "Previous windows"},
    "alerts.editor.score": {"es": "Salta por", "en": "Score"},
    "alerts.help.baseline": {
        "es": "Misma hora, 7 días: la misma ventana de cada uno de los 7 días anteriores (un pico diario es normal). "
        "Ventanas anteriores: las N ventanas de la misma duración justo antes de esta (sirve desde el primer "
        "día y para tráfico sin ciclo diario).",
        "en": "Same time, past 7 days: the same window on each of the past 7 days (a daily peak is normal). "
        "Previous windows: the N windows of the same length right before this one (works from day one and "
        "for traffic without a daily cycle).",
    },
    "alerts.help.score": {
        "es": "Proporción: el umbral son veces lo normal y además fuera de la banda. z: el umbral son "
        "desviaciones típicas de lo normal (con un mínimo, para que una base plana no dispare con cualquier variación).",
        "en": "Ratio: the threshold is times normal, and outside the band too. z: the threshold is standard "
        "deviations from normal (with a floor, so a flat baseline does not fire on every wiggle).",
    },
    "alerts.baseline.daily": {"es": "misma hora, 7 días", "en": "same time, past 7 days"},
    "alerts.baseline.recent_choice": {"es": "ventanas anteriores", "en": "previous windows"},
    "alerts.score.ratio": {"es": "proporción", "en": "ratio"},
    "alerts.score.z": {"es": "z (desviaciones típicas)", "en": "z-score"},
    "alerts.col.compared": {"es": "Lo normal es", "en": "Compared with"},
    "alerts.col.score": {"es": "Salta por", "en": "Score"},
    "alerts.channels.intro": {
        "es": "Cada alerta va al registro (logger chatwatch.alerts), a la app (avisos y banner) y a estos canales. Reaviso cada {minutes:g} min mientras siga activa; evaluación cada {seconds:g} s y tras cada petición.",
        "en": "Every alert goes to the log (logger chatwatch.alerts), to the app (toasts and banner) and to these channels. Re-notified every {minutes:g} min while firing; evaluated every {seconds:g} s and after each request.",
    },
    "alerts.channels.none": {
        "es": "No hay canales externos: añade URLs de apprise en [alerts] notify o notify_env.",
        "en": "No external channels: add apprise URLs to [alerts] notify or notify_env.",
    },
    "alerts.channels.ok": {"es": "listo", "en": "ready"},
    "alerts.channels.test": {"es": "Enviar notificación de prueba", "en": "Send test notification"},
    "alerts.channels.test_ok": {"es": "Entregada a {channel}.", "en": "Delivered to {channel}."},
    "alerts.channels.test_failed": {
        "es": "No se pudo entregar a {channel}: {error}",
        "en": "Could not deliver to {channel}: {error}",
    },
    "alerts.channels.test_log_only": {
        "es": "Notificación de prueba escrita en el registro.",
        "en": "Test notification written to the log.",
    },
    "alerts.channels.sending": {"es": "Enviando…", "en": "Sending…"},
    "alerts.banner.title": {"es": "{n} alerta(s) activa(s)", "en": "{n} active alert(s)"},
    "alerts.banner.more": {"es": "Detalles en la página Alertas.", "en": "Details on the Alerts page."},
    "alerts.banner.line": {
        "es": "**{rule}** — {what}: {value} (umbral {threshold}) · {scope} · desde {since} UTC",
        "en": "**{rule}** — {what}: {value} (threshold {threshold}) · {scope} · since {since} UTC",
    },
    "alerts.toast.firing": {"es": "Alerta: {summary}", "en": "Alert: {summary}"},
    "alerts.toast.renotify": {"es": "Sigue activa: {summary}", "en": "Still firing: {summary}"},
    "alerts.toast.resolved": {"es": "Resuelta: {summary}", "en": "Resolved: {summary}"},
    "alerts.toast.more": {"es": "y {n} evento(s) de alerta más", "en": "and {n} more alert event(s)"},
}


_T: dict[str, dict[str, str]] = {
    "title.firing": {"es": "[chatwatch] ALERTA ({severity}): {rule}", "en": "[chatwatch] {severity} ALERT: {rule}"},
    "title.renotify": {
        "es": "[chatwatch] SIGUE ACTIVA ({severity}): {rule}",
        "en": "[chatwatch] STILL FIRING ({severity}): {rule}",
    },
    "title.resolved": {"es": "[chatwatch] RESUELTA: {rule}", "en": "[chatwatch] RESOLVED: {rule}"},
    "title.resolved_no_data": {
        "es": "[chatwatch] RESUELTA (sin datos): {rule}",
        "en": "[chatwatch] RESOLVED (no data): {rule}",
    },
    "title.firing_no_data": {
        "es": "[chatwatch] SIN DATOS ({severity}): {rule}",
        "en": "[chatwatch] {severity} NO DATA: {rule}",
    },
    "title.test": {"es": "[chatwatch] Notificación de prueba", "en": "[chatwatch] Test notification"},
    "body.firing": {
        "es": "{what}: {value}{limit} en {scope}{blame}. Desde {since} UTC. Instancia {instance}.",
        "en": "{what}: {value}{limit} on {scope}{blame}. Since {since} UTC. Instance {instance}.",
    },
    "body.firing_no_data": {
        "es": "{what} en {scope}: {no_data}. Desde {since} UTC. Instancia {instance}.",
        "en": "{what} on {scope}: {no_data}. Since {since} UTC. Instance {instance}.",
    },
    "body.renotify_no_data": {
        "es": "{what} en {scope}{blame}: {no_data}. Sigue activa{limit} hasta que haya peticiones suficientes "
        "para saberlo. Desde {since} UTC. Instancia {instance}.",
        "en": "{what} on {scope}{blame}: {no_data}. Still firing{limit} until enough requests come back to tell. "
        "Since {since} UTC. Instance {instance}.",
    },
    "body.resolved": {
        "es": "{what} volvió a la normalidad en {scope}: {value}{limit}. Activa desde {since} hasta {at} UTC. "
        "Instancia {instance}.",
        "en": "{what} is back to normal on {scope}: {value}{limit}. Fired {since}, resolved {at} UTC. "
        "Instance {instance}.",
    },
    "body.resolved_no_data": {
        "es": "{what} en {scope}: resuelta por falta de datos, no por volver a la normalidad: {no_data}. "
        "Activa desde {since} hasta {at} UTC. Instancia {instance}.",
        "en": "{what} on {scope}: resolved for lack of data, not back to normal: {no_data}. "
        "Fired {since}, resolved {at} UTC. Instance {instance}.",
    },
    "body.resolved_off": {
        "es": "{what} en {scope}: la regla se desactivó o se borró y ya no se vigila. "
        "Activa desde {since} hasta {at} UTC. Instancia {instance}.",
        "en": "{what} on {scope}: the rule was disabled or deleted and is no longer watched. "
        "Fired {since}, resolved {at} UTC. Instance {instance}.",
    },
    "body.test": {
        "es": "Si lees esto, las alertas de chatwatch llegan a este canal. Instancia {instance}, {at} UTC.",
        "en": "If you can read this, chatwatch alerts reach this channel. Instance {instance}, {at} UTC.",
    },
    "scope.all": {"es": "todos los modelos", "en": "all models"},
    "scope.model": {"es": "el modelo {model}", "en": "model {model}"},
    "blame": {"es": " (peor: {model})", "en": " (worst: {model})"},
    "limit": {"es": " (umbral {threshold})", "en": " (threshold {threshold})"},
    "no_data": {"es": "sin datos", "en": "no data"},
    "no_data.none": {
        "es": "sin datos: ninguna petición en los últimos {window} min",
        "en": "no data: no requests in the last {window} min",
    },
    "no_data.few": {
        "es": "sin datos: solo {n} petición(es) en los últimos {window} min (hacen falta {needed})",
        "en": "no data: only {n} request(s) in the last {window} min ({needed} needed)",
    },
    "no_data.memory": {
        "es": "sin datos: ninguna medida de memoria en los últimos {window} min",
        "en": "no data: no memory reading in the last {window} min",
    },
    "no_data.baseline": {
        "es": "sin datos: aún no hay {days} de los últimos {past} días con {needed} petición(es) o más "
        "en esta ventana de {window} min",
        "en": "no data: not yet {days} of the past {past} days with {needed}+ request(s) in this {window} min window",
    },
    "no_data.recent": {
        "es": "sin datos: solo {usable} de las {past} ventanas de {window} min anteriores tienen {needed} "
        "petición(es) o más (hacen falta {days})",
        "en": "no data: only {usable} of the previous {past} {window} min windows have {needed}+ request(s) "
        "({days} needed)",
    },
    "no_data.baseline_any": {
        "es": "sin datos: aún no hay suficientes ventanas anteriores con {needed} petición(es) o más para saber "
        "lo normal",
        "en": "no data: not yet enough earlier windows with {needed}+ request(s) to know what normal is",
    },
    "normal": {"es": "lo normal {baseline}, banda {band}", "en": "normal {baseline}, band {band}"},
    "basis.daily": {"es": "misma hora de los 7 días anteriores", "en": "same time on the past 7 days"},
    "basis.recent": {"es": "{n} ventanas anteriores", "en": "previous {n} windows"},
    "basis.ratio": {"es": "por proporción", "en": "by ratio"},
    "basis.z": {"es": "por z", "en": "by z-score"},
    "z_value": {"es": "{value}, z = {z}", "en": "{value}, z = {z}"},
    "last_value": {"es": "{value} (último valor; {no_data})", "en": "{value} (last value; {no_data})"},
    "resolved.no_data": {"es": "resuelta (sin datos)", "en": "resolved (no data)"},
    "resolved.off": {"es": "resuelta (regla desactivada)", "en": "resolved (rule off)"},
    "severity.info": {"es": "INFO", "en": "INFO"},
    "severity.warning": {"es": "AVISO", "en": "WARNING"},
    "severity.critical": {"es": "CRÍTICA", "en": "CRITICAL"},
    "kind.error_rate": {"es": "Tasa de errores", "en": "Error rate"},
    "kind.consecutive_failures": {"es": "Fallos seguidos", "en": "Consecutive failures"},
    "kind.latency_p95": {"es": "Latencia p95", "en": "Latency p95"},
    "kind.ttft_p95": {"es": "Tiempo al primer token p95", "en": "Time to first token p95"},
    "kind.slow_response": {"es": "Respuesta lenta", "en": "Slow response"},
    "kind.daily_cost": {"es": "Coste del día (UTC)", "en": "Cost today (UTC)"},
    "kind.memory": {"es": "Memoria del proceso (RSS)", "en": "Process memory (RSS)"},
    "kind.no_success": {"es": "Sin ninguna respuesta correcta", "en": "No successful response"},
    "kind.latency_p95_anomaly": {"es": "Latencia p95 fuera de lo normal", "en": "Latency p95 above normal"},
    "kind.ttft_p95_anomaly": {
        "es": "Tiempo al primer token p95 fuera de lo normal",
        "en": "Time to first token p95 above normal",
    },
    "kind.error_rate_anomaly": {"es": "Tasa de errores fuera de lo normal", "en": "Error rate above normal"},
    "kind.traffic_drop": {"es": "Caída del tráfico", "en": "Traffic drop"},
    "unit.traffic": {"es": "{n} petición(es)", "en": "{n} request(s)"},
    "unit.ratio": {"es": "{ratio}× lo normal", "en": "{ratio}× normal"},
    "unit.z_above": {"es": "z ≥ {z}", "en": "z ≥ {z}"},
    "unit.z_below": {"es": "z ≤ −{z}", "en": "z ≤ −{z}"},
    "unit.failures": {"es": "{n} seguidos", "en": "{n} in a row"},
    "kind.circuit_open": {"es": "Circuito abierto", "en": "Circuit open"},
    "unit.requests": {"es": "{n} peticiones sin éxito", "en": "{n} requests, none successful"},
    "unit.circuits": {"es": "{n} circuito(s) abierto(s)", "en": "{n} open circuit(s)"},
    # validation
    "err.name_required": {"es": "el nombre es obligatorio", "en": "the name is required"},
    "err.name_long": {
        "es": "el nombre tiene más de 200 caracteres",
        "en": "the name is longer than 200 characters",
    },
    "err.kind": {
        "es": "tipo desconocido {value!r}; uno de: {options}",
        "en": "unknown kind {value!r}; one of: {options}",
    },
    "err.severity": {
        "es": "severidad desconocida {value!r}; una de: {options}",
        "en": "unknown severity {value!r}; one of: {options}",
    },
    "err.no_data": {
        "es": "valor desconocido para «sin datos» {value!r}; uno de: {options}",
        "en": "unknown no_data choice {value!r}; one of: {options}",
    },
    "err.number": {"es": "el umbral debe ser un número", "en": "the threshold must be a number"},
    "err.fraction": {
        "es": "una tasa de errores es una fracción entre 0 y 1 (0.05 = 5 %), no {value:g}",
        "en": "an error rate is a fraction between 0 and 1 (0.05 = 5 %), not {value:g}",
    },
    "err.whole": {
        "es": "el número de fallos seguidos debe ser un entero de al menos 1, no {value:g}",
        "en": "the number of failures in a row must be a whole number of at least 1, not {value:g}",
    },
    "err.positive": {
        "es": "el umbral debe ser mayor que 0, no {value:g}",
        "en": "the threshold must be greater than 0, not {value:g}",
    },
    "err.cost": {
        "es": "un coste diario no puede ser negativo ({value:g})",
        "en": "a daily cost cannot be negative ({value:g})",
    },
    "err.ratio": {
        "es": "frente a lo normal, el umbral es una proporción mayor que 1 (2 = el doble de lo normal), no {value:g}",
        "en": "against normal the threshold is a ratio above 1 (2 = twice the baseline), not {value:g}",
    },
    "err.drop": {
        "es": "una caída del tráfico se mide como fracción de lo normal, entre 0 y 1 sin incluirlos "
        "(0.5 = la mitad), no {value:g}",
        "en": "a traffic drop is a fraction of normal between 0 and 1, both excluded (0.5 = half), not {value:g}",
    },
    "err.z": {
        "es": "con «z», el umbral es un número de desviaciones típicas mayor que 0 y como mucho {most} "
        "(3 = el borde de la banda habitual), no {value:g}",
        "en": "with score 'z' the threshold is a number of standard deviations above 0 and at most {most} "
        "(3 = the usual band's edge), not {value:g}",
    },
    "err.baseline": {
        "es": "lo normal es {value!r}: debe ser uno de {options}",
        "en": "baseline {value!r} is not one of {options}",
    },
    "err.score": {"es": "«score» {value!r} no es uno de {options}", "en": "score {value!r} is not one of {options}"},
    "err.baseline_windows": {
        "es": "las ventanas anteriores deben ser un entero de al menos 2, no {value}",
        "en": "baseline_windows must be a whole number of at least 2, not {value}",
    },
    "err.recent_span": {
        "es": "{value} ventanas de {window} min llegan más atrás de {days} días",
        "en": "{value} windows of {window} min reach back more than {days} days",
    },
    "err.window": {
        "es": "la ventana debe ser de más de 0 y como mucho 1440 minutos (un día), no {value:g}",
        "en": "the window must be more than 0 and at most 1440 minutes (a day), not {value:g}",
    },
    "err.min_requests": {
        "es": "el mínimo de peticiones debe ser un entero de al menos 0, no {value}",
        "en": "the minimum number of requests must be a whole number of at least 0, not {value}",
    },
    "err.for_minutes": {
        "es": "los minutos de espera no pueden ser negativos ({value:g})",
        "en": "'for' minutes cannot be negative ({value:g})",
    },
    "err.model": {"es": "modelo desconocido {value!r}", "en": "unknown model {value!r}"},
    "err.exists": {"es": "ya existe una regla llamada {value!r}", "en": "a rule named {value!r} already exists"},
    "err.missing": {"es": "no hay ninguna regla llamada {value!r}", "en": "there is no rule named {value!r}"},
    "err.duplicate": {"es": "otra regla tiene este nombre", "en": "another rule has this name"},
}
NOTIFY_STRINGS: dict[str, dict[str, str]] = {f"alert.{key}": entry for key, entry in _T.items()}
