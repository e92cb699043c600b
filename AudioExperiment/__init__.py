"""Waveform variants, composed from the blocks of :mod:`audio_resnet_encoder_wavenet_decoder`,
:mod:`model` and the template (see ``README.md``).

Modules
-------
composed                one waveform VAE, encoder and decoder chosen by name; the "wave-exp" family
genre_encoded_cvae      conditional VAE whose encoder sees the genre (Sohn et al. 2015)
self_attention_encoder  plain conv encoder + Transformer self-attention (Vaswani et al. 2017)
residual_encoder        ResNet-1D encoder (He et al. 2016)
wavenet_decoder         WaveNet decoder (van den Oord et al. 2016)
wav2vec2_encoder        wav2vec 2.0 architecture from torchaudio, random or local weights (Baevski et al. 2020)
compare                 ``python -m AudioExperiment.compare``: the shared runner on this suite

Every variant changes one part of the template's plain waveform VAE; the runner adds the
template itself and the project's CVAE (ResNet encoder + WaveNet decoder) as baselines.
"""
from AudioExperiment import (genre_encoded_cvae, residual_encoder, self_attention_encoder, wav2vec2_encoder,
                             wavenet_decoder)
from AudioExperiment.composed import ComposedWaveVAE, WaveExperimentConfig, wave_experiment_config

VARIANTS = [m.VARIANT for m in (genre_encoded_cvae, self_attention_encoder, residual_encoder, wavenet_decoder,
                                wav2vec2_encoder)]

__all__ = ["VARIANTS", "ComposedWaveVAE", "WaveExperimentConfig", "wave_experiment_config"]
