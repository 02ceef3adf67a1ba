"""The recipe's ``serve:`` section (stage 8, the HTTP data plane).

    serve:
      port: 8000
      max_batch_size: 32            # requests for one model version run together up to this many inputs …
      max_batch_latency_ms: 5       # … or until the oldest waited this long
      max_queue: 256                # inputs waiting per model version; beyond it: 503 + Retry-After at once
      canary: {version: 4, share: 0.1}

``yard serve NAME@ALIAS`` reads these defaults (or a recipe's ``serve:`` section with
``--recipe``) and lets the main ones be set by options. No torch here: the CLI validates
a serving config before loading anything.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, model_validator

from modelyard.config.base import Section

_CANARY = re.compile(r"^(?P<name>[^@:]+)@v?(?P<version>\d+):(?P<share>\d+(?:\.\d+)?)%$")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1): a server only this machine reaches."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class CanaryConfig(Section):
    """A second version of the served model that takes a share of the traffic."""

    version: int = Field(ge=1, description="Registry version (the N of NAME@vN) that receives the canary share.")
    share: float = Field(gt=0.0, lt=1.0, description="Fraction of prediction requests routed to it, e.g. 0.1.")

    @classmethod
    def parse(cls, text: str) -> tuple[str, CanaryConfig]:
        """Parse the CLI form ``NAME@vN:10%`` into (model name, config).

        Raises:
            ValueError: the text is not of that form or the share is not in (0, 100).
        """
        match = _CANARY.match(text.strip())
        if not match:
            raise ValueError(f"canary {text!r} is not of the form NAME@vN:PERCENT% (e.g. digits@v4:10%)")
        percent = float(match.group("share"))
        if not 0.0 < percent < 100.0:
            raise ValueError(f"canary share {percent}% must be between 0 and 100 (exclusive)")
        return match.group("name"), cls(version=int(match.group("version")), share=percent / 100.0)


class ServeConfig(Section):
    """Stage 8: serve registered models over HTTP (Open Inference Protocol v2 and a plain JSON API)."""

    host: str = Field(default="127.0.0.1", description="Interface to listen on (127.0.0.1: this machine only).")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port (0: any free port).")
    workers: int = Field(default=1, ge=1, le=64,
                         description="Worker processes; each loads the models and resolves aliases from the store.")
    auth: bool = Field(default=True,
                       description="Require `Authorization: Bearer <key>`; false only on a loopback host.")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="Where models run; auto picks CUDA.")
    threads: int | None = Field(default=None, ge=1,
                                description="Intra-op threads per worker (null: cores / workers - 1, at least 1: "
                                            "one core's worth left for the worker's event loop).")
    max_batch_size: int = Field(default=32, ge=1, le=4096,
                                description="Most inputs run in one forward pass (1: no dynamic batching).")
    max_batch_latency_ms: float = Field(default=5.0, ge=0.0, le=10_000.0,
                                        description="Longest the first queued input waits for a batch to fill.")
    max_queue: int = Field(default=256, ge=1,
                           description="Inputs waiting per model version; a request beyond it gets 503 at once.")
    max_inflight: int = Field(default=512, ge=1,
                              description="POST requests one worker handles at once (reading, queued, running); "
                                          "beyond it: 503 at once.")
    request_timeout_s: float = Field(default=10.0, gt=0.0,
                                     description="A request not answered in this time fails with 504 (others go on).")
    retry_after_s: int = Field(default=1, ge=1, description="Retry-After seconds sent with 503 and 429.")
    max_body_bytes: int = Field(default=4 << 20, ge=1024, description="Largest request body; larger gets 413.")
    max_instances: int = Field(default=1024, ge=1, description="Most inputs in one request; more gets 400.")
    max_string_length: int = Field(default=65_536, ge=1,
                                   description="Longest string (text or base64 image) in a request; longer gets 400.")
    cache_max_bytes: int = Field(default=32 << 20, ge=0,
                                 description="Response cache size (LRU by model version + input hash); 0: off.")
    rate_limit_per_s: float = Field(default=200.0, ge=0.0,
                                    description="Requests per second each API key may make (token bucket); 0: off.")
    rate_limit_burst: int = Field(default=400, ge=1, description="Token bucket size: requests a key may burst.")
    auth_cache_s: float = Field(default=30.0, ge=0.0,
                                description="How long a verified key is trusted before it is checked again "
                                            "(bounds how late a revocation takes effect).")
    reload_poll_s: float = Field(default=5.0, ge=0.0,
                                 description="How often to check whether an alias moved (hot reload); 0: never.")
    explain: bool = Field(default=True, description='Allow `"explain": true` (attributions) on predict requests.')
    canary: CanaryConfig | None = Field(default=None, description="Route a share of traffic to a second version.")

    @model_validator(mode="after")
    def _auth_only_off_on_loopback(self) -> ServeConfig:
        if not self.auth and not is_loopback(self.host):
            raise ValueError(f"auth can be turned off only on a loopback host, not {self.host!r} "
                             "(create a key with `yard keys create`)")
        return self


__all__ = ["CanaryConfig", "ServeConfig", "is_loopback"]
