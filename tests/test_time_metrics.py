"""Time against a reference (audio_metrics): onsets, onset sharpness and log-mel L1 tell a clip
that keeps its time from a smeared or shifted copy, on synthetic music."""
import numpy as np
import pytest
import torch

import audio_metrics as am
import synthetic_gtzan

SR = 22050


@pytest.fixture(scope="module")
def clip():
    return synthetic_gtzan.render_clip(3, "rock", sr=SR, duration=6.0, seed=0)


def smeared(audio: np.ndarray, seconds: float = 0.25) -> np.ndarray:
    """The clip with its STFT magnitudes averaged over ``seconds`` (phases kept): the same
    notes and spectrum, the attacks spread out, as a decoder that draws the mean does."""
    x = torch.from_numpy(audio)
    window = torch.hann_window(1024)
    spec = torch.stft(x, 1024, 256, window=window, return_complex=True)
    frames = max(1, round(seconds * SR / 256))
    mag = torch.nn.functional.avg_pool1d(spec.abs()[None], frames, 1, frames // 2, count_include_pad=False)[0]
    out = torch.polar(mag[:, :spec.shape[-1]], spec.angle())
    return torch.istft(out, 1024, 256, window=window, length=len(audio)).numpy()


def test_a_clip_scores_itself_perfectly(clip):
    m = am.time_metrics(clip, clip, SR)
    assert m["onset_precision"] == m["onset_recall"] == m["onset_f1"] == 1.0
    assert m["logmel_l1_db"] == 0.0 and m["onset_sharpness"] > 4.0          # crisp synthetic hits


def test_a_smeared_copy_keeps_its_notes_but_loses_onsets_and_sharpness(clip):
    ref, copy = am.TimeReference(clip, SR), smeared(clip)
    m = am.time_metrics(ref, copy, SR)
    assert m["onset_f1"] < 0.7 and m["onset_sharpness"] < 0.3 * ref.sharpness
    assert 0.0 < m["logmel_l1_db"] < 10.0                                   # the spectrum is nearly the same


def test_a_clip_shifted_by_100_ms_loses_its_onsets(clip):
    shift = int(0.1 * SR)
    late = np.concatenate([np.zeros(shift, np.float32), clip[:-shift]])
    m = am.time_metrics(clip, late, SR)
    assert m["onset_f1"] < 0.3                                              # 100 ms is twice the tolerance
    assert m["onset_sharpness"] > 4.0                                       # as crisp as ever, just late
    near = np.concatenate([np.zeros(int(0.02 * SR), np.float32), clip[:-int(0.02 * SR)]])
    assert am.time_metrics(clip, near, SR)["onset_f1"] > 0.9                # 20 ms is inside it


def test_onset_scores_count_hits_within_the_tolerance():
    s = am.onset_scores([1.0, 2.0, 3.0, 4.0], [1.02, 2.2, 3.04])
    assert s["onset_precision"] == pytest.approx(2 / 3) and s["onset_recall"] == pytest.approx(2 / 4)
    assert s["onset_f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert am.onset_scores([], [])["onset_f1"] == 1.0 and am.onset_scores([1.0], [])["onset_f1"] == 0.0


def test_mean_time_metrics_averages_pairs_and_keeps_each_clips_l1(clip):
    late = np.concatenate([np.zeros(2205, np.float32), clip[:-2205]])
    m = am.mean_time_metrics([clip, clip], [clip, late], SR)
    assert m["n"] == 2 and m["per_clip_logmel_l1_db"][0] == 0.0 < m["per_clip_logmel_l1_db"][1]
    assert m["onset_f1"] == pytest.approx((1.0 + am.time_metrics(clip, late, SR)["onset_f1"]) / 2)
    with pytest.raises(ValueError, match="references"):
        am.mean_time_metrics([clip], [clip, late], SR)
