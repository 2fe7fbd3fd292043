"""Strings of the sign-in gate (chatwatch/ui/auth.py): the sign-in page, its refusals and
set-up errors, and the sign-out button. A plain table: loaded and merged by `chatwatch.i18n`."""

from __future__ import annotations

AUTH_STRINGS: dict[str, dict[str, str]] = {
    "nav.signin": {"es": "Iniciar sesión", "en": "Sign in"},
    "auth.title": {"es": "Iniciar sesión", "en": "Sign in"},
    "auth.intro": {
        "es": "El panel, las peticiones, las alertas y las exportaciones necesitan iniciar sesión.",
        "en": "The dashboard, requests, alerts and exports need sign-in.",
    },
    "auth.intro.chat": {
        "es": "El chat, el panel, las peticiones, las alertas y las exportaciones necesitan iniciar sesión.",
        "en": "The chat, the dashboard, requests, alerts and exports need sign-in.",
    },
    "auth.password": {"es": "Contraseña", "en": "Password"},
    "auth.submit": {"es": "Entrar", "en": "Sign in"},
    "auth.wrong": {"es": "Contraseña incorrecta.", "en": "Wrong password."},
    "auth.empty": {"es": "Escribe la contraseña.", "en": "Type the password."},
    "auth.locked": {
        "es": "Demasiados intentos fallidos: vuelve a intentarlo dentro de {seconds} s.",
        "en": "Too many failed sign-ins: try again in {seconds} s.",
    },
    "auth.signed_in": {"es": "Sesión iniciada ({who}).", "en": "Signed in ({who})."},
    "auth.signed_in.password": {"es": "con contraseña", "en": "with the password"},
    "auth.signout": {"es": "Cerrar sesión", "en": "Sign out"},
    "auth.setup.missing_hash": {
        "es": "El inicio de sesión no está configurado: falta el hash de la contraseña. Ponlo en la variable de "
        'entorno {name} o en .streamlit/secrets.toml como {name} = "..." (créalo con `chatwatch hash-password`). '
        "Hasta entonces las páginas protegidas siguen cerradas.",
        "en": "Sign-in is not set up: the password hash is missing. Put it in the environment variable {name} or "
        'in .streamlit/secrets.toml as {name} = "..." (make it with `chatwatch hash-password`). Until then the '
        "protected pages stay closed.",
    },
    "auth.setup.bad_hash": {
        "es": "El hash de la contraseña en {name} no es válido ({reason}): debe ser un hash argon2 de "
        "`chatwatch hash-password` ($argon2id$...) o scrypt$N$r$p$sal$clave. Las páginas protegidas siguen cerradas.",
        "en": "The password hash in {name} is not valid ({reason}): it must be an argon2 hash made by "
        "`chatwatch hash-password` ($argon2id$...) or scrypt$N$r$p$salt$key. The protected pages stay closed.",
    },
    "auth.oidc.button": {"es": "Entrar con {provider}", "en": "Sign in with {provider}"},
    "auth.oidc.provider_default": {"es": "el proveedor de identidad", "en": "the identity provider"},
    "auth.oidc.missing": {
        "es": "El inicio de sesión OIDC no está configurado: falta {what} en .streamlit/secrets.toml "
        "(necesita redirect_uri y cookie_secret en [auth], y client_id, client_secret y server_metadata_url en "
        "{section}). Las páginas protegidas siguen cerradas.",
        "en": "OIDC sign-in is not set up: {what} is missing from .streamlit/secrets.toml (it needs redirect_uri "
        "and cookie_secret in [auth], and client_id, client_secret and server_metadata_url in {section}). The "
        "protected pages stay closed.",
    },
    "auth.oidc.error": {"es": "No se pudo iniciar sesión: {message}", "en": "Sign-in failed: {message}"},
}
