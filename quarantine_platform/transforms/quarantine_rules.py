"""The quarantine rules file (QP_QUARANTINE_RULES, default data/quarantine_rules.yaml): days per channel
and the source asset of each channel. Loaded and validated here so that a bad file fails with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


class RulesError(ValueError):
    """The rules file is missing or malformed."""


@dataclass(frozen=True)
class ChannelRule:
    canal: str
    source: str
    days: int | None  # None: until the source row has data_exclus set (fraud)
    blocks_all_channels: bool = False


def load_rules(path: str | Path) -> list[ChannelRule]:
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"quarantine rules file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"quarantine rules file {path} is not valid YAML: {exc}") from None
    entries = document.get("channels") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise RulesError(f"{path}: expected a non-empty list under 'channels'")
    rules: list[ChannelRule] = []
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: channel #{number}"
        if not isinstance(entry, dict):
            raise RulesError(f"{where}: expected a mapping, got {entry!r}")
        unknown = set(entry) - {"canal", "source", "days", "blocks_all_channels"}
        if unknown:
            raise RulesError(f"{where}: unknown keys {sorted(unknown)}")
        canal, source, days = entry.get("canal"), entry.get("source"), entry.get("days")
        if not isinstance(canal, str) or not canal.strip():
            raise RulesError(f"{where}: 'canal' must be a non-empty string")
        if not isinstance(source, str) or not source.strip():
            raise RulesError(f"{where} ({canal}): 'source' must be a non-empty string")
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 0):
            raise RulesError(f"{where} ({canal}): 'days' must be a whole number >= 0 or null, got {days!r}")
        blocks = entry.get("blocks_all_channels", False)
        if not isinstance(blocks, bool):
            raise RulesError(f"{where} ({canal}): 'blocks_all_channels' must be true or false")
        rules.append(ChannelRule(canal.strip(), source.strip(), days, blocks))
    for attribute in ("canal", "source"):
        values = [getattr(rule, attribute) for rule in rules]
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise RulesError(f"{path}: {attribute} repeated: {', '.join(repeated)}")
    return rules


def rule_for_source(rules: list[ChannelRule], source: str) -> ChannelRule:
    for rule in rules:
        if rule.source == source:
            return rule
    raise RulesError(f"no quarantine rule has source {source!r}")
