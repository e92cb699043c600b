"""Mel VAE blocks: shapes derived from the config, output range, the shared bottleneck."""
import pytest
import torch
import torch.nn.functional as F

from model import ENVELOPE_BINS, MelVAE, MemoryEfficientDecoder, MemoryEfficientEncoder, encoder_view, mel_config
from prepare_data import AudioConfig
from vae_parts import (GaussianBottleneck, GenreEmbedding, GradientReversal, LatentGenreAdversary, adversary_outputs,
                       total_loss)


@pytest.mark.parametrize("preset,frames,skip,freq", [("tiny", 128, False, False), ("tiny", 64, True, True),
                                                     ("tiny", 256, False, True), ("demo", 128, True, False),
                                                     ("demo", 64, False, False), ("demo", 128, True, True),
                                                     ("full", 512, True, True)])
def test_shapes_follow_the_config(preset, frames, skip, freq):
    audio = AudioConfig.preset("demo", n_frames=frames)
    cfg = mel_config(preset, audio, latent_skip=skip, freq_latent=freq)
    model = MelVAE(cfg, audio).eval()
    x = torch.rand(3, 1, audio.n_mels, frames) * 2 - 1
    out = model(x, torch.tensor([0, 4, 9]))
    assert out["recon"].shape == x.shape
    rows = audio.n_mels // cfg.freq_stride if freq else 1
    assert cfg.latent_channels == cfg.latent_dim * rows
    # the code: the latent, then (demo and full presets) the clock timing's seven streams (notes,
    # hits, two clock phases, three pulse trains) folded, one channel per stream and frame
    assert cfg.timing_channels == (0 if preset == "tiny" else 7 * cfg.time_stride)
    assert out["mu"].shape == (3, cfg.latent_dim * rows + cfg.timing_channels, frames // cfg.time_stride)
    assert torch.isfinite(out["recon"]).all()
    assert out["adv_logits"].shape == (3, 10)


def test_frame_count_not_divisible_by_stride_is_an_error():
    audio = AudioConfig.preset("demo", n_frames=102)
    with pytest.raises(ValueError, match="n_frames=102"):
        mel_config("tiny", audio)


def test_unknown_preset_and_override_keys_are_errors():
    audio = AudioConfig.preset("demo")
    with pytest.raises(KeyError, match="huge"):
        mel_config("huge", audio)
    with pytest.raises(KeyError, match="latent_dims"):
        mel_config("tiny", audio, latent_dims=3)


def test_output_reaches_the_whole_range():
    """The seed capped its output at 0.96; ours fits silence (-1) and full level (+1)."""
    torch.manual_seed(0)
    audio = AudioConfig.preset("demo")
    cfg = mel_config("tiny", audio)
    model = MelVAE(cfg, audio)
    x = torch.rand(2, 1, audio.n_mels, audio.frames) * 2 - 1
    target = torch.full_like(x, -1.0)
    target[1] = 1.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    genre = torch.tensor([0, 1])
    for _ in range(150):
        opt.zero_grad()
        z, mu, logvar = model.encode(x)
        loss = (model.decode(mu, genre) - target).pow(2).mean()
        loss.backward()
        opt.step()
    out = model.eval().decode(model.encode(x)[1], genre)
    assert out[0].min() == -1.0 and out[1].max() == 1.0            # the clamp reaches both ends
    assert (out[0] < -0.98).float().mean() > 0.99                   # and it fits silence ...
    assert (out[1] > 0.98).float().mean() > 0.99                    # ... and full level


def test_bottleneck_kl_and_bounds():
    bn = GaussianBottleneck(4, 3, logvar_bound=5.0)
    h = torch.randn(2, 4, 7) * 1000
    z, mu, logvar = bn.train()(h)
    assert logvar.abs().max() <= 5.0
    assert torch.equal(bn.eval()(h)[0], bn(h)[1])                 # eval: z = mu
    zeros = torch.zeros(2, 3, 7)
    assert torch.allclose(GaussianBottleneck.kl_per_dim(zeros, zeros), torch.zeros(3))
    kl = GaussianBottleneck.kl_per_dim(torch.ones(2, 3, 7), zeros)
    assert torch.allclose(kl, torch.full((3,), 0.5))


def test_bottleneck_starts_at_the_given_log_variance():
    h = torch.randn(4, 6, 5)
    for init in (0.0, -4.0):
        _, _, logvar = GaussianBottleneck(6, 2, init_logvar=init)(h)
        assert abs(float(logvar.detach().mean()) - init) < 0.3
    with pytest.raises(ValueError, match="init_logvar=9"):
        GaussianBottleneck(6, 2, logvar_bound=8.0, init_logvar=9.0)


def test_bottleneck_rows_share_one_head_and_stay_apart():
    """rows=4: input [B, C*4, T] (C-major); row r of the input moves only row r of mu."""
    torch.manual_seed(0)
    bn = GaussianBottleneck(6 * 4, 2, rows=4).eval()
    h = torch.randn(3, 24, 5)
    _, mu, logvar = bn(h)
    assert mu.shape == logvar.shape == (3, 2 * 4, 5)
    bumped = h.clone()
    bumped.view(3, 6, 4, 5)[:, :, 2] += 1.0                    # every channel of row 2
    changed = (bn(bumped)[1] - mu).abs().amax(dim=(0, 2)).view(2, 4) > 1e-6   # (D, rows)
    assert changed[:, 2].all() and not changed[:, [0, 1, 3]].any()
    with pytest.raises(ValueError, match="25 input channels"):
        GaussianBottleneck(25, 2, rows=4)


def test_frequency_latent_maps_pitch_locally():
    """A change in the lowest latent row moves the low mel bands, hardly the high ones; a
    latent without rows spreads the same change over every band."""
    torch.manual_seed(0)
    audio = AudioConfig.preset("demo")
    ratios = {}
    for freq in (True, False):
        model = MelVAE(mel_config("tiny", audio, freq_latent=freq), audio).eval()
        cfg = model.cfg
        z = torch.randn(2, cfg.latent_channels, audio.frames // cfg.time_stride)
        bumped = z.clone()
        bumped.view(2, cfg.latent_dim, cfg.latent_rows, -1)[:, :, 0] += 3.0
        genre = torch.tensor([2, 5])
        with torch.no_grad():
            diff = (model.decode(bumped, genre) - model.decode(z, genre)).abs()[:, 0]   # (B, M, F)
        # lowest eighth against the top half; GroupNorm's statistics leak a little everywhere
        ratios[freq] = float(diff[:, :audio.n_mels // 8].mean() / diff[:, audio.n_mels // 2:].mean())
    assert ratios[True] > 2.0 and ratios[False] < 1.3, ratios


def test_pitch_view_ignores_the_spectral_envelope_and_harmonic_view_ignores_clicks():
    torch.manual_seed(0)
    mel = torch.full((1, 1, 64, 40), -0.8)
    mel[..., 20, :] = 0.5                                       # a held tone on bin 20
    mel[..., 31, 10:25] = 0.3                                   # a note on bin 31
    tilt = torch.linspace(-0.3, 0.3, 64).view(1, 1, 64, 1) * torch.rand(1, 1, 1, 40)  # colour per frame
    r = ENVELOPE_BINS // 2
    inner = slice(r, 64 - r)                                    # rows the average sees whole
    pitch = encoder_view(mel, "pitch")
    assert torch.allclose(encoder_view(mel + tilt, "pitch")[..., inner, :], pitch[..., inner, :], atol=1e-5)
    assert pitch[..., 20, :].min() > 0.9 * (0.5 + 0.8) * (1 - 1 / ENVELOPE_BINS)    # the peak stays
    clicked = mel.clone()
    clicked[..., 30] = 0.9                                      # a one-frame drum hit on every bin
    assert not torch.allclose(encoder_view(clicked, "pitch"), pitch)
    assert torch.allclose(encoder_view(clicked, "pitch-harmonic"), encoder_view(mel, "pitch-harmonic"))
    assert torch.equal(encoder_view(mel, "mel"), mel)
    with pytest.raises(ValueError, match="timbre"):
        encoder_view(mel, "timbre")
    with pytest.raises(ValueError, match="encoder_view='timbre'"):
        mel_config("tiny", AudioConfig.preset("demo"), encoder_view="timbre")


def test_genre_dropout_replaces_labels_only_in_training():
    torch.manual_seed(0)
    emb = GenreEmbedding(10, 4, dropout=0.3)
    assert emb.num_embeddings == 11                             # ten genres + "no genre"
    genre = torch.arange(10).repeat(400)
    null = emb.weight[10]
    dropped = (emb.train()(genre) == null).all(dim=1).float().mean()
    assert 0.27 < float(dropped) < 0.33
    assert not (emb.eval()(genre) == null).all(dim=1).any()
    assert GenreEmbedding(10, 4).num_embeddings == 10           # no dropout: no extra row
    with pytest.raises(ValueError, match="genre dropout"):
        GenreEmbedding(10, 4, dropout=1.0)


def test_latent_skip_carries_the_latent_into_every_stage():
    """With the skip, zeroing the decoder's input projection still leaves z in the output."""
    torch.manual_seed(0)
    audio = AudioConfig.preset("demo")
    for skip in (False, True):
        model = MelVAE(mel_config("tiny", audio, latent_skip=skip), audio).eval()
        with torch.no_grad():
            model.decoder.inp.weight.zero_()
        z = torch.randn(2, model.cfg.latent_channels, audio.frames // model.cfg.time_stride)
        genre = torch.tensor([1, 1])
        diff = (model.decode(z, genre) - model.decode(torch.zeros_like(z), genre)).abs().max()
        assert (diff > 1e-3) == skip


def test_gradient_reversal_negates_the_gradient():
    x = torch.ones(3, requires_grad=True)
    (GradientReversal(2.0)(x) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-2.0, -4.0, -6.0]))


def test_the_confusion_adversary_rewards_chance_and_not_a_confidently_wrong_classifier():
    """objective="confusion": the classifier's cross-entropy trains the classifier only; the
    encoder's term reaches mu only, is 0 at a uniform prediction and grows as the prediction
    leaves chance, whichever genre it names. "reversal" pays the encoder -CE, which a confidently
    wrong classifier makes as low as it likes (the runaway of the design notes' 2026-12-06 entry)."""
    torch.manual_seed(0)
    adv = LatentGenreAdversary(8, 10, hidden=16, objective="confusion")
    mu = torch.randn(4, 8, 5, requires_grad=True)
    genre = torch.tensor([0, 1, 2, 3])
    F.cross_entropy(adv(mu), genre).backward()
    assert mu.grad is None and all(p.grad is not None for p in adv.net.parameters())
    adv.zero_grad()
    adv.confusion(mu).backward()
    assert mu.grad.abs().sum() > 0 and all(p.grad is None or p.grad.abs().sum() == 0 for p in adv.net.parameters())
    with torch.no_grad():
        adv.net[-1].weight.zero_()
        adv.net[-1].bias.zero_()
    assert float(adv.confusion(mu).detach()) == pytest.approx(0.0, abs=1e-6)  # uniform: at chance
    with torch.no_grad():                                   # confidently genre 9, which none of the clips is
        adv.net[-1].bias.copy_(torch.zeros(10).index_fill_(0, torch.tensor([9]), 20.0))
    assert float(adv.confusion(mu).detach()) > 15.0                           # a penalty for the encoder
    assert float(-F.cross_entropy(adv(mu), genre).detach()) < -15.0           # what "reversal" pays it: a reward
    outs = adversary_outputs(adv, mu)
    assert set(outs) == {"adv_logits", "adv_confusion"}
    cfg = type("Cfg", (), {"adv_weight": 0.5})()
    terms = total_loss({"recon": torch.tensor(1.0), "kl": torch.tensor(2.0)}, outs, genre, 0.1, cfg)
    assert float(terms["total"].detach()) == pytest.approx(1.2 + 0.5 * float((terms["adv"] + outs["adv_confusion"]).detach()), rel=1e-5)
    assert set(adversary_outputs(LatentGenreAdversary(8, 10, objective="reversal"), mu)) == {"adv_logits"}
    with pytest.raises(ValueError, match="adversary objective 'mirror'"):
        LatentGenreAdversary(8, 10, objective="mirror")
    with pytest.raises(ValueError, match="adversary_objective='mirror'"):
        MelVAE(mel_config("tiny", AudioConfig.preset("demo"), adversary_objective="mirror"), AudioConfig.preset("demo"))


def test_conditional_decoder_depends_on_genre_once_trained_weights_are_nonzero():
    torch.manual_seed(0)
    audio = AudioConfig.preset("demo")
    model = MelVAE(mel_config("tiny", audio), audio).eval()
    z = torch.randn(1, model.cfg.latent_channels, audio.frames // model.cfg.time_stride)
    same = model.decode(z, torch.tensor([0])) - model.decode(z, torch.tensor([5]))
    assert same.abs().max() == 0              # FiLM starts as identity (zero-initialised)
    for p in model.decoder.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    diff = model.decode(z, torch.tensor([0])) - model.decode(z, torch.tensor([5]))
    assert diff.abs().max() > 1e-3


def test_prepare_computes_the_mel_on_the_batch():
    audio = AudioConfig.preset("demo")
    model = MelVAE(mel_config("tiny", audio), audio)
    wave = torch.randn(2, audio.segment_samples) * 0.1
    mel = model.prepare(wave)
    assert mel.shape == (2, 1, audio.n_mels, audio.frames)
    assert mel.min() >= -1 and mel.max() <= 1


def test_a_config_rebuilds_from_its_dict():
    from dataclasses import asdict

    from model import MelVAEConfig
    from prepare_data import config_from_dict
    now = mel_config("tiny", AudioConfig.preset("demo"))
    assert now.latent_skip and now.freq_latent and now.encoder_view == "pitch-harmonic"
    assert config_from_dict(MelVAEConfig, asdict(now)) == now


def test_the_timing_stream_rides_in_the_code_and_places_the_hits():
    """With ``timing`` the code carries the input's onset stream after the latent: observed (the
    same in z and mu, no variance, out of the KL), at the mel's frame rate, and the decoder
    reads it (the hits of a decode move when it moves)."""
    from model import onset_stream
    from vae_parts import unfold_time
    from trainer import EfficientLoss, TrainConfig
    audio = AudioConfig.preset("demo")
    cfg = mel_config("tiny", audio, timing="onsets")
    model = MelVAE(cfg, audio).eval()
    wave = torch.zeros(2, audio.segment_samples)
    hits = [20, 57, 90]                                              # frames
    for f in hits:
        s = f * audio.hop_length
        wave[:, s:s + 400] = torch.randn(400) * 0.5                  # a click: broadband, short
    x = model.prepare(wave)
    z, mu, logvar = model.encode(x)
    k = cfg.latent_channels
    assert z.shape[1] == mu.shape[1] == cfg.code_channels == k + cfg.time_stride
    assert torch.equal(z[:, k:], mu[:, k:]) and (logvar[:, k:] == 0).all()
    onsets = unfold_time(mu[:, k:])[0, 0]                            # (F,) back at the frame rate
    assert torch.allclose(onsets, onset_stream(x)[0, 0])
    assert set(onsets.topk(3).indices.tolist()) <= {f + d for f in hits for d in (-1, 0, 1, 2)}
    out = model(x, torch.tensor([0, 1]))
    terms = EfficientLoss(TrainConfig(), audio)(out, torch.tensor([0, 1]), 1.0)
    assert out["latent_channels"] == k                               # the KL reads the latent only:
    per_dim = GaussianBottleneck.kl_per_dim(mu[:, :k], logvar[:, :k])
    assert torch.allclose(terms["kl_raw"], per_dim.mean())
    with torch.no_grad():
        moved = torch.cat([mu[:, :k], torch.roll(mu[:, k:], 1, dims=-1)], 1)
        assert (model.decode(mu, torch.tensor([0, 1])) - model.decode(moved, torch.tensor([0, 1]))).abs().max() > 1e-3


def test_split_timing_keeps_the_notes_and_fades_the_hits_when_the_genre_changes():
    """``timing="split"``: a sustained note's start is in the notes stream, a click in the hits
    stream; a transfer at strength 1 decodes without the hits (the target genre plays its own
    drums), at 0.5 with half of them; ``hit_dropout`` drops them from training decodes."""
    from model import timing_streams
    audio = AudioConfig.preset("demo")
    cfg = mel_config("tiny", audio, timing="split", hit_dropout=1.0)
    model = MelVAE(cfg, audio)
    t = torch.arange(audio.segment_samples) / audio.sample_rate
    wave = (0.3 * torch.sin(2 * torch.pi * 440 * t) * (t > 1.0)).repeat(2, 1)   # a note from 1 s
    wave[:, 44100:44500] += torch.randn(400) * 0.5                              # a click at 2 s
    x = model.prepare(wave)
    notes, hits = timing_streams(x, "split")[0, :, 2:-2]                       # the edge frames see the cut
    frame = lambda s: round(s * audio.sample_rate / audio.hop_length) - 2      # noqa: E731
    assert abs(int(notes.argmax()) - frame(1.0)) <= 2 and abs(int(hits.argmax()) - frame(2.0)) <= 2
    z, mu, _ = model.encode(x)
    k, s = cfg.latent_channels, cfg.time_stride
    assert z.shape[1] == cfg.code_channels == k + 2 * s
    moved = model.transfer_code(mu, 1.0)
    assert torch.equal(moved[:, :k + s], mu[:, :k + s]) and (moved[:, k + s:] == 0).all()
    assert torch.allclose(model.transfer_code(mu, 0.5)[:, k + s:], 0.5 * mu[:, k + s:])
    model.train()
    assert (model(x, torch.tensor([0, 1]))["z"][:, k + s:] == 0).all()        # every training decode dropped them
    with pytest.raises(ValueError, match="hit_dropout"):
        mel_config("tiny", audio, timing="onsets", hit_dropout=0.5).validate()


@pytest.mark.parametrize("bpm", [72.0, 100.0, 150.0])
def test_the_beat_clock_ticks_on_the_beats(bpm):
    """An onset envelope with a hit on every beat: the clock (folded into [60, 120) BPM) or
    the pulse train at twice its rate ticks on every hit and not half a beat later; the
    envelope shifted by half a beat moves the ticks with it."""
    from model import beat_clock
    fps, frames = 22050 / 512, 430
    period = 60.0 / bpm * fps
    beats = torch.arange(3.0, frames, period)
    env = torch.zeros(1, 1, frames)
    env[0, 0, beats.round().long()] = 1.0
    clocks = beat_clock(env, fps)
    assert clocks.shape == (1, 5, frames)
    assert torch.allclose(beat_clock(env.to(torch.bfloat16), fps).float(), clocks, atol=0.02)   # under autocast
    assert torch.allclose(clocks[0, 0] ** 2 + clocks[0, 1] ** 2, torch.ones(frames), atol=1e-4)
    which = 2 if bpm < 120 else 3                                    # the pulses at the tempo
    on = beats.round().long()
    off = (beats + period / 2).round().long().clamp(max=frames - 1)
    assert clocks[0, which, on].min() > 0.6 and clocks[0, which, off].max() < 0.01    # the hits sit on whole frames
    shifted = beat_clock(torch.roll(env, int(round(period / 2)), dims=-1), fps)
    assert shifted[0, which, on[1:-1]].max() < 0.01 and shifted[0, which, off[:-2]].min() > 0.6


def test_clock_timing_keeps_the_clock_and_fades_only_the_hits():
    """``timing="clock"``: notes, hits (offset so a decoder can tell them from none), then five
    clock streams; a transfer fades the hits only, and a dropped decode has no hits offset."""
    from model import HITS_PRESENT, timing_streams
    audio = AudioConfig.preset("demo")
    cfg = mel_config("tiny", audio, timing="clock", hit_dropout=1.0)
    model = MelVAE(cfg, audio)
    wave = torch.zeros(2, audio.segment_samples)
    for s in range(2000, audio.segment_samples, 11025):              # a click every half second: 120 BPM
        wave[:, s:s + 300] = torch.randn(300) * 0.5
    x = model.prepare(wave)
    fps = audio.sample_rate / audio.hop_length
    streams = timing_streams(x, "clock", fps)
    assert streams.shape == (2, 7, x.shape[-1]) and streams[:, 1].min() >= HITS_PRESENT
    with pytest.raises(ValueError, match="fps"):
        timing_streams(x, "clock")
    z, mu, _ = model.encode(x)
    k, s = cfg.latent_channels, cfg.time_stride
    assert z.shape[1] == cfg.code_channels == k + 7 * s
    moved = model.transfer_code(mu, 1.0)
    assert torch.equal(moved[:, :k + s], mu[:, :k + s]) and torch.equal(moved[:, k + 2 * s:], mu[:, k + 2 * s:])
    assert (moved[:, k + s:k + 2 * s] == 0).all()
    model.train()
    assert (model(x, torch.tensor([0, 1]))["z"][:, k + s:k + 2 * s] == 0).all()


def test_the_beat_gate_keeps_the_source_hits_on_the_beat_pulse_only():
    """``hit_gate="beat"``: a transfer keeps each frame of the hits stream as far as the clock's
    beat pulse is high nearby, so clicks on the beat stay and those between the beats go; at
    strength 0 every hit stays. ``hits_offset=0`` leaves the stream at 0 where nothing hits."""
    from model import BEAT_GATE_FRAMES, BEAT_PULSE
    from vae_parts import unfold_time
    audio = AudioConfig.preset("demo")
    cfg = mel_config("tiny", audio, timing="clock", hit_dropout=0.5, hits_offset=0.0, hit_gate="beat")
    model = MelVAE(cfg, audio)
    beat = round(0.6 * audio.sample_rate)                            # loud clicks at 100 BPM, soft ones between
    loud, soft = list(range(2000, audio.segment_samples - 400, beat)), list(range(2000 + beat // 2, audio.segment_samples - 400, beat))
    wave = torch.zeros(1, audio.segment_samples)
    for starts, level in ((loud, 0.5), (soft, 0.2)):
        for s in starts:
            wave[:, s:s + 300] = torch.randn(300) * level
    _, mu, _ = model.encode(model.prepare(wave))
    k = cfg.latent_channels
    streams = unfold_time(mu[:, k:], cfg.timing_streams)[0]
    moved = unfold_time(model.transfer_code(mu, 1.0)[:, k:], cfg.timing_streams)[0]
    hits, pulse = streams[1], streams[BEAT_PULSE]
    assert hits.min() >= 0 and hits.min() < 0.01 * hits.max()
    gate = F.max_pool1d(pulse[None], BEAT_GATE_FRAMES, stride=1, padding=BEAT_GATE_FRAMES // 2)[0]
    assert torch.allclose(moved[1], hits * gate, atol=1e-6)
    others = [0] + list(range(2, cfg.timing_streams))
    assert torch.equal(moved[others], streams[others])

    def kept(starts):                                                # the share of each click's peak a transfer keeps
        frames = [round(s / audio.hop_length) for s in starts]
        peaks = [f - 3 + int(hits[f - 3:f + 4].argmax()) for f in frames if 3 <= f < hits.shape[0] - 3]
        return torch.stack([moved[1, f] / hits[f] for f in peaks])
    assert kept(loud).min() > 0.8 and kept(soft).max() < 0.05
    assert torch.equal(model.transfer_code(mu, 0.0), mu)
    for bad in (dict(timing="split", hit_gate="beat"), dict(timing="clock", hit_gate="bar")):
        with pytest.raises(ValueError, match="hit_gate"):
            mel_config("tiny", audio, **bad).validate()


def test_the_all_gate_keeps_every_source_hit_in_a_transfer_and_drops_them_in_training():
    """``hit_gate="all"``: a transfer at any strength keeps the whole code (the source's hits
    included: the decoder plays them in the target genre's sounds), while a training decode
    chosen by ``hit_dropout`` loses the whole hits stream, off-beat and on-beat hits alike."""
    audio = AudioConfig.preset("demo")
    cfg = mel_config("tiny", audio, timing="clock", hit_dropout=1.0, hits_offset=0.0, hit_gate="all")
    model = MelVAE(cfg, audio)
    wave = torch.zeros(2, audio.segment_samples)
    for s in range(2000, audio.segment_samples - 400, 11025):
        wave[:, s:s + 300] = torch.randn(300) * 0.5
    x = model.prepare(wave)
    _, mu, _ = model.encode(x)
    k, s = cfg.latent_channels, cfg.time_stride
    hits = mu[:, k + s:k + 2 * s]
    assert hits.max() > 0.5                                          # the clicks are in the stream
    for strength in (0.5, 1.0, 1.5):
        assert torch.equal(model.transfer_code(mu, strength), mu)
    model.train()
    z = model(x, torch.tensor([0, 1]))["z"]
    assert (z[:, k + s:k + 2 * s] == 0).all()
    assert torch.equal(z[:, k + 2 * s:], mu[:, k + 2 * s:])         # the clocks stay


def test_the_pattern_gate_keeps_the_hits_the_target_genre_plays_at_that_phase_of_the_beat():
    """``hit_gate="pattern"``: training decodes count each genre's hits by the phase of the beat
    clock; a transfer keeps a source hit as far as the target genre hits there as hard. Genre 0
    clicks on the beats and between them, genre 1 on the beats only: 0 -> 1 loses the clicks
    between the beats and keeps those on them, 1 -> 0 keeps every click, and the counts travel
    in the state dict."""
    from model import PATTERN_BINS
    from vae_parts import transfer_code, unfold_time
    audio = AudioConfig.preset("demo")
    cfg = mel_config("tiny", audio, timing="clock", hit_dropout=0.5, hits_offset=0.0, hit_gate="pattern")
    model = MelVAE(cfg, audio)
    beat = round(0.6 * audio.sample_rate)                            # 100 BPM
    on, off = list(range(2000, audio.segment_samples - 400, beat)), list(range(2000 + beat // 2, audio.segment_samples - 400, beat))
    wave = torch.zeros(2, audio.segment_samples)
    for row, clicks in ((0, ((on, 0.5), (off, 0.3))), (1, ((on, 0.5),))):
        for starts, level in clicks:
            for s in starts:
                wave[row, s:s + 300] = torch.randn(300) * level
    x, genre = model.prepare(wave), torch.tensor([0, 1])
    model.train()
    for _ in range(3):
        model(x, genre)
    pattern = model.hit_pattern()
    assert pattern.shape == (cfg.n_genres, PATTERN_BINS) and pattern[2:].abs().sum() == 0
    assert pattern[0].sum() > pattern[1].sum() > 0
    assert set(model.state_dict()) >= {"pattern_sum", "pattern_count"}
    model.eval()
    _, mu, _ = model.encode(x)
    k = cfg.latent_channels
    streams = unfold_time(mu[:, k:], cfg.timing_streams)
    moved = unfold_time(transfer_code(model, mu, 1.0, genre, genre.flip(0))[:, k:], cfg.timing_streams)
    others = [0] + list(range(2, cfg.timing_streams))
    assert torch.equal(moved[:, others], streams[:, others])

    def kept(row, starts):                                           # the share of each click's peak a transfer keeps
        hits, frames = streams[row, 1], [round(s / audio.hop_length) for s in starts]
        peaks = [f - 3 + int(hits[f - 3:f + 4].argmax()) for f in frames if 3 <= f < hits.shape[0] - 3]
        return torch.stack([moved[row, 1, f] / hits[f] for f in peaks])
    assert kept(0, on).min() > 0.8 and kept(0, off).max() < 0.2 and kept(1, on).min() > 0.8
    assert torch.equal(transfer_code(model, mu, 0.0, genre, genre.flip(0)), mu)
    with pytest.raises(ValueError, match="source and target"):
        model.transfer_code(mu, 1.0)
