"""Spectrogram-image variants, composed from the shared blocks of :mod:`model`.

Modules
-------
hierarchical_gru   segment-level + sequence-level GRU encoder, the mel VAE's decoder
cnn_cvae           CNN conditional VAE, global latent, depth / widths as hyper-parameters
png_spectrograms   Kaggle ``images_original`` pictures: read, crop, scale; draw them for synthetic data
sweep              a grid of CNN CVAE hyper-parameters as variants
compare            ``python -m ImageExperiment.compare``: the shared comparison runner on this suite

The model modules register their families ("mel-hgru", "cnn-cvae") with the trainer, so
their checkpoints rebuild with :func:`TemplateCode.experiment.load_experiment`;
``VARIANTS`` lists the rows this package adds to the comparison (the template and the
project's mel VAE are added by the runner as baselines).
"""
from ImageExperiment.cnn_cvae import CNNCVAE, CNNCVAEConfig, cnn_cvae_config
from ImageExperiment.hierarchical_gru import HierGRUConfig, HierGRUVAE, hgru_config
from ImageExperiment.sweep import parse_grid, sweep_variants
from TemplateCode.experiment import Variant

VARIANTS = [
    Variant("hierarchical_gru", "mel-hgru", "mel",
            "segment-level GRU over mel frames, sequence-level GRU over segments; the mel VAE's decoder",
            "Roberts et al. 2018 (MusicVAE); Chung et al. 2014 (GRU)"),
    Variant("cnn_cvae", "cnn-cvae", "mel",
            "CNN CVAE on computed log-mels: residual conv stages, global latent, encoder and decoder see the genre",
            "Sohn et al. 2015; Kingma & Welling 2014"),
    Variant("cnn_cvae_png", "cnn-cvae", "mel",
            "the same CNN CVAE trained on images_original spectrogram pictures",
            "Sohn et al. 2015; Kingma & Welling 2014", data="png"),
]

__all__ = ["VARIANTS", "CNNCVAE", "CNNCVAEConfig", "cnn_cvae_config", "HierGRUConfig",
           "HierGRUVAE", "hgru_config", "parse_grid", "sweep_variants"]
