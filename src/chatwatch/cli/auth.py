"""`chatwatch hash-password`: the argon2 hash that [auth] mode = "password" checks sign-ins
against. Its own command so the password is typed once, here, without echo, and only the
slow hash is ever stored (in the environment or Streamlit secrets, never in chatwatch.toml)."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from chatwatch.config import AuthConfig, ConfigError, load


def add_parser(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "hash-password",
        help="print the argon2 hash of a sign-in password",
        description="Reads the password twice without echo (or once from standard input with --stdin) and prints "
        'its argon2 hash, for [auth] mode = "password".',
    )
    common(p)
    p.add_argument("--stdin", action="store_true", help="read the password from the first line of standard input")
    p.set_defaults(func=cmd_hash_password)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat it: ") != first:
        raise ValueError("the two passwords differ")
    return first


def cmd_hash_password(args) -> int:
    import argon2

    try:
        password = _read_password(args.stdin)
    except ValueError as exc:
        print(f"chatwatch: {exc}; nothing printed", file=sys.stderr)
        return 1
    if not password:
        print("chatwatch: the password is empty; nothing printed", file=sys.stderr)
        return 1
    try:  # the variable's name comes from the config, when there is one
        env_name = load(args.config).auth.password_hash_env
    except ConfigError as exc:
        env_name = AuthConfig().password_hash_env
        print(f"chatwatch: warning: {exc}; naming the default variable", file=sys.stderr)
    hashed = argon2.PasswordHasher().hash(password)
    print(hashed)
    print(
        f"Put it in the environment variable {env_name} (in single quotes: it holds '$'), e.g.\n"
        f"  export {env_name}='{hashed}'\n"
        f"or in .streamlit/secrets.toml beside where `chatwatch run` starts:\n"
        f'  {env_name} = "{hashed}"\n'
        f'and set [auth] mode = "password" in chatwatch.toml.',
        file=sys.stderr,
    )
    return 0
