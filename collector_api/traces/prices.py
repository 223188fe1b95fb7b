"""The LLM price table (FLUSSO_PRICES_FILE, else the shipped config/prices.yaml): tokens -> USD."""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from collector_api.contract.numbers import finite_number

# Bedrock model ids: ``anthropic.claude-...``, ``us.anthropic.claude-...`` (cross-region profiles).
_VENDOR_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)?(?:anthropic|meta|mistral|amazon|cohere|ai21|deepseek|openai)\.")


class PriceTableError(ValueError):
    """The price file is unreadable or malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cache_read: float
    cache_write: float


class PriceTable:
    def __init__(self, prices: dict[str, Price]):
        self._prices = {k.lower(): v for k, v in prices.items()}
        self._by_length = sorted(self._prices, key=len, reverse=True)

    def lookup(self, model: object) -> Price | None:
        """The price of `model`: its exact name, else the longest name of the table it starts
        with; a ``provider/`` prefix, a Bedrock ``[region.]vendor.`` prefix and a Vertex
        ``@version`` are ignored (``us.anthropic.claude-sonnet-4-20250514-v1:0``,
        ``claude-sonnet-4@20250514``)."""
        if not isinstance(model, str) or not model:
            return None
        name = _VENDOR_PREFIX.sub("", model.lower().rsplit("/", 1)[-1])
        hit = self._prices.get(name) or self._prices.get(name.split("@", 1)[0])
        if hit is not None:
            return hit
        return next((self._prices[k] for k in self._by_length if name.startswith(k)), None)

    def cost(self, model: object, input_tokens: int, output_tokens: int, cache_read: int = 0,
             cache_write: int = 0) -> float | None:
        """USD for one call; `input_tokens` includes the cached ones (the GenAI convention)."""
        price = self.lookup(model)
        if price is None:
            return None
        uncached = max(0, input_tokens - cache_read - cache_write)
        total = (uncached * price.input + cache_read * price.cache_read + cache_write * price.cache_write
                 + output_tokens * price.output)
        return round(total / 1e6, 8)


def _number(source: str, model: str, entry: dict, key: str, default: float | None = None) -> float:
    value = entry.get(key, default)
    number = finite_number(value)
    if number is None or number < 0:
        raise PriceTableError(f"{source}: models.{model}.{key} must be a number >= 0, got {value!r}")
    return number


def parse_prices(text: str, source: str) -> PriceTable:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PriceTableError(f"{source} is not valid YAML: {exc}") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise PriceTableError(f"{source}: expected a top-level 'models:' mapping")
    table = {}
    for model, entry in models.items():
        if not isinstance(entry, dict):
            raise PriceTableError(f"{source}: models.{model} must be a mapping of prices")
        inp = _number(source, model, entry, "input")
        table[str(model)] = Price(input=inp, output=_number(source, model, entry, "output"),
                                  cache_read=_number(source, model, entry, "cache_read", inp),
                                  cache_write=_number(source, model, entry, "cache_write", inp))
    return PriceTable(table)


def load_prices(path: Path | str | None) -> PriceTable:
    """The table at `path`, else the shipped one."""
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise PriceTableError(f"cannot read FLUSSO_PRICES_FILE {path}: {exc.strerror}") from None
        return parse_prices(text, str(path))
    return parse_prices(resources.files("config").joinpath("prices.yaml").read_text(encoding="utf-8"),
                        "config/prices.yaml")
