"""Training against the genre critics: the classifier's term in the VAE phase, the classifier's own step, and the adversarial phase.

:class:`AdversarialTraining` owns the critics of :mod:`discriminator` (a genre classifier and
a genre-conditional mel discriminator) and their optimisers, and runs every step that uses
them; :class:`trainer.MemoryEfficientTrainer` calls it from its loop:

- in the VAE phase, from ``train.swap_start``: :meth:`swap_term`, the classifier's
  cross-entropy of a decode told a random other genre (and a latent cycle term), added to
  the VAE loss; then :meth:`classifier_step` teaches the classifier on the real mels;
- in the adversarial phase, from ``train.gan_start``: :meth:`step`, one step of the
  discriminator, then one of the decoder (the encoder and the classifier frozen);
- in validation: :meth:`swap_accuracy`, the share of decodes told another genre that the
  classifier hears as that genre (part of ``best.pt``'s criterion).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from cli import InputError
from discriminator import Critics, d_hinge_loss, feature_matching_loss, g_hinge_loss
from vae_parts import transfer_code


def level_gap(decoded: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of |level of ``decoded`` - level of ``real``|, a level being an
    item's mean normalised log-mel (both [B, 1, M, T]). The synthetic sets draw a clip's
    loudness from one range for every genre, so a decode told any genre should keep its input's;
    against the critics alone the decoder drifts louder than its input, and the per-pixel terms,
    which see only reconstructions, do not hold back the transfers (design notes, 2026-12-06).
    Where loudness belongs to the genre (a real GTZAN's metal is louder than its classical), the
    term also keeps a transfer from taking the target's level: weigh it down there."""
    level = lambda y: y.float().mean(dim=tuple(range(1, y.dim())))   # noqa: E731
    return (level(decoded) - level(real)).abs().mean()


def other_genres(genre: torch.Tensor, n_genres: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random genre other than each of ``genre`` [B] (drawn on the CPU from ``generator`` when
    given, so that validation's seeded draws are the same on a GPU)."""
    if generator is None:
        return (genre + torch.randint(1, n_genres, genre.shape, device=genre.device)) % n_genres
    return (genre + torch.randint(1, n_genres, genre.shape, generator=generator).to(genre.device)) % n_genres


class AdversarialTraining:
    """The critics, their optimisers and the steps that use them.

    Parameters
    ----------
    core : the model being trained (unwrapped from DDP / torch.compile); it provides
        ``prepare``, ``encode``, ``decode``, ``as_input``, ``mel_view``, ``decoder`` and
        ``genre_embedding``
    loss : the family's loss (its ``recon`` term is the adversarial phase's reconstruction term)
    cfg : trainer.TrainConfig (``gan_*``, ``swap_*``, ``classifier_*``)
    n_genres, n_mels : the critics' classes and input bands
    autocast : keyword arguments of ``torch.autocast`` (bf16 on a GPU)
    sync : averages the gradients of some parameters over ranks (a no-op on one process)
    """

    def __init__(self, core: nn.Module, loss: nn.Module, cfg, n_genres: int, n_mels: int, device,
                 autocast: dict, sync: Callable, conditional: bool):
        if not conditional:
            raise InputError("train.gan_start >= 0 or train.swap_genre_weight > 0: decoding with other genres "
                             "needs a genre-conditional decoder (model.conditional=True), or set "
                             "train.gan_start=-1 and train.swap_genre_weight=0")
        if not 0 < cfg.swap_fraction <= 1:
            raise InputError(f"train.swap_fraction={cfg.swap_fraction}: expected a share of the batch in (0, 1]")
        self.core, self.loss, self.cfg, self.n_genres = core, loss, cfg, n_genres
        self.autocast, self.sync = autocast, sync
        self.critics = Critics(n_genres, n_mels, cfg.gan_scales, cfg.gan_channels, cfg.gan_norm,
                               cfg.classifier_pooling).to(device)
        if cfg.channels_last:
            self.critics = self.critics.to(memory_format=torch.channels_last)
        adam = lambda params, lr, betas=(0.9, 0.999): torch.optim.Adam(params, lr=lr, betas=betas)  # noqa: E731
        self.optimizers = {
            "classifier": adam(self.critics.classifier.parameters(), cfg.classifier_lr),
            "discriminator": adam(self.critics.discriminator.parameters(), cfg.gan_lr_d, (0.5, 0.9)),
            "generator": adam(self.generator_parameters(), cfg.gan_lr, (0.5, 0.9))}

    def _latent(self, code: torch.Tensor) -> torch.Tensor:
        """The latent channels of a code [B, D, ...] (a code may carry observed channels, such as
        the mel VAE's onset stream, after its latent: the cycle terms compare the latent)."""
        return code[:, :getattr(self.core.cfg, "latent_channels", code.shape[1])]

    def generator_parameters(self) -> list:
        """What the adversarial phase trains: the decoder and the genre embedding."""
        return list(self.core.decoder.parameters()) + list(self.core.genre_embedding.parameters())

    def _encoder_parameters(self) -> list:
        gen = {id(p) for p in self.generator_parameters()}
        return [p for p in self.core.parameters() if id(p) not in gen]

    # ---- checkpoints (the keys every checkpoint has held since the adversarial phase came)
    def state_dict(self) -> dict:
        return {"critics": self.critics.state_dict(),
                "gan_optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}}

    def load_state_dict(self, state: dict) -> None:
        if not state.get("critics"):
            raise InputError("cannot resume: the checkpoint holds no discriminator or genre classifier, and "
                             "this run has one (train.gan_start or train.swap_genre_weight); use --fresh or "
                             "another --out")
        self.critics.load_state_dict(state["critics"])
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["gan_optimizers"][k])

    # ---- the VAE phase
    def swap_term(self, z: torch.Tensor, mu: torch.Tensor, genre: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """The frozen-for-this-step classifier's cross-entropy of z decoded with a random other
        genre (and, with ``swap_cycle_weight``, how far that decode's posterior mean lands from
        ``mu``), and that decode's mel; on the first ``swap_fraction`` of the batch (shuffled)."""
        core, clf = self.core, self.critics.classifier
        k = max(1, round(self.cfg.swap_fraction * len(genre)))
        z, mu, genre = z[:k], mu[:k], genre[:k]
        target = other_genres(genre, self.n_genres)
        decoded = core.decode(transfer_code(self.core, z, 1.0, genre, target), target)
        mel = core.mel_view(decoded)
        clf.eval().requires_grad_(False)           # it judges here; it learns in classifier_step
        logits = clf(mel)
        clf.requires_grad_(True)
        terms = {"swap_genre": F.cross_entropy(logits.float(), target),
                 "swap_genre_acc": (logits.argmax(-1) == target).float().mean()}
        if self.cfg.swap_cycle_weight > 0:
            _, mu_swap, _ = core.encode(core.as_input(decoded))
            terms["swap_cycle"] = (self._latent(mu_swap).float() - self._latent(mu).detach().float()).abs().mean()
        return terms, mel

    def classifier_step(self, mel: torch.Tensor, genre: torch.Tensor) -> dict:
        """One step of the genre classifier on ``mel`` [B, 1, M, T] labelled ``genre`` [B]."""
        clf, opt = self.critics.classifier, self.optimizers["classifier"]
        clf.train()
        with torch.autocast(**self.autocast):
            logits = clf(mel)
            loss = F.cross_entropy(logits.float(), genre)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.sync(clf.parameters())
        opt.step()
        return {"classifier": loss.detach(), "classifier_acc": (logits.argmax(-1) == genre).float().mean()}

    # ---- the adversarial phase
    def step(self, wave: torch.Tensor, genre: torch.Tensor) -> dict:
        """One step of the adversarial phase: the discriminator, then the decoder."""
        core, critics = self.core, self.critics
        disc = critics.discriminator
        for p in self._encoder_parameters():
            p.requires_grad_(False)                                     # the encoder is frozen
        critics.classifier.eval()
        target = other_genres(genre, self.n_genres)
        with torch.autocast(**self.autocast):
            with torch.no_grad():
                x = core.prepare(wave)
                z, mu, logvar = core.encode(x)
            rec, swapped = core.decode(z, genre), core.decode(transfer_code(self.core, z, 1.0, genre, target), target)
            real, mel_rec, mel_swap = core.mel_view(x), core.mel_view(rec), core.mel_view(swapped)
            d_loss = self._discriminator_loss(real, mel_rec, mel_swap, genre, target)
        opt_d = self.optimizers["discriminator"]
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.sync(disc.parameters())
        opt_d.step()
        critics.requires_grad_(False)                                   # they judge the decoder's step
        with torch.autocast(**self.autocast):
            terms, logits = self._generator_terms(x, mu, logvar, rec, swapped, real, mel_rec, mel_swap,
                                                  genre, target)
        opt_g = self.optimizers["generator"]
        opt_g.zero_grad(set_to_none=True)
        terms["total"].backward()
        self.sync(self.generator_parameters())
        opt_g.step()
        critics.requires_grad_(True)
        return {**terms, "gan_d": d_loss.detach(), "gan_genre_acc": (logits.argmax(-1) == target).float().mean()}

    def _discriminator_loss(self, real, mel_rec, mel_swap, genre, target) -> torch.Tensor:
        """Hinge loss of the discriminator: real mels against reconstructions (and swapped
        decodes told their target genre, when ``gan_swap_weight`` > 0)."""
        if self.cfg.gan_swap_weight > 0:
            fakes, fake_genres = torch.cat([mel_rec, mel_swap]), torch.cat([genre, target])
        else:
            fakes, fake_genres = mel_rec, genre
        disc = self.critics.discriminator
        return d_hinge_loss(disc(real, genre), disc(fakes.detach(), fake_genres))

    def _generator_terms(self, x, mu, logvar, rec, swapped, real, mel_rec, mel_swap, genre,
                         target) -> tuple[dict, torch.Tensor]:
        """The decoder's named terms against the critics, with their weighted ``total``, and the
        classifier's logits of the swapped decodes."""
        cfg, core, disc = self.cfg, self.core, self.critics.discriminator
        with torch.no_grad():
            d_real = disc(real, genre)
        d_rec = disc(mel_rec, genre)
        logits = self.critics.classifier(mel_swap)
        recon_term = lambda y: self.loss({"recon": y, "target": x if core.family == "mel" else x[:, 0],  # noqa: E731
                                          "mu": mu, "logvar": logvar}, genre, 0.0)["recon"]
        terms = {"gan_rec": recon_term(rec), "gan_fm": feature_matching_loss(d_real, d_rec),
                 "gan_adv": g_hinge_loss(d_rec), "gan_genre": F.cross_entropy(logits.float(), target)}
        if cfg.gan_swap_weight > 0:                                     # swapped decodes are fakes when judged
            terms["gan_adv_swap"] = g_hinge_loss(disc(mel_swap, target))
        if cfg.gan_cycle_weight > 0 or cfg.gan_cycle_x_weight > 0:
            _, mu_swap, _ = core.encode(core.as_input(swapped))
            terms["gan_cycle"] = (self._latent(mu_swap).float() - self._latent(mu).float()).abs().mean()
            if cfg.gan_cycle_x_weight > 0:
                terms["gan_cycle_x"] = recon_term(core.decode(mu_swap, genre))
        if cfg.gan_level_weight > 0:
            terms["gan_level"] = level_gap(mel_rec, real) + level_gap(mel_swap, real)
        weights = {"gan_rec": cfg.gan_rec_weight, "gan_fm": cfg.gan_fm_weight, "gan_adv": cfg.gan_adv_weight,
                   "gan_adv_swap": cfg.gan_swap_weight, "gan_genre": cfg.gan_genre_weight,
                   "gan_cycle": cfg.gan_cycle_weight, "gan_cycle_x": cfg.gan_cycle_x_weight,
                   "gan_level": cfg.gan_level_weight}
        terms["total"] = sum(weights[k] * v for k, v in terms.items())
        return terms, logits

    # ---- validation
    @torch.no_grad()
    def swap_accuracy(self, mu: torch.Tensor, genre: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The share of ``mu`` decoded told a random other genre (drawn from ``generator``) that
        the classifier hears as that genre."""
        target = other_genres(genre, self.n_genres, generator)
        swapped = self.core.mel_view(self.core.decode(transfer_code(self.core, mu, 1.0, genre, target), target))
        return (self.critics.classifier.eval()(swapped).argmax(-1) == target).float().mean()
