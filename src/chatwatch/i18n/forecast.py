"""Strings of the cost forecast (ui/widgets/forecast.py)."""

from __future__ import annotations

FORECAST_STRINGS: dict[str, dict[str, str]] = {
    "forecast.title": {"es": "Previsión de gasto (UTC)", "en": "Spend forecast (UTC)"},
    "forecast.none": {
        "es": "Aún no hay un día completo con solicitudes: la previsión empieza mañana.",
        "en": "No whole day with requests yet: the forecast starts tomorrow.",
    },
    "forecast.month_spent": {"es": "Gastado este mes", "en": "Spent this month"},
    "forecast.today_spent": {"es": "Gastado hoy", "en": "Spent today"},
    "forecast.day_end": {"es": "Previsión al final del día", "en": "Projected day-end"},
    "forecast.month_end": {"es": "Previsión a fin de mes", "en": "Projected month-end"},
    "forecast.band": {"es": "banda 95 %: {low} – {high}", "en": "95 % band: {low} – {high}"},
    "forecast.method": {
        "es": "Método: media por día de la semana de los últimos 28 días completos (menos si el almacén es más "
        "joven) y el perfil por hora para el resto de hoy; banda del 95 % por bootstrap de esos días y sus "
        "residuos. Basada en {days} días.",
        "en": "Method: day-of-week-aware mean of the last 28 whole days (fewer when the store is younger) and the "
        "hour-of-day profile for the rest of today; 95 % band from a bootstrap of those days and their "
        "residuals. Based on {days} days.",
    },
    "forecast.unpriced": {
        "es": "{n} solicitudes de este mes no tienen precio: no están en ninguna suma.",
        "en": "{n} requests this month have no price: they are in no sum.",
    },
    "forecast.unpriced_models": {
        "es": "Sin previsión (coste desconocido, sin precio): {models}.",
        "en": "No forecast (cost unknown, unpriced): {models}.",
    },
    "forecast.per_model": {"es": "Previsión por modelo", "en": "Forecast per model"},
    "forecast.col.scope": {"es": "Modelo", "en": "Model"},
    "forecast.col.total": {"es": "Total", "en": "Total"},
    "forecast.col.low": {"es": "Fin de mes (mín. 95 %)", "en": "Month-end (95 % low)"},
    "forecast.col.high": {"es": "Fin de mes (máx. 95 %)", "en": "Month-end (95 % high)"},
    "forecast.chart": {"es": "Gasto acumulado del mes y previsión", "en": "Month's cumulative spend and projection"},
    "forecast.actual": {"es": "gastado", "en": "spent"},
    "forecast.projected": {"es": "previsión", "en": "projected"},
    "forecast.chart_model": {
        "es": "{model}: gasto acumulado del mes y previsión",
        "en": "{model}: month's cumulative spend and projection",
    },
    "forecast.daily_chart": {"es": "Gasto por día del mes", "en": "Spend per day this month"},
    "forecast.daily_chart_model": {"es": "{model}: gasto por día del mes", "en": "{model}: spend per day this month"},
    "forecast.daily": {"es": "gasto del día", "en": "day's spend"},
    "forecast.day_end_point": {
        "es": "previsión de hoy (95 %: {low} – {high})",
        "en": "today's projection (95 %: {low} – {high})",
    },
}
