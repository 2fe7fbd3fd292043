"""Strings of cost control: the response cache, budgets and rate limits."""

from __future__ import annotations

COST_STRINGS: dict[str, dict[str, str]] = {
    "price_source.cache": {"es": "caché (sin llamada)", "en": "cache (no call)"},
    # Budgets on the dashboard (ui/widgets/budgets.py)
    "budgets.title": {"es": "Presupuestos (UTC)", "en": "Budgets (UTC)"},
    "budgets.bar": {
        "es": "{name} · {period} · {model}: {spent} de {limit} ({used})",
        "en": "{name} · {period} · {model}: {spent} of {limit} ({used})",
    },
    "budgets.warn": {
        "es": "El presupuesto «{name}» va por el {used} de su límite (aviso al {threshold}).",
        "en": "Budget '{name}' is at {used} of its limit (notice at {threshold}).",
    },
    "budgets.over": {
        "es": "El presupuesto «{name}» ha llegado a su límite: {action} hasta {resets} UTC.",
        "en": "Budget '{name}' has reached its limit: {action} until {resets} UTC.",
    },
    "budgets.caption": {
        "es": "Gastado: el coste exacto ya liquidado de las solicitudes sujetas a cada presupuesto en su periodo "
        "(día o mes UTC); reservado: el peor caso de las que aún están en curso. Un modelo sin precio no suma "
        "dólares (su coste es desconocido, no $0) pero sí tokens; la columna «sin precio» dice cuántas hubo.",
        "en": "Spent: the exact settled cost of the requests under each budget in its period (UTC day or month); "
        "reserved: the worst case of those still running. A model without a price adds no dollars (its cost is "
        "unknown, not $0) but does add tokens; the 'unpriced' column says how many there were.",
    },
    "budgets.tokens": {"es": "{n} tokens", "en": "{n} tokens"},
    "budgets.all_models": {"es": "todos los modelos", "en": "all models"},
    "budgets.period.day": {"es": "día", "en": "day"},
    "budgets.period.month": {"es": "mes", "en": "month"},
    "budgets.action.block": {"es": "se rechazan las solicitudes", "en": "requests are refused"},
    "budgets.action.fallback": {"es": "las solicitudes van a {model}", "en": "requests go to {model}"},
    "budgets.action.warn": {"es": "solo se avisa", "en": "only a notice"},
    "budgets.col.name": {"es": "Presupuesto", "en": "Budget"},
    "budgets.col.period": {"es": "Periodo", "en": "Period"},
    "budgets.col.model": {"es": "Modelo", "en": "Model"},
    "budgets.col.spent": {"es": "Gastado", "en": "Spent"},
    "budgets.col.limit": {"es": "Límite", "en": "Limit"},
    "budgets.col.tokens": {"es": "Tokens", "en": "Tokens"},
    "budgets.col.used": {"es": "Usado", "en": "Used"},
    "budgets.col.action": {"es": "Al llegar al límite", "en": "At the limit"},
    "budgets.col.resets": {"es": "Se reinicia (UTC)", "en": "Resets (UTC)"},
    "budgets.col.reserved": {"es": "Reservado", "en": "Reserved"},
    "budgets.col.unpriced": {"es": "Sin precio", "en": "Unpriced"},
    # Response cache savings on the dashboard (ui/widgets/cache.py)
    "cache.title": {"es": "Ahorro de la caché de respuestas", "en": "Response cache savings"},
    "cache.caption": {
        "es": "Tasa de aciertos = aciertos / intentos del modelo (sus registros menos los rechazados por chatwatch "
        "antes de llamar a un modelo), en el rango del filtro, de las filas sin agregar. Ahorro: lo que habrían "
        "costado y tardado de nuevo las llamadas originales; un acierto cuya llamada original no tenía precio "
        "ahorró una cantidad desconocida (sin precio, nunca $0).",
        "en": "Hit rate = hits / attempts of the model (its records minus those chatwatch refused before calling a "
        "model), over the filter's range, from the raw rows. Saved: what the original calls would have cost and "
        "taken again; a hit whose original call had no price saved an unknown amount (unpriced, never $0).",
    },
    "cache.col.model": {"es": "Modelo", "en": "Model"},
    "cache.col.hits": {"es": "Aciertos", "en": "Hits"},
    "cache.col.attempts": {"es": "Intentos", "en": "Attempts"},
    "cache.col.hit_rate": {"es": "Tasa de aciertos", "en": "Hit rate"},
    "cache.col.saved_usd": {"es": "Dólares ahorrados", "en": "Dollars saved"},
    "cache.col.saved_s": {"es": "Tiempo ahorrado", "en": "Time saved"},
}
