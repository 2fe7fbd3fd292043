"""The sign-in gate ([auth] in config): who may see the monitoring pages and exports.

Why here and like this: Streamlit's `st.navigation` runs only the pages it is given, so the
gate is the page list itself (ui/app.py asks `signed_in()` and hands a signed-out session
the sign-in page in place of every protected page, at the same URL path). Nothing
protected is rendered, so nothing protected can leak — no metric, request id or export.

Two modes:
- "password": one shared password. Its slow hash (argon2 from `chatwatch hash-password`,
  or `scrypt$N$r$p$<salt b64>$<key b64>` made with hashlib.scrypt) is read from the
  environment variable named by `password_hash_env`, else from `st.secrets` under that
  name. A missing or malformed hash is an error on the page naming the variable, and the
  protected pages stay closed (never open by default).
- "oidc": Streamlit's own `st.login(provider)` / `st.user.is_logged_in` / `st.logout()`,
  configured in `.streamlit/secrets.toml` ([auth], [auth.<provider>]).

Failed passwords are limited twice: per browser session (a `Throttle` in session state)
and per client address (one `Throttle` per server process, in `st.cache_resource`, since
an address spans sessions). Every try counts as a failure until it is proven right, so
concurrent tries cannot slip past the limit. Sign-ins, refusals and sign-outs are logged
on `chatwatch.auth`, never with the password. The signed-in state itself lives only in the
session's `st.session_state`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import argon2
import streamlit as st
from streamlit.errors import StreamlitAuthError

from chatwatch.config import AuthConfig
from chatwatch.i18n import t

log = logging.getLogger("chatwatch.auth")

SESSION_KEY = "chatwatch_auth"  # the session's SignIn
SESSION_THROTTLE_KEY = "chatwatch_auth_throttle"
OIDC_LOGGED_KEY = "chatwatch_auth_oidc_logged"  # the OIDC sign-in of this session was logged
SCRYPT_PREFIX = "scrypt$"
# scrypt's memory is 128 * r * N bytes: refuse parameters that would eat the server.
SCRYPT_MAX_MEM = 256 * 1024 * 1024
OIDC_SHARED_KEYS = ("redirect_uri", "cookie_secret")
OIDC_PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")

_hasher = argon2.PasswordHasher()


class AuthSetupError(Exception):
    """The sign-in is configured but cannot work: `key` is the i18n key of the message and
    `values` its fields (the variable's name, the reason; never the hash)."""

    def __init__(self, key: str, **values: str) -> None:
        super().__init__(f"{key}: {values}")
        self.key = key
        self.values = values


# -- the password's hash ----------------------------------------------------------------------
def load_password_hash(env_name: str, secrets: Mapping[str, Any] | None) -> str:
    """The stored hash: the environment variable `env_name`, else the secret of that name.
    Raises AuthSetupError when neither holds one or the one found is malformed."""
    value = os.environ.get(env_name, "").strip()
    if not value and secrets is not None:
        found = secrets.get(env_name)
        value = found.strip() if isinstance(found, str) else ""
    if not value:
        raise AuthSetupError("auth.setup.missing_hash", name=env_name)
    problem = hash_problem(value)
    if problem:
        raise AuthSetupError("auth.setup.bad_hash", name=env_name, reason=problem)
    return value


def hash_problem(stored: str) -> str | None:
    """Why `stored` is not a usable hash, or None (checked before any password is tried)."""
    if stored.startswith(SCRYPT_PREFIX):
        try:
            _scrypt_parts(stored)
        except ValueError as exc:
            return str(exc)
        return None
    if not stored.startswith("$argon2"):
        return "neither an argon2 ($argon2id$...) nor a scrypt$... hash"
    try:
        argon2.extract_parameters(stored)
    except argon2.exceptions.InvalidHashError:
        return "a malformed argon2 hash"
    return None


def _scrypt_parts(stored: str) -> tuple[int, int, int, bytes, bytes]:
    fields = stored.split("$")
    if len(fields) != 6:
        raise ValueError("a scrypt hash has 6 fields: scrypt$N$r$p$salt$key")
    try:
        n, r, p = (int(f) for f in fields[1:4])
        salt = base64.b64decode(fields[4], validate=True)
        key = base64.b64decode(fields[5], validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("scrypt N, r and p must be integers and salt and key base64") from None
    if n < 2 or n & (n - 1) or r < 1 or p < 1:
        raise ValueError("scrypt N must be a power of two above 1, r and p at least 1")
    if 128 * r * n > SCRYPT_MAX_MEM:
        raise ValueError(f"scrypt N * r needs more than {SCRYPT_MAX_MEM // 2**20} MiB")
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("the scrypt salt needs 8 bytes or more and the key 16 or more")
    return n, r, p, salt, key


def verify_password(stored: str, password: str) -> bool:
    """Whether `password` matches the stored argon2 or scrypt hash (constant-time compare).
    A malformed hash raises ValueError: check it with hash_problem first."""
    if stored.startswith(SCRYPT_PREFIX):
        n, r, p, salt, key = _scrypt_parts(stored)
        got = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(key), maxmem=2 * SCRYPT_MAX_MEM
        )
        return hmac.compare_digest(got, key)
    try:
        return _hasher.verify(stored, password)
    except argon2.exceptions.VerifyMismatchError:
        return False
    except argon2.exceptions.InvalidHashError as exc:
        raise ValueError("a malformed argon2 hash") from exc


def hash_fingerprint(stored: str) -> str:
    """A short digest of the stored hash: a session signed in under one hash is signed out
    when the hash changes (a new password), without keeping the hash in session state."""
    return hashlib.sha256(stored.encode("utf-8")).hexdigest()[:16]


# -- rate limiting ------------------------------------------------------------------------------
class Throttle:
    """Counts failed sign-ins per key (a session, a client address). After `max_failures`
    failures, each less than `lockout_s` after the one before, tries wait until `lockout_s`
    after the last failure; a quiet key is forgotten after `lockout_s`. At most
    `max_keys` keys are kept (the least recently failed dropped first). Thread-safe."""

    def __init__(
        self,
        max_failures: int,
        lockout_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (count, last failure)

    def _live(self, key: str, now: float) -> tuple[int, float]:
        entry = self._failures.get(key)
        if entry is not None and now - entry[1] >= self.lockout_s:
            del self._failures[key]
            return 0, now
        return entry or (0, now)

    def wait_s(self, key: str) -> float:
        """Seconds until `key` may try again (0: now)."""
        with self._lock:
            now = self._clock()
            count, last = self._live(key, now)
            return max(0.0, last + self.lockout_s - now) if count >= self.max_failures else 0.0

    def begin(self, key: str) -> float:
        """Start a try: 0 and the try counted as a failure (until `succeeded`), or the
        seconds to wait, with nothing counted."""
        with self._lock:
            now = self._clock()
            count, last = self._live(key, now)
            if count >= self.max_failures:
                return max(0.0, last + self.lockout_s - now)
            self._failures[key] = (count + 1, now)
            self._failures.move_to_end(key)
            while len(self._failures) > self._max_keys:
                self._failures.popitem(last=False)
            return 0.0

    def failures(self, key: str) -> int:
        with self._lock:
            return self._live(key, self._clock())[0]

    def succeeded(self, key: str) -> None:
        """The try was right: forget the key's failures."""
        with self._lock:
            self._failures.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()


@dataclass(frozen=True)
class Attempt:
    """The outcome of one password try: ok, or why not ("wrong", "locked") and the wait."""

    ok: bool
    reason: str | None = None
    wait_s: float = 0.0


def try_password(
    stored: str,
    password: str,
    *,
    session: Throttle,
    address: Throttle,
    session_id: str,
    client: str,
) -> Attempt:
    """Check one password try against both limits and the hash, and log it (never the
    password). Locked out: refused without looking at the password."""
    wait = max(session.wait_s(session_id), address.wait_s(client))
    if not wait:
        wait = session.begin(session_id)
    if not wait:
        wait = address.begin(client)  # another session of this address may have locked it since
    extra = {"session_id": session_id, "client": client, "method": "password"}
    if wait > 0.0:
        log.warning("sign-in refused: locked out for %.0f s more", wait, extra=extra)
        return Attempt(False, "locked", wait)
    if verify_password(stored, password):
        session.succeeded(session_id)
        address.succeeded(client)
        log.info("sign-in ok", extra=extra)
        return Attempt(True)
    log.warning(
        "sign-in failed: wrong password (failures: %d from this session, %d from this address; lockout at %d)",
        session.failures(session_id),
        address.failures(client),
        address.max_failures,
        extra=extra,
    )
    wait = max(session.wait_s(session_id), address.wait_s(client))
    return Attempt(False, "locked" if wait else "wrong", wait)


# -- the session's state --------------------------------------------------------------------------
@dataclass(frozen=True)
class SignIn:
    """Who signed this session in, how and when (kept in st.session_state only)."""

    method: str  # "password"
    who: str  # the client address
    at: datetime
    key: str  # hash_fingerprint of the hash it was checked against


@st.cache_resource(show_spinner=False)
def address_throttle(max_failures: int, lockout_s: float) -> Throttle:
    """The server process's failure counts per client address (an address spans sessions).
    A changed limit in the config starts a new count."""
    return Throttle(max_failures, lockout_s)


def session_throttle(cfg: AuthConfig) -> Throttle:
    throttle = st.session_state.get(SESSION_THROTTLE_KEY)
    if not isinstance(throttle, Throttle) or (throttle.max_failures, throttle.lockout_s) != (
        cfg.max_failures,
        cfg.lockout_s,
    ):
        throttle = st.session_state[SESSION_THROTTLE_KEY] = Throttle(cfg.max_failures, cfg.lockout_s)
    return throttle


def client_address() -> str:
    """The browser's address. A loopback peer is a browser on this host or a reverse proxy
    in front of Streamlit: then the proxy's X-Forwarded-For / X-Real-IP names the client."""
    ip = st.context.ip_address
    if ip:
        return ip
    headers = st.context.headers
    forwarded = (headers.get("X-Forwarded-For") or "").split(",")[0].strip()
    return forwarded or (headers.get("X-Real-Ip") or "").strip() or "loopback"


def _secrets() -> Mapping[str, Any] | None:
    try:
        return st.secrets.to_dict()
    except FileNotFoundError:  # no secrets.toml anywhere
        return None


def _user() -> Mapping[str, Any]:
    return st.user.to_dict()


def signed_in(cfg: AuthConfig) -> bool:
    """Whether this session may see the protected pages (always, with mode "none")."""
    if cfg.mode == "none":
        return True
    if cfg.mode == "oidc":
        return bool(_user().get("is_logged_in"))
    current = st.session_state.get(SESSION_KEY)
    if not isinstance(current, SignIn):
        return False
    try:
        stored = load_password_hash(cfg.password_hash_env, _secrets())
    except AuthSetupError:
        return False  # the hash went away: nobody is signed in
    return current.key == hash_fingerprint(stored)


def note_oidc_sign_in(cfg: AuthConfig, session_id: str) -> None:
    """Log an OIDC sign-in once per session (Streamlit's callback does not tell the app)."""
    if cfg.mode == "oidc" and signed_in(cfg) and not st.session_state.get(OIDC_LOGGED_KEY):
        st.session_state[OIDC_LOGGED_KEY] = True
        user = _user()
        who = user.get("email") or user.get("sub") or "?"
        log.info(
            "sign-in ok", extra={"session_id": session_id, "client": client_address(), "method": "oidc", "user": who}
        )


# -- the pages' parts -------------------------------------------------------------------------------
def sign_out_button(cfg: AuthConfig, lang: str, session_id: str) -> None:
    """In the sidebar of a signed-in session: ends this session's sign-in."""
    if cfg.mode == "none" or not signed_in(cfg):
        return
    if st.sidebar.button(t("auth.signout", lang), key="auth_signout", icon="🚪"):
        extra = {"session_id": session_id, "client": client_address(), "method": cfg.mode}
        log.info("sign-out", extra=extra)
        st.session_state.pop(SESSION_KEY, None)
        st.session_state.pop(OIDC_LOGGED_KEY, None)
        if cfg.mode == "oidc":
            st.logout()  # clears st.user and Streamlit's identity cookie, then reloads
        st.rerun()


def sign_in_page(cfg: AuthConfig, lang: str, session_id: str) -> None:
    """The sign-in page: shown at /signin and in place of every protected page."""
    st.title(t("auth.title", lang))
    if signed_in(cfg):
        who = t("auth.signed_in.password", lang) if cfg.mode == "password" else _oidc_who()
        st.success(t("auth.signed_in", lang, who=who))
        return
    st.caption(t("auth.intro.chat" if cfg.protect_chat else "auth.intro", lang))
    if cfg.mode == "oidc":
        _oidc_form(cfg, lang)
    else:
        _password_form(cfg, lang, session_id)


def _oidc_who() -> str:
    user = _user()
    return str(user.get("email") or user.get("name") or user.get("sub") or "OIDC")


def oidc_missing(cfg: AuthConfig, secrets: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(what is missing, the section that needs it) in secrets for st.login, or None."""
    section = f"[auth.{cfg.oidc_provider}]" if cfg.oidc_provider else "[auth]"
    auth = (secrets or {}).get("auth")
    if not isinstance(auth, Mapping):
        return "[auth]", section
    shared = [k for k in OIDC_SHARED_KEYS if not auth.get(k)]
    if shared:
        return "[auth] " + ", ".join(shared), section
    provider = auth.get(cfg.oidc_provider) if cfg.oidc_provider else auth
    if not isinstance(provider, Mapping):
        return section, section
    own = [k for k in OIDC_PROVIDER_KEYS if not provider.get(k)]
    return (f"{section} " + ", ".join(own), section) if own else None


def _oidc_form(cfg: AuthConfig, lang: str) -> None:
    missing = oidc_missing(cfg, _secrets())
    if missing:
        st.error(t("auth.oidc.missing", lang, what=missing[0], section=missing[1]))
        return
    provider = cfg.oidc_provider or t("auth.oidc.provider_default", lang)
    if st.button(t("auth.oidc.button", lang, provider=provider), key="auth_oidc", type="primary"):
        try:
            st.login(cfg.oidc_provider)  # redirects to the provider; back signed in
        except StreamlitAuthError as exc:
            st.error(t("auth.oidc.error", lang, message=str(exc)))


def _password_form(cfg: AuthConfig, lang: str, session_id: str) -> None:
    try:
        stored = load_password_hash(cfg.password_hash_env, _secrets())
    except AuthSetupError as exc:
        log.error("sign-in is not set up: %s", t(exc.key, "en", **exc.values))
        st.error(t(exc.key, lang, **exc.values))
        return
    client = client_address()
    session, address = session_throttle(cfg), address_throttle(cfg.max_failures, cfg.lockout_s)
    with st.form("auth_signin", clear_on_submit=True):  # the password does not stay in the widget
        password = st.text_input(t("auth.password", lang), type="password", key="auth_password")
        submitted = st.form_submit_button(t("auth.submit", lang), type="primary")
    if not submitted:
        wait = max(session.wait_s(session_id), address.wait_s(client))
        if wait:
            st.error(t("auth.locked", lang, seconds=math.ceil(wait)))
        return
    if not password:
        st.warning(t("auth.empty", lang))
        return
    attempt = try_password(stored, password, session=session, address=address, session_id=session_id, client=client)
    if attempt.ok:
        st.session_state[SESSION_KEY] = SignIn("password", client, datetime.now(UTC), hash_fingerprint(stored))
        st.rerun()  # the navigation now holds the protected pages, this URL's page among them
    if attempt.reason == "locked":
        st.error(t("auth.locked", lang, seconds=math.ceil(attempt.wait_s)))
    else:
        st.error(t("auth.wrong", lang))
