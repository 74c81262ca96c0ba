"""Model kinds in one table: each kind's weight roles, files, config and network builder.

The checkpoint writer and loader (and later the app) look a kind up here
instead of branching on its name, so a new kind is a new row, not a hunt for
`if kind == ...` through the code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from training.framing_net import FramingConfig, FramingNet
from training.glcic import CompletionNetwork, ContextDiscriminator, GlcicConfig
from training.networks import Discriminator, Encoder, EncoderConfig, Generator, NetworkConfig

Networks = dict[str, nn.Module]


@dataclass(frozen=True)
class ModelKind:
    """What a `kind` in model.json means.

    `roles` maps each weight role to its file name; `required` roles must be in every folder of
    the kind, the rest are optional; `served` roles are the ones a server loads (the others are
    kept for further training). `config` parses the card's `network`; `config_fields` are the
    card keys every folder of the kind must have for `build` (a role's own config, such as the
    search encoder's `encoder.config`, is checked when that role is built).
    `build(card, roles)` returns fresh networks for the asked roles, sized from the card.
    """

    name: str
    roles: dict[str, str]
    required: tuple[str, ...]
    served: tuple[str, ...]
    config: type[NetworkConfig] | type[GlcicConfig] | type[FramingConfig]
    config_fields: tuple[str, ...]
    build: Callable[[dict[str, Any], tuple[str, ...]], Networks]
    completes: bool = True  # a kind the service completes photos with; False for a helper network (framing)

    def network_config(self, card: dict[str, Any]) -> NetworkConfig | GlcicConfig | FramingConfig:
        """The card's `network`, parsed (ConfigError, KeyError, TypeError or ValueError if bad)."""
        return self.config.from_dict(card["network"])


def _build_search(card: dict[str, Any], roles: tuple[str, ...]) -> Networks:
    config = NetworkConfig.from_dict(card["network"])
    builders: dict[str, Callable[[], nn.Module]] = {
        "generator": lambda: Generator(config),
        "discriminator": lambda: Discriminator(config),
        "encoder": lambda: Encoder(config, EncoderConfig.from_dict(card["encoder"]["config"])),
    }
    return {role: builders[role]() for role in roles}


def _build_glcic(card: dict[str, Any], roles: tuple[str, ...]) -> Networks:
    config = GlcicConfig.from_dict(card["network"])
    networks: Networks = {"completion": CompletionNetwork(config)}
    if {"global", "local"} & set(roles):
        joint = ContextDiscriminator(config)
        networks |= {"global": joint.global_branch, "local": joint.local_branch}
    return {role: networks[role] for role in roles}


SEARCH = ModelKind(
    name="search",
    roles={
        "generator": "generator.safetensors",
        "discriminator": "discriminator.safetensors",
        "encoder": "encoder.safetensors",
    },
    required=("generator", "discriminator"),
    served=("generator", "discriminator", "encoder"),
    config=NetworkConfig,
    config_fields=("network",),
    build=_build_search,
)
GLCIC = ModelKind(
    name="glcic",
    roles={
        "completion": "completion.safetensors",
        "global": "global_discriminator.safetensors",
        "local": "local_discriminator.safetensors",
    },
    required=("completion", "global", "local"),
    served=("completion",),
    config=GlcicConfig,
    config_fields=("network",),
    build=_build_glcic,
)
FRAMING = ModelKind(
    name="framing",
    roles={"framer": "framer.safetensors"},
    required=("framer",),
    served=("framer",),
    config=FramingConfig,
    config_fields=("network",),
    build=lambda card, roles: {role: FramingNet(FramingConfig.from_dict(card["network"])) for role in roles},
    completes=False,
)
KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (SEARCH, GLCIC, FRAMING)}
DEFAULT_KIND = "search"  # a folder without `kind` (format 1, or format 2 before kinds) is a search model


def kind_of(card: dict[str, Any]) -> ModelKind:
    """The card's kind; KeyError for an unknown one (the loader turns it into a CheckpointError)."""
    return KINDS[card.get("kind", DEFAULT_KIND)]
