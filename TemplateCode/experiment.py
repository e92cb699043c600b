"""What every experiment shares: the variant record, building and training a variant,
checkpoint loading, and the block that lets an encoder see the genre.

A *variant* is one row of the comparison table: a model family (a :class:`trainer.Family`,
registered by the module that defines its model), the config overrides that make it
this variant, and the data it reads. Every checkpoint a comparison writes names its
family and that module, so it rebuilds from the file alone with :func:`trainer.load_model`.

Public API
----------
Variant                      name, family, domain, description, paper, model / train overrides, data
GenreInput                   the genre as an encoder input (Sohn et al. 2015), "unknown" when absent
SeesGenre                    mixin: encode(x, genre=None) and forward(x, genre) through GenreInput
build(variant, size)         configs, model and loss of a variant; make_trainer(...) its trainer
load_experiment(path)        checkpoint -> (model in eval mode, checkpoint dict): trainer.load_model
baselines(domain)            the template and the project's own model of a domain, as variants
preset_config(cls, ...)      a config dataclass from a preset table, overrides checked, validated
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

import TemplateCode.audio_vae  # noqa: F401 (registers the template-wave family)
import TemplateCode.image_vae  # noqa: F401 (registers the template-mel family)
import trainer
from prepare_data import AudioConfig, override
from vae_parts import GenreFiLM, adversary_outputs


@dataclass(frozen=True)
class Variant:
    """One row of a comparison.

    Attributes
    ----------
    name : row name and output folder (letters, digits, ``_``, ``-``, ``.``)
    family : name of a registered :class:`trainer.Family` (stored as the checkpoint's ``family``)
    domain : "wave" (model reads waveforms) or "mel" (model reads log-mel images); the
        families of a domain share their AudioConfig, so its variants read the same data
    description, paper : for the README and the table
    model : config overrides applied on top of the size preset of the family
    train : TrainConfig overrides (the sweep sets ``beta_max`` here)
    data : "audio" (segments of the clips) or "png" (``images_original`` pictures)
    """

    name: str
    family: str
    domain: str
    description: str
    paper: str
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    data: str = "audio"

    def __post_init__(self):
        if self.domain not in ("wave", "mel"):
            raise ValueError(f"variant {self.name!r}: domain must be 'wave' or 'mel', got {self.domain!r}")
        if self.data not in ("audio", "png"):
            raise ValueError(f"variant {self.name!r}: data must be 'audio' or 'png', got {self.data!r}")
        if not self.name or any(not (c.isalnum() or c in "_-.") for c in self.name):
            raise ValueError(f"variant name {self.name!r} must be letters, digits, '_', '-' or '.'")


class GenreInput(nn.Module):
    """The genre as an input of the *encoder*: q(z | x, y) of a conditional VAE (Sohn et al.
    2015). Features [B, C, ...] are modulated (FiLM) by a genre embedding.

    The embedding has one extra row, "unknown", used when no genre is given (``encode(x)``
    as genre transfer calls it) and, in training, in place of the true genre with
    probability ``dropout``, so the encoder learns both q(z | x, y) and q(z | x).

    Parameters
    ----------
    n_genres, embed_dim : genre count and embedding width
    channels : C, the feature channels modulated
    dropout : probability of hiding the genre from the encoder in training, in [0, 1]
    """

    def __init__(self, n_genres: int, embed_dim: int, channels: int, dropout: float = 0.5):
        super().__init__()
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"GenreInput: dropout={dropout} must lie in [0, 1]")
        self.unknown, self.dropout = n_genres, float(dropout)
        self.embedding = nn.Embedding(n_genres + 1, embed_dim)
        self.film = GenreFiLM(n_genres, embed_dim, channels)

    def forward(self, h: torch.Tensor, genre: torch.Tensor | None = None) -> torch.Tensor:
        unknown = torch.full((h.shape[0],), self.unknown, dtype=torch.long, device=h.device)
        if genre is None:
            idx = unknown
        elif self.training and self.dropout > 0:
            hide = torch.rand(h.shape[0], device=h.device) < self.dropout
            idx = torch.where(hide, unknown, genre)
        else:
            idx = genre
        return self.film(h, self.embedding(idx))


# --------------------------------------------------------------------------- registry
class SeesGenre:
    """Mixin for a :class:`model.MelVAE` or waveform ``CVAE`` subclass whose encoder may see
    the genre. The class sets ``genre_input`` (a :class:`GenreInput` or None) and may
    override ``features(x)`` (encoder features before the bottleneck).

    ``encode(x, genre=None)``: features -> genre FiLM ("unknown" without a genre) ->
    bottleneck. ``forward(x, genre)`` hands the genre to both encoder and decoder.
    """

    genre_input: GenreInput | None = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def encode(self, x: torch.Tensor, genre: torch.Tensor | None = None):
        h = self.features(x)
        if self.genre_input is not None:
            h = self.genre_input(h, genre)
        return self.bottleneck(h)

    def forward(self, x: torch.Tensor, genre: torch.Tensor) -> dict:
        z, mu, logvar = self.encode(x, genre)
        target = x.squeeze(1) if self.family == "wave" else x          # what decode returns
        out = {"recon": self.decode(z, genre), "target": target, "z": z, "mu": mu, "logvar": logvar}
        out.update(adversary_outputs(self.adversary, mu))
        return out


def load_experiment(path, device="cpu"):
    """Rebuild any family's model from a checkpoint alone: :func:`trainer.load_model`.

    Returns
    -------
    (model in eval mode on ``device``, checkpoint dict)
    """
    return trainer.load_model(path, device)


BASELINES = {   # domain -> (name, family, description, paper) of the rows every suite starts with
    "wave": [("template_wave", "template-wave",
              "plain strided-conv encoder, plain upsampling decoder with genre FiLM (TemplateCode)",
              "Kingma & Welling 2014"),
             ("cvae", "wave", "the project's waveform CVAE: ResNet-1D encoder, WaveNet decoder",
              "van den Oord et al. 2016; Sohn et al. 2015")],
    "mel": [("template_mel", "template-mel",
             "plain strided-conv encoder, plain upsampling decoder with genre FiLM (TemplateCode)",
             "Kingma & Welling 2014"),
            ("melvae", "mel", "the project's mel VAE: residual conv encoder/decoder, FiLM, latent adversary",
             "Kingma & Welling 2014; Perez et al. 2018 (FiLM); Ganin et al. 2016")],
}


def baselines(domain: str) -> list[Variant]:
    """The template of ``domain`` and the project's own model of it, as comparison rows."""
    if domain not in BASELINES:
        raise ValueError(f"unknown domain {domain!r}; choose from {sorted(BASELINES)}")
    return [Variant(name, fam, domain, text, paper) for name, fam, text, paper in BASELINES[domain]]


def preset_config(cls, presets: dict, preset: str, base: dict, **changes):
    """``cls(**base)`` with ``presets[preset]`` and then ``changes`` applied, validated.

    Unknown keys and wrongly typed values are errors naming them (:func:`prepare_data.override`);
    an unknown preset is a KeyError naming the known ones.
    """
    if preset not in presets:
        raise KeyError(f"unknown {cls.__name__} preset {preset!r}; choose from {sorted(presets)}")
    cfg = override(override(cls(**base), **presets[preset]), **changes)
    cfg.validate()
    return cfg


# --------------------------------------------------------------------------- building and training
@dataclass
class Built:
    """Everything one training run of a variant needs (see :func:`build`)."""

    variant: Variant
    audio: AudioConfig
    model_cfg: object
    train_cfg: object
    model: nn.Module
    loss: nn.Module

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def build(variant: Variant, size: str, seed: int = 0, **train_changes) -> Built:
    """Configs, model (initial weights from ``seed``) and loss of ``variant`` at ``size``.

    Parameters
    ----------
    variant : the row to build
    size : "tiny" | "demo" | "full": the family's presets (:func:`trainer.configs`)
    seed : torch seed for the initial weights (and the TrainConfig's seed)
    train_changes : TrainConfig overrides applied after the variant's own (e.g. epochs)
    """
    fam = trainer.get_family(variant.family)
    audio, model_cfg, train_cfg = trainer.configs(fam, size, model=variant.model,
                                                  train={"seed": seed, **variant.train, **train_changes})
    torch.manual_seed(seed)
    return Built(variant, audio, model_cfg, train_cfg, fam.model(model_cfg, audio), fam.loss(train_cfg, audio))


def make_trainer(built: Built, out_dir, train_data, val_data, info: dict, resume: bool = True):
    """A :class:`trainer.MemoryEfficientTrainer` for ``built``, resumed from
    ``<out_dir>/latest.pt`` when it exists and ``resume`` is set."""
    from pathlib import Path

    tr = trainer.MemoryEfficientTrainer(
        built.model, built.loss, built.train_cfg, out_dir, family=built.variant.family, audio=built.audio,
        model_cfg=built.model_cfg, train_data=train_data, val_data=val_data, genres=info["genres"],
        data_info={**info.get("summary", {}), "variant": built.variant.name})
    latest = Path(out_dir) / "latest.pt"
    if resume and latest.exists():
        tr.load_state(trainer.load_checkpoint(latest))
    return tr
