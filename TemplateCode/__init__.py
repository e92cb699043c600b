"""Template pipelines a newcomer starts from, and the plumbing every experiment shares.

Modules
-------
data        GTZAN segments for both domains (one file-level split, decoded once)
audio_vae   the plain waveform VAE (strided conv encoder, upsampling decoder, genre FiLM)
image_vae   the plain log-mel image VAE (same idea in 2-D)
train       ``python -m TemplateCode.train --kind audio|image``: the training script
experiment  Variant, build / make_trainer, load_experiment, GenreInput
compare     ``python -m TemplateCode.compare``: the comparison runner every experiment uses
"""
