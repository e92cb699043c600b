"""The listening page (listening_page.py): static checks, errors, and a real headless Chromium.

The browser test builds a results folder the way transfer.py leaves it (manifest.csv,
output WAVs, metrics.json, sources outside the folder) plus a hand-made section with
awkward names, writes the page, moves the folder elsewhere (so only relative links can
work), and has Chromium check every player's duration, every picture and a screenshot.
Chromium is driven by selenium through Debian's ``chromium`` and ``chromium-driver``, which
``make test`` installs (as root or with passwordless sudo); where they are missing the test
is skipped, with the reason.
"""
import csv
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import soundfile as sf
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

import listening_page as lp

pytestmark = pytest.mark.filterwarnings("ignore:n_fft=.*is too large for input signal:UserWarning")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
ODD_TITLE = 'Odd <script>alert("x")</script> & "quotes"'
VIEWPORT = (1200, 1600)


# --------------------------------------------------------------------------- synthetic results
def tone(path: Path, seconds: float, sr: int = 22050, freq: float = 440.0, channels: int = 1,
         seed: int = 0) -> Path:
    """A sine with a little noise and a fade, ``seconds`` long, as 16-bit WAV."""
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.default_rng(seed)
    x = 0.4 * np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(2 * np.pi * 1.5 * freq * t)
    x = x * np.minimum(1.0, 4 * t) + 0.02 * rng.standard_normal(t.size)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data.astype(np.float32), sr, subtype="PCM_16")
    return path


def fake_metrics() -> dict:
    """A metrics.json dict with the schema of evaluation.build_metrics."""
    entry = {"success": 0.4, "target_prob": 0.35, "content_chroma_corr": 0.7, "content_retrieval": 0.6,
             "content_retrieval_chance": 0.333, "n": 6}
    return {"schema_version": 1,
            "model": {"name": "mel VAE", "preset": "tiny", "checkpoint": "vae_logs/mel/best.pt",
                      "family": "mel", "checkpoint_epoch": 2, "clips": 6, "targets": ["jazz"] * 6},
            "judge": {"heldout_accuracy": 0.9, "n_train": 10, "n_test": 10, "classifier": "lr", "sr": 22050},
            "transfer": {"shift": [{"strength": 1.0, **entry}],
                         "conditional": [{"strength": 0.5, **entry}, {"strength": 1.0, **entry, "success": 0.5}]},
            "baselines": {"identity": {**entry, "success": 0.0, "content_chroma_corr": 1.0},
                          "random_target": {**entry, "success": 0.9, "content_chroma_corr": 0.1}},
            "reconstruction": {"logmel_l1_db": 3.21, "spectral_convergence": 0.45, "n": 6},
            "latent": {"knn_genre_accuracy": 0.3, "knn_k": 5, "silhouette": -0.02, "active_units": 7,
                       "latent_dim": 16, "kl_per_dim": [0.1] * 16, "kl_total": 1.6, "n": 18, "notes": []}}


class FixedJudge:
    """Stands in for evaluation.GenreJudge: the same probabilities for every clip."""

    def predict_proba(self, audios, sr):
        from SlicingDataLoading import GENRES
        p = np.full(len(GENRES), 0.02)
        p[GENRES.index("jazz")] = 0.82
        return np.tile(p, (len(audios), 1))


def transfer_outputs(root: Path) -> dict:
    """What transfer.py leaves: outputs + manifest.csv in out/mel, sources outside ``out``.

    Every file has its own duration, so a player showing the wrong file is caught.
    """
    from listening_page import record_outputs

    data, out = root / "data", root / "audio_results"
    fam = out / "mel"
    blues = tone(data / "blues" / "blues.00001.wav", 3.10, freq=330.0)
    jazz = tone(data / "jazz" / "jazz.00007.wav", 2.60, sr=16000, freq=262.0, channels=2)
    rows = [(blues, "blues", "jazz", "conditional", 0.0, 3.05), (blues, "blues", "jazz", "shift", 1.0, 3.00),
            (blues, "blues", "jazz", "conditional", 1.0, 2.95), (jazz, "jazz", "rock", "shift", 1.5, 2.55)]
    durations = {}
    for i, (src, g_src, g_tgt, method, strength, seconds) in enumerate(rows):
        name = f"{src.stem}__{g_src}_to_{g_tgt}__{method}_{strength:g}.wav"
        tone(fam / name, seconds, sr=22050, freq=300.0 + 40 * i, seed=i)
        durations[name] = seconds
        record_outputs(fam, [{"source_file": str(src), "source_genre": g_src, "target_genre": g_tgt,
                              "method": method, "strength": strength, "output_file": name}])
    (fam / "metrics.json").write_text(json.dumps(fake_metrics()))
    return {"out": out, "fam": fam, "data": data, "durations": durations}


def odd_section(out: Path) -> lp.ModelSection:
    """A hand-made section whose names need escaping and percent-encoding."""
    folder = out / "extra dir"
    src = tone(folder / "a clip & #1.wav", 1.30, sr=8000, freq=500.0)
    outp = tone(folder / "out?=%.wav", 1.45, sr=44100, freq=700.0)
    img = lp.render_spectrogram(src, folder / "spec #1.png", title="odd")
    return lp.ModelSection(ODD_TITLE, {"family": "wave", "checkpoint": "x<y>.pt"}, None, [
        lp.TransferEntry("a clip & #1.wav", "blues", "metal",
                         source=lp.Clip("source", src, img, {"note": "<b>not bold</b>"}),
                         outputs=[lp.Clip("conditional", Path("extra dir") / "out?=%.wav", None,
                                          {"target_prob": 0.5})])])


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The results folder with its page, moved away from where it was built."""
    root = tmp_path_factory.mktemp("results")
    made = transfer_outputs(root)
    section = lp.section_from_folder(made["fam"], made["out"], judge=FixedJudge(), content=True)
    page = lp.write_listening_page(made["out"], [section, odd_section(made["out"])])
    moved = tmp_path_factory.mktemp("shared") / "audio_results"
    shutil.copytree(made["out"], moved)
    shutil.rmtree(root)                             # the sources are gone: the page must not need them
    return {"page": moved / page.name, "out": moved, "section": section, "durations": made["durations"]}


# --------------------------------------------------------------------------- without a browser
class _Checker(HTMLParser):
    """Nesting of start / end tags, and every src / href."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.links, self.tags, self.doctype = [], [], [], [], None

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k in ("src", "href")]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_page_is_static_relative_and_escaped(results):
    text = results["page"].read_text(encoding="utf-8")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.doctype == "DOCTYPE html"
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    assert "script" not in checker.tags and "link" not in checker.tags and "iframe" not in checker.tags
    assert checker.links
    for link in checker.links:                      # relative, and resolving inside the folder
        parsed = urlparse(link)
        assert not parsed.scheme and not parsed.netloc and not link.startswith("/"), link
        if not link.startswith("#"):
            target = (results["out"] / unquote(parsed.path)).resolve()
            assert target.is_file() and target.is_relative_to(results["out"].resolve()), link
    assert "<script>" not in text and "&lt;script&gt;" in text and "&lt;b&gt;not bold" in text
    assert "http://" not in text and "https://" not in text
    if shutil.which("tidy"):                          # HTML Tidy, where installed, finds nothing to say
        done = subprocess.run(["tidy", "-errors", "-quiet", str(results["page"])], capture_output=True, text=True)
        assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_section_from_manifest(results):
    section = results["section"]
    assert section.name == "mel VAE" and section.info["preset"] == "tiny" and "name" not in section.info
    first, second = section.entries
    assert (first.title, first.source_genre, first.target_genre) == ("blues.00001.wav", "blues", "jazz")
    assert Path(first.reconstruction.audio).name == "blues.00001__blues_to_jazz__conditional_0.wav"
    assert [Path(c.audio).name for c in first.outputs] == [
        "blues.00001__blues_to_jazz__shift_1.wav", "blues.00001__blues_to_jazz__conditional_1.wav"]
    assert second.reconstruction is None and len(second.outputs) == 1
    assert Path(first.source.audio).parent.name == lp.SOURCES_DIR      # copied in from outside
    assert Path(second.source.audio).suffix == ".wav"
    for _, clip in first.clips():
        assert Path(clip.image).suffix == ".png"
        assert clip.metrics["target_prob"] == pytest.approx(0.82)
        assert clip.metrics["judge_genre"] == "jazz"
    for clip in first.outputs + [first.reconstruction]:
        assert -1.0 <= clip.metrics["content_similarity"] <= 1.0
    text = results["page"].read_text(encoding="utf-8")
    for expected in ("transfer success", "content retrieval", "3.21", "active units 7 / 16", "0.820",
                     "vae_logs/mel/best.pt"):
        assert expected in text, expected


def test_write_report_finds_family_folders(tmp_path):
    made = transfer_outputs(tmp_path)
    page = lp.write_report(made["out"], info={"family": "mel", "extra": "from the caller"},
                           content=False, spectrograms=False)
    text = page.read_text(encoding="utf-8")
    assert page == made["out"].resolve() / "index.html"
    assert text.count('<section class="model"') == 1 and "from the caller" in text
    assert text.count("<audio ") == 6                # 2 sources + 1 reconstruction + 3 outputs
    with pytest.raises(FileNotFoundError, match="no manifest.csv"):
        lp.write_report(tmp_path / "data")


def test_missing_file_is_named(tmp_path):
    good = tone(tmp_path / "ok.wav", 1.0)
    (tmp_path / "index.html").write_text("previous page")
    for missing in ("gone.wav", "pictures/gone.png"):
        clip = lp.Clip("source", missing, None) if missing.endswith(".wav") else lp.Clip("source", good, missing)
        section = lp.ModelSection("m", entries=[lp.TransferEntry("t", "blues", "jazz", clip)])
        with pytest.raises(FileNotFoundError, match=str(Path(missing).name).replace(".", r"\.")) as err:
            lp.write_listening_page(tmp_path, section)
        assert "m / t" in str(err.value)              # and where it was referenced
    assert (tmp_path / "index.html").read_text() == "previous page"   # nothing half-written

    outside = tone(tmp_path.parent / f"{tmp_path.name}_outside.wav", 1.0)
    section = lp.ModelSection("m", entries=[lp.TransferEntry("t", "a", "b", lp.Clip("s", outside))])
    with pytest.raises(ValueError, match="outside the page folder") as err:
        lp.write_listening_page(tmp_path, section)
    assert outside.name in str(err.value)
    outside.unlink()

    not_png = tmp_path / "fake.png"
    not_png.write_bytes(b"not a picture")
    section = lp.ModelSection("m", entries=[lp.TransferEntry("t", "a", "b", lp.Clip("s", good, not_png))])
    with pytest.raises(ValueError, match="fake.png is not a valid PNG"):
        lp.write_listening_page(tmp_path, section)


def test_manifest_naming_a_missing_output(tmp_path):
    made = transfer_outputs(tmp_path)
    (made["fam"] / "blues.00001__blues_to_jazz__shift_1.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"blues\.00001__blues_to_jazz__shift_1\.wav"):
        lp.write_report(made["out"], content=False, spectrograms=False)
    with open(made["fam"] / "manifest.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 4


# --------------------------------------------------------------------------- in Chromium
PROBE = """(async () => {
  const audios = [...document.querySelectorAll('audio')];
  await Promise.all(audios.map(a => new Promise(resolve => {
    if (a.readyState >= 1 || a.error) return resolve();
    a.addEventListener('loadedmetadata', resolve, {once: true});
    a.addEventListener('error', resolve, {once: true});
    setTimeout(resolve, 20000);
    if (a.networkState !== HTMLMediaElement.NETWORK_LOADING) a.load();      // suspended: ask again
  })));
  const images = [...document.images];
  await Promise.all(images.map(i => i.decode().catch(() => null)));
  audios.forEach(a => a.setAttribute('data-browser-duration', String(a.duration)));
  return {
    audio: audios.map(a => ({src: a.currentSrc, stated: a.dataset.duration, duration: a.duration,
                             browser: a.getAttribute('data-browser-duration'),
                             error: a.error ? a.error.code : null, ready: a.readyState,
                             text: a.closest('figure').querySelector('.seconds').textContent})),
    images: images.map(i => ({src: i.currentSrc, width: i.naturalWidth, height: i.naturalHeight})),
    scripts: document.scripts.length,
    h2: [...document.querySelectorAll('h2')].map(h => h.textContent),
    resources: performance.getEntriesByType('resource').map(r => r.name),
  };
})()"""


CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-default-browser-check", "--mute-audio", "--hide-scrollbars",
                "--force-device-scale-factor=1", f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}")


@pytest.fixture
def chrome(tmp_path, monkeypatch):
    """Debian's chromium, headless, driven by selenium through Debian's chromedriver."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.skip("chromium/chromedriver not installed: "
                    "make test installs them as root or with passwordless sudo")
    monkeypatch.setenv("SE_OFFLINE", "true")     # Selenium Manager never downloads (the service path skips it)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})    # DevTools events: requests
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    service = Service(executable_path=driver, log_output=str(tmp_path / "chromedriver.log"))
    drv = webdriver.Chrome(options=options, service=service)
    try:
        drv.set_script_timeout(60)
        drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {   # the viewport, not the window
            "width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False})
        print(f"{binary} {drv.capabilities.get('browserVersion')}, {driver}")
        yield drv
    finally:
        drv.quit()


def _local(url: str, out: Path) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file", url
    path = Path(unquote(parsed.path)).resolve()
    assert path.is_relative_to(out.resolve()), f"{url} is outside {out}"
    return path


def test_page_in_headless_chromium(results, chrome, tmp_path):
    import matplotlib.image as mpimg

    out = results["out"]
    page_url = results["page"].resolve().as_uri()
    chrome.get(page_url)                                            # returns once the load event fired
    assert chrome.current_url == page_url
    assert chrome.execute_script("return [innerWidth, innerHeight, devicePixelRatio]") == [*VIEWPORT, 1]
    report = chrome.execute_script("return " + PROBE)               # the promise is awaited
    png = chrome.get_screenshot_as_png()

    assert report["scripts"] == 0
    assert report["h2"] == ["mel VAE", ODD_TITLE]                  # escaped text reads back verbatim
    assert len(report["audio"]) == 6 + 2
    for a in report["audio"]:
        path = _local(a["src"], out)
        assert path.is_file(), a
        assert a["error"] is None and a["ready"] >= 1, f"{path.name} did not load: {a}"
        on_disk = lp.audio_duration(path)
        assert float(a["stated"]) == pytest.approx(on_disk, abs=1e-6), path.name
        assert a["duration"] == pytest.approx(on_disk, abs=0.01), f"{path.name}: browser {a['duration']}"
        assert float(a["browser"]) == pytest.approx(a["duration"])
        assert a["text"] == f"{on_disk:.2f}"
        if path.name in results["durations"]:
            assert on_disk == pytest.approx(results["durations"][path.name], abs=1e-3)
    assert len(report["images"]) == 6 + 1
    for img in report["images"]:
        assert _local(img["src"], out).is_file()
        assert img["width"] > 0 and img["height"] > 0, f"{img['src']} did not decode"
    for url in report["resources"]:
        _local(url, out)                                            # nothing fetched from elsewhere
    requested = {m["params"]["request"]["url"] for m in (json.loads(e["message"])["message"]
                                                          for e in chrome.get_log("performance"))
                 if m["method"] == "Network.requestWillBeSent" and m["params"].get("documentURL") == page_url}
    fetched = {_local(u, out) for u in requested if not u.startswith("data:")}  # data: the players' icons
    shown = {_local(x["src"], out) for x in report["audio"] + report["images"]}
    assert fetched == shown | {results["page"].resolve()}           # the page, its players and pictures only

    shot = tmp_path / "page.png"
    shot.write_bytes(png)
    pixels = mpimg.imread(shot)                                     # (H, W, 3 or 4) floats in [0, 1]
    assert pixels.shape[:2] == (VIEWPORT[1], VIEWPORT[0])
    rgb = (pixels[..., :3] * 255).round().astype(np.uint8).reshape(-1, 3)
    colours = len(np.unique(rgb, axis=0))
    assert rgb.std() > 10 and colours > 200, f"screenshot looks blank: std {rgb.std():.1f}, {colours} colours"
