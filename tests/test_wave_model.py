"""Waveform VAE: shapes for any length, derived hop, real receptive fields, a causal WaveNet,
genre conditioning, bounded KL, a loss that trains, and the trainer -> transfer round trip."""
import math

import numpy as np
import pytest
import torch

import audio_resnet_encoder_wavenet_decoder as wave
import trainer
from prepare_data import override
from steps import train_steps


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(**changes):
    audio = trainer.configs("wave", "tiny")[0]
    return wave.CVAE(wave.wave_config("tiny", audio, **changes), audio), audio


def _tones(batch: int, samples: int, sr: int) -> torch.Tensor:
    """Decaying harmonic notes plus a little noise: a fixed, audio-like batch."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(samples) / sr
    f0 = 110.0 * 2 ** (torch.randint(0, 24, (batch, 1), generator=g) / 12)
    notes = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in (1, 2, 3))
    env = torch.exp(-3.0 * (t % 0.25))
    return 0.3 * notes * env + 0.01 * torch.randn(batch, samples, generator=g)


@pytest.mark.parametrize("frames", [1, 7, 64, 100])
def test_shapes_for_any_segment_length(frames):
    torch.manual_seed(0)
    model, _ = _tiny()
    hop = model.cfg.hop_length
    wave_in = torch.randn(2, frames * hop + 5) * 0.1          # 5 extra samples are cropped
    x = model.prepare(wave_in)
    assert x.shape == (2, 1, frames * hop)
    out = model(x, torch.tensor([0, 9]))
    assert out["mu"].shape == out["logvar"].shape == out["z"].shape == (2, model.cfg.latent_dim, frames)
    assert out["recon"].shape == out["target"].shape == (2, frames * hop)
    assert out["adv_logits"].shape == (2, model.cfg.n_genres)
    assert torch.isfinite(out["recon"]).all()


def test_hop_is_derived_from_the_strides_and_bad_configs_are_named():
    audio = trainer.configs("wave", "tiny")[0]
    cfg = wave.wave_config("tiny", audio, strides=(2, 3, 5), channels=(4, 8, 8, 8))
    assert cfg.hop_length == 30
    model = wave.CVAE(cfg, audio).eval()
    assert model.encode(model.prepare(torch.randn(1, 300)))[1].shape[-1] == 10
    assert model.decode(torch.randn(1, cfg.latent_dim, 10), torch.tensor([1])).shape == (1, 300)
    with pytest.raises(KeyError, match="huge"):
        wave.wave_config("huge", audio)
    with pytest.raises(KeyError, match="stride"):
        wave.wave_config("tiny", audio, stride=(2,))
    with pytest.raises(ValueError, match="segment_samples=40"):
        wave.wave_config("tiny", override(audio, segment_seconds=40 / audio.sample_rate))
    with pytest.raises(ValueError, match="channels"):
        wave.wave_config("tiny", audio, strides=(2, 2))
    with pytest.raises(ValueError, match="shorter than one latent frame"):
        wave.CVAE(wave.wave_config("tiny", audio), audio).prepare(torch.randn(1, 10))


def test_a_latent_frame_sees_more_than_its_own_hop():
    torch.manual_seed(0)
    model, _ = _tiny()
    hop, frames = model.cfg.hop_length, 40
    x = (torch.randn(1, 1, frames * hop) * 0.1).requires_grad_(True)
    _, mu, _ = model.encode(x)
    k = frames // 2
    mu[0, :, k].sum().backward()
    seen = torch.nonzero(x.grad[0, 0].abs() > 0).squeeze(1)
    span = int(seen.max() - seen.min() + 1)
    assert span > 4 * hop                                     # far beyond its own hop ...
    assert span <= model.cfg.encoder_receptive_field          # ... and within the computed field
    assert seen.min() < k * hop and seen.max() >= (k + 1) * hop


def test_wavenet_stack_is_causal_in_the_upsampled_latent():
    torch.manual_seed(0)
    model, _ = _tiny()
    dec = model.decoder.eval()
    genre = model.genre_embedding(torch.tensor([3]))
    cond = torch.randn(1, model.cfg.channels[0], 500)
    t0 = 300
    later = cond.clone()
    later[..., t0 + 1:] += torch.randn_like(later[..., t0 + 1:])
    a, b = dec.wavenet(cond, genre), dec.wavenet(later, genre)
    assert torch.equal(a[:, :t0 + 1], b[:, :t0 + 1])          # the past is untouched ...
    assert (a[:, t0 + 1:] - b[:, t0 + 1:]).abs().max() > 1e-4   # ... the future changes
    earlier = cond.clone()
    earlier[..., t0] += 1.0                                   # reach: wavenet_receptive_field
    c = dec.wavenet(earlier, genre)
    field = model.cfg.wavenet_receptive_field
    assert torch.equal(a[:, :t0], c[:, :t0])
    assert torch.equal(a[:, t0 + field:], c[:, t0 + field:])
    assert (a[:, t0] - c[:, t0]).abs() > 0


def test_genre_conditioning_changes_the_output_and_is_required():
    torch.manual_seed(0)
    model, _ = _tiny()
    model.eval()
    z = torch.randn(2, model.cfg.latent_dim, 16)
    a = model.decode(z, torch.tensor([0, 0]))
    b = model.decode(z, torch.tensor([5, 5]))
    assert (a - b).abs().max() > 1e-4
    emb = model.genre_embedding(torch.tensor([0, 0]))
    assert torch.equal(model.decode(z, genre_emb=emb), a)
    with pytest.raises(ValueError, match="genre-conditional"):
        model.decode(z)
    with pytest.raises(ValueError, match="expected \\(2, 8\\)"):
        model.decode(z, genre_emb=torch.zeros(2, 3))
    plain, _ = _tiny(conditional=False, adversary=False)
    assert plain.decode(z).shape == (2, 16 * plain.cfg.hop_length)
    assert "adv_logits" not in plain(plain.prepare(torch.randn(1, 640)), torch.tensor([0]))


def test_full_preset_size_does_not_grow_with_the_segment():
    counts = []
    for seconds in (5.0, 30.0):
        audio = trainer.configs("wave", "full", audio=dict(segment_seconds=seconds))[0]
        counts.append(sum(p.numel() for p in wave.CVAE(wave.wave_config("full", audio), audio).parameters()))
    assert counts[0] == counts[1] <= 20_000_000
    cfg = wave.wave_config("full", trainer.configs("wave", "full")[0])
    assert cfg.sample_rate == 22050 and cfg.hop_length == 512
    assert cfg.encoder_receptive_field > 10 * cfg.hop_length


def _tiny_fit_setup():
    """A tiny model (seed 0), its loss with the tiny training preset, a fixed batch of tones."""
    torch.manual_seed(0)
    model, audio = _tiny()
    cfg = override(trainer.TrainConfig(), **wave.TRAIN_PRESETS["tiny"])
    x = model.prepare(_tones(4, audio.segment_samples, audio.sample_rate))
    return model, wave.WaveformLoss(cfg, audio), x, torch.tensor([0, 1, 2, 3])


def test_kl_stays_bounded_after_optimizer_steps():
    model, loss_fn, x, genre = _tiny_fit_setup()
    history = train_steps(model, loss_fn, x, genre, lr=1e-2, beta=0.1, steps=5)   # a large step, on purpose
    kls = [float(h["kl_raw"]) for h in history]
    assert all(math.isfinite(k) for k in kls)
    assert max(kls) < 5.0, kls
    assert model.encode(x)[2].abs().max() <= model.cfg.logvar_bound


def test_loss_terms_are_named_and_training_lowers_the_reconstruction():
    model, loss_fn, x, genre = _tiny_fit_setup()
    history = train_steps(model, loss_fn, x, genre, lr=3e-3, beta=0.01, steps=12)
    terms, recon = history[-1], [float(h["recon"]) for h in history]
    assert {"sc", "log_mag", "mel", "kl_low", "kl_high", "kl", "kl_raw", "adv", "recon", "elbo",
            "total", "beta"} <= set(terms)
    assert all(torch.isfinite(v).all() for v in terms.values())
    weighted = sum(w * terms[k] for k, w in wave.WaveformLoss.WEIGHTS.items())
    assert torch.allclose(terms["recon"], weighted)
    assert recon[-1] < 0.65 * recon[0], recon


def test_train_with_the_trainer_then_transfer_both_ways(synthetic_root, tmp_path):
    from transfer import GenreTransfer
    out = tmp_path / "wave_run"
    best = trainer.main(["--data", str(synthetic_root), "--model", "wave", "--preset", "tiny",
                         "--out", str(out), "--epochs", "2"])
    assert best.is_file()
    state = torch.load(best, weights_only=True)
    assert state["family"] == "wave"
    assert tuple(state["model"]["strides"]) == wave.WAVE_PRESETS["tiny"]["strides"]
    tr = GenreTransfer.from_checkpoint(best)
    assert tr.model.family == "wave" and tr.genre_means.shape == (10, tr.model.cfg.latent_dim)
    sr = tr.audio.sample_rate
    clip = _tones(1, 4 * sr, sr)[0].numpy()
    for method in ("shift", "conditional"):
        y = tr.transfer_mono(clip, "blues", "metal", method=method)
        assert y.shape == clip.shape
        assert np.isfinite(y).all()
        assert np.sqrt(np.mean(y ** 2)) > 1e-4
    # A mel checkpoint is not a waveform model, however it is asked for.
    mel_run = tmp_path / "mel_run"
    mel_best = trainer.main(["--data", str(synthetic_root), "--model", "mel", "--preset", "tiny",
                             "--out", str(mel_run), "--epochs", "1", "--smoke-test"])
    with pytest.raises(ValueError, match="not a 'wave' model"):
        trainer.load_model(mel_best, family="wave")
    forged = torch.load(mel_best, weights_only=True)
    forged["family"] = "wave"
    torch.save(forged, tmp_path / "forged.pt")
    with pytest.raises(KeyError, match="WaveVAEConfig"):
        trainer.load_model(tmp_path / "forged.pt", family="wave")


@pytest.mark.parametrize("bands", [4, 16])
def test_pqmf_splits_into_bands_and_joins_them_back(bands):
    sr = 16000
    pqmf = wave.PQMF(bands)
    x = _tones(2, sr, sr)[:, None]                                # (2, 1, T)
    noise = torch.randn(1, 1, sr, generator=torch.Generator().manual_seed(1)) * 0.3
    for sig in (x, noise):
        parts = pqmf.analysis(sig)
        assert parts.shape == (sig.shape[0], bands, sr // bands)
        back = pqmf.synthesis(parts)
        inner = slice(pqmf.taps, -pqmf.taps)                      # the edges see zero padding
        err = (back[..., inner] - sig[..., inner]).pow(2).mean() / sig[..., inner].pow(2).mean()
        assert 10 * torch.log10(err) < -35                        # near-perfect reconstruction
    t = torch.arange(sr) / sr
    width = sr / 2 / bands
    for k in (0, bands // 2, bands - 1):                           # a tone lands in its own band
        tone = torch.sin(2 * math.pi * (k + 0.5) * width * t)[None, None]
        energy = pqmf.analysis(tone).pow(2).mean(-1)[0]
        assert int(energy.argmax()) == k and energy[k] > 0.9 * energy.sum()


def test_multiband_model_works_at_the_band_rate():
    torch.manual_seed(0)
    model, audio = _tiny(bands=4, noise=False, noise_bands=True, strides=(2, 8), channels=(8, 16, 16))
    assert model.cfg.hop_length == 64 == wave.WAVE_PRESETS["tiny"]["strides"][0] * 32
    x = model.prepare(_tones(2, 20 * 64, audio.sample_rate))
    out = model(x, torch.tensor([0, 9]))
    assert out["mu"].shape == (2, model.cfg.latent_dim, 20) and out["recon"].shape == (2, 20 * 64)
    assert model.cfg.encoder_receptive_field > 4 * model.cfg.hop_length
    model.eval()
    z = out["mu"].detach()
    bands = model.decoder.wavenet(model.decoder.condition(z), model.genre_embedding(torch.tensor([0, 9])))
    assert bands.shape == (2, 4, 20 * 64 // 4)                    # the stack runs at 1 / bands of the rate
    assert torch.equal(model.decode(z, torch.tensor([0, 9])), model.decode(z, torch.tensor([0, 9])))  # seeded noise
    with pytest.raises(ValueError, match="bands=4"):
        _tiny(bands=4)                                             # white noise into a multi-band stack
    with pytest.raises(ValueError, match="noise_bands"):
        _tiny(noise_bands=True)


def test_oscillator_synth_plays_its_pitches_and_noise_bands_on_one_time_line():
    sr, hop = 8000, 32
    synth = wave.OscillatorSynth(sr, hop).eval()
    hz = synth.omega.numpy() * sr / (2 * np.pi)
    k = int(np.argmin(np.abs(hz - 440.0)))
    amps = torch.zeros(1, synth.n_oscillators, 250)
    amps[0, k] = 1.0
    tone = synth.harmonic(amps)[0].numpy()
    peak = np.fft.rfftfreq(len(tone), 1 / sr)[np.abs(np.fft.rfft(tone)).argmax()]
    assert abs(peak - 440.0) < 1.0 and abs(tone.std() - 2 ** -0.5) < 0.01      # one unit sine at A4
    assert hz[0] < 45.0 and hz[-1] < 0.95 * sr / 2 and np.allclose(np.diff(np.log2(hz)), 1 / 24)

    amps = torch.rand(2, synth.n_oscillators, 40)                  # a window decoded on its own ...
    whole = synth.harmonic(amps)
    window = synth.harmonic(amps[..., 10:30], start=torch.tensor([10 * hop, 10 * hop]))
    assert torch.allclose(window[:, :19 * hop], whole[:, 10 * hop:29 * hop], atol=1e-4)   # ... in phase
    assert not torch.allclose(synth.harmonic(amps[..., 10:30])[:, :hop], whole[:, 10 * hop:11 * hop], atol=1e-2)

    band = 20
    mags = torch.zeros(1, synth.noise_filters, 400)
    mags[0, band] = 1.0
    noise = synth.noise(mags)[0].numpy()
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / sr)
    bins = np.flatnonzero(synth.noise_bank[:, band].numpy() > 0) * sr / synth.n_fft      # the band's support
    inside = (freqs >= bins[0] - 2 * sr / synth.n_fft) & (freqs <= bins[-1] + 2 * sr / synth.n_fft)
    assert power[inside].sum() > 0.95 * power.sum()
    assert torch.equal(synth.noise(mags), synth.noise(mags))                    # seeded in eval


def _pitch_rows(**changes):
    """The demo preset's design (latent pitch rows, oscillators) at the tiny preset's rate."""
    return _tiny(synth="oscillators", noise=False, front="pitch", front_fft=512, control_hop=16, front_stride=2,
                 pitch_latent=True, strides=(2,), channels=(8, 16), latent_dim=2, cond_channels=32,
                 residual_channels=32, skip_channels=32, noise_filters=16, **changes)


def test_the_latent_keeps_a_row_per_semitone():
    torch.manual_seed(0)
    model, audio = _pitch_rows()
    cfg = model.cfg
    assert cfg.hop_length == 64 and cfg.latent_rows == math.ceil(cfg.n_pitches / 2)
    t = torch.arange(40 * 64) / audio.sample_rate
    x = model.prepare(0.3 * torch.sin(2 * math.pi * 440.0 * t)[None])
    out = model(x, torch.tensor([2]))
    assert out["mu"].shape == (1, cfg.latent_channels, 40) == (1, 2 * cfg.latent_rows, 40)
    assert out["recon"].shape == (1, 40 * 64) and out["adv_logits"].shape == (1, 10)
    # A note keeps its row: latent row r reads pitches 2r - 1 .. 2r + 1 of the front-end only.
    pitch = model.encoder.front(x).detach().requires_grad_(True)
    feats = model.encoder.rows_forward(pitch).view(1, -1, cfg.latent_rows, 40)
    r = 30
    feats[:, :, r].sum().backward()
    seen = torch.nonzero(pitch.grad[0].abs().sum(-1)).squeeze(1).tolist()
    assert seen == [2 * r - 1, 2 * r, 2 * r + 1]


def test_the_oscillator_decoder_reads_its_latent_and_hears_the_genre():
    """Two clips under one genre label: only the latent tells them apart. After a short fit
    each decode is nearer its own clip, and swapping the two latents swaps the outputs.
    (A decoder that ignores its latent gives both clips one output and fails both checks.)
    Told another genre, the decode changes: the stack behind the note rows still listens
    (unnormalised, its condition grew until every gate saturated and the genre was unheard)."""
    torch.manual_seed(0)
    model, audio = _pitch_rows()
    cfg = override(trainer.TrainConfig(), **wave.TRAIN_PRESETS["tiny"])
    loss_fn = wave.WaveformLoss(cfg, audio)
    t = torch.arange(audio.segment_samples) / audio.sample_rate
    clips = torch.stack([0.2 * sum(torch.sin(2 * math.pi * h * f0 * t) / h for h in (1, 2, 3))
                         for f0 in (196.0, 523.25)])                          # G3 and C5
    x, genre = model.prepare(clips), torch.tensor([3, 3])
    train_steps(model, loss_fn, x, genre, lr=3e-3, beta=0.001, steps=150)
    model.eval()
    with torch.no_grad():
        mu = model.encode(x)[1]
        own, swapped = model.decode(mu, genre), model.decode(mu.flip(0), genre)
        other = model.decode(mu, torch.tensor([7, 7]))
    logmel = lambda y: torch.log(loss_fn.mel(y) + 1e-3)                          # noqa: E731
    dist = lambda a, b: float((logmel(a) - logmel(b)).abs().mean())              # noqa: E731
    for i in (0, 1):
        assert dist(own[i], clips[i]) < 0.5 * dist(own[i], clips[1 - i])
        assert dist(swapped[i], clips[1 - i]) < 0.5 * dist(swapped[i], clips[i])
    # Seeds 0, 1 measured: 0.016, 0.005 of the difference between the clips; 0 and 3e-9 unnormalised.
    assert dist(other, own) > 1e-3 * dist(own[0], own[1])


def test_the_timing_stream_rides_in_the_code_at_the_control_rate():
    """With ``timing`` the oscillator design's code carries the input's onset stream at the
    control rate after the latent (observed: the same in z and mu, out of the KL), and the
    stack reads it: moving the stream moves the decode."""
    import trainer
    from audio_resnet_encoder_wavenet_decoder import wave_onset_stream
    from vae_parts import unfold_time
    audio, cfg, train_cfg = trainer.configs("wave", "demo", model={"timing": "onsets"})
    model = trainer.get_family("wave").model(cfg, audio).eval()
    wave = torch.zeros(1, audio.segment_samples)
    hits = [5000, 20000, 33000]                                        # samples
    for s in hits:
        wave[:, s:s + 300] = torch.randn(300) * 0.5
    x = model.prepare(wave)
    z, mu, logvar = model.encode(x)
    k = cfg.latent_channels
    assert z.shape[1] == cfg.code_channels == k + cfg.hop_length // cfg.control_hop
    assert torch.equal(z[:, k:], mu[:, k:]) and (logvar[:, k:] == 0).all()
    stream = unfold_time(mu[:, k:])[0, 0]                              # (N,) control frames
    assert torch.allclose(stream, wave_onset_stream(x, cfg.control_hop)[0, 0, :stream.shape[-1]])
    peaks = stream.topk(3).indices * cfg.control_hop
    assert all(min(abs(int(p) - h) for h in hits) < 600 for p in peaks)  # within the STFT's reach
    out = model(x, torch.tensor([0]))
    terms = trainer.get_family("wave").loss(train_cfg, audio)(out, torch.tensor([0]), 1.0)
    assert out["latent_channels"] == k and torch.isfinite(terms["kl_raw"])
    with torch.no_grad():
        moved = torch.cat([mu[:, :k], torch.roll(mu[:, k:], 3, dims=-1)], 1)
        assert (model.decode(mu, torch.tensor([0])) - model.decode(moved, torch.tensor([0]))).abs().max() > 1e-4


def test_the_pitch_class_term_hears_a_wrong_note_and_not_the_level_or_the_octave():
    sr, hop = 22050, 256
    pc = wave.PitchClasses(sr, hop)
    t = torch.arange(sr) / sr

    def note(hz):                                   # a plucked note with its second harmonic
        return ((torch.sin(2 * math.pi * hz * t) + 0.5 * torch.sin(4 * math.pi * hz * t)) * torch.exp(-2 * t))[None]

    a = note(220.0)
    profile, power = pc(a)
    assert profile.shape == (1, 12, sr // hop + 1) and torch.allclose(profile.sum(1), torch.ones(1, profile.shape[-1]))
    assert profile[0, 9, 10:-10].mean() > 0.6                                  # A is pitch class 9
    assert (profile[0, :, 10:-10].argmax(0) == 9).all()
    assert float(pc.loss(a, a)) == 0.0
    assert float(pc.loss(0.1 * a, a)) < 1e-3                                   # the level does not count
    assert float(pc.loss(note(440.0), a)) < 0.5                                # nor much the octave
    assert float(pc.loss(note(220.0 * 2 ** (1 / 12)), a)) > 1.2               # a semitone does (2 at most)

    audio = trainer.configs("wave", "demo")[0]
    cfg = override(trainer.TrainConfig(), **{**wave.TRAIN_PRESETS["demo"], "chroma_weight": 0.5})
    loss_fn = wave.WaveformLoss(cfg, audio)
    wrong = note(220.0 * 2 ** (1 / 12))
    stft = loss_fn.spectral_terms(wrong, a)
    out = {"recon": wrong, "target": a, "mu": torch.zeros(1, 2, 3), "logvar": torch.zeros(1, 2, 3)}
    terms = loss_fn(out, torch.tensor([0]), beta=0.0)
    assert torch.allclose(terms["chroma"], pc.loss(wrong, a))
    assert torch.allclose(terms["recon"], sum(w * stft[k] for k, w in loss_fn.WEIGHTS.items()) + 0.5 * terms["chroma"])
    assert "chroma" not in wave.WaveformLoss(override(cfg, chroma_weight=0.0), audio)(out, torch.tensor([0]), beta=0.0)


def test_with_note_film_the_genre_reaches_the_notes_the_rows_decode():
    """The pitch rows' decoder alone (no stack): without ``note_film`` its logits are the same
    for every genre; with it they start the same (zero at initialisation) and, once its weights
    move, differ by genre while the same genre gives the same logits."""
    torch.manual_seed(0)
    plain, _ = _pitch_rows()
    filmed, _ = _pitch_rows(note_film=True)
    assert "decoder.note_film.weight" in filmed.state_dict() and "decoder.note_film.weight" not in plain.state_dict()
    with pytest.raises(ValueError, match="note_film"):
        _pitch_rows(note_film=True, conditional=False)
    z = torch.randn(2, plain.cfg.latent_channels, 6)
    emb = lambda model, g: model.genre_embedding(torch.tensor([g, g]))         # noqa: E731
    logits = lambda model, g: model.decoder.note_logits(z, 24, emb(model, g))  # noqa: E731
    with torch.no_grad():
        assert torch.equal(logits(plain, 0), logits(plain, 5))
        assert torch.equal(logits(filmed, 0), logits(filmed, 5))
        torch.nn.init.normal_(filmed.decoder.note_film.weight, std=0.5)
        a, b = logits(filmed, 0), logits(filmed, 5)
    assert a.shape == (2, filmed.decoder.synth.n_oscillators, 24)
    assert (a - b).abs().mean() > 0.05 * a.abs().mean() and torch.equal(a, logits(filmed, 0))
