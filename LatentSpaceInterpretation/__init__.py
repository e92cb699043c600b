"""Latent-space interpretation of the genre-transfer VAEs (see ``latent_space``)."""
