"""Conditional VAE with the genre encoded: the encoder sees the genre too (Sohn et al. 2015).

The template's plain encoder and decoder, with the genre also entering the *encoder*:
its features are modulated by a genre embedding (:class:`TemplateCode.experiment.GenreInput`)
before the bottleneck, so the posterior is q(z | x, y) and the latent need not spend
capacity on the genre the decoder is told anyway. In training the genre is hidden from
the encoder ("unknown" embedding) on a share ``encoder_genre_dropout`` of the examples, so the
model also encodes without a label, which is how genre transfer calls ``encode(x)``;
``encode(x, genre)`` uses the label when it is known.
"""
from __future__ import annotations

from TemplateCode.experiment import Variant

VARIANT = Variant("genre_encoded_cvae", "wave-exp", "wave",
                  "plain encoder that also sees the genre (FiLM, 'unknown' when absent), plain decoder",
                  "Sohn et al. 2015 (conditional VAE)",
                  model=dict(encoder="plain", decoder="plain", encode_genre=True))
