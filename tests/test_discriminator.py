"""The critics of the adversarial phase and one step of it, on tiny models."""
import pytest
import torch

import trainer
from adversarial import level_gap
from discriminator import Critics, GenreClassifier, MelDiscriminator, d_hinge_loss, feature_matching_loss

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("norm", ["spectral", "weight", "none"])
def test_the_discriminators_score_depends_on_the_genre_it_is_given(norm):
    torch.manual_seed(0)
    disc = MelDiscriminator(10, scales=(1, 2), channels=(8, 16, 16, 16), norm=norm).eval()   # eval: no power iteration
    x = torch.rand(3, 1, 128, 64) * 2 - 1
    outs = {g: disc(x, torch.full((3,), g)) for g in (0, 5)}
    for (a, feats_a), (b, feats_b) in zip(outs[0], outs[5]):
        assert a.shape == b.shape and a.shape[0] == 3 and len(feats_a) == 4
        assert (a - b).abs().mean() > 1e-3                       # the projection reads the genre
        assert all(torch.equal(fa, fb) for fa, fb in zip(feats_a, feats_b))   # ... only at the end
    # The genre embedding learns: one hinge step that calls (x, 0) real and (x, 5) fake
    # raises the score of genre 0 against genre 5 on the same mels.
    disc.train()
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    gap = lambda: sum(float((disc(x, torch.zeros(3, dtype=torch.long))[i][0].detach()  # noqa: E731
                             - disc(x, torch.full((3,), 5))[i][0].detach()).mean()) for i in range(2))
    before = gap()
    for _ in range(5):
        loss = d_hinge_loss(disc(x, torch.zeros(3, dtype=torch.long)), disc(x, torch.full((3,), 5)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert gap() > before + 0.1


def test_feature_matching_is_zero_for_the_same_mels_and_the_classifier_reads_any_length():
    torch.manual_seed(0)
    disc = MelDiscriminator(10, scales=(1,), channels=(8, 8, 8, 8)).eval()
    x, g = torch.rand(2, 1, 128, 32), torch.tensor([1, 2])
    with torch.no_grad():
        assert float(feature_matching_loss(disc(x, g), disc(x, g))) == 0.0
        assert float(feature_matching_loss(disc(x, g), disc(x + 0.5, g))) > 0.0
    clf = GenreClassifier(10, 128)
    assert clf(torch.rand(2, 1, 128, 48)).shape == clf(torch.rand(2, 1, 128, 128)).shape == (2, 10)
    # Statistics pooling reads how the features move over time, down to a single pooled frame.
    moving = GenreClassifier(10, 128, pooling="mean+std").eval()
    assert moving(torch.rand(2, 1, 128, 16)).shape == (2, 10) and torch.isfinite(moving(torch.rand(1, 1, 128, 16))).all()
    with pytest.raises(ValueError, match="pooling 'max'"):
        GenreClassifier(10, 128, pooling="max")
    with pytest.raises(ValueError, match="8 mel bands"):
        GenreClassifier(10, 8)
    with pytest.raises(ValueError, match="norm 'batch'"):
        MelDiscriminator(10, norm="batch")


def _tiny_trainer(tmp_path, family="mel", **train):
    audio, model_cfg, train_cfg = trainer.configs(family, "tiny",
                                                  train={"gan_start": 0, "gan_cycle_x_weight": 1.0, **train})
    torch.manual_seed(0)
    fam = trainer.get_family(family)
    wave = torch.randn(40, audio.segment_samples) * 0.1
    data = torch.utils.data.TensorDataset(wave, torch.arange(40) % 10)
    return trainer.MemoryEfficientTrainer(fam.model(model_cfg, audio), fam.loss(train_cfg, audio), train_cfg,
                                          tmp_path, family=family, audio=audio, model_cfg=model_cfg,
                                          train_data=data, val_data=data, genres=[str(i) for i in range(10)])


@pytest.mark.parametrize("family", ["mel", "wave"])
def test_one_adversarial_step_changes_decoder_and_discriminator_not_the_encoder(tmp_path, family):
    tr = _tiny_trainer(tmp_path, family)
    assert tr.adversarial and isinstance(tr.critics, Critics)
    core = tr.model
    snap = lambda module: {k: v.detach().clone() for k, v in module.state_dict().items()}  # noqa: E731
    before = {"decoder": snap(core.decoder), "encoder": snap(core.encoder), "disc": snap(tr.critics.discriminator),
              "clf": snap(tr.critics.classifier)}
    core.train()
    wave, genre = next(iter(torch.utils.data.DataLoader(tr.train_data, batch_size=4)))
    terms = tr._gan_step(wave.float(), genre.long())
    after = {"decoder": snap(core.decoder), "encoder": snap(core.encoder), "disc": snap(tr.critics.discriminator),
             "clf": snap(tr.critics.classifier)}
    changed = {name: any(not torch.equal(before[name][k], after[name][k]) for k in before[name]) for name in before}
    assert changed == {"decoder": True, "encoder": False, "disc": True, "clf": False}, changed
    assert {"gan_rec", "gan_fm", "gan_adv", "gan_adv_swap", "gan_genre", "gan_cycle", "gan_cycle_x", "gan_d",
            "total"} <= set(terms)
    assert all(torch.isfinite(v).all() for v in terms.values())
    assert tr.step == 1


def test_the_level_term_costs_a_change_of_level_and_not_of_balance(tmp_path):
    """level_gap: louder or quieter decodes cost their mean offset; moving energy between bands
    at the same level costs nothing. With train.gan_level_weight the adversarial step reports it."""
    torch.manual_seed(0)
    real = torch.rand(2, 1, 16, 20) * 1.6 - 0.8
    offset = torch.tensor([0.1, -0.3]).view(2, 1, 1, 1)
    assert float(level_gap(real + offset, real)) == pytest.approx(0.2, abs=1e-6)
    tilt = torch.linspace(-0.2, 0.2, 16).view(1, 1, 16, 1)             # brighter, same level
    assert float(level_gap(real + tilt, real)) == pytest.approx(0.0, abs=1e-6)
    tr = _tiny_trainer(tmp_path, "mel", gan_level_weight=1.0)
    tr.model.train()
    wave, genre = next(iter(torch.utils.data.DataLoader(tr.train_data, batch_size=4)))
    terms = tr._gan_step(wave.float(), genre.long())
    assert float(terms["gan_level"].detach()) > 0 and torch.isfinite(terms["total"])
    assert "gan_level" not in _tiny_trainer(tmp_path / "off", "mel")._gan_step(wave.float(), genre.long())


def _swap_trainer(tmp_path, **train):
    audio, model_cfg, train_cfg = trainer.configs("wave", "tiny", train={"gan_start": -1, **train})
    torch.manual_seed(0)
    fam = trainer.get_family("wave")
    wave = torch.randn(8, audio.segment_samples) * 0.1
    data = torch.utils.data.TensorDataset(wave, torch.arange(8) % 10)
    return trainer.MemoryEfficientTrainer(fam.model(model_cfg, audio), fam.loss(train_cfg, audio), train_cfg,
                                          tmp_path, family="wave", audio=audio, model_cfg=model_cfg,
                                          train_data=data, val_data=data, genres=[str(i) for i in range(10)])


def test_the_swap_fraction_decodes_only_that_share_of_the_batch(tmp_path):
    """swap_fraction=0.5: the classifier's term sees (and its gradient reaches) only the first
    half of the batch's latents; a share outside (0, 1] is refused with its name."""
    tr = _swap_trainer(tmp_path, swap_genre_weight=1.0, swap_cycle_weight=1.0, swap_fraction=0.5)
    wave, genre = torch.randn(4, trainer.configs("wave", "tiny")[0].segment_samples) * 0.1, torch.tensor([0, 1, 2, 3])
    core = tr.model
    z, mu, _ = core.encode(core.prepare(wave))
    z = z.detach().requires_grad_(True)
    terms, mel = tr.adv.swap_term(z, mu.detach(), genre)
    assert mel.shape[0] == 2 and torch.isfinite(terms["swap_cycle"])
    (terms["swap_genre"] + terms["swap_cycle"]).backward()
    per_clip = z.grad.flatten(1).abs().sum(1)
    assert float(per_clip[:2].min()) > 0 and float(per_clip[2:].max()) == 0
    for bad in (0.0, 1.5):
        with pytest.raises(trainer.InputError, match="swap_fraction"):
            _swap_trainer(tmp_path, swap_genre_weight=1.0, swap_fraction=bad)


def test_the_swap_genre_term_trains_the_encoder_from_its_start_step(tmp_path):
    """Without an adversarial phase the classifier still exists for the swap term, which joins
    the VAE loss from swap_start on and reaches the encoder through the latent."""
    wave, genre = torch.randn(4, trainer.configs("wave", "tiny")[0].segment_samples) * 0.1, torch.tensor([0, 1, 2, 3])
    encoders = {}
    for weight in (0.0, 1.0):
        tr = _swap_trainer(tmp_path / str(weight), swap_genre_weight=weight, swap_start=1, swap_source_labels=True,
                           swap_cycle_weight=weight)
        assert (tr.critics is not None) == (weight > 0) and not tr.adversarial
        tr.model.train()
        first = tr._vae_step(wave, genre, last=True)                 # step 0 < swap_start: no term
        assert "swap_genre" not in first
        snap = {k: v.detach().clone() for k, v in tr.model.encoder.state_dict().items()}
        torch.manual_seed(1)
        terms = tr._vae_step(wave, genre, last=True)
        encoders[weight] = {k: v - snap[k] for k, v in tr.model.encoder.state_dict().items()}
        assert ("swap_genre" in terms) == ("swap_cycle" in terms) == (weight > 0)
        if weight:
            assert torch.isfinite(terms["swap_genre"]) and float(terms["swap_genre"].detach()) > 0.5   # ~ln 10 untrained
    moved = sum(float((encoders[1.0][k] - encoders[0.0][k]).abs().sum()) for k in encoders[0.0])
    assert moved > 1e-4                                              # the classifier's term moved the encoder
    # Decoding with other genres needs a decoder that is told the genre.
    audio, model_cfg, train_cfg = trainer.configs("mel", "tiny", model={"conditional": False},
                                                  train={"gan_start": -1, "swap_genre_weight": 1.0})
    fam = trainer.get_family("mel")
    with pytest.raises(trainer.InputError, match="swap_genre_weight"):
        trainer.MemoryEfficientTrainer(fam.model(model_cfg, audio), fam.loss(train_cfg, audio), train_cfg, tmp_path,
                                       family="mel", audio=audio, model_cfg=model_cfg,
                                       train_data=torch.utils.data.TensorDataset(torch.zeros(2, 10), torch.zeros(2)),
                                       val_data=None, genres=["a", "b"])
