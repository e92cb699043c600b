"""Template pipelines a newcomer starts from, and the plumbing every experiment shares.

Modules
-------
data        GTZAN segments for both domains (one file-level split, decoded once)
audio_vae   the plain waveform VAE (strided conv encoder, upsampling decoder, genre FiLM)
image_vae   the plain log-mel image VAE (same idea in 2-D)
train       ``python -m TemplateCode.train --kind audio|image``: the training script
experiment  Variant, the family registry, load_experiment, GenreInput
compare     ``python -m TemplateCode.compare``: the comparison runner every experiment uses
"""


def __getattr__(name):
    # ``TemplateCode.FAMILIES``, read lazily like ``AudioExperiment.FAMILIES``: the template
    # models as trainer family entries, without importing them with the package.
    if name == "FAMILIES":
        from TemplateCode.experiment import template_families
        return template_families()
    raise AttributeError(f"module 'TemplateCode' has no attribute {name!r}")
