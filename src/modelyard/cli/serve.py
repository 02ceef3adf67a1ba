"""``yard serve``: serve registered models over HTTP (stage 8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.command("serve")
@click.argument("models", nargs=-1, required=True, metavar="NAME@ALIAS...")
@click.option("--host", default=None, help="Interface to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="TCP port [default: 8000].")
@click.option("--workers", type=int, default=None, help="Worker processes [default: 1].")
@click.option("--no-auth", is_flag=True, help="No API keys (allowed only on a loopback host; logs a warning).")
@click.option("--canary", "canaries", multiple=True, metavar="NAME@vN:PCT%",
              help="Route PCT% of NAME's traffic to version N, e.g. digits@v4:10%.")
@click.option("--recipe", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Take the serving settings from this recipe's serve: section.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Any serve: setting, e.g. --set max_batch_size=16 --set max_batch_latency_ms=2.")
@click.option("--check", is_flag=True, help="Validate the settings and load every model, then exit (no server).")
def serve_command(models: tuple[str, ...], host: str | None, port: int | None, workers: int | None, no_auth: bool,
                  canaries: tuple[str, ...], recipe: Path | None, settings: tuple[str, ...], check: bool) -> None:
    """Serve NAME@ALIAS (or NAME@vN, or NAME for the latest) over HTTP until Ctrl-C.

    Open Inference Protocol v2 at /v2 (tritonclient works), a JSON API at
    /v1/models/NAME:predict, Prometheus metrics at /metrics. Requests need
    `Authorization: Bearer <key>` (see `yard keys create`) unless --no-auth on 127.0.0.1.
    The alias is followed: when it moves, the new version is loaded and swapped in.
    """
    cfg, parsed = build_config(recipe=recipe, host=host, port=port, workers=workers, no_auth=no_auth,
                               canaries=canaries, settings=settings)
    if check:
        _check(cfg, list(models), parsed)
        return
    from modelyard import serve

    serve.run(cfg, list(models), canaries=parsed)


def build_config(*, recipe: Path | None, host: str | None, port: int | None, workers: int | None, no_auth: bool,
                 canaries: tuple[str, ...], settings: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    """The validated ``ServeConfig`` and the parsed canaries (name → CanaryConfig) from the options.

    Raises:
        ConfigError: naming the option or setting that is wrong.
    """
    from pydantic import ValidationError

    from modelyard.config.loader import parse_override
    from modelyard.config.serve import CanaryConfig, ServeConfig
    from modelyard.core.errors import ConfigError

    raw: dict[str, Any] = {}
    if recipe is not None:
        from modelyard.config.loader import load_recipe

        raw = load_recipe(recipe).serve.model_dump(mode="json", exclude_unset=True)
    for text in settings:
        parts, value = parse_override(text)
        if parts and parts[0] == "serve":
            parts = parts[1:]
        if len(parts) != 1 and parts[:1] != ["canary"]:
            raise ConfigError(f"--set {text!r}: serve settings are flat (KEY=VALUE)", where="--set")
        node = raw
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    for key, value in (("host", host), ("port", port), ("workers", workers)):
        if value is not None:
            raw[key] = value
    if no_auth:
        raw["auth"] = False
    try:
        cfg = ServeConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"]) or "serve"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{path}: {message}", where="serve settings") from None
    parsed: dict[str, Any] = {}
    for text in canaries:
        try:
            name, canary = CanaryConfig.parse(text)
        except (ValueError, ValidationError) as exc:
            raise ConfigError(str(exc).splitlines()[0], where="--canary") from None
        parsed[name] = canary
    return cfg, parsed


def _check(cfg: Any, models: list[str], canaries: dict[str, Any]) -> None:
    """Load every model (and canary) the way the server would, print what would be served."""
    from fastapi.testclient import TestClient

    from modelyard.cli.output import print_table
    from modelyard.serve import create_app

    # No socket: the app starts in-process (lifespan: load, smoke-test), is asked what it serves, and stops.
    app = create_app(cfg.model_copy(update={"reload_poll_s": 0.0, "auth": False, "host": "127.0.0.1"}), models,
                     canaries=canaries)
    with TestClient(app) as client:
        index = client.post("/v2/repository/index").json()
        rows = []
        for entry in index:
            meta = client.get(f"/v2/models/{entry['name']}").json()
            rows.append((entry["name"], ", ".join(f"v{v}" for v in meta["versions"]), meta["platform"],
                         meta["parameters"].get("alias") or "-"))
    print_table("would serve", ["model", "versions", "runtime", "follows"], rows)


COMMANDS = [serve_command]
