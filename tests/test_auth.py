"""The sign-in gate's parts without a browser: hashes made by `chatwatch hash-password` (argon2)
and by hashlib.scrypt verify; malformed or missing hashes are set-up errors naming the
variable; the rate limit per session and per address follows an injected clock; the log
lines of sign-ins never hold the password."""

from __future__ import annotations

import base64
import hashlib
import logging
import subprocess
import sys

import argon2
import pytest

from chatwatch.ui.auth import (
    AuthSetupError,
    Throttle,
    hash_problem,
    load_password_hash,
    try_password,
    verify_password,
)

PASSWORD = "correct horse battery staple"
ENV = "TEST_CHATWATCH_HASH"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _scrypt(password: str, n: int = 2**14, r: int = 8, p: int = 1) -> str:
    salt = b"0123456789abcdef"
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def test_hash_password_cli_prints_an_argon2_hash_that_verifies(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "chatwatch", "hash-password", "--stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    hashed = out.stdout.strip()
    assert hashed.startswith("$argon2id$") and PASSWORD not in out.stdout + out.stderr
    assert "CHATWATCH_PASSWORD_HASH" in out.stderr and "secrets.toml" in out.stderr
    assert argon2.PasswordHasher().verify(hashed, PASSWORD)  # the library itself agrees
    assert hash_problem(hashed) is None
    assert verify_password(hashed, PASSWORD)
    assert not verify_password(hashed, PASSWORD + " ")


def test_hash_password_cli_refuses_an_empty_password(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "chatwatch", "hash-password", "--stdin"],
        input="\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 1 and out.stdout == "" and "empty" in out.stderr


def test_hash_password_reads_twice_without_echo(monkeypatch, capsys):
    from chatwatch.cli import parser

    typed = iter(["s3cret-one", "s3cret-two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    assert parser.main(["hash-password"]) == 1
    assert "differ" in capsys.readouterr().err
    typed = iter(["s3cret-one", "s3cret-one"])
    assert parser.main(["hash-password"]) == 0
    assert verify_password(capsys.readouterr().out.splitlines()[0], "s3cret-one")


def test_scrypt_hash_made_by_hashlib_verifies():
    stored = _scrypt(PASSWORD)
    assert hash_problem(stored) is None
    assert verify_password(stored, PASSWORD)
    assert not verify_password(stored, "wrong")


@pytest.mark.parametrize(
    "stored, reason",
    [
        ("hunter2", "neither an argon2"),
        ("$argon2id$v=19$m=65536,t=3$broken", "malformed argon2"),
        ("scrypt$16384$8$1$c2FsdA==", "6 fields"),
        ("scrypt$1000$8$1$MDEyMzQ1Njc4OWFiY2RlZg==$" + "A" * 44, "power of two"),
        ("scrypt$16384$8$1$not-base64!$AAAA", "base64"),
        ("scrypt$1048576$64$1$MDEyMzQ1Njc4OWFiY2RlZg==$" + "A" * 44, "MiB"),
    ],
)
def test_malformed_hashes_are_named(stored, reason, monkeypatch):
    assert reason in hash_problem(stored)
    monkeypatch.setenv(ENV, stored)
    with pytest.raises(AuthSetupError) as err:
        load_password_hash(ENV, None)
    assert err.value.key == "auth.setup.bad_hash" and err.value.values["name"] == ENV
    assert stored not in str(err.value)  # the message names the variable, never its value


def test_hash_from_environment_then_secrets(monkeypatch):
    stored = _scrypt(PASSWORD)
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(AuthSetupError) as err:
        load_password_hash(ENV, None)
    assert err.value.key == "auth.setup.missing_hash" and err.value.values == {"name": ENV}
    with pytest.raises(AuthSetupError):
        load_password_hash(ENV, {"OTHER": stored, ENV: "   "})
    assert load_password_hash(ENV, {ENV: f" {stored}\n"}) == stored
    other = _scrypt("another")
    monkeypatch.setenv(ENV, other)
    assert load_password_hash(ENV, {ENV: stored}) == other  # the environment wins


def test_throttle_locks_after_max_failures_for_lockout_s():
    clock = Clock()
    th = Throttle(3, 60.0, clock=clock)
    for _ in range(3):
        assert th.begin("a") == 0.0
        clock.now += 10
    # Three failures 10 s apart: locked until 60 s after the last one (at t=1020).
    assert th.wait_s("a") == pytest.approx(50.0)
    assert th.begin("a") == pytest.approx(50.0)  # refused, and not counted
    assert th.wait_s("b") == 0.0  # other keys are free
    clock.now += 49.5
    assert th.wait_s("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert th.wait_s("a") == 0.0 and th.failures("a") == 0  # forgotten whole once quiet
    assert th.begin("a") == 0.0 and th.failures("a") == 1


def test_throttle_forgets_spread_out_failures_and_successes():
    clock = Clock()
    th = Throttle(2, 30.0, clock=clock)
    th.begin("a")
    clock.now += 31  # more than lockout_s later: the first failure no longer counts
    th.begin("a")
    assert th.wait_s("a") == 0.0 and th.failures("a") == 1
    th.succeeded("a")
    assert th.failures("a") == 0


def test_throttle_keeps_at_most_max_keys():
    th = Throttle(1, 60.0, clock=Clock(), max_keys=3)
    for key in "abcd":
        th.begin(key)
    assert [th.failures(k) for k in "abcd"] == [0, 1, 1, 1]  # the oldest dropped


def test_try_password_limits_per_session_and_per_address(caplog):
    clock = Clock()
    stored = _scrypt(PASSWORD)
    session_a, session_b = Throttle(3, 60.0, clock=clock), Throttle(3, 60.0, clock=clock)
    address = Throttle(3, 60.0, clock=clock)
    kw = dict(address=address, client="203.0.113.7")
    caplog.set_level(logging.INFO, logger="chatwatch.auth")

    # Two wrong tries from session A, one from session B at the same address: the address locks.
    assert try_password(stored, "nope-1", session=session_a, session_id="A", **kw).reason == "wrong"
    assert try_password(stored, "nope-2", session=session_a, session_id="A", **kw).reason == "wrong"
    third = try_password(stored, "nope-3", session=session_b, session_id="B", **kw)
    assert (third.ok, third.reason, third.wait_s) == (False, "locked", pytest.approx(60.0))
    # Even the right password waits now, from a fresh session of that address.
    fresh = Throttle(3, 60.0, clock=clock)
    locked = try_password(stored, PASSWORD, session=fresh, session_id="C", **kw)
    assert (locked.ok, locked.reason) == (False, "locked") and fresh.failures("C") == 0
    # Another address is not locked; after the lockout the right password passes and resets.
    assert try_password(stored, PASSWORD, session=fresh, session_id="C", address=address, client="198.51.100.1").ok
    clock.now += 60
    assert try_password(stored, PASSWORD, session=session_a, session_id="A", **kw).ok
    assert address.failures("203.0.113.7") == 0 and session_a.failures("A") == 0

    # A session alone also locks, whatever address it appears from.
    lone = Throttle(2, 60.0, clock=clock)
    for i in range(2):
        try_password(
            stored, "x", session=lone, session_id="D", address=Throttle(99, 60.0, clock=clock), client=f"10.0.0.{i}"
        )
    assert (
        try_password(
            stored, PASSWORD, session=lone, session_id="D", address=Throttle(99, 60.0), client="10.9.9.9"
        ).reason
        == "locked"
    )

    # What was logged: every outcome, with session and client, and never a password.
    messages = [r.getMessage() for r in caplog.records if r.name == "chatwatch.auth"]
    assert sum(m.startswith("sign-in failed") for m in messages) == 5
    assert sum(m.startswith("sign-in refused") for m in messages) == 2  # C and D; B's try was counted, then locked
    assert sum(m == "sign-in ok" for m in messages) == 2
    for record in caplog.records:
        text = logging.Formatter().format(record) + repr(vars(record))
        for secret in (PASSWORD, "nope-1", "nope-2", "nope-3", stored):
            assert secret not in text
    ok = next(r for r in caplog.records if r.getMessage() == "sign-in ok")
    assert (ok.session_id, ok.client, ok.method) == ("C", "198.51.100.1", "password")


def test_log_file_holds_sign_ins_without_the_password(tmp_path):
    """Through chatwatch's own logging (JSON lines, the background writer), not only caplog."""
    from chatwatch.logs.configure import configure_logging

    setup = configure_logging(
        tmp_path / "logs", role="app", instance="t", level="INFO", max_mb=5, log_days=7, console=False
    )
    try:
        stored = _scrypt(PASSWORD)
        th, addr = Throttle(5, 60.0), Throttle(5, 60.0)
        try_password(stored, "wrong-guess-123", session=th, session_id="S", address=addr, client="loopback")
        try_password(stored, PASSWORD, session=th, session_id="S", address=addr, client="loopback")
    finally:
        setup.close()
    text = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.jsonl"))
    assert "sign-in failed" in text and "sign-in ok" in text
    assert PASSWORD not in text and "wrong-guess-123" not in text and stored not in text
