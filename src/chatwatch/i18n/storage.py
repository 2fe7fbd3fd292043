"""Strings of the store's health, shown on every monitoring page (ui/widgets/store_health.py)."""

from __future__ import annotations

STORAGE_STRINGS: dict[str, dict[str, str]] = {
    "store.degraded": {
        "es": "Monitoreo degradado: {unsaved} registros de este proceso esperan en memoria ({reason}); "
        "{lost} perdidos. Lo que se ve aquí puede estar incompleto hasta que el almacén vuelva.",
        "en": "Monitoring degraded: {unsaved} records of this process wait in memory ({reason}); "
        "{lost} lost. What is shown here may be incomplete until the store is back.",
    },
    "store.unreadable": {
        "es": "Monitoreo degradado: no se puede leer el almacén ({reason}). El chat sigue funcionando; "
        "esta página se actualizará cuando vuelva.",
        "en": "Monitoring degraded: the store cannot be read ({reason}). The chat keeps working; "
        "this page updates once it is back.",
    },
}
