"""Strings of the compare page, the blind arena and the leaderboard (ui/views/compare.py,
arena.py, leaderboard.py; ui/widgets/compare.py, arena.py).

`t` here looks a key up in this table and otherwise in chatwatch.i18n's merged tables, so
the pages work whether or not this table is already merged there (the merge is the i18n
package's own file); either way a missing key raises KeyError, as chatwatch.i18n.t does."""

from __future__ import annotations

ARENA_STRINGS: dict[str, dict[str, str]] = {
    "nav.compare": {"es": "Comparar", "en": "Compare"},
    "nav.arena": {"es": "Arena a ciegas", "en": "Blind arena"},
    "nav.leaderboard": {"es": "Clasificación", "en": "Leaderboard"},
    "cmp.title": {"es": "Comparar modelos", "en": "Compare models"},
    "cmp.models": {"es": "Modelos (de 2 a 4)", "en": "Models (2 to 4)"},
    "cmp.pick_range": {"es": "Elige de 2 a 4 modelos.", "en": "Pick 2 to 4 models."},
    "cmp.source": {"es": "Qué enviar", "en": "What to send"},
    "cmp.source.prompt": {"es": "Un mensaje", "en": "One prompt"},
    "cmp.source.chat": {"es": "La conversación actual del chat", "en": "The current chat conversation"},
    "cmp.no_chat": {"es": "El chat de esta sesión está vacío.", "en": "This session's chat is empty."},
    "cmp.prompt": {"es": "Mensaje", "en": "Prompt"},
    "cmp.prompt_needed": {"es": "Escribe un mensaje primero.", "en": "Write a prompt first."},
    "cmp.send": {"es": "Enviar a los modelos", "en": "Send to the models"},
    "cmp.waiting": {
        "es": "Esperando turno en el modelo local (puesto {place})…",
        "en": "Waiting for the local model (place {place} in line)…",
    },
    "cmp.starting": {"es": "Empezando…", "en": "Starting…"},
    "cmp.error": {"es": "Error ({kind}): {message}", "en": "Error ({kind}): {message}"},
    "cmp.latency": {"es": "Latencia", "en": "Latency"},
    "cmp.ttft": {"es": "TTFT", "en": "TTFT"},
    "cmp.speed": {"es": "Tokens de salida/s", "en": "Output tokens/s"},
    "cmp.tokens": {"es": "Tokens (entrada / salida)", "en": "Tokens (in / out)"},
    "cmp.cost": {"es": "Coste", "en": "Cost"},
    "cmp.unpriced": {"es": "sin precio", "en": "unpriced"},
    "cmp.record": {"es": "Ver la solicitud", "en": "See the request"},
    "cmp.round": {"es": "Ronda {id}", "en": "Round {id}"},
    "arena.title": {"es": "Arena a ciegas", "en": "Blind arena"},
    "arena.intro": {
        "es": "Dos modelos al azar responden; sus nombres se muestran después de tu voto.",
        "en": "Two random models answer; their names are shown after your vote.",
    },
    "arena.too_few_models": {
        "es": "La arena necesita al menos dos modelos elegibles ([arena] models).",
        "en": "The arena needs at least two eligible models ([arena] models).",
    },
    "arena.prompt": {"es": "Tu mensaje para los dos modelos", "en": "Your prompt for both models"},
    "arena.answer": {"es": "Respuesta {side}", "en": "Answer {side}"},
    "arena.vote.a": {"es": "A es mejor", "en": "A is better"},
    "arena.vote.b": {"es": "B es mejor", "en": "B is better"},
    "arena.vote.tie": {"es": "Empate", "en": "Tie"},
    "arena.vote.both_bad": {"es": "Las dos son malas", "en": "Both are bad"},
    "arena.voted": {"es": "Voto guardado: {verdict}.", "en": "Vote stored: {verdict}."},
    "arena.refused": {"es": "Voto no guardado: {reason}", "en": "Vote not stored: {reason}"},
    "arena.failed": {
        "es": "Una respuesta falló: esta ronda no se puede votar.",
        "en": "An answer failed: this round cannot be voted on.",
    },
    "arena.revealed": {"es": "{side} era {model}", "en": "{side} was {model}"},
    "arena.new_round": {"es": "Nueva ronda", "en": "New round"},
    "lb.title": {"es": "Clasificación de la arena", "en": "Arena leaderboard"},
    "lb.empty": {"es": "No hay votos en este intervalo.", "en": "No votes in this range."},
    "lb.method": {
        "es": "Bradley-Terry (máxima verosimilitud con un prior débil), escala Elo (1000 = modelo medio); "
        "intervalo del 95 % por bootstrap de {rounds} remuestreos de los votos. Empate = media victoria para "
        "cada uno; «las dos son malas» no cuenta para la puntuación. Con menos de {min_votes} votos un modelo "
        "no se clasifica.",
        "en": "Bradley-Terry (maximum likelihood with a weak prior), Elo-scaled (1000 = the mean model); 95 % "
        'interval from {rounds} bootstrap resamplings of the votes. A tie is half a win for each; "both bad" '
        "does not count toward the rating. With fewer than {min_votes} votes a model is not ranked.",
    },
    "lb.too_few": {"es": "pocos votos", "en": "too few votes"},
    "lb.col.rank": {"es": "Puesto", "en": "Rank"},
    "lb.col.model": {"es": "Modelo", "en": "Model"},
    "lb.col.rating": {"es": "Puntuación", "en": "Rating"},
    "lb.col.ci": {"es": "IC 95 %", "en": "95 % CI"},
    "lb.col.votes": {"es": "Votos", "en": "Votes"},
    "lb.col.win_rate": {"es": "Tasa de victorias", "en": "Win rate"},
    "lb.col.p50_latency": {"es": "Latencia p50", "en": "p50 latency"},
    "lb.col.p50_ttft": {"es": "TTFT p50", "en": "p50 TTFT"},
    "lb.col.speed": {"es": "Tokens/s", "en": "Tokens/s"},
    "lb.col.cost_1k": {"es": "Coste por 1.000 solicitudes", "en": "Cost per 1,000 requests"},
    "lb.col.error_rate": {"es": "Tasa de error", "en": "Error rate"},
    "lb.col.thumbs_up": {"es": "Pulgar arriba", "en": "Thumbs up"},
    "lb.chart.cost": {"es": "Puntuación frente a coste", "en": "Rating against cost"},
    "lb.chart.latency": {"es": "Puntuación frente a latencia p50", "en": "Rating against p50 latency"},
    "lb.chart.no_cost": {
        "es": "Ningún modelo clasificado tiene precio: no hay gráfico de coste.",
        "en": "No rated model has a price: no cost chart.",
    },
    "lb.export.csv": {"es": "Descargar CSV", "en": "Download CSV"},
    "lb.export.json": {"es": "Descargar JSON", "en": "Download JSON"},
}


def t(key: str, lang: str, **params) -> str:
    entry = ARENA_STRINGS.get(key)
    if entry is None:
        from chatwatch.i18n import t as common_t

        return common_t(key, lang, **params)
    text = entry[lang]
    return text.format(**params) if params else text
