"""WaveNet decoder (van den Oord et al. 2016) behind the template's plain encoder.

The waveform VAE's decoder: the latent sequence is upsampled to the audio rate
(repetition + convolution per stage, :class:`UpsampleBlock`) and drives a stack of
causal dilated convolutions with gated tanh x sigmoid units, residual and skip paths
(:class:`GatedResidualLayer`), the genre entering every gate as a global condition. The
variant keeps the template's plain strided-conv encoder, so its row measures the decoder.
"""
from __future__ import annotations

from audio_resnet_encoder_wavenet_decoder import Decoder
from TemplateCode.experiment import Variant


def wavenet_decoder(cfg):
    """Latent [B, D, T'] (+ genre embedding) -> audio [B, T' x hop] through the WaveNet stack."""
    return Decoder(cfg)


VARIANT = Variant("wavenet_decoder", "wave-exp", "wave",
                  "plain strided-conv encoder, WaveNet decoder (gated dilated causal convs, global genre condition)",
                  "van den Oord et al. 2016 (WaveNet)", model=dict(encoder="plain", decoder="wavenet"))
