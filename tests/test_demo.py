"""`make demo`'s path end to end with tiny settings (both families, about a minute and a half)."""
import json

import matplotlib.image as mpimg
import numpy as np
import soundfile as sf


def test_quick_demo_writes_metrics_wavs_and_the_listening_page(tmp_path):
    import demo
    out, logs = tmp_path / "res", tmp_path / "logs"
    metrics = demo.main(["--quick", "--data", str(tmp_path / "Data" / "synthetic"),
                         "--out", str(out), "--logs", str(logs), "--model", "mel", "--model", "wave"])
    assert sorted(metrics) == ["mel", "wave"]
    for family, m in metrics.items():
        saved = json.loads((out / family / "metrics.json").read_text())
        assert saved["model"]["family"] == family
        assert saved["judge"]["heldout_accuracy"] > 0.5                   # 10 genres: chance is 0.1
        rows = saved["transfer"]["conditional"]                           # the test split at the chosen strength
        assert [r["strength"] for r in rows] == [saved["model"]["strength"]]
        assert all(0.0 <= r["success"] <= 1.0 and r["content_retrieval"] is not None for r in rows)
        # best.pt and average.pt (mel: train.average) or the kept epochs (wave) at the first
        # strength, then the winner at every strength
        selection, strengths = saved["model"]["selection"], demo.DEMO_STRENGTHS[family]
        candidates = [r for r in selection if r["strength"] == strengths[0]]
        names = [r["checkpoint"] for r in candidates]
        assert len(set(names)) == len(names) >= 2 and names[0] == "best.pt"
        assert ("average.pt" in names) == (family == "mel")
        winner = max(candidates, key=lambda r: r["score"])
        assert sorted(r["strength"] for r in selection if r["checkpoint"] == winner["checkpoint"]) == sorted(strengths)
        assert len(selection) == len(candidates) + len(strengths) - 1
        chosen = max(selection, key=lambda r: r["score"])
        assert saved["model"]["checkpoint"].endswith(chosen["checkpoint"])
        assert saved["model"]["checkpoint_epoch"] == chosen["epoch"] and saved["model"]["strength"] == chosen["strength"]
        for r in selection:
            assert r["score"] == r["own_genre"] + r["success"] + r["content"] + r["onset_f1"]
            assert 0.0 <= r["onset_f1"] <= 1.0
            assert r["own_genre"] == next(c["own_genre"] for c in candidates if c["checkpoint"] == r["checkpoint"])
        assert 0 <= saved["latent"]["active_units"] <= saved["latent"]["latent_dim"]
        assert np.isfinite(saved["reconstruction"]["logmel_l1_db"])
        assert 0.0 <= saved["reconstruction"]["own_genre"] <= 1.0
        if family == "wave":                                              # its goal names the reconstructions' retrieval
            assert 0.0 <= saved["reconstruction"]["content_retrieval"] <= 1.0
        else:
            assert "content_retrieval" not in saved["reconstruction"]
        ceiling, identity = saved["baselines"]["same_timing"], saved["baselines"]["identity"]
        assert ceiling["success"] > identity["success"] and ceiling["judged_source"] < identity["judged_source"]
        # time against the aligned truth: the truth scores itself perfectly, a second draw of the
        # target genre at the same timing keeps most onsets and lands nearer than the source
        second = saved["baselines"]["second_draw"]
        assert ceiling["onset_f1"] == 1.0 and ceiling["truth_logmel_l1_db"] == 0.0
        assert second["onset_f1"] > 0.5 and second["truth_logmel_l1_db"] < identity["truth_logmel_l1_db"]
        assert identity["nearer_truth_than_source"] == 0.0
        for r in rows:
            assert 0.0 <= r["onset_f1"] <= 1.0 and r["onset_sharpness"] > 0 and r["truth_logmel_l1_db"] > 0
        rec = saved["reconstruction"]
        assert 0.0 <= rec["onset_f1"] <= 1.0 and rec["source_onset_sharpness"] > rec["onset_sharpness"] > 0
        figure = mpimg.imread(out / family / "transfer_examples.png")      # source, transfer, ground truth
        assert figure.shape[0] > 300 and figure.shape[1] > 600
        wavs = sorted((out / family).glob("*.wav"))
        assert len(wavs) == 20                                  # 5 clips x (reconstruction + 2 methods + ground truth)
        for w in wavs:
            audio, _ = sf.read(w)
            assert np.isfinite(audio).all() and np.sqrt(np.mean(audio ** 2)) > 1e-4
    curve = mpimg.imread(out / "transfer_curve.png")                      # success against retrieval
    assert curve.ndim == 3 and min(curve.shape[:2]) > 200 and curve[..., :3].std() > 0.05
    page = (out / "index.html").read_text()
    assert page.count("<audio") >= 2 * 5 * 5                 # source, reconstruction, 2 methods, ground truth
    assert page.count('data-role="truth"') == 2 * 5 and "onset F1 against the ground truth" in page
